"""Verifying a model against its bundle: :func:`verify_model` and its report.

Verification fails closed, one error per cause: a missing or malformed bundle,
a bundle of another kind than the verifier asks for, a signature that does not
verify, a model whose bytes differ from the signed digest. Key and
certificate-chain bundles, and keyless ones for an exact identity, go through
model_signing (keyless verification needs the Sigstore trust root: fetched
over the network unless the verifier names a ``trust_config``); keyless with an
identity regexp goes through sigstore-python (see ``keyless``).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmafx_saliency._util import read_capped, require, sha256_bytes
from vmafx_saliency.errors import (
    InputFileError,
    ModelTamperedError,
    SignatureMismatchError,
    UsageError,
)
from vmafx_saliency.supply.signing.bundles import (
    _FILE_RESOURCE,
    _SHA256_HEX,
    BUNDLE_SUFFIX,
    MAX_MODEL_BYTES,
    MAX_SIDECAR_BYTES,
    MODEL_RESOURCE,
    SIDECAR_RESOURCE,
    _invalid,
    _model_file,
    _parse_bundle,
    _ParsedBundle,
    _read_bundle,
    _tampered,
)
from vmafx_saliency.supply.signing.keyless import (
    _load_trust_config,
    _trust_root_error,
    _verify_keyless_regexp,
)
from vmafx_saliency.supply.signing.keys import (
    _key_fingerprint,
    _key_hint,
    _load_certificates,
    _load_public_key,
    _usable_for_signing,
)
from vmafx_saliency.supply.signing.verifier import Verifier

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


@dataclass(frozen=True)
class SignatureReport:
    model: Path
    bundle: Path
    method: str
    sha256: str
    signer: str
    sidecar: Path | None = None  # the sidecar signed with the model, when there is one
    sidecar_sha256: str | None = None

    def render(self) -> str:
        lines = [
            f"{self.model}: signature OK ({self.method})",
            f"  bundle  {self.bundle}",
            f"  signer  {self.signer}",
            f"  sha256  {self.sha256}",
        ]
        if self.sidecar is not None:
            lines.append(f"  sidecar {self.sidecar} (sha256 {self.sidecar_sha256})")
        return "\n".join(lines)

    def to_json(self) -> dict[str, str | None]:
        return {
            "model": str(self.model),
            "bundle": str(self.bundle),
            "method": self.method,
            "sha256": self.sha256,
            "signer": self.signer,
            "sidecar": None if self.sidecar is None else str(self.sidecar),
            "sidecar_sha256": self.sidecar_sha256,
        }


def verify_model(
    model: Path,
    *,
    bundle: Path,
    verifier: Verifier,
    expected_sha256: str | None = None,
    sidecar: Path | None = None,
    expected_sidecar_sha256: str | None = None,
) -> SignatureReport:
    """Verify ``model`` (and its sidecar) against its Sigstore ``bundle``; fail closed.

    In order: the bundle exists (:class:`BundleMissingError`) and is a bundle
    of a model_signing statement for one model, or a model with its sidecar
    (:class:`BundleInvalidError`); its signature verifies with ``verifier``
    (:class:`SignatureMismatchError`); the bytes hash to the signed digests
    (:class:`ModelTamperedError`). The model and sidecar are read once, and the
    signature is checked on a private copy of those bytes.

    ``sidecar`` defaults to the one beside the model (``x.sidecar.json``) when
    the bundle signs one; passing a sidecar with a bundle that signs the model
    alone is a :class:`SignatureMismatchError` (the sidecar would be unsigned).
    With ``expected_sha256`` / ``expected_sidecar_sha256`` (the digests of the
    bytes a caller already read, or a registry's pins) the signed digests must
    equal them too (:class:`ModelTamperedError`).

    Keyless verification fetches the Sigstore trust root over the network
    unless the verifier names a ``trust_config``.
    """
    ms = require("model_signing", purpose="signature verification", extra="sign")
    model = Path(model)
    bundle = Path(bundle)
    expected = _normalise_sha256(expected_sha256) if expected_sha256 is not None else None
    expected_sidecar = (
        _normalise_sha256(expected_sidecar_sha256) if expected_sidecar_sha256 is not None else None
    )
    model_file = _model_file(model, doing="verification")
    raw = _read_bundle(model, bundle)
    parsed = _parse_bundle(bundle, raw)
    _check_kind(bundle, parsed, verifier)
    regexp = verifier.method == "keyless" and verifier.identity_regexp is not None
    # A wrong key is said first, before anything about the files.
    signer = None if regexp else _check_locally(bundle, raw, parsed, verifier)
    sidecar = _signed_sidecar(model, bundle, parsed, sidecar)
    files = {MODEL_RESOURCE: read_capped(model_file, cap=MAX_MODEL_BYTES, what="model")}
    if sidecar is not None:
        files[SIDECAR_RESOURCE] = read_capped(sidecar, cap=MAX_SIDECAR_BYTES, what="sidecar")
    actual = {name: sha256_bytes(data) for name, data in files.items()}
    if parsed.sidecar_sha256 is None:  # one file: model_signing's resource "."
        actual = {_FILE_RESOURCE: actual[MODEL_RESOURCE]}

    if signer is None:
        signer = _verify_keyless_regexp(bundle, raw, parsed, verifier)
        if actual != parsed.digests:
            raise _tampered(model, bundle, parsed, actual, sidecar)
    else:
        with _private_copy(model.name, files, single=sidecar is None) as target:
            try:
                _verify_with_model_signing(ms, target, bundle, raw, verifier)
            except _DigestMismatch as exc:
                raise _tampered(model, bundle, parsed, actual, sidecar) from exc.__cause__

    # From here on the digests are authenticated: they came from the payload
    # that just verified, and the bytes read hash to them.
    signed_model, signed_sidecar = parsed.sha256, parsed.sidecar_sha256
    if expected is not None and expected != signed_model:
        raise ModelTamperedError(
            f"{model}: the bytes read have sha256 {expected}, but the bundle signs "
            f"{signed_model}: the file changed while it was being verified, or the "
            "bundle belongs to another model; re-fetch the model and its bundle"
        )
    if expected_sidecar is not None and expected_sidecar != signed_sidecar:
        raise ModelTamperedError(
            f"{sidecar or model}: the sidecar expected has sha256 {expected_sidecar}, but "
            f"the bundle signs {signed_sidecar or 'the model alone, without a sidecar'}: "
            f"re-sign the model with its sidecar ('vmafx-saliency sign {model} --sidecar "
            "SIDECAR --private-key KEY')"
        )
    return SignatureReport(
        model=model,
        bundle=bundle,
        method=verifier.method,
        sha256=signed_model,
        signer=signer,
        sidecar=sidecar,
        sidecar_sha256=signed_sidecar,
    )


def coverage_problem(files: Iterable[str], signed: Iterable[str]) -> str | None:
    """Why a signature over ``signed`` does not cover exactly ``files``; None when it does."""
    present, covered = set(files), set(signed)
    unsigned, absent = sorted(present - covered), sorted(covered - present)
    if not unsigned and not absent:
        return None
    parts = [
        *([f"unsigned: {', '.join(unsigned[:8])}"] if unsigned else []),
        *([f"signed but absent: {', '.join(absent[:8])}"] if absent else []),
    ]
    return (
        f"the signature does not cover the folder: {'; '.join(parts)}: do not use this "
        "folder, or stage and sign it again"
    )


def verify_files(files: Mapping[str, bytes], *, bundle: Path, verifier: Verifier) -> str:
    """Verify a folder's bundle (a release) over exactly ``files`` (name: bytes); the signer.

    The bundle must sign every one of ``files`` and no other
    (:class:`SignatureMismatchError`), its signature must verify with
    ``verifier``, and each file's bytes must hash to its signed digest
    (:class:`ModelTamperedError`). The signature is checked on a private copy
    of the bytes given, so the bytes the caller judges are the bytes signed.
    """
    ms = require("model_signing", purpose="signature verification", extra="sign")
    bundle = Path(bundle)
    raw = _read_bundle(bundle, bundle)
    parsed = _parse_bundle(bundle, raw, folder=True)
    _check_kind(bundle, parsed, verifier)
    signed = parsed.digests
    problem = coverage_problem(files, signed)
    if problem is not None:
        raise SignatureMismatchError(f"{bundle}: {problem}")
    actual = {name: sha256_bytes(data) for name, data in files.items()}
    changed = sorted(name for name, digest in actual.items() if signed[name] != digest)
    tampered = ModelTamperedError(
        f"{bundle}: {', '.join(changed)}: the bytes differ from the signed digest: the folder "
        "was changed after signing; do not use it"
    )
    if verifier.method == "keyless" and verifier.identity_regexp is not None:
        signer = _verify_keyless_regexp(bundle, raw, parsed, verifier)
    else:
        signer = _check_locally(bundle, raw, parsed, verifier)
        # The folder's name is the caller's, never the statement's (untrusted until verified).
        with _private_copy("release", dict(files), single=False) as target:
            try:
                _verify_with_model_signing(ms, target, bundle, raw, verifier)
            except _DigestMismatch as exc:
                raise tampered from exc.__cause__
    if changed:
        raise tampered
    return signer


def _check_kind(bundle: Path, parsed: _ParsedBundle, verifier: Verifier) -> None:
    """The bundle was signed the way the verifier asks, by a certificate that may sign."""
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


def _signed_sidecar(
    model: Path, bundle: Path, parsed: _ParsedBundle, sidecar: Path | None
) -> Path | None:
    """The sidecar to verify with the model: given, beside it, or none (model alone)."""
    if parsed.sidecar_sha256 is None:
        if sidecar is not None:
            raise SignatureMismatchError(
                f"{bundle}: the bundle signs {model.name} alone, not its sidecar {sidecar}: "
                f"the sidecar is unsigned; re-sign the pair with 'vmafx-saliency sign {model} "
                f"--sidecar {sidecar} --private-key KEY'"
            )
        return None
    if sidecar is not None:
        return Path(sidecar)
    from vmafx_saliency.supply.registry.locations import sidecar_beside

    beside = sidecar_beside(model)
    if beside is None:
        raise InputFileError(
            f"{model}: the bundle signs the model with its sidecar, and none lies beside it "
            f"({model.stem}.sidecar.json): pass the sidecar (--sidecar)"
        )
    return beside


class _DigestMismatch(Exception):
    """model_signing found the signature valid and the files' digests different."""


@contextlib.contextmanager
def _private_copy(name: str, files: dict[str, bytes], *, single: bool) -> Iterator[Path]:
    """The bytes read, in a private folder laid out as signed (one file, or a folder)."""
    with tempfile.TemporaryDirectory(prefix="vmafx-verify-") as tmp:
        target = Path(tmp) / name
        if single:
            target.write_bytes(files[MODEL_RESOURCE])
        else:
            target.mkdir()
            for resource, data in files.items():
                (target / resource).write_bytes(data)
        yield target


def _normalise_sha256(value: str) -> str:
    digest = value.strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise UsageError(f"expected_sha256 {value!r} is not a sha256 hex digest (64 hex digits)")
    return digest


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
    ms: Any, target: Path, bundle: Path, raw: bytes, verifier: Verifier
) -> None:
    """Verify the signature over ``target`` (a private copy) with model_signing.

    Raises :class:`_DigestMismatch` when the signature verifies but the files
    differ from the signed digests; the caller says which file.
    """
    from cryptography.exceptions import InvalidSignature
    from OpenSSL.crypto import X509StoreContextError
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.models import InvalidBundle

    # model_signing reads the bundle from a path: hand it a private copy of the
    # bytes parsed above, so a bundle swapped on disk meanwhile cannot make the
    # reported digest differ from the verified one.
    with tempfile.TemporaryDirectory(prefix="vmafx-verify-") as tmp:
        copy_path = Path(tmp) / BUNDLE_SUFFIX.lstrip(".")
        copy_path.write_bytes(raw)
        try:
            _model_signing_config(ms, verifier).verify(target, copy_path)
        except ValueError as exc:
            # model_signing raises "Signature mismatch: ..." only after the
            # signature verified, when the files' hashes differ from the
            # manifest; its other ValueErrors are signature failures.
            if str(exc).startswith("Signature mismatch"):
                raise _DigestMismatch() from exc
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


def _check_locally(bundle: Path, raw: bytes, parsed: _ParsedBundle, verifier: Verifier) -> str:
    """Check what can be checked before model_signing runs; return the signer.

    Checked locally first so that each failure gets its own error and message
    (and a wrong key never reaches the network).
    """
    from cryptography import x509
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import InvalidBundle

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
    return signer
