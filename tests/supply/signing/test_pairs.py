"""A model signed with its sidecar, and a folder (a release) signed as a whole (issue 37)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from vmafx_saliency.errors import (
    BundleInvalidError,
    InputFileError,
    ModelTamperedError,
    SignatureMismatchError,
)
from vmafx_saliency.supply import signing
from vmafx_saliency.supply.signing import (
    Verifier,
    sign_folder,
    sign_model,
    signed_sidecar_sha256,
    verify_files,
    verify_model,
)


@pytest.fixture
def sidecar(model: Path) -> Path:
    path = model.with_name("model.sidecar.json")
    path.write_text('{"model_id": "m", "preprocessing": {"inference_size": [320, 320]}}\n')
    return path


def _statement(bundle: Path) -> dict[str, object]:
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    statement: dict[str, object] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_pair_is_signed_under_fixed_names_and_verifies(
    model: Path, sidecar: Path, keys: signing.KeyPair
) -> None:
    bundle = sign_model(model, private_key=keys.private_key, sidecar=sidecar)
    predicate = _statement(bundle)["predicate"]
    assert isinstance(predicate, dict)
    assert [(r["name"], r["digest"]) for r in predicate["resources"]] == [
        ("model.onnx", _sha256(model)),
        ("sidecar.json", _sha256(sidecar)),
    ]
    assert signed_sidecar_sha256(bundle) == _sha256(sidecar)
    report = verify_model(model, bundle=bundle, verifier=Verifier.from_public_key(keys.public_key))
    assert (report.sha256, report.sidecar, report.sidecar_sha256) == (
        _sha256(model),
        sidecar,  # found beside the model
        _sha256(sidecar),
    )
    assert f"  sidecar {sidecar} (sha256 {_sha256(sidecar)})" in report.render()


def test_renamed_copies_of_the_pair_still_verify(
    tmp_path: Path, model: Path, sidecar: Path, keys: signing.KeyPair
) -> None:
    bundle = sign_model(model, private_key=keys.private_key, sidecar=sidecar)
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    onnx = Path(shutil.copy(model, elsewhere / "renamed.onnx"))
    side = Path(shutil.copy(sidecar, elsewhere / "pre.json"))
    report = verify_model(
        onnx, bundle=bundle, verifier=Verifier.from_public_key(keys.public_key), sidecar=side
    )
    assert report.sidecar_sha256 == _sha256(sidecar)


def test_an_edited_sidecar_fails_and_is_named(
    model: Path, sidecar: Path, keys: signing.KeyPair
) -> None:
    bundle = sign_model(model, private_key=keys.private_key, sidecar=sidecar)
    sidecar.write_text(sidecar.read_text().replace("320, 320", "4096, 4096"))
    with pytest.raises(
        ModelTamperedError,
        match=r"model\.sidecar\.json: the sidecar's sha256 differs from the digest the bundle "
        r"signs .*edited after signing",
    ):
        verify_model(model, bundle=bundle, verifier=Verifier.from_public_key(keys.public_key))


def test_a_pinned_sidecar_must_be_the_signed_one(
    model: Path, sidecar: Path, keys: signing.KeyPair
) -> None:
    bundle = sign_model(model, private_key=keys.private_key, sidecar=sidecar)
    with pytest.raises(ModelTamperedError, match=r"the sidecar expected has sha256 0{64}"):
        verify_model(
            model,
            bundle=bundle,
            verifier=Verifier.from_public_key(keys.public_key),
            expected_sidecar_sha256="0" * 64,
        )


def test_a_sidecar_with_a_bundle_of_the_model_alone_is_refused(
    model: Path, sidecar: Path, keys: signing.KeyPair, signed: Path
) -> None:
    verifier = Verifier.from_public_key(keys.public_key)
    assert verify_model(model, bundle=signed, verifier=verifier).sidecar is None
    with pytest.raises(
        SignatureMismatchError,
        match=r"the bundle signs model\.onnx alone, not its sidecar .*the sidecar is unsigned",
    ):
        verify_model(model, bundle=signed, verifier=verifier, sidecar=sidecar)


def test_a_pair_bundle_without_its_sidecar_says_what_to_pass(
    model: Path, sidecar: Path, keys: signing.KeyPair
) -> None:
    bundle = sign_model(model, private_key=keys.private_key, sidecar=sidecar)
    sidecar.unlink()
    with pytest.raises(InputFileError, match=r"none lies beside it .*pass the sidecar"):
        verify_model(model, bundle=bundle, verifier=Verifier.from_public_key(keys.public_key))


def test_a_bundle_of_three_files_is_not_a_model_bundle(
    tmp_path: Path, keys: signing.KeyPair
) -> None:
    folder = tmp_path / "three"
    folder.mkdir()
    for name in ("a.bin", "model.onnx", "sidecar.json"):
        (folder / name).write_bytes(name.encode())
    bundle = tmp_path / "three.sigstore.json"
    bundle.write_bytes(sign_folder(folder, private_key=keys.private_key, bundle=bundle))
    with pytest.raises(
        BundleInvalidError,
        match=r"it signs 3 files \(a\.bin, model\.onnx, sidecar\.json\), not one model file "
        r"or a model with its sidecar",
    ):
        verify_model(
            folder / "model.onnx",
            bundle=bundle,
            verifier=Verifier.from_public_key(keys.public_key),
        )


def test_a_statement_naming_a_file_in_a_subfolder_is_refused(
    tmp_path: Path, keys: signing.KeyPair
) -> None:
    import model_signing as ms

    folder = tmp_path / "nested"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.bin").write_bytes(b"x")
    bundle = tmp_path / "nested.sigstore.json"
    config = ms.signing.Config().use_elliptic_key_signer(  # type: ignore[no-untyped-call]
        private_key=keys.private_key
    )
    config.sign(folder, bundle)
    with pytest.raises(BundleInvalidError, match=r"'sub/x\.bin' is not a plain file name"):
        verify_files(
            {"x.bin": b"x"}, bundle=bundle, verifier=Verifier.from_public_key(keys.public_key)
        )


def _release(tmp_path: Path, keys: signing.KeyPair) -> tuple[dict[str, bytes], Path]:
    folder = tmp_path / "release"
    folder.mkdir()
    files = {"release.json": b"{}\n", "SHA256SUMS": b"", "card.md": b"# card\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    bundle = tmp_path / "release.sigstore.json"
    bundle.write_bytes(sign_folder(folder, private_key=keys.private_key, bundle=bundle))
    return files, bundle


def test_a_signed_folder_verifies_on_exactly_its_files(
    tmp_path: Path, keys: signing.KeyPair
) -> None:
    files, bundle = _release(tmp_path, keys)
    verifier = Verifier.from_public_key(keys.public_key)
    assert verify_files(files, bundle=bundle, verifier=verifier).startswith("public key ")
    with pytest.raises(SignatureMismatchError, match=r"unsigned: extra\.txt"):
        verify_files({**files, "extra.txt": b"x"}, bundle=bundle, verifier=verifier)
    with pytest.raises(SignatureMismatchError, match=r"signed but absent: card\.md"):
        verify_files(
            {k: v for k, v in files.items() if k != "card.md"}, bundle=bundle, verifier=verifier
        )
    with pytest.raises(
        ModelTamperedError, match=r"release\.json: the bytes differ from the signed digest"
    ):
        verify_files(
            {**files, "release.json": b'{"license": "MIT"}\n'}, bundle=bundle, verifier=verifier
        )


def test_a_folder_signed_by_another_key_fails(tmp_path: Path, keys: signing.KeyPair) -> None:
    files, bundle = _release(tmp_path, keys)
    other = signing.generate_key_pair(tmp_path / "other" / "signing.pem")
    with pytest.raises(SignatureMismatchError, match=r"signed by another key"):
        verify_files(files, bundle=bundle, verifier=Verifier.from_public_key(other.public_key))


def test_a_model_named_like_a_bundle_signs_with_its_sidecar(
    tmp_path: Path, model: Path, sidecar: Path, keys: signing.KeyPair
) -> None:
    odd = Path(shutil.copy(model, tmp_path / "bundle.sigstore.json"))
    bundle = sign_model(
        odd, private_key=keys.private_key, sidecar=sidecar, bundle=tmp_path / "b.json"
    )
    report = verify_model(
        odd, bundle=bundle, verifier=Verifier.from_public_key(keys.public_key), sidecar=sidecar
    )
    assert report.sidecar_sha256 == _sha256(sidecar)
