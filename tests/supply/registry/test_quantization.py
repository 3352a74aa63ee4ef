"""Quantised variants in the registry: linked to their registered float parent (issue 38)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._trust import TINY, write_model
from tests.cli._commands import Capture, one_line_error, run
from vmafx_saliency._util import sha256_bytes
from vmafx_saliency.errors import RegistryError, UnknownModelError
from vmafx_saliency.supply import registry as reg


def _quantization(parent_sha256: str, parent_id: str = "parent") -> reg.Quantization:
    return reg.Quantization(
        quant_mode="static",
        parent_id=parent_id,
        parent_sha256=parent_sha256,
        quant_calibration_set="a" * 64,
        quant_accuracy_budget_plcc=0.995,
    )


def _add(tmp_path: Path, model_id: str, **kwargs: object) -> reg.ModelEntry:
    write_model(tmp_path / "in", model_id)
    inputs = tmp_path / "in" / model_id
    return reg.add_model(
        onnx=inputs / "model.onnx",
        model_id=model_id,
        sidecar=inputs / "sidecar.json",
        license="BSD-3-Clause",
        license_file=inputs / "LICENSE.txt",
        source=reg.Source(type="fork-trained"),
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_variant_of_a_registered_parent_is_added_and_validates(tmp_path: Path) -> None:
    parent = _add(tmp_path, "parent")
    variant = _add(tmp_path, "variant", quantization=_quantization(parent.sha256))
    assert variant.quantization == _quantization(parent.sha256)
    raw = json.loads(reg.overlay_registry_path().read_text())["models"][1]
    assert raw["quantization"]["parent_sha256"] == sha256_bytes(TINY)
    assert reg.validate_registry(reg.overlay_registry_path()).ok


def test_a_variant_needs_its_parent_at_the_sha256_it_was_made_from(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"parent"):
        _add(tmp_path, "variant", quantization=_quantization("b" * 64))
    _add(tmp_path, "parent")
    with pytest.raises(
        RegistryError,
        match=r"cannot add 'variant': it was quantised from 'parent' at sha256 b{64}, but the "
        r"registry pins [0-9a-f]{64}: quantise the registered model again",
    ):
        _add(tmp_path, "variant", quantization=_quantization("b" * 64))


def test_validate_finds_a_variant_whose_parent_changed(tmp_path: Path) -> None:
    parent = _add(tmp_path, "parent")
    _add(tmp_path, "variant", quantization=_quantization(parent.sha256))
    overlay = reg.overlay_registry_path()
    doc = json.loads(overlay.read_text())
    doc["models"][1]["quantization"]["parent_sha256"] = "c" * 64
    overlay.write_text(json.dumps(doc))
    report = reg.validate_registry(overlay)
    assert not report.ok
    assert "is quantised from 'parent' at sha256 cccc" in report.render()
    assert "which is registered with sha256" in report.render()


def test_the_committed_int8_student_is_linked_to_the_shipped_student(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(reg.ENV_COMMITTED)  # the packaged registry, not the test's empty one
    committed = reg.Registry.load()
    int8 = committed.get("saliency_student_v2_int8")
    assert int8.quantization is not None
    assert int8.quantization.parent_sha256 == committed.get("saliency_student_v2").sha256
    manifest = json.loads(int8.manifest.read_text()) if int8.manifest else {}
    assert manifest["output"]["sha256"] == int8.sha256
    assert manifest["accuracy"]["images"]["pairs"] == 850
    assert manifest["accuracy"]["within_budget"] is True


def test_the_committed_int8_manifest_gives_its_committed_registry_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The library reads what 'registry add --quantization-manifest' reads: a round trip of
    the shipped variant's manifest to the fields its committed entry holds."""
    monkeypatch.delenv(reg.ENV_COMMITTED)
    int8 = reg.Registry.load().get("saliency_student_v2_int8")
    assert int8.manifest is not None
    assert reg.quantization_from_manifest(int8.manifest, model=int8.onnx) == int8.quantization
    assert reg.model_id_from_manifest(int8.manifest, command="quantize") == int8.id
    with pytest.raises(RegistryError, match=r"describes a model with sha256 [0-9a-f]{64}, not "):
        reg.quantization_from_manifest(int8.manifest, model=int8.sidecar)


def _quantize_manifest(path: Path, parent_sha256: str, model: Path, **extra: str) -> Path:
    """A manifest as 'vmafx-saliency quantize' writes it, for ``model`` of parent 'parent'."""
    doc = {
        "schema": "vmafx-saliency/quantization/v1",
        "quant_mode": "static",
        "parent": {"id": "parent", "sha256": parent_sha256},
        "output": {"sha256": sha256_bytes(model.read_bytes())},
        "calibration": {"sha256": "d" * 64},
        "accuracy": {"budget": {"min_pearson": 0.99}, "within_budget": True},
        **extra,
    }
    path.write_text(json.dumps(doc))
    return path


def test_registry_add_reads_the_quantize_manifest(tmp_path: Path, capsys: Capture) -> None:
    parent = _add(tmp_path, "parent")
    write_model(tmp_path / "in", "variant")
    inputs = tmp_path / "in" / "variant"
    manifest = _quantize_manifest(tmp_path / "q.json", parent.sha256, inputs / "model.onnx")
    common: list[str | Path] = [
        "registry", "add", inputs / "model.onnx", "--id", "variant", "--sidecar",
        inputs / "sidecar.json", "--license", "BSD-3-Clause", "--license-file",
        inputs / "LICENSE.txt", "--source", "fork-trained",
    ]  # fmt: skip
    code, _, err = run(capsys, *common, "--quantization-manifest", tmp_path / "in")
    assert code == 2 and "quantisation manifest" in one_line_error(err, "registry add")
    manifest_bad = tmp_path / "bad.json"
    manifest_bad.write_text("{}")
    code, _, err = run(capsys, *common, "--quantization-manifest", manifest_bad)
    assert code == 2 and "schema None is not a quantize manifest's" in one_line_error(
        err, "registry add"
    )
    # Another model's manifest, or one beyond its budget, is refused.
    other = json.loads(manifest.read_text())
    other["output"]["sha256"] = "e" * 64
    wrong = tmp_path / "other.json"
    wrong.write_text(json.dumps(other))
    code, _, err = run(capsys, *common, "--quantization-manifest", wrong)
    assert code == 2 and "describes a model with sha256 eeee" in one_line_error(err, "registry add")
    other["output"]["sha256"] = sha256_bytes((inputs / "model.onnx").read_bytes())
    other["accuracy"]["within_budget"] = False
    wrong.write_text(json.dumps(other))
    code, _, err = run(capsys, *common, "--quantization-manifest", wrong)
    assert code == 2 and "not within its accuracy budget" in one_line_error(err, "registry add")
    code, out, _ = run(capsys, *common, "--quantization-manifest", manifest)
    assert code == 0, out
    variant = reg.Registry.load().get("variant")
    assert variant.quantization is not None
    assert variant.quantization.quant_accuracy_budget_plcc == pytest.approx(0.99)


def test_registry_add_takes_the_id_from_the_quantize_manifest(
    tmp_path: Path, capsys: Capture
) -> None:
    """As --manifest gives an export's id, --quantization-manifest gives quantize's."""
    parent = _add(tmp_path, "parent")
    write_model(tmp_path / "in", "variant")
    inputs = tmp_path / "in" / "variant"
    manifest = _quantize_manifest(
        tmp_path / "q.json", parent.sha256, inputs / "model.onnx", model_id="variant"
    )
    code, out, err = run(
        capsys, "registry", "add", inputs / "model.onnx", "--sidecar", inputs / "sidecar.json",
        "--license", "BSD-3-Clause", "--license-file", inputs / "LICENSE.txt",
        "--quantization-manifest", manifest,
    )  # fmt: skip
    assert code == 0, out + err
    assert out.startswith("registered variant (")
    assert reg.Registry.load().get("variant").quantization is not None
