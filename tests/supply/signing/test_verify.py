"""Sigstore bundle verification through model_signing (offline)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("model_signing")

from cryptography.hazmat.primitives import serialization

from tests._onnx_models import conv_sigmoid_model
from tests._trust import Pki
from tests.supply.signing._common import ISSUER, WORKFLOW, _sha256
from vmafx_saliency.errors import (
    BundleInvalidError,
    BundleMissingError,
    InputFileError,
    ModelTamperedError,
    SignatureError,
    SignatureMismatchError,
    SigningKeyError,
    TrustRootError,
    UsageError,
)
from vmafx_saliency.supply import signing
from vmafx_saliency.supply.signing import (
    Verifier,
    bundle_path_for,
    generate_key_pair,
    sign_model,
    verify,
    verify_model,
)


def _statement(bundle: Path) -> dict[str, Any]:
    doc = json.loads(bundle.read_text(encoding="utf-8"))
    payload: dict[str, Any] = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return payload


# --- sign + verify ----------------------------------------------------------


def test_key_round_trip_and_statement_digest(
    model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    assert signed == bundle_path_for(model)
    report = verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))
    digest = _sha256(model)
    assert report.sha256 == digest
    assert report.method == "public-key"
    assert report.model == model and report.bundle == signed
    public = serialization.load_pem_public_key(keys.public_key.read_bytes())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert report.signer == f"public key sha256:{hashlib.sha256(der).hexdigest()}"
    assert "signature OK" in report.render()

    # The in-toto statement model_signing writes for one file: resource "."
    # with the file's plain sha256; subject = file name, digest over digests.
    statement = _statement(signed)
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["predicate"]["resources"] == [
        {"name": ".", "algorithm": "sha256", "digest": digest}
    ]
    assert statement["subject"][0]["name"] == "model.onnx"
    root = hashlib.sha256(bytes.fromhex(digest)).hexdigest()
    assert statement["subject"][0]["digest"] == {"sha256": root}


def test_expected_sha256_matching_passes(model: Path, keys: signing.KeyPair, signed: Path) -> None:
    report = verify_model(
        model,
        bundle=signed,
        verifier=Verifier.from_public_key(keys.public_key),
        expected_sha256=_sha256(model).upper(),
    )
    assert report.sha256 == _sha256(model)


def test_verifies_after_copy_to_another_directory(
    tmp_path: Path, model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    staged = tmp_path / "release" / "v1"
    staged.mkdir(parents=True)
    shutil.copy2(model, staged / model.name)
    shutil.copy2(signed, staged / signed.name)
    model.unlink()  # nothing may depend on the original location
    report = verify_model(
        staged / model.name,
        bundle=bundle_path_for(staged / model.name),
        verifier=Verifier.from_public_key(keys.public_key),
    )
    assert report.sha256 == _sha256(staged / model.name)


def test_renamed_copy_and_symlink_still_verify(
    tmp_path: Path, model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    # model_signing names the single resource "." and treats the subject name
    # as informative, so the signature covers bytes, not the file name.
    renamed = tmp_path / "renamed.onnx"
    shutil.copy2(model, renamed)
    verifier = Verifier.from_public_key(keys.public_key)
    assert verify_model(renamed, bundle=signed, verifier=verifier).sha256 == _sha256(model)
    link = tmp_path / "link.onnx"
    link.symlink_to(model)
    assert verify_model(link, bundle=signed, verifier=verifier).sha256 == _sha256(model)


def test_certificate_chain_round_trip(tmp_path: Path, model: Path, pki: Pki) -> None:
    bundle = sign_model(
        model,
        private_key=pki.leaf_key,
        signing_certificate=pki.leaf,
        certificate_chain=[pki.intermediate],
    )
    # Trust anchored at the root only: the intermediate travels in the bundle.
    report = verify_model(
        model, bundle=bundle, verifier=Verifier.from_certificate_chain([pki.root])
    )
    assert report.method == "certificate-chain"
    assert report.signer == "certificate CN=Acme model signer"
    assert report.sha256 == _sha256(model)


# --- what each failure raises -----------------------------------------------


def test_wrong_public_key(tmp_path: Path, model: Path, signed: Path) -> None:
    other = generate_key_pair(tmp_path / "other.pem")
    with pytest.raises(
        SignatureMismatchError,
        match=r"signature does not verify with .*other\.pem\.pub: the bundle was signed by "
        "another key",
    ):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(other.public_key))


def test_forged_key_hint_still_fails_on_the_signature(
    tmp_path: Path, model: Path, signed: Path
) -> None:
    # The key id in the bundle is unsigned: claiming another key's id must not
    # help, the signature check still runs (cryptography's InvalidSignature).
    other = generate_key_pair(tmp_path / "other.pem")
    public = serialization.load_pem_public_key(other.public_key.read_bytes())
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    doc = json.loads(signed.read_text(encoding="utf-8"))
    doc["verificationMaterial"]["publicKey"]["hint"] = hashlib.sha256(pem).hexdigest()
    signed.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SignatureMismatchError, match="the signature is not valid"):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(other.public_key))


def test_payload_swapped_from_another_bundle(
    tmp_path: Path, model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    other_model = tmp_path / "other.onnx"
    other_model.write_bytes(conv_sigmoid_model(seed=1))
    other_bundle = sign_model(
        other_model, private_key=generate_key_pair(tmp_path / "o").private_key
    )
    doc = json.loads(signed.read_text(encoding="utf-8"))
    doc["dsseEnvelope"]["payload"] = json.loads(other_bundle.read_text(encoding="utf-8"))[
        "dsseEnvelope"
    ]["payload"]
    signed.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SignatureMismatchError, match="the signature is not valid"):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_certificate_chain_from_another_ca(model: Path, pki: Pki, other_pki: Pki) -> None:
    bundle = sign_model(
        model,
        private_key=pki.leaf_key,
        signing_certificate=pki.leaf,
        certificate_chain=[pki.intermediate],
    )
    with pytest.raises(
        SignatureMismatchError, match=r"the signing certificate does not chain to .*Other-root"
    ):
        verify_model(
            model, bundle=bundle, verifier=Verifier.from_certificate_chain([other_pki.root])
        )


def test_flipped_byte_in_model(model: Path, keys: signing.KeyPair, signed: Path) -> None:
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(
        ModelTamperedError,
        match=r"the model's sha256 differs from the digest the bundle signs .*: the file was "
        "modified after signing; re-fetch or re-export it",
    ):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_expected_sha256_mismatch(model: Path, keys: signing.KeyPair, signed: Path) -> None:
    with pytest.raises(ModelTamperedError, match=f"the bytes read have sha256 {'0' * 64}"):
        verify_model(
            model,
            bundle=signed,
            verifier=Verifier.from_public_key(keys.public_key),
            expected_sha256="0" * 64,
        )


def test_expected_sha256_malformed(model: Path, keys: signing.KeyPair, signed: Path) -> None:
    with pytest.raises(UsageError, match="not a sha256 hex digest"):
        verify_model(
            model,
            bundle=signed,
            verifier=Verifier.from_public_key(keys.public_key),
            expected_sha256="abc",
        )


def test_bundle_for_another_model(
    tmp_path: Path, model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(conv_sigmoid_model(seed=1))
    with pytest.raises(
        ModelTamperedError,
        match=r"sha256 differs .*: the bundle was made for 'model\.onnx', a different model; "
        r"pass the bundle that belongs to other\.onnx",
    ):
        verify_model(other, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_key_bundle_checked_against_certificate_chain(model: Path, signed: Path, pki: Pki) -> None:
    with pytest.raises(
        SignatureMismatchError,
        match="signed with a private key, but verification asked for certificate chain",
    ):
        verify_model(model, bundle=signed, verifier=Verifier.from_certificate_chain([pki.root]))


def test_missing_model_and_public_key(tmp_path: Path, keys: signing.KeyPair, signed: Path) -> None:
    with pytest.raises(InputFileError, match=r"nothing\.onnx: no model file there"):
        verify_model(
            tmp_path / "nothing.onnx",
            bundle=signed,
            verifier=Verifier.from_public_key(keys.public_key),
        )
    with pytest.raises(
        SigningKeyError, match=r"key .*absent\.pub: no such file: pass the public key"
    ):
        verify_model(
            signed.with_name("model.onnx"),
            bundle=signed,
            verifier=Verifier.from_public_key(tmp_path / "absent.pub"),
        )


def test_keyless_verifier_on_key_bundle_fails_fast(model: Path, signed: Path) -> None:
    # Decided from the bundle's verification material: no network.
    verifier = Verifier.keyless(identity="me@example.com", oidc_issuer=ISSUER)
    with pytest.raises(
        SignatureMismatchError,
        match="signed with a private key, but verification asked for keyless",
    ):
        verify_model(model, bundle=signed, verifier=verifier)


def test_every_error_is_a_signature_error() -> None:
    for cls in (
        BundleMissingError,
        BundleInvalidError,
        SignatureMismatchError,
        ModelTamperedError,
        SigningKeyError,
        TrustRootError,
    ):
        assert issubclass(cls, SignatureError)


# --- keyless through model_signing ------------------------------------------


def test_keyless_identity_goes_to_model_signing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import model_signing

    seen: dict[str, Any] = {}

    def record(self: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return self

    monkeypatch.setattr(model_signing.verifying.Config, "use_sigstore_verifier", record)
    trust = tmp_path / "trust.json"
    verify._model_signing_config(
        model_signing,
        Verifier.keyless(identity=WORKFLOW, oidc_issuer=ISSUER, trust_config=trust),
    )
    assert seen == {
        "identity": WORKFLOW,
        "oidc_issuer": ISSUER,
        "use_staging": False,
        "trust_config": trust,
    }
    seen.clear()
    verify._model_signing_config(
        model_signing, Verifier.keyless(identity=WORKFLOW, oidc_issuer=ISSUER, use_staging=True)
    )
    assert seen["use_staging"] is True and seen["trust_config"] is None
