"""Signing a model file: where the bundle goes, and what signing refuses (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import Pki
from vmafx_saliency.errors import InputFileError, OutputExistsError, UsageError
from vmafx_saliency.supply import signing
from vmafx_saliency.supply.signing import Verifier, bundle_path_for, sign_model, verify_model


def test_sign_refuses_to_overwrite_without_force(
    model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    before = signed.read_bytes()
    with pytest.raises(OutputExistsError, match=r"sigstore\.json already exists: pass --force"):
        sign_model(model, private_key=keys.private_key)
    assert signed.read_bytes() == before
    assert sign_model(model, private_key=keys.private_key, force=True) == signed
    verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_sign_to_explicit_bundle_path(tmp_path: Path, model: Path, keys: signing.KeyPair) -> None:
    out = tmp_path / "sigs" / "x.json"
    assert sign_model(model, private_key=keys.private_key, bundle=out) == out
    assert not bundle_path_for(model).exists()
    verify_model(model, bundle=out, verifier=Verifier.from_public_key(keys.public_key))


# --- signing errors ---------------------------------------------------------


def test_sign_missing_model(tmp_path: Path, keys: signing.KeyPair) -> None:
    with pytest.raises(InputFileError, match=r"gone\.onnx: no model file there"):
        sign_model(tmp_path / "gone.onnx", private_key=keys.private_key)


def test_sign_directory_is_refused(tmp_path: Path, keys: signing.KeyPair) -> None:
    with pytest.raises(InputFileError, match="not a regular file: signing takes one model file"):
        sign_model(tmp_path, private_key=keys.private_key, bundle=tmp_path / "b.json")


def test_sign_certificate_without_chain(model: Path, pki: Pki) -> None:
    with pytest.raises(UsageError, match=r"pass --certificate-chain with the CA certificate"):
        sign_model(model, private_key=pki.leaf_key, signing_certificate=pki.leaf)
    assert not signing.bundle_path_for(model).exists()


def test_sign_chain_without_certificate(model: Path, keys: signing.KeyPair, pki: Pki) -> None:
    with pytest.raises(UsageError, match="pass --signing-certificate CERT too"):
        sign_model(model, private_key=keys.private_key, certificate_chain=[pki.root])
