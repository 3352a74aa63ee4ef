"""EC key pairs and certificates for model signing: creating, loading, checking them.

:func:`generate_key_pair` writes the P-256 key pair that ``sign_model`` takes.
The loaders read private keys, public keys and PEM certificates under a size
cap and turn every problem into a :class:`SigningKeyError` that says what to
pass instead; :func:`_usable_for_signing` is the certificate-purpose rule that
signing and verification share. cryptography comes with the ``sign`` extra and
is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmafx_saliency._util import read_capped, refuse_dash, require
from vmafx_saliency.errors import OutputExistsError, SigningKeyError, UsageError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

# The curves model_signing accepts (it follows Sigstore's protobuf specs).
_EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
# PEM keys and certificate chains are a few kilobytes.
_MAX_KEY_BYTES = 1 << 20


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
    require("model_signing", purpose="key generation", extra="sign")
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
        refuse_dash(path)  # a key is a file, never a stream
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
