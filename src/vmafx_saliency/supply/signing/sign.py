"""Signing a model (with its sidecar) or a release folder with a private key or certificate.

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
from typing import Any

from vmafx_saliency._util import atomic_write_bytes, check_can_write, read_capped, require
from vmafx_saliency.errors import UsageError
from vmafx_saliency.supply.signing.bundles import (
    MAX_MODEL_BYTES,
    MAX_SIDECAR_BYTES,
    MODEL_RESOURCE,
    SIDECAR_RESOURCE,
    _model_file,
    _parse_bundle,
    bundle_path_for,
)
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
    sidecar: Path | None = None,
    bundle: Path | None = None,
    signing_certificate: Path | None = None,
    certificate_chain: Sequence[Path] = (),
    force: bool = False,
) -> Path:
    """Sign one model file (with its sidecar) and write its Sigstore bundle; return its path.

    With ``sidecar`` the statement signs the pair, as model_signing signs a
    folder: the model's pre-processing is part of what it computes, so an edited
    sidecar fails verification like an edited model. With only ``private_key``
    the bundle is key-signed (verify with the public key). With
    ``signing_certificate`` (whose public key must be the private key's) the
    bundle carries the certificate and ``certificate_chain`` (the
    intermediates, optionally the root) and verifies against a trusted root.
    The bundle defaults to :func:`bundle_path_for`; it is written atomically
    and an existing one is only replaced with ``force``.
    """
    ms = require("model_signing", purpose="signing", extra="sign")
    model = Path(model)
    model_file = _model_file(model, doing="signing")
    bundle = Path(bundle) if bundle is not None else bundle_path_for(model)
    inputs = [("the model", model), ("the private key", Path(private_key))]
    inputs += [("the sidecar", Path(sidecar))] if sidecar is not None else []
    inputs += (
        [("the signing certificate", Path(signing_certificate))] if signing_certificate else []
    )
    inputs += [("a chain certificate", Path(c)) for c in certificate_chain]
    for what, path in inputs:
        if bundle.absolute() == path.absolute() or bundle.resolve() == path.resolve():
            raise UsageError(f"{bundle}: the bundle would overwrite {what}: pass another --bundle")
    check_can_write(bundle, force=force)
    config = _signer(ms, Path(private_key), signing_certificate, certificate_chain)
    files = {MODEL_RESOURCE: read_capped(model_file, cap=MAX_MODEL_BYTES, what="model")}
    if sidecar is not None:
        files[SIDECAR_RESOURCE] = read_capped(Path(sidecar), cap=MAX_SIDECAR_BYTES, what="sidecar")
    data = _sign_copy(config, model.name, files, single=sidecar is None)
    # Fail now rather than at verification if model_signing ever writes a
    # format this package does not read.
    _parse_bundle(bundle, data)
    atomic_write_bytes(bundle, data, force=force)
    log.info("signed %s%s -> %s", model, f" with {sidecar}" if sidecar else "", bundle)
    return bundle


def sign_folder(
    folder: Path,
    *,
    private_key: Path,
    bundle: Path,
    signing_certificate: Path | None = None,
    certificate_chain: Sequence[Path] = (),
    subject: str | None = None,
) -> bytes:
    """Sign every plain file of ``folder`` (a release) under its name; return the bundle bytes.

    The bundle is not written into ``folder``: the caller places it, so that it
    does not sign itself. ``bundle`` names it in errors; ``subject`` names the
    signed folder in the statement (default: the folder's name).
    """
    ms = require("model_signing", purpose="signing", extra="sign")
    config = _signer(ms, Path(private_key), signing_certificate, certificate_chain)
    files = {
        path.name: read_capped(path, cap=MAX_MODEL_BYTES, what="release file", symlinks=False)
        for path in sorted(Path(folder).iterdir())
    }
    data = _sign_copy(config, subject or Path(folder).name, files, single=False)
    _parse_bundle(bundle, data, folder=True)
    return data


def _signer(
    ms: Any, private_key: Path, signing_certificate: Path | None, certificate_chain: Sequence[Path]
) -> Any:
    """model_signing's signing config for a key, or a key with its certificate and chain."""
    key = _load_private_key(private_key)
    chain = tuple(Path(p) for p in certificate_chain)
    config = ms.signing.Config()
    if signing_certificate is None:
        if chain:
            raise UsageError(
                "a certificate chain goes with a signing certificate: pass "
                "--signing-certificate CERT too, or drop --certificate-chain"
            )
        return config.use_elliptic_key_signer(private_key=private_key)
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
    return config.use_certificate_signer(
        private_key=private_key,
        signing_certificate=signing_certificate,
        certificate_chain=chain,
    )


def _sign_copy(config: Any, subject: str, files: dict[str, bytes], *, single: bool) -> bytes:
    """Sign a private copy of ``files`` (the bytes read once); return the bundle's bytes.

    ``single``: the one file is signed as a file (resource "."), named ``subject``;
    otherwise the files are signed as a folder named ``subject``. Signing in a
    private temporary directory means the signed bytes are the bytes read, and
    a failed run leaves neither a partial bundle nor a stray file.
    """
    with tempfile.TemporaryDirectory(prefix="vmafx-sign-") as tmp:
        (Path(tmp) / "in").mkdir()
        target = Path(tmp) / "in" / subject  # apart from the bundle, whatever its name
        if single:
            (only,) = files.values()
            target.write_bytes(only)
        else:
            target.mkdir()
            for name, data in files.items():
                (target / name).write_bytes(data)
        out = Path(tmp) / "bundle.sigstore.json"
        config.sign(target, out)
        return out.read_bytes()
