"""Adding a model to the overlay: copies, checks, refusals, nothing written on failure."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests._onnx_models import conv_sigmoid_model
from tests._trust import (
    BSD_TEXT,
    TINY,
    TINY_PARAMS,
    custom_domain_model,
    key_and_bundle,
    sidecar_doc,
    write_json,
    write_model,
    write_registry,
)
from tests.supply.registry._raw import entries_of
from vmafx_saliency._util import sha256_bytes
from vmafx_saliency.errors import InvalidRegistryError, RegistryError
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply.signing import generate_key_pair


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Loose input files for add_model in tmp/in: model.onnx, sidecar.json, LICENSE.txt."""
    folder = tmp_path / "in"
    write_model(folder, "new")
    return folder / "new"


def _add(inputs: Path, **kwargs: Any) -> reg.ModelEntry:
    args: dict[str, Any] = {
        "onnx": inputs / "model.onnx",
        "model_id": "new",
        "sidecar": inputs / "sidecar.json",
        "license": "BSD-3-Clause",
        "license_file": inputs / "LICENSE.txt",
        "source": reg.Source(type="fork-trained"),
    }
    args.update(kwargs)
    return reg.add_model(**args)


def test_add_writes_only_the_overlay(tmp_path: Path, inputs: Path) -> None:
    committed = reg.committed_registry_path()
    before = committed.read_bytes()
    entry = _add(inputs)
    overlay = reg.overlay_registry_path()
    assert committed.read_bytes() == before
    assert overlay.is_file()
    assert overlay.read_text().endswith("}\n")
    dest = overlay.parent / "models" / "new"
    assert sorted(p.name for p in dest.iterdir()) == ["LICENSE.txt", "model.onnx", "sidecar.json"]
    assert (dest / "model.onnx").read_bytes() == TINY
    assert entry.onnx == (dest / "model.onnx").resolve()
    assert (entry.sha256, entry.opset, entry.params) == (sha256_bytes(TINY), 17, TINY_PARAMS)
    assert (entry.status, entry.default, entry.registry) == ("alternative", False, overlay)
    assert entries_of(overlay)[0]["onnx"] == "models/new/model.onnx"
    assert reg.validate_registry(overlay).ok
    view = reg.Registry.load()
    assert view.get("new") == entry


def test_add_with_manifest_and_mirror_source(tmp_path: Path, inputs: Path) -> None:
    manifest = write_json(
        tmp_path / "in" / "model.onnx.manifest.json",
        {
            "export": {"opset": 17},
            "params": 1234,
            "output": {"sha256": sha256_bytes(TINY)},
            "upstream": {
                "repo": "https://github.com/xuebinqin/U-2-Net",
                "commit": "ac7e1c81",
                "checkpoint": {"sha256": "ab" * 32},
            },
        },
    )
    source = reg.source_from_manifest(manifest)
    assert source == reg.Source(
        "upstream-mirror", "https://github.com/xuebinqin/U-2-Net", "ac7e1c81", "ab" * 32
    )
    entry = _add(inputs, manifest=manifest, source=source, license="Apache-2.0")
    assert entry.params == 1234
    assert entry.manifest is not None and entry.manifest.name == "model.onnx.manifest.json"
    assert entries_of(reg.overlay_registry_path())[0]["source"]["commit"] == "ac7e1c81"
    assert reg.validate_registry(reg.overlay_registry_path()).ok

    wrong = write_json(tmp_path / "wrong.json", {"output": {"sha256": "0" * 64}})
    with pytest.raises(RegistryError, match=r"describes an ONNX with sha256 0{64}"):
        _add(inputs, manifest=wrong, force=True)


def test_add_copies_bundle_and_public_key(tmp_path: Path, inputs: Path) -> None:
    pair, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    entry = _add(
        inputs,
        sigstore_bundle=bundle,
        verification=reg.Verification(public_key=pair.public_key),
        release_asset=True,
    )
    dest = reg.overlay_registry_path().parent / "models" / "new"
    assert entry.sigstore_bundle == (dest / "model.onnx.sigstore.json").resolve()
    assert entry.verification is not None
    assert entry.verification.public_key == (dest / "signing.pem.pub").resolve()
    report = reg.validate_registry(reg.overlay_registry_path())
    assert report.ok and not report.warnings, report.render()


def test_a_release_asset_needs_its_bundle_and_a_key(tmp_path: Path, inputs: Path) -> None:
    # The loader verifies a release asset on every load: registered without either, it
    # could never be loaded, so it is refused here instead.
    pair, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    key = reg.Verification(public_key=pair.public_key)
    asked = r"^cannot add 'new' as a release asset without "
    bundle_wanted, key_wanted = r"its Sigstore bundle \(--bundle\)", r"a way to verify it \("
    for given, wanted in (
        ({}, bundle_wanted + " and " + key_wanted),
        ({"sigstore_bundle": bundle}, key_wanted),
        (
            {"verification": key},
            bundle_wanted + r": a release asset is verified on every load; sign it "
            r"\('vmafx-saliency sign'\) and pass both, or leave out --release-asset$",
        ),
    ):
        with pytest.raises(RegistryError, match=asked + wanted):
            _add(inputs, release_asset=True, **given)
    assert not reg.overlay_registry_path().exists()


def test_add_refuses_a_bundle_that_leaves_the_sidecar_unsigned(
    tmp_path: Path, inputs: Path
) -> None:
    from vmafx_saliency.supply.signing import sign_model

    pair = generate_key_pair(tmp_path / "keys" / "signing.pem")
    alone = sign_model(inputs / "model.onnx", private_key=pair.private_key)
    with pytest.raises(
        RegistryError,
        match=r"cannot add 'new': Sigstore bundle .* signs the model alone, not its sidecar: "
        r"the sidecar is unsigned.*--sidecar .*sidecar\.json --private-key KEY",
    ):
        _add(
            inputs,
            sigstore_bundle=alone,
            verification=reg.Verification(public_key=pair.public_key),
        )
    assert not reg.overlay_registry_path().exists()


def _tampered_copy(inputs: Path, tmp_path: Path) -> Path:
    """Another model that passes every check but the bundle: other weights, other sha256."""
    other = tmp_path / "other" / "model.onnx"
    other.parent.mkdir()
    other.write_bytes(conv_sigmoid_model(weight_scale=0.2))
    assert other.read_bytes() != (inputs / "model.onnx").read_bytes()
    return other


def test_add_refuses_another_models_bundle(tmp_path: Path, inputs: Path) -> None:
    """The bundle of the original, given with a changed copy: refused, with or without a key."""
    pair, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    other = _tampered_copy(inputs, tmp_path)
    for verification in (reg.Verification(public_key=pair.public_key), None):
        with pytest.raises(
            RegistryError,
            match=r"cannot add 'new': Sigstore bundle .*model\.onnx\.sigstore\.json signs a "
            r"model with sha256 [0-9a-f]{64}, not the pinned [0-9a-f]{64}: it is another model's "
            r"bundle; pass the bundle that signs .*other/model\.onnx",
        ):
            _add(inputs, onnx=other, sigstore_bundle=bundle, verification=verification)
    assert not reg.overlay_registry_path().exists()


def test_add_refuses_a_bundle_that_does_not_verify_with_the_key_given(
    tmp_path: Path, inputs: Path
) -> None:
    _, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    stranger = generate_key_pair(tmp_path / "stranger" / "signing.pem")
    with pytest.raises(
        RegistryError,
        match=r"cannot add 'new': its Sigstore bundle does not verify with the verification "
        r"given \(.*",
    ):
        _add(
            inputs,
            sigstore_bundle=bundle,
            verification=reg.Verification(public_key=stranger.public_key),
        )
    assert not reg.overlay_registry_path().exists()


def test_validate_finds_a_bundle_of_another_model(tmp_path: Path, inputs: Path) -> None:
    pair, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    entry = _add(
        inputs, sigstore_bundle=bundle, verification=reg.Verification(public_key=pair.public_key)
    )
    assert entry.sigstore_bundle is not None
    # The registered bundle swapped for one that signs another model.
    other = _tampered_copy(inputs, tmp_path)
    _, other_bundle = key_and_bundle(other, tmp_path / "other_keys")
    entry.sigstore_bundle.write_bytes(other_bundle.read_bytes())
    report = reg.validate_registry(reg.overlay_registry_path())
    assert not report.ok
    assert "signs a model with sha256" in report.render()
    assert "it is another model's bundle; replace the bundle with this model's" in report.render()


@pytest.mark.parametrize("status", ["production", "default"])
def test_add_refuses_production(inputs: Path, status: str) -> None:
    with pytest.raises(RegistryError, match=r"'alternative' or 'candidate'.*registry promote"):
        _add(inputs, status=status)
    assert not reg.overlay_registry_path().exists()


def test_add_refuses_an_existing_id_without_force(inputs: Path) -> None:
    _add(inputs)
    overlay = reg.overlay_registry_path()
    before = overlay.read_bytes()
    with pytest.raises(RegistryError, match=r"already in the overlay .*pass --force"):
        _add(inputs)
    assert overlay.read_bytes() == before
    _add(inputs, status="candidate", force=True)
    assert [(e["id"], e["status"]) for e in entries_of(overlay)] == [("new", "candidate")]


def test_add_refuses_an_id_of_the_committed_registry(tmp_path: Path, inputs: Path) -> None:
    folder = tmp_path / "committed"
    write_registry(folder / "registry.json", [write_model(folder, "new")])
    with pytest.raises(RegistryError, match=r"'new' is in the committed registry"):
        _add(inputs)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (custom_domain_model(), r"fails the op-allowlist scan: \[custom-domain\]"),
        (conv_sigmoid_model(output_name="d0"), r"fails the deployment contract.*'d0'"),
    ],
    ids=["scan", "contract"],
)
def test_add_refuses_a_bad_model(inputs: Path, data: bytes, message: str) -> None:
    _add(inputs)
    overlay = reg.overlay_registry_path()
    before = overlay.read_bytes()
    (inputs / "model.onnx").write_bytes(data)
    with pytest.raises(RegistryError, match=rf"cannot add 'new': .*{message}"):
        _add(inputs, force=True)
    assert overlay.read_bytes() == before
    assert (overlay.parent / "models" / "new" / "model.onnx").read_bytes() == TINY


def test_add_refuses_a_sidecar_of_another_model(inputs: Path) -> None:
    write_json(inputs / "sidecar.json", sidecar_doc("someone_else"))
    with pytest.raises(RegistryError, match=r"is for model 'someone_else', not 'new'"):
        _add(inputs)


def test_written_files_are_sorted_json(inputs: Path) -> None:
    _add(inputs)
    text = reg.overlay_registry_path().read_text()
    doc = json.loads(text)
    assert list(doc) == ["schema", "models"]
    assert list(doc["models"][0]) == sorted(doc["models"][0])
    assert text == json.dumps(doc, indent=2) + "\n"


def test_add_refuses_an_invalid_entry_and_writes_nothing(inputs: Path) -> None:
    with pytest.raises(
        InvalidRegistryError,
        match=r"cannot add 'new' to .*'commit' is a required property.*nothing was written",
    ):
        _add(
            inputs, source=reg.Source(type="upstream-mirror", repo="r", checkpoint_sha256="a" * 64)
        )
    overlay = reg.overlay_registry_path()
    assert not overlay.exists()
    assert not (overlay.parent / "models").exists()


def test_add_refuses_two_verification_ways(tmp_path: Path, inputs: Path) -> None:
    key = inputs / "k.pub"
    key.write_text("k\n")
    both = reg.Verification(public_key=key, identity="me@example.org", oidc_issuer="https://x")
    with pytest.raises(RegistryError, match=r"exactly one of.*got 2"):
        _add(inputs, verification=both)


def test_add_refuses_a_model_that_reads_no_file(tmp_path: Path, inputs: Path) -> None:
    with pytest.raises(RegistryError, match=r"model .*absent\.onnx: no such file"):
        _add(inputs, onnx=tmp_path / "absent.onnx")


# --- a failure while writing leaves the overlay as it was -----------------------------


def _no_space_after(monkeypatch: pytest.MonkeyPatch, files: int) -> None:
    """os.fsync fails (ENOSPC, a full disk) from the ``files``-th written file on."""
    real = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] >= files:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _leftovers(overlay_root: Path) -> list[str]:
    models = overlay_root / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_a_full_disk_while_copying_adds_nothing(
    inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlay = reg.overlay_registry_path()
    _no_space_after(monkeypatch, 2)
    with pytest.raises(
        RegistryError,
        match=r"^cannot add 'new' to .*registry\.json: writing failed \(No space left on device\): "
        r"free some space or check the folder's permissions; the overlay is as it was$",
    ):
        _add(inputs)
    assert not overlay.exists()
    assert _leftovers(overlay.parent) == []  # no copies, no hidden staging folder


def test_a_failed_replacement_puts_the_old_copies_back(
    inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _add(inputs)
    before = {p.name: p.read_bytes() for p in entry.onnx.parent.iterdir()}
    document = reg.overlay_registry_path().read_bytes()
    (inputs / "LICENSE.txt").write_text(BSD_TEXT + "\nchanged\n")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # The copies are in place; writing the overlay document itself fails.
    monkeypatch.setattr("vmafx_saliency.supply.registry.add.atomic_write_text", full)
    with pytest.raises(RegistryError, match=r"writing failed \(No space left on device\)"):
        _add(inputs, force=True)
    assert {p.name: p.read_bytes() for p in entry.onnx.parent.iterdir()} == before
    assert reg.overlay_registry_path().read_bytes() == document
    assert _leftovers(entry.onnx.parent.parent.parent) == ["new"]


def test_a_killed_adds_leftovers_are_swept_by_the_next(inputs: Path) -> None:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()  # a pid that is gone: the run SIGKILL ended
    models = reg.overlay_registry_path().parent / "models"
    models.mkdir(parents=True)
    for suffix in (".tmp", ".old"):
        (models / f".new.{child.pid}.abcd1234{suffix}").mkdir()
    _add(inputs)
    assert sorted(p.name for p in models.iterdir()) == ["new"]
