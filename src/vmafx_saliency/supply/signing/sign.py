"""Signing one model file with a private key, or a key plus a signing certificate.

:func:`sign_model` drives model_signing's signer: key-signed bundles verify with
the public key, certificate-signed ones against the trusted root of a private
PKI. Keys and certificates are checked first, so that what verification would
reject later fails here with a clear message, and the bundle is written
atomically. Keyless bundles are made elsewhere (e.g. ``model_signing sign
sigstore`` in CI) and only verified by this package.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vmafx_saliency._util import atomic_write_bytes, check_can_write, require
from vmafx_saliency.errors import UsageError
from vmafx_saliency.supply.signing.bundles import _model_file, _parse_bundle, bundle_path_for
from vmafx_saliency.supply.signing.keys import (
    _check_signing_certificate,
    _load_certificates,
    _load_private_key,
)

log = logging.getLogger(__name__)


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
    ms = require("model_signing", purpose="signing", extra="sign")
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
    # format this package does not read.
    _parse_bundle(bundle, data)
    atomic_write_bytes(bundle, data, force=force)
    log.info("signed %s -> %s", model, bundle)
    return bundle
