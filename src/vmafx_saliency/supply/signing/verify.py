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

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmafx_saliency._util import require
from vmafx_saliency.errors import (
    InputFileError,
    ModelTamperedError,
    SignatureMismatchError,
    UsageError,
)
from vmafx_saliency.supply.signing.bundles import (
    _SHA256_HEX,
    BUNDLE_SUFFIX,
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
    ms = require("model_signing", purpose="signature verification", extra="sign")
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
    ms: Any,
    model: Path,
    model_file: Path,
    bundle: Path,
    raw: bytes,
    parsed: _ParsedBundle,
    verifier: Verifier,
) -> str:
    """Verify signature and file digest with model_signing; return the signer."""
    from cryptography.exceptions import InvalidSignature
    from OpenSSL.crypto import X509StoreContextError
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.models import InvalidBundle

    signer = _check_locally(bundle, raw, parsed, verifier)

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
