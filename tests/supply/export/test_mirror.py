"""The u2netp mirror export: ONNX + manifest, determinism, refused or forced outputs, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


from tests.conftest import IMAGES  # noqa: E402
from tests.supply.export.conftest import (  # noqa: E402
    DEFAULT_IMAGES,
    FIXTURE_LICENSE,
    _ort_run,
    _probe_input,
)
from vmafx_saliency._util import sha256_file  # noqa: E402
from vmafx_saliency.cli.main import main  # noqa: E402
from vmafx_saliency.errors import OutputExistsError, ParityError, UsageError  # noqa: E402
from vmafx_saliency.supply import export  # noqa: E402
from vmafx_saliency.supply.export import mirror  # noqa: E402

# --- the exported mirror ------------------------------------------------------


def test_mirror_graph_meets_the_contract(mirror_onnx: Path) -> None:
    model = onnx.load(mirror_onnx)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "input"
    assert out.name == "saliency_map"
    in_dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_value or d.dim_param for d in out.type.tensor_type.shape.dim]
    assert in_dims == [1, 3, "height", "width"]
    assert out_dims == [1, 1, "height", "width"]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.producer_name == "vmafx-saliency"
    onnx.checker.check_model(model, full_check=True)


def test_mirror_metadata_props(mirror_onnx: Path, checkpoint_path: Path) -> None:
    props = {p.key: p.value for p in onnx.load(mirror_onnx).metadata_props}
    assert set(props) == set(export.METADATA_KEYS)
    assert props["model_id"] == "u2netp_mirror_v1"
    assert props["upstream_repo"] == "https://github.com/xuebinqin/U-2-Net"
    assert props["upstream_commit"] == "ac7e1c81"
    assert props["upstream_checkpoint_sha256"] == sha256_file(checkpoint_path)
    assert props["license"] == "Apache-2.0"
    for fact in ("d0", "saliency_map", "opset 17", "unchanged"):
        assert fact in props["changes"]


def test_mirror_manifest(mirror_onnx: Path, checkpoint_path: Path) -> None:
    manifest_path = mirror_onnx.with_name(mirror_onnx.name + ".manifest.json")
    text = manifest_path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    assert doc["schema"] == export.MANIFEST_SCHEMA
    from vmafx_saliency import schemas

    assert schemas.problems("export-manifest", doc) == []  # what 'card --manifest' takes
    assert doc["model_id"] == "u2netp_mirror_v1"
    assert doc["params"] == 1_131_181
    assert doc["output"] == {
        "file": mirror_onnx.name,
        "sha256": sha256_file(mirror_onnx),
        "bytes": mirror_onnx.stat().st_size,
    }
    up = doc["upstream"]
    assert up["checkpoint"] == {
        "path": checkpoint_path.name,
        "sha256": sha256_file(checkpoint_path),
    }
    assert up["commit"] == "ac7e1c81"
    assert up["licence"]["spdx"] == "Apache-2.0"
    assert up["licence"]["sha256"] == sha256_file(FIXTURE_LICENSE)
    assert up["notice_present"] is False
    ex = doc["export"]
    assert ex["opset"] == 17
    assert ex["input_names"] == ["input"]
    assert ex["output_names"] == ["saliency_map"]
    assert ex["selected_output"] == "d0"
    assert "dynamo=False" in ex["exporter"]
    assert set(ex["versions"]) >= {"torch", "onnx", "onnxruntime"}
    assert doc["op_types"] == export.count_ops(mirror_onnx.read_bytes())
    assert doc["op_types"]["Conv"] == 119
    assert doc["op_types"]["Sigmoid"] == 1  # d1..d6 pruned
    assert "BatchNormalization" not in doc["op_types"]
    # No absolute paths: the tmp directory must appear nowhere.
    assert str(mirror_onnx.parent) not in text
    assert str(checkpoint_path.parent) not in text


def test_mirror_parity_is_recorded(mirror_onnx: Path) -> None:
    manifest_path = mirror_onnx.with_name(mirror_onnx.name + ".manifest.json")
    parity = json.loads(manifest_path.read_text(encoding="utf-8"))["parity"]
    assert [tuple(p["size"]) for p in parity] == [(320, 320), (288, 352), (333, 517)]
    for p in parity:
        assert 0.0 <= p["max_abs_diff"] <= 5e-4
        assert p["tolerance"] == pytest.approx(5e-4)
        if DEFAULT_IMAGES is not None:
            assert (IMAGES / p["image"]).is_file()


@pytest.mark.parametrize("size", [(320, 320), (333, 517)])
def test_mirror_runs_in_onnx_runtime(mirror_onnx: Path, size: tuple[int, int]) -> None:
    y = _ort_run(mirror_onnx, _probe_input(size))
    assert y.shape == (1, 1, *size)
    assert np.isfinite(y).all()
    assert 0.0 <= float(y.min()) <= float(y.max()) <= 1.0
    assert float(y.max()) - float(y.min()) > 0.1  # a real map, not a constant


def test_export_is_byte_identical(mirror_onnx: Path, checkpoint_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "again" / mirror_onnx.name
    export.export_mirror(checkpoint=checkpoint_path, output=out, images_dir=DEFAULT_IMAGES)
    assert out.read_bytes() == mirror_onnx.read_bytes()
    manifest = mirror_onnx.with_name(mirror_onnx.name + ".manifest.json")
    assert out.with_name(out.name + ".manifest.json").read_bytes() == manifest.read_bytes()


# --- outputs: refusal, force, failure -------------------------------------------


def test_existing_output_is_refused_untouched(checkpoint_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match=r"m\.onnx already exists.*--force"):
        export.export_mirror(checkpoint=checkpoint_path, output=out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    # The manifest is checked too, before any work.
    out.unlink()
    manifest = tmp_path / "m.onnx.manifest.json"
    manifest.write_text("{}\n")
    with pytest.raises(OutputExistsError, match=r"manifest\.json already exists"):
        export.export_mirror(checkpoint=checkpoint_path, output=out)
    assert not out.exists()


def test_no_output_writes_over_an_input_even_with_force(tmp_path: Path) -> None:
    # Refused before the checkpoint is read: these stand in for the real inputs.
    checkpoint, images = tmp_path / "u2netp.pth", tmp_path / "images"
    licence = tmp_path / "LICENSE"
    for path in (checkpoint, licence):
        path.write_bytes(b"an input")
    for output, manifest, said in (
        (checkpoint, None, f"--output {checkpoint} is --checkpoint"),
        (tmp_path / "m.onnx", checkpoint, f"the manifest {checkpoint} is --checkpoint"),
        (tmp_path / "m.onnx", licence, f"is a licence beside --checkpoint {licence}"),
        (images / "bike.jpg", None, f"--output {images / 'bike.jpg'} is in --images-dir"),
    ):
        with pytest.raises(UsageError, match=re.escape(said) + ".*: give the outputs paths apart"):
            export.export_mirror(
                checkpoint=checkpoint,
                output=output,
                manifest_out=manifest,
                images_dir=images,
                force=True,
            )
    assert checkpoint.read_bytes() == licence.read_bytes() == b"an input"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LICENSE", "u2netp.pth"]


def test_force_overwrites_both(mirror_onnx: Path, checkpoint_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    manifest = tmp_path / "custom.json"
    out.write_bytes(b"old")
    manifest.write_bytes(b"old")
    result = export.export_mirror(
        checkpoint=checkpoint_path,
        output=out,
        manifest_out=manifest,
        images_dir=DEFAULT_IMAGES,
        force=True,
    )
    assert out.read_bytes() == mirror_onnx.read_bytes()
    assert result.sha256 == sha256_file(out)
    assert result.bytes == out.stat().st_size
    assert result.manifest == manifest
    assert json.loads(manifest.read_text())["output"]["sha256"] == result.sha256
    assert result.params == 1_131_181
    assert len(result.parity) == 3
    rendered = result.render()
    assert str(out) in rendered
    assert "333x517" in rendered
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom.json", "m.onnx"]


def test_failed_parity_leaves_nothing(
    checkpoint_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mirror, "PARITY_TOLERANCE", 1e-12)
    out = tmp_path / "out" / "m.onnx"
    with pytest.raises(ParityError, match=r"320x320 .*max \|ONNX Runtime - PyTorch\| = \d"):
        export.export_mirror(checkpoint=checkpoint_path, output=out, images_dir=DEFAULT_IMAGES)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# --- CLI ------------------------------------------------------------------------


def test_cli_export_then_refuse(
    checkpoint_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    argv = ["export", "--checkpoint", str(checkpoint_path), "--output", str(out)]
    if DEFAULT_IMAGES is not None:
        argv += ["--images-dir", str(DEFAULT_IMAGES)]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "parity 320x320" in printed.out
    before = out.read_bytes()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(out) in err
    assert "--force" in err
    assert out.read_bytes() == before
