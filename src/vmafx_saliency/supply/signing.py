"""Sigstore bundles for single-file models, made and checked through model_signing.

A bundle ``<model>.sigstore.json`` is a Sigstore bundle (media type
``application/vnd.dev.sigstore.bundle.v0.3+json``) whose DSSE envelope carries an
in-toto statement with the predicate ``https://model_signing/signature/v1.0``.
For one model *file* (not a directory) model_signing records:

* one resource named ``"."`` (the file's path relative to itself) whose digest
  is the plain sha256 of the file's bytes: the digest this module reports as
  :attr:`SignatureReport.sha256` and compares with ``expected_sha256``;
* one subject named after the file (``model.onnx``) whose digest is the sha256
  over the resource digests. model_signing treats the name as informative only.

The signature therefore does not depend on where the file lies: a model and
its bundle copied into another directory (release staging) still verify, and
so does a renamed copy.

Three ways to verify (DESIGN section 4), chosen with a :class:`Verifier`:

``public-key``
    the bundle was signed with an EC private key (``sign_model(...,
    private_key=KEY)``); verify with the matching public key.
``certificate-chain``
    the bundle was signed with a private key plus a signing certificate from a
    private PKI; verify against the trusted root (and intermediate) certificates.
``keyless``
    Sigstore keyless signing: a short-lived Fulcio certificate for an OIDC
    identity, logged in Rekor. Verification needs the Sigstore trust root: it
    is fetched over the network (TUF) from the public-good instance (or staging
    with ``use_staging``) unless ``trust_config`` names a local client trust
    config. An exact ``identity`` goes through model_signing's
    ``use_sigstore_verifier``; ``identity_regexp`` is not supported by
    model_signing, so that case uses sigstore-python's verifier directly with a
    policy that requires the regexp to match a certificate identity *in full*.

:func:`sign_model` signs with a key or a key plus certificate; keyless
bundles are made elsewhere (e.g. ``model_signing sign sigstore`` in CI) and
verified here.

model_signing and cryptography come with the ``sign`` extra and are imported
lazily, so ``import vmafx_saliency.supply.signing`` works without them.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vmafx_saliency._util import (
    atomic_write_bytes,
    check_can_write,
    read_capped,
    require,
    sha256_file,
)
from vmafx_saliency.errors import (
    BundleInvalidError,
    BundleMissingError,
    InputFileError,
    ModelTamperedError,
    OutputExistsError,
    SignatureMismatchError,
    SigningKeyError,
    TrustRootError,
    UsageError,
)

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from sigstore.models import ClientTrustConfig

log = logging.getLogger(__name__)

BUNDLE_SUFFIX = ".sigstore.json"

Method = Literal["public-key", "certificate-chain", "keyless"]
METHODS: tuple[Method, ...] = ("public-key", "certificate-chain", "keyless")

# The format model_signing 1.x writes for key and certificate signing.
_PB_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
# model_signing names the only resource of a single-file model after the file's
# path relative to itself.
_FILE_RESOURCE = "."
# The curves model_signing accepts (it follows Sigstore's protobuf specs).
_EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Sigstore's "other name" SAN type (used for non-email, non-URI identities).
_SIGSTORE_OTHERNAME_OID = "1.3.6.1.4.1.57264.1.7"
# A real bundle is a few KiB; refuse to read something huge (a model passed as
# --bundle by mistake) into memory.
_MAX_BUNDLE_BYTES = 8 << 20
# PEM keys and certificate chains are a few kilobytes.
_MAX_KEY_BYTES = 1 << 20

_KIND_WORDS: dict[str, str] = {
    "public-key": "with a private key",
    "certificate-chain": "with a signing certificate",
    "keyless": "keyless through Sigstore",
}
_KIND_FLAGS: dict[str, str] = {
    "public-key": "verify it with --public-key KEY.pub",
    "certificate-chain": "verify it with --certificate-chain ROOT.pem",
    "keyless": "verify it with --identity (or --identity-regexp) and --oidc-issuer",
}


# --- keys -------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    private_key: Path
    public_key: Path


def generate_key_pair(private_key: Path, *, public_key: Path | None = None) -> KeyPair:
    """Create an EC P-256 key pair in PEM for :func:`sign_model`.

    The private key is unencrypted PKCS8, created with mode 0600 from the
    start; the public key (SubjectPublicKeyInfo) goes to ``<private>.pub``
    unless ``public_key`` names another path. Neither file is ever
    overwritten: if either exists, :class:`OutputExistsError` is raised before
    anything is written.
    """
    require("model_signing", purpose="key generation")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key = Path(private_key)
    public_key = (
        Path(public_key)
        if public_key is not None
        else private_key.with_name(private_key.name + ".pub")
    )
    if private_key.absolute() == public_key.absolute():
        raise UsageError(f"{private_key}: the public key needs a path of its own")
    for path in (private_key, public_key):
        # is_symlink: a dangling link "does not exist" but writing through it
        # would still create a file elsewhere.
        if path.exists() or path.is_symlink():
            raise OutputExistsError(
                f"{path} already exists: key files are never overwritten; "
                "choose another path or move the old key away yourself"
            )

    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _create_exclusive(private_key, private_pem, mode=0o600)
    try:
        _create_exclusive(public_key, public_pem, mode=0o644)
    except BaseException:
        # Half a key pair is worse than none: the next run would refuse to
        # overwrite the private key.
        private_key.unlink(missing_ok=True)
        raise
    return KeyPair(private_key=private_key, public_key=public_key)


def _create_exclusive(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to a new file ``path`` atomically, never replacing one.

    The bytes go to a temporary file created with ``mode`` (no window with
    wider permissions), then a hard link gives it its name: ``link`` fails if
    the name exists, so a file that appeared since the caller's check is not
    clobbered either, and no reader ever sees a partial key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise OutputExistsError(
                f"{path} already exists: key files are never overwritten; "
                "choose another path or move the old key away yourself"
            ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _read_key_file(path: Path, what: str) -> bytes:
    missing = (
        f"create a key pair with 'vmafx-saliency keygen --private-key {path}'"
        if what == "private key"
        else "pass the public key of the key pair that signed the model"
    )
    return read_capped(path, cap=_MAX_KEY_BYTES, what=what, error=SigningKeyError, missing=missing)


def _check_curve(path: Path, key: ec.EllipticCurvePublicKey, what: str) -> None:
    if key.curve.name not in _EC_CURVES:
        raise SigningKeyError(
            f"{path}: the {what} is on curve {key.curve.name}; model_signing needs "
            "P-256, P-384 or P-521: create a key with 'vmafx-saliency keygen'"
        )


def _load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        # cryptography raises TypeError when a password is needed.
        raise SigningKeyError(
            f"{path}: the private key is encrypted; signing takes an unencrypted PKCS8 "
            "PEM key (keep it private with file permissions, mode 0600)"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(
            f"{path}: not a PEM private key ({exc}): pass the private key file "
            "written by 'vmafx-saliency keygen'"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningKeyError(
            f"{path}: the private key is {type(key).__name__}, not an elliptic-curve key: "
            "create one with 'vmafx-saliency keygen'"
        )
    _check_curve(path, key.public_key(), "private key")
    return key


def _load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(
            f"{path}: not a PEM public key ({exc}): pass the .pub file written by "
            "'vmafx-saliency keygen'"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningKeyError(
            f"{path}: the public key is {type(key).__name__}, not an elliptic-curve key: "
            "pass the .pub file of the key pair that signed the model"
        )
    _check_curve(path, key, "public key")
    return key


def _key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """The key id model_signing writes into a bundle: sha256 of the PEM SPKI."""
    from cryptography.hazmat.primitives import serialization

    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def _key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """sha256 of the DER SPKI, as ``openssl pkey -pubin -outform DER | sha256sum``."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    from cryptography import x509

    data = _read_key_file(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise SigningKeyError(
            f"{path}: not a PEM certificate file ({exc}): pass PEM certificates"
        ) from exc
    return certs


def _usable_for_signing(cert: x509.Certificate) -> bool:
    """Whether ``cert`` may sign a model.

    model_signing accepts keyUsage digitalSignature or extendedKeyUsage
    codeSigning; RFC 5280 (4.2.1.12) also limits a certificate to the purposes
    its extendedKeyUsage names, so a TLS server certificate (serverAuth only)
    that some CA under the trusted root issued may not sign a model either.
    """
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key_usage = eku = None
    with contextlib.suppress(x509.ExtensionNotFound):
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    with contextlib.suppress(x509.ExtensionNotFound):
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    purposes = (ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)
    if eku is not None and not any(p in eku for p in purposes):
        return False  # RFC 5280: limited to other purposes
    # model_signing's own rule, which its verifier applies too.
    signs = key_usage is not None and key_usage.digital_signature
    return signs or (eku is not None and ExtendedKeyUsageOID.CODE_SIGNING in eku)


def _check_signing_certificate(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Catch at signing time what verification would reject later."""
    certs = _load_certificates(path, "signing certificate")
    if len(certs) != 1:
        raise SigningKeyError(
            f"{path}: holds {len(certs)} certificates; the signing certificate file must "
            "hold only the leaf: pass the others with --certificate-chain"
        )
    cert = certs[0]
    if cert.public_key() != key.public_key():
        raise SigningKeyError(
            f"{path}: the certificate is for another key than the private key: pass the "
            "certificate issued for this key pair"
        )
    if not _usable_for_signing(cert):
        raise SigningKeyError(
            f"{path}: the certificate may not sign (it needs keyUsage digitalSignature "
            "or extendedKeyUsage codeSigning): have one issued with either"
        )


# --- signing ----------------------------------------------------------------


def bundle_path_for(model: Path) -> Path:
    """The default bundle path: ``m.onnx`` -> ``m.onnx.sigstore.json`` beside it."""
    model = Path(model)
    return model.with_name(model.name + BUNDLE_SUFFIX)


def _model_file(model: Path, *, doing: str) -> Path:
    """The model as a resolved regular file.

    model_signing refuses symbolic links and would hash a whole directory, so
    both are settled here with a clear message.
    """
    try:
        resolved = model.resolve(strict=True)
    except FileNotFoundError as exc:
        raise InputFileError(f"{model}: no model file there: check the path") from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise InputFileError(f"{model}: cannot resolve the path ({exc}): check it") from exc
    if not resolved.is_file():
        raise InputFileError(
            f"{model}: not a regular file: {doing} takes one model file such as model.onnx"
        )
    return resolved


def sign_model(
    model: Path,
    *,
    private_key: Path,
    bundle: Path | None = None,
    signing_certificate: Path | None = None,
    certificate_chain: Sequence[Path] = (),
    force: bool = False,
) -> Path:
    """Sign one model file and write its Sigstore bundle; return the bundle path.

    With only ``private_key`` the bundle is key-signed (verify with the public
    key). With ``signing_certificate`` (whose public key must be the private
    key's) the bundle carries the certificate and ``certificate_chain`` (the
    intermediates, optionally the root) and verifies against a trusted root.
    The bundle defaults to :func:`bundle_path_for`; it is written atomically
    and an existing one is only replaced with ``force``.
    """
    ms = require("model_signing", purpose="signing")
    model = Path(model)
    private_key = Path(private_key)
    model_file = _model_file(model, doing="signing")
    bundle = Path(bundle) if bundle is not None else bundle_path_for(model)
    if bundle.absolute() == model.absolute() or bundle.resolve() == model_file:
        raise UsageError(f"{bundle}: the bundle would overwrite the model: pass another --bundle")
    check_can_write(bundle, force=force)
    key = _load_private_key(private_key)
    chain = tuple(Path(p) for p in certificate_chain)

    config = ms.signing.Config()
    if signing_certificate is None:
        if chain:
            raise UsageError(
                "a certificate chain goes with a signing certificate: pass "
                "--signing-certificate CERT too, or drop --certificate-chain"
            )
        config.use_elliptic_key_signer(private_key=private_key)
    else:
        signing_certificate = Path(signing_certificate)
        _check_signing_certificate(signing_certificate, key)
        if not chain:
            # model_signing cannot frame a bundle without one (it fails deep inside).
            raise UsageError(
                "a signing certificate goes with its chain: pass --certificate-chain with the "
                "CA certificate(s) that issued it (the intermediates, optionally the root)"
            )
        for path in chain:
            _load_certificates(path, "certificate chain")
        config.use_certificate_signer(
            private_key=private_key,
            signing_certificate=signing_certificate,
            certificate_chain=chain,
        )

    # Sign into a private temporary directory, then move the bytes into place
    # atomically: a failed run leaves neither a partial bundle nor a stray file.
    with tempfile.TemporaryDirectory(prefix="vmafx-sign-") as tmp:
        out = Path(tmp) / bundle.name
        config.sign(model_file, out)
        data = out.read_bytes()
    # Fail now rather than at verification if model_signing ever writes a
    # format this module does not read.
    _parse_bundle(bundle, data)
    atomic_write_bytes(bundle, data, force=force)
    log.info("signed %s -> %s", model, bundle)
    return bundle


# --- verification -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Verifier:
    """How to verify a bundle; build it with one of the classmethods.

    ``keyless`` takes exactly one of ``identity`` (the certificate's SAN, e.g.
    an email or a CI workflow URI) and ``identity_regexp`` (a Python regular
    expression that must match a SAN in full), plus ``oidc_issuer``. The trust
    root comes from ``trust_config`` (a Sigstore client trust config JSON,
    offline) or is fetched over the network from the public-good instance, or
    from staging with ``use_staging``.
    """

    method: Method
    public_key: Path | None = None
    certificate_chain: tuple[Path, ...] = ()
    identity: str | None = None
    identity_regexp: str | None = None
    oidc_issuer: str | None = None
    trust_config: Path | None = None
    use_staging: bool = False
    _compiled_regexp: re.Pattern[str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Normalise what callers (the CLI passes lists and strings) hand in;
        # the dataclass is frozen, so go through object.__setattr__.
        object.__setattr__(
            self, "certificate_chain", tuple(Path(p) for p in self.certificate_chain)
        )
        if self.public_key is not None:
            object.__setattr__(self, "public_key", Path(self.public_key))
        if self.trust_config is not None:
            object.__setattr__(self, "trust_config", Path(self.trust_config))

        if self.method not in METHODS:
            raise UsageError(
                f"unknown verification method {self.method!r}: use one of {', '.join(METHODS)}"
            )
        given = {
            "--public-key": self.public_key is not None,
            "--certificate-chain": bool(self.certificate_chain),
            "--identity": self.identity is not None,
            "--identity-regexp": self.identity_regexp is not None,
            "--oidc-issuer": self.oidc_issuer is not None,
            "--trust-config": self.trust_config is not None,
            "--staging": self.use_staging,
        }
        allowed = {
            "public-key": {"--public-key"},
            "certificate-chain": {"--certificate-chain"},
            "keyless": {
                "--identity",
                "--identity-regexp",
                "--oidc-issuer",
                "--trust-config",
                "--staging",
            },
        }[self.method]
        extra = sorted(flag for flag, present in given.items() if present and flag not in allowed)
        if extra:
            raise UsageError(
                f"{self.method} verification does not take {', '.join(extra)}: "
                f"{_METHOD_FLAGS[self.method]}"
            )
        if self.method == "public-key" and self.public_key is None:
            raise UsageError(f"public-key verification needs {_METHOD_FLAGS['public-key']}")
        if self.method == "certificate-chain" and not self.certificate_chain:
            # model_signing would fall back to the OS trust store: never what is meant.
            raise UsageError(
                f"certificate-chain verification needs {_METHOD_FLAGS['certificate-chain']}"
            )
        if self.method == "keyless":
            self._check_keyless()

    def _check_keyless(self) -> None:
        if self.identity == "" or self.identity_regexp == "":
            raise UsageError("an empty --identity / --identity-regexp matches nothing useful")
        if (self.identity is None) == (self.identity_regexp is None):
            raise UsageError(
                "keyless verification takes exactly one of --identity ID and "
                "--identity-regexp REGEXP, plus --oidc-issuer URL"
            )
        if not self.oidc_issuer:
            raise UsageError(
                "keyless verification needs --oidc-issuer URL (e.g. "
                "https://token.actions.githubusercontent.com) besides the identity"
            )
        if self.trust_config is not None and self.use_staging:
            raise UsageError(
                "pass either --trust-config FILE or --staging: a trust config already "
                "names the Sigstore instance"
            )
        if self.identity_regexp is not None:
            try:
                compiled = re.compile(self.identity_regexp)
            except re.error as exc:
                raise UsageError(
                    f"--identity-regexp {self.identity_regexp!r} is not a valid regular "
                    f"expression: {exc}"
                ) from exc
            object.__setattr__(self, "_compiled_regexp", compiled)

    @classmethod
    def from_public_key(cls, path: Path) -> Verifier:
        return cls(method="public-key", public_key=Path(path))

    @classmethod
    def from_certificate_chain(cls, paths: Sequence[Path]) -> Verifier:
        return cls(method="certificate-chain", certificate_chain=tuple(Path(p) for p in paths))

    @classmethod
    def keyless(
        cls,
        *,
        identity: str | None = None,
        identity_regexp: str | None = None,
        oidc_issuer: str | None,
        trust_config: Path | None = None,
        use_staging: bool = False,
    ) -> Verifier:
        return cls(
            method="keyless",
            identity=identity,
            identity_regexp=identity_regexp,
            oidc_issuer=oidc_issuer,
            trust_config=Path(trust_config) if trust_config is not None else None,
            use_staging=use_staging,
        )

    def describe(self) -> str:
        """A few words for messages: what the bundle was checked against."""
        if self.method == "public-key":
            return f"public key {self.public_key}"
        if self.method == "certificate-chain":
            return "certificate chain " + ", ".join(str(p) for p in self.certificate_chain)
        who = self.identity if self.identity is not None else f"/{self.identity_regexp}/"
        return f"keyless identity {who} from {self.oidc_issuer}"


_METHOD_FLAGS: dict[str, str] = {
    "public-key": "pass --public-key KEY.pub",
    "certificate-chain": "pass --certificate-chain ROOT.pem (one or more PEM files)",
    "keyless": "pass --identity ID or --identity-regexp REGEXP, and --oidc-issuer URL",
}


@dataclass(frozen=True)
class SignatureReport:
    model: Path
    bundle: Path
    method: str
    sha256: str
    signer: str

    def render(self) -> str:
        return (
            f"{self.model}: signature OK ({self.method})\n"
            f"  bundle  {self.bundle}\n"
            f"  signer  {self.signer}\n"
            f"  sha256  {self.sha256}"
        )

    def to_json(self) -> dict[str, str]:
        return {
            "model": str(self.model),
            "bundle": str(self.bundle),
            "method": self.method,
            "sha256": self.sha256,
            "signer": self.signer,
        }


def verify_model(
    model: Path,
    *,
    bundle: Path,
    verifier: Verifier,
    expected_sha256: str | None = None,
) -> SignatureReport:
    """Verify ``model`` against its Sigstore ``bundle``; fail closed.

    In order: the bundle exists (:class:`BundleMissingError`) and is a bundle
    of a model_signing statement for one file (:class:`BundleInvalidError`);
    its signature verifies with ``verifier`` (:class:`SignatureMismatchError`);
    the model's bytes hash to the signed digest (:class:`ModelTamperedError`).
    With ``expected_sha256`` (the loader's digest of the bytes it already
    read) the signed digest must equal it too (:class:`ModelTamperedError`),
    so the bytes the loader uses are the bytes the signature covers.

    Keyless verification fetches the Sigstore trust root over the network
    unless the verifier names a ``trust_config``.
    """
    ms = require("model_signing", purpose="signature verification")
    model = Path(model)
    bundle = Path(bundle)
    expected = _normalise_sha256(expected_sha256) if expected_sha256 is not None else None
    model_file = _model_file(model, doing="verification")
    raw = _read_bundle(model, bundle)
    parsed = _parse_bundle(bundle, raw)
    if parsed.kind != verifier.method:
        raise SignatureMismatchError(
            f"{bundle}: the bundle was signed {_KIND_WORDS[parsed.kind]}, but verification "
            f"asked for {verifier.describe()}: {_KIND_FLAGS[parsed.kind]}"
        )

    if parsed.kind == "certificate-chain" and parsed.certificates:
        from cryptography import x509

        leaf = x509.load_der_x509_certificate(parsed.certificates[0])
        if not _usable_for_signing(leaf):
            raise SignatureMismatchError(
                f"{bundle}: the signing certificate ({leaf.subject.rfc4514_string()}) may not "
                "sign models: it lacks keyUsage digitalSignature, or its extendedKeyUsage "
                "does not include codeSigning (a TLS certificate from the same CA, say)"
            )

    if verifier.method == "keyless" and verifier.identity_regexp is not None:
        signer = _verify_keyless_regexp(model, model_file, bundle, raw, parsed, verifier)
    else:
        signer = _verify_with_model_signing(ms, model, model_file, bundle, raw, parsed, verifier)

    # From here on parsed.sha256 is authenticated: it came from the payload
    # that just verified (the same bytes: model_signing read our copy of them).
    if expected is not None and expected != parsed.sha256:
        raise ModelTamperedError(
            f"{model}: the bytes read have sha256 {expected}, but the bundle signs "
            f"{parsed.sha256}: the file changed while it was being verified, or the "
            "bundle belongs to another model; re-fetch the model and its bundle"
        )
    return SignatureReport(
        model=model,
        bundle=bundle,
        method=verifier.method,
        sha256=parsed.sha256,
        signer=signer,
    )


def signed_sha256(bundle: Path) -> str:
    """The model digest a bundle *claims* to sign, read without verifying anything.

    For consistency checks (a registry entry's bundle against its pin) that need
    no keys and no ``sign`` extra; trust comes only from :func:`verify_model`.
    """
    bundle = Path(bundle)
    return _parse_bundle(bundle, _read_bundle(bundle, bundle)).sha256


def _normalise_sha256(value: str) -> str:
    digest = value.strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise UsageError(f"expected_sha256 {value!r} is not a sha256 hex digest (64 hex digits)")
    return digest


def _read_bundle(model: Path, bundle: Path) -> bytes:
    if not bundle.exists() and not bundle.is_symlink():
        raise BundleMissingError(
            f"{model}: no Sigstore bundle at {bundle}: sign the model with "
            f"'vmafx-saliency sign {model} --private-key KEY' or pass --bundle"
        )
    return read_capped(bundle, cap=_MAX_BUNDLE_BYTES, what="bundle", error=BundleInvalidError)


@dataclass(frozen=True)
class _ParsedBundle:
    kind: Method
    sha256: str  # sha256 of the model file, as signed
    subject: str  # the model's file name when it was signed
    key_hint: str | None  # public-key bundles
    certificates: tuple[bytes, ...]  # DER, leaf first (certificate-chain bundles)


def _invalid(bundle: Path, why: str) -> BundleInvalidError:
    return BundleInvalidError(
        f"{bundle}: not a valid model signature bundle: {why}: re-sign the model with "
        "'vmafx-saliency sign' or fetch its bundle again"
    )


def _parse_bundle(bundle: Path, raw: bytes) -> _ParsedBundle:
    """Check the bundle's shape and read the signed statement (not yet trusted).

    Everything model_signing would trip over while *reading* is checked here,
    so that whatever it raises later is about the signature or the model.
    """
    try:
        doc = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _invalid(bundle, f"not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _invalid(bundle, "the JSON is not an object")
    media_type = doc.get("mediaType")
    if not isinstance(media_type, str) or not media_type.startswith(
        "application/vnd.dev.sigstore.bundle"
    ):
        raise _invalid(bundle, f"mediaType {media_type!r} is not a Sigstore bundle type")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise _invalid(bundle, "no verificationMaterial")
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise _invalid(bundle, "no dsseEnvelope (it does not sign a model_signing statement)")
    if envelope.get("payloadType") != _IN_TOTO_PAYLOAD_TYPE:
        raise _invalid(bundle, f"payloadType {envelope.get('payloadType')!r} is not in-toto")
    signatures = envelope.get("signatures")
    if (
        not isinstance(signatures, list)
        or len(signatures) != 1
        or not isinstance(signatures[0], dict)
        or not isinstance(signatures[0].get("sig"), str)
    ):
        raise _invalid(bundle, "the envelope must hold exactly one signature")
    payload = _b64(bundle, envelope.get("payload"), "the envelope payload")
    sha256, subject = _parse_statement(bundle, payload)

    present = [
        name for name in ("publicKey", "x509CertificateChain", "certificate") if name in material
    ]
    if len(present) != 1:
        raise _invalid(bundle, "verificationMaterial must hold exactly one key or certificate")
    tlog = material.get("tlogEntries", [])
    if not isinstance(tlog, list):
        raise _invalid(bundle, "tlogEntries is not a list")

    kind: Method
    key_hint: str | None = None
    certificates: tuple[bytes, ...] = ()
    if present == ["publicKey"]:
        kind = "public-key"
        public_key = material["publicKey"]
        hint = public_key.get("hint") if isinstance(public_key, dict) else None
        if not isinstance(hint, str) or not hint:
            # model_signing < 1.0 wrote no key id and verifies those bundles
            # through a legacy path that prints to stdout; such bundles are not
            # ours, so refuse them.
            raise _invalid(bundle, "the public key has no key id (a pre-1.0 model_signing bundle)")
        key_hint = hint
    elif tlog or present == ["certificate"]:
        # Sigstore keyless: a Fulcio certificate plus a transparency log entry;
        # sigstore-python parses the rest.
        kind = "keyless"
    else:
        kind = "certificate-chain"
        certificates = _chain_certificates(bundle, material["x509CertificateChain"])

    if kind != "keyless":
        if media_type != _PB_BUNDLE_MEDIA_TYPE:
            raise _invalid(bundle, f"mediaType {media_type!r} is not {_PB_BUNDLE_MEDIA_TYPE}")
        _validate_like_model_signing(bundle, doc)
    return _ParsedBundle(
        kind=kind, sha256=sha256, subject=subject, key_hint=key_hint, certificates=certificates
    )


def _b64(bundle: Path, value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise _invalid(bundle, f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error
        raise _invalid(bundle, f"{what} is not base64 ({exc})") from exc


def _chain_certificates(bundle: Path, chain: object) -> tuple[bytes, ...]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    entries = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(entries, list) or not entries:
        raise _invalid(bundle, "the certificate chain is empty")
    ders: list[bytes] = []
    for i, entry in enumerate(entries):
        raw = entry.get("rawBytes") if isinstance(entry, dict) else None
        der = _b64(bundle, raw, f"certificate {i}")
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise _invalid(bundle, f"certificate {i} is not DER X.509 ({exc})") from exc
        if i == 0:
            leaf_key = cert.public_key()
            if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or (
                leaf_key.curve.name not in _EC_CURVES
            ):
                raise _invalid(
                    bundle, "the signing certificate does not hold an EC P-256/384/521 key"
                )
        ders.append(der)
    return tuple(ders)


def _validate_like_model_signing(bundle: Path, doc: dict[str, Any]) -> None:
    """Parse the bundle the way model_signing's reader does, to map its errors here.

    model_signing fills in two fields older writers omitted and drops two it
    does not model, then validates strictly (pydantic); the same is done on a
    copy so a malformed bundle is a BundleInvalidError, not a ValueError from
    deep inside verification.
    """
    from sigstore_models.bundle.v1 import Bundle as PbBundle

    adjusted = copy.deepcopy(doc)
    material = adjusted["verificationMaterial"]
    material.setdefault("tlogEntries", [])
    if isinstance(material.get("publicKey"), dict):
        material["publicKey"].setdefault("hint", None)
        for key in ("rawBytes", "keyDetails"):
            material["publicKey"].pop(key, None)
    try:
        PbBundle.from_dict(adjusted)
    except ValueError as exc:  # pydantic.ValidationError
        raise _invalid(bundle, f"its structure does not validate ({exc})") from exc


def _parse_statement(bundle: Path, payload: bytes) -> tuple[str, str]:
    """Read the in-toto statement: (sha256 of the model file, subject name)."""
    try:
        statement = json.loads(payload)
    except ValueError as exc:
        raise _invalid(bundle, f"the payload is not JSON ({exc})") from exc
    if not isinstance(statement, dict) or statement.get("_type") != _STATEMENT_TYPE:
        raise _invalid(bundle, f"the payload is not an in-toto statement ({_STATEMENT_TYPE})")
    predicate_type = statement.get("predicateType")
    if predicate_type == _LEGACY_PREDICATE_TYPE:
        raise _invalid(bundle, "it uses the pre-1.0 model_signing predicate")
    if predicate_type != _PREDICATE_TYPE:
        raise _invalid(bundle, f"predicateType {predicate_type!r} is not {_PREDICATE_TYPE}")

    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise _invalid(bundle, "the statement must have exactly one subject")
    subject = subjects[0]
    name = subject.get("name")
    digest = subject.get("digest")
    root = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(name, str) or not isinstance(root, str):
        raise _invalid(bundle, "the subject lacks a name or a sha256 digest")

    predicate = statement.get("predicate")
    serialization = predicate.get("serialization") if isinstance(predicate, dict) else None
    resources = predicate.get("resources") if isinstance(predicate, dict) else None
    if not isinstance(serialization, dict) or not isinstance(resources, list):
        raise _invalid(bundle, "the predicate lacks serialization or resources")
    method = serialization.get("method")
    if method != "files":
        raise _invalid(bundle, f"the model was serialized by {method!r}, not per file")
    if serialization.get("hash_type") != "sha256":
        raise _invalid(bundle, f"hash_type {serialization.get('hash_type')!r} is not sha256")
    if not isinstance(serialization.get("allow_symlinks"), bool):
        raise _invalid(bundle, "serialization.allow_symlinks is missing")
    ignore_paths = serialization.get("ignore_paths", [])
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        raise _invalid(bundle, "serialization.ignore_paths is not a list of paths")

    if len(resources) != 1 or not isinstance(resources[0], dict):
        raise _invalid(bundle, f"it signs {len(resources)} files (a directory), not one model file")
    resource = resources[0]
    if resource.get("name") != _FILE_RESOURCE:
        raise _invalid(
            bundle,
            f"it signs the file {resource.get('name')!r} inside a directory, not one model file",
        )
    file_digest = resource.get("digest")
    if resource.get("algorithm") != "sha256" or not isinstance(file_digest, str):
        raise _invalid(bundle, "the file's digest is not sha256")
    if not _SHA256_HEX.fullmatch(file_digest):
        raise _invalid(bundle, f"the file digest {file_digest!r} is not 64 hex digits")
    # model_signing's subject digest is sha256 over the resource digests; a
    # mismatch means the statement was not written by model_signing.
    if hashlib.sha256(bytes.fromhex(file_digest)).hexdigest() != root:
        raise _invalid(bundle, "the subject digest does not match the file digest")
    return file_digest, name


def _tampered(
    model: Path, model_file: Path, bundle: Path, parsed: _ParsedBundle
) -> ModelTamperedError:
    actual = sha256_file(model_file)
    if parsed.subject != model_file.name and parsed.subject != model.name:
        why = (
            f"the bundle was made for '{parsed.subject}', a different model; "
            f"pass the bundle that belongs to {model.name}"
        )
    else:
        why = "the file was modified after signing; re-fetch or re-export it"
    return ModelTamperedError(
        f"{model}: the model's sha256 differs from the digest the bundle signs "
        f"({actual} != {parsed.sha256}, bundle {bundle}): {why}"
    )


def _model_signing_config(ms: Any, verifier: Verifier) -> Any:
    """model_signing's verification config for the verifier (network for keyless)."""
    config = ms.verifying.Config()
    if verifier.method == "public-key":
        return config.use_elliptic_key_verifier(public_key=verifier.public_key)
    if verifier.method == "certificate-chain":
        return config.use_certificate_verifier(certificate_chain=list(verifier.certificate_chain))
    return config.use_sigstore_verifier(
        identity=verifier.identity,
        oidc_issuer=verifier.oidc_issuer,
        use_staging=verifier.use_staging,
        trust_config=verifier.trust_config,
    )


def _verify_with_model_signing(
    ms: Any,
    model: Path,
    model_file: Path,
    bundle: Path,
    raw: bytes,
    parsed: _ParsedBundle,
    verifier: Verifier,
) -> str:
    """Verify signature and file digest with model_signing; return the signer."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from OpenSSL.crypto import X509StoreContextError
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import InvalidBundle

    # Check what can be checked locally first, so each failure gets its own
    # error and message (and a wrong key never reaches the network).
    if verifier.method == "public-key":
        assert verifier.public_key is not None  # guaranteed by Verifier.__post_init__
        key = _load_public_key(verifier.public_key)
        if parsed.key_hint != _key_hint(key):
            raise SignatureMismatchError(
                f"{bundle}: signature does not verify with {verifier.public_key}: the bundle "
                "was signed by another key: verify with the public key of the key pair "
                "that signed it, or re-sign the model with your key"
            )
        signer = f"public key {_key_fingerprint(key)}"
    elif verifier.method == "certificate-chain":
        for path in verifier.certificate_chain:
            _load_certificates(path, "certificate chain")
        leaf = x509.load_der_x509_certificate(parsed.certificates[0])
        signer = f"certificate {leaf.subject.rfc4514_string()}"
    else:
        try:
            SigstoreBundle.from_json(raw)
        except InvalidBundle as exc:
            raise _invalid(bundle, f"not a Sigstore keyless bundle ({exc})") from exc
        if verifier.trust_config is not None:
            _load_trust_config(verifier.trust_config)
        signer = f"{verifier.identity} (OIDC issuer {verifier.oidc_issuer})"

    # model_signing reads the bundle from a path: hand it a private copy of the
    # bytes parsed above, so a bundle swapped on disk meanwhile cannot make the
    # reported digest differ from the verified one.
    with tempfile.TemporaryDirectory(prefix="vmafx-verify-") as tmp:
        copy_path = Path(tmp) / BUNDLE_SUFFIX.lstrip(".")
        copy_path.write_bytes(raw)
        try:
            _model_signing_config(ms, verifier).verify(model_file, copy_path)
        except ValueError as exc:
            # model_signing raises "Signature mismatch: ..." only after the
            # signature verified, when the model's hashes differ from the
            # manifest; its other ValueErrors are signature failures.
            if str(exc).startswith("Signature mismatch"):
                raise _tampered(model, model_file, bundle, parsed) from exc
            if not model_file.is_file():
                raise InputFileError(f"{model}: the model vanished during verification") from exc
            raise SignatureMismatchError(
                f"{bundle}: signature does not verify with {verifier.describe()}: {exc}"
            ) from exc
        except InvalidSignature as exc:
            raise SignatureMismatchError(
                f"{bundle}: signature does not verify with {verifier.describe()}: the "
                "signature is not valid for the signed statement (the bundle was altered "
                "or signed by another key): re-sign the model or fetch its bundle again"
            ) from exc
        except X509StoreContextError as exc:
            raise SignatureMismatchError(
                f"{bundle}: the signing certificate does not chain to "
                f"{verifier.describe()} ({exc}): pass the root certificate of the CA that "
                "issued it, or re-sign with a certificate from your CA"
            ) from exc
        except InvalidBundle as exc:
            raise _invalid(bundle, f"not a Sigstore keyless bundle ({exc})") from exc
        except VerificationError as exc:
            raise SignatureMismatchError(
                f"{bundle}: keyless signature does not verify for {verifier.describe()}: {exc}"
            ) from exc
        except SigstoreError as exc:
            raise _trust_root_error(exc) from exc
    return signer


def _trust_root_error(exc: Exception) -> TrustRootError:
    return TrustRootError(
        f"cannot load the Sigstore trust root ({exc}): keyless verification fetches it "
        "from the Sigstore TUF repository over the network; connect, or pass "
        "--trust-config FILE"
    )


def _load_trust_config(path: Path) -> ClientTrustConfig:
    from sigstore.models import ClientTrustConfig

    if not path.is_file():
        raise InputFileError(f"{path}: no Sigstore trust config file there: check the path")
    try:
        return ClientTrustConfig.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # pydantic.ValidationError is a ValueError
        raise InputFileError(
            f"{path}: not a Sigstore client trust config ({exc}): pass a "
            "ClientTrustConfig JSON file (media type "
            "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json)"
        ) from exc


def _client_trust_config(verifier: Verifier) -> ClientTrustConfig:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig

    if verifier.trust_config is not None:
        return _load_trust_config(verifier.trust_config)
    try:
        if verifier.use_staging:
            return ClientTrustConfig.staging()
        return ClientTrustConfig.production()
    except SigstoreError as exc:
        raise _trust_root_error(exc) from exc


def _certificate_identities(cert: x509.Certificate) -> set[str]:
    """The SAN values Sigstore treats as identities (as sigstore's Identity policy)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    identities: set[str] = set(san.get_values_for_type(x509.RFC822Name))
    identities.update(san.get_values_for_type(x509.UniformResourceIdentifier))
    identities.update(
        other.value.decode()
        for other in san.get_values_for_type(x509.OtherName)
        if other.type_id.dotted_string == _SIGSTORE_OTHERNAME_OID
    )
    return identities


class _IdentityRegexpPolicy:
    """sigstore-python verification policy: issuer equal, identity matching a regexp.

    The certificate's OIDC issuer extension must equal ``issuer`` and one of
    its identities must match ``regexp`` in full (``re.fullmatch``: an
    unanchored search would let ``https://evil.example/?https://github.com/org/``
    pass a pattern meant for ``https://github.com/org/``).
    """

    def __init__(self, *, regexp: re.Pattern[str], issuer: str) -> None:
        self._regexp = regexp
        self._issuer = issuer
        self.matched: str | None = None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError
        from sigstore.verify.policy import OIDCIssuer

        OIDCIssuer(self._issuer).verify(cert)
        identities = _certificate_identities(cert)
        for identity in sorted(identities):
            if self._regexp.fullmatch(identity):
                self.matched = identity
                return
        raise VerificationError(
            f"no certificate identity matches {self._regexp.pattern!r} in full; "
            f"identities: {sorted(identities)}"
        )


def _sigstore_verify_dsse(
    raw: bytes, *, bundle: Path, verifier: Verifier, policy: _IdentityRegexpPolicy
) -> tuple[str, bytes]:
    """Verify a keyless bundle with sigstore-python; return (payload type, payload)."""
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import InvalidBundle
    from sigstore.verify import Verifier as SigstoreVerifier

    # Parse before fetching the trust root: a broken bundle fails offline.
    try:
        sigstore_bundle = SigstoreBundle.from_json(raw)
    except InvalidBundle as exc:
        raise _invalid(bundle, f"not a Sigstore keyless bundle ({exc})") from exc
    trust = _client_trust_config(verifier)
    try:
        return SigstoreVerifier(trusted_root=trust.trusted_root).verify_dsse(
            bundle=sigstore_bundle, policy=policy
        )
    except VerificationError as exc:
        raise SignatureMismatchError(
            f"{bundle}: keyless signature does not verify for {verifier.describe()}: {exc}"
        ) from exc


def _verify_keyless_regexp(
    model: Path,
    model_file: Path,
    bundle: Path,
    raw: bytes,
    parsed: _ParsedBundle,
    verifier: Verifier,
) -> str:
    """Keyless with an identity regexp: sigstore-python, then the file digest here."""
    assert verifier._compiled_regexp is not None  # set by Verifier.__post_init__
    assert verifier.oidc_issuer is not None
    policy = _IdentityRegexpPolicy(regexp=verifier._compiled_regexp, issuer=verifier.oidc_issuer)
    payload_type, payload = _sigstore_verify_dsse(
        raw, bundle=bundle, verifier=verifier, policy=policy
    )
    if payload_type != _IN_TOTO_PAYLOAD_TYPE:
        raise _invalid(bundle, f"payloadType {payload_type!r} is not in-toto")
    # Re-read the digest from the verified payload rather than trusting the
    # pre-parse (they are the same bytes, but this is the authenticated copy).
    signed_sha256, _ = _parse_statement(bundle, payload)
    if signed_sha256 != parsed.sha256:
        raise _invalid(bundle, "the verified payload differs from the envelope read")
    if sha256_file(model_file) != signed_sha256:
        raise _tampered(model, model_file, bundle, parsed)
    return f"{policy.matched} (OIDC issuer {verifier.oidc_issuer})"
