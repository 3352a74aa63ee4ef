"""The u2netp mirror export: ONNX + manifest, parity, determinism, failure modes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

from tests.conftest import IMAGES, SHARED  # noqa: E402
from vmafx_saliency._util import sha256_file  # noqa: E402
from vmafx_saliency.cli.main import main  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    CheckpointError,
    InputFileError,
    MissingDependencyError,
    OutputExistsError,
    ParityError,
    UpstreamCheckoutError,
)
from vmafx_saliency.nets import u2netp as nets_u2netp  # noqa: E402
from vmafx_saliency.supply import export  # noqa: E402

FIXTURE_LICENSE = SHARED / "fixtures" / "u2netp" / "LICENSE-U-2-Net.txt"
DEFAULT_IMAGES = IMAGES if IMAGES.exists() else None


def _ort_run(path_or_bytes: Path | bytes, x: np.ndarray) -> np.ndarray:
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x})[0])


def _probe_input(size: tuple[int, int]) -> np.ndarray:
    if IMAGES.exists():
        with Image.open(sorted(IMAGES.glob("*.jpg"))[0]) as img:
            return export.preprocess_upstream(img, size)
    return export.preprocess_upstream(export.synthetic_image(size, seed=7), size)


def _random_bn_net(seed: int = 0) -> Any:
    """A seeded U2NETP whose BatchNorms are far from identities."""
    torch.manual_seed(seed)
    net = nets_u2netp.U2NETP(3, 1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.3 + 2.0 * torch.rand(n, generator=gen))
    return net.eval()


def _write_upstream(
    root: Path, *, model_source: str | None = None, licence: str | None = None
) -> Path:
    """A stand-in U-2-Net checkout: our own U2NETP source under upstream's file names."""
    (root / "model").mkdir(parents=True)
    source = model_source
    if source is None:
        # Upstream's file starts with an unused torchvision import; keep it so the
        # stand-in exercises the same import path.
        source = (
            Path(nets_u2netp.__file__)
            .read_text(encoding="utf-8")
            .replace(
                "from __future__ import annotations\n",
                "from __future__ import annotations\n\nfrom torchvision import models\n",
            )
        )
        assert "torchvision" in source
    (root / "model" / "u2net.py").write_text(source, encoding="utf-8")
    text = licence if licence is not None else FIXTURE_LICENSE.read_text(encoding="utf-8")
    (root / "LICENSE").write_text(text, encoding="utf-8")
    return root


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


# --- BatchNorm with real statistics -------------------------------------------


def test_eval_mode_batchnorm_is_exported_faithfully() -> None:
    net = _random_bn_net(seed=3)
    model = nets_u2netp.FusedOutput(net).eval()
    data = export.export_onnx_bytes(model)
    assert "BatchNormalization" not in export.count_ops(data)  # folded into Conv
    inputs = [
        export.ParityInput("synthetic", export.preprocess_upstream(export.synthetic_image(s), s))
        for s in [(64, 96), (45, 67)]
    ]
    figures = export.parity_check(model, data, inputs, export.PARITY_TOLERANCE)
    assert [(f.height, f.width) for f in figures] == [(64, 96), (45, 67)]
    assert all(f.max_abs_diff <= export.PARITY_TOLERANCE for f in figures)
    # The statistics matter: identity BNs give a clearly different map.
    plain = _random_bn_net(seed=3)
    for m in plain.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_parameters()
            m.reset_running_stats()
    with torch.no_grad():
        x = torch.from_numpy(inputs[0].array)
        gap = (model(x) - nets_u2netp.FusedOutput(plain).eval()(x)).abs().max()
    assert float(gap) > 1e-3


# --- checkpoints ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_state(checkpoint_path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return state


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["plain", "state_dict", "module-prefix", "both"],
)
def test_checkpoint_wrappers_load_strictly(
    fixture_state: dict[str, Any], tmp_path: Path, wrap: Callable[[dict[str, Any]], Any]
) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(fixture_state), path)
    state = export.load_state_dict_file(path)
    assert list(state) == list(fixture_state)
    torch.testing.assert_close(state["outconv.weight"], fixture_state["outconv.weight"])
    net = nets_u2netp.U2NETP(3, 1)
    assert export.load_state_dict_into(net, state, strict=True) == ([], [])


def test_key_mismatch_names_first_missing_and_unexpected(fixture_state: dict[str, Any]) -> None:
    state = dict(fixture_state)
    del state["side3.bias"]
    del state["outconv.weight"]
    state["refconv.weight"] = torch.zeros(1)
    net = nets_u2netp.U2NETP(3, 1)
    pattern = (
        r"2 missing key\(s\), first 'side3\.bias'.*"
        r"1 unexpected key\(s\), first 'refconv\.weight'.*--non-strict"
    )
    with pytest.raises(CheckpointError, match=pattern):
        export.load_state_dict_into(net, state, strict=True)


def test_export_refuses_a_mismatched_checkpoint_before_exporting(
    fixture_state: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in fixture_state.items() if not k.startswith("side")}, path)
    out = tmp_path / "out" / "m.onnx"
    with pytest.raises(CheckpointError, match=r"partial\.pth.*12 missing key\(s\), first 'side1\."):
        export.export_mirror(checkpoint=path, output=out)
    assert not out.parent.exists()


def test_non_strict_loads_a_partial_dict(fixture_state: dict[str, Any]) -> None:
    partial = {k: v for k, v in fixture_state.items() if k.startswith("stage1.")}
    net = nets_u2netp.U2NETP(3, 1)
    missing, unexpected = export.load_state_dict_into(net, partial, strict=False)
    assert unexpected == []
    assert len(missing) == len(fixture_state) - len(partial)
    loaded = net.state_dict()["stage1.rebnconvin.conv_s1.weight"]
    torch.testing.assert_close(loaded, fixture_state["stage1.rebnconvin.conv_s1.weight"])


def test_wrong_shapes_are_a_checkpoint_error(fixture_state: dict[str, Any]) -> None:
    state = dict(fixture_state)
    state["outconv.weight"] = torch.zeros(1, 7, 1, 1)
    with pytest.raises(CheckpointError, match="wrong shape"):
        export.load_state_dict_into(nets_u2netp.U2NETP(3, 1), state, strict=True)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.pth not found.*--checkpoint"):
        export.export_mirror(checkpoint=tmp_path / "nope.pth", output=tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not a checkpoint at all", r"cannot read .*junk\.pth"),
        (None, r"junk\.pth holds a list"),
    ],
)
def test_unreadable_checkpoint(tmp_path: Path, payload: bytes | None, message: str) -> None:
    path = tmp_path / "junk.pth"
    if payload is None:
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        export.load_state_dict_file(path)


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    # weights_only=True must refuse arbitrary objects instead of unpickling them.
    path = tmp_path / "evil.pth"
    torch.save({"x": Path("/")}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth.*weights_only"):
        export.load_state_dict_file(path)


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
    monkeypatch.setattr(export, "PARITY_TOLERANCE", 1e-12)
    out = tmp_path / "out" / "m.onnx"
    with pytest.raises(ParityError, match=r"320x320 .*max \|ONNX Runtime - PyTorch\| = \d"):
        export.export_mirror(checkpoint=checkpoint_path, output=out, images_dir=DEFAULT_IMAGES)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# --- parity inputs and helpers --------------------------------------------------


def test_preprocess_upstream() -> None:
    white = Image.new("RGB", (40, 30), (255, 255, 255))
    x = export.preprocess_upstream(white, (16, 24))
    assert x.shape == (1, 3, 16, 24)
    assert x.dtype == np.float32
    for c, (mean, std) in enumerate(zip(export.IMAGENET_MEAN, export.IMAGENET_STD, strict=True)):
        np.testing.assert_allclose(x[0, c], (1.0 - mean) / std, rtol=1e-6)
    # Division by the image maximum: a dim image maps like a bright one.
    dim = export.preprocess_upstream(Image.new("RGB", (40, 30), (100, 100, 100)), (16, 24))
    np.testing.assert_allclose(dim, x, rtol=1e-6)
    # Grey and RGBA inputs become three channels; black does not divide by zero.
    grey = export.preprocess_upstream(Image.new("L", (8, 8), 0), (8, 8))
    assert grey.shape == (1, 3, 8, 8)
    assert np.isfinite(grey).all()
    rgba = export.preprocess_upstream(Image.new("RGBA", (8, 8), (10, 20, 30, 0)), (5, 7))
    assert rgba.shape == (1, 3, 5, 7)


def test_parity_inputs_fall_back_to_generated_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "_DEFAULT_IMAGES", tmp_path / "absent")
    inputs = export._parity_inputs(None)
    assert [i.array.shape[2:] for i in inputs] == list(export.PARITY_SIZES)
    assert all(i.image.startswith("synthetic") for i in inputs)
    again = export._parity_inputs(None)
    for a, b in zip(inputs, again, strict=True):
        np.testing.assert_allclose(a.array, b.array, rtol=0, atol=0)
    assert float(inputs[0].array.std()) > 0.1  # not a flat image
    with pytest.raises(InputFileError, match=r"no \.jpg/\.png images"):
        export._parity_inputs(tmp_path)


def test_real_parity_inputs_are_sorted_files(images_dir: Path) -> None:
    inputs = export._parity_inputs(images_dir)
    names = sorted(p.name for p in images_dir.iterdir())
    assert [i.image for i in inputs] == names[:3]


def test_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "import vmafx_saliency.supply.export as e\n"
        "from pathlib import Path\n"
        "from vmafx_saliency.errors import MissingDependencyError\n"
        "try:\n"
        "    e.export_mirror(checkpoint=Path('x.pth'), output=Path('/nonexistent/m.onnx'))\n"
        "except MissingDependencyError as exc:\n"
        "    print('MISSING', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "MISSING" in done.stdout
    assert "vmafx-saliency[export]" in done.stdout


# --- upstream checkout route ----------------------------------------------------


def test_upstream_route_gives_the_same_numbers(
    mirror_onnx: Path, checkpoint_path: Path, tmp_path: Path
) -> None:
    root = _write_upstream(tmp_path / "U-2-Net")
    saved = root / "saved_models" / "u2netp"
    saved.mkdir(parents=True)
    shutil.copyfile(checkpoint_path, saved / "u2netp.pth")
    out = tmp_path / "out" / "m.onnx"
    result = export.export_mirror(upstream_dir=root, output=out, images_dir=DEFAULT_IMAGES)
    for size in [(320, 320), (333, 517)]:
        x = _probe_input(size)
        diff = np.abs(_ort_run(out, x) - _ort_run(mirror_onnx, x)).max()
        assert float(diff) < 1e-6
    # The stand-in is our own source, so even the bytes agree.
    assert result.sha256 == sha256_file(mirror_onnx)
    doc = json.loads(result.manifest.read_text())
    up = doc["upstream"]
    assert up["checkpoint"] == {
        "path": "saved_models/u2netp/u2netp.pth",
        "sha256": sha256_file(checkpoint_path),
    }
    assert up["licence"]["sha256"] == sha256_file(root / "LICENSE")
    assert up["notice_present"] is False
    assert up["architecture"]["source"] == "upstream checkout"
    assert str(tmp_path) not in result.manifest.read_text()


def test_upstream_notice_is_recorded(tmp_path: Path) -> None:
    root = _write_upstream(tmp_path / "U-2-Net")
    assert export.audit_upstream_checkout(root).notice_present is False
    (root / "NOTICE").write_text("U-2-Net\n")
    checkout = export.audit_upstream_checkout(root)
    assert checkout.notice_present is True
    assert checkout.license_file == root / "LICENSE"


def test_upstream_licence_must_be_apache(tmp_path: Path) -> None:
    root = _write_upstream(tmp_path / "U-2-Net", licence="MIT License\n\nPermission is hereby...\n")
    with pytest.raises(UpstreamCheckoutError, match=r"LICENSE is not the Apache License 2\.0"):
        export.export_mirror(upstream_dir=root, output=tmp_path / "m.onnx")
    (root / "LICENSE").unlink()
    with pytest.raises(UpstreamCheckoutError, match="has no LICENSE"):
        export.export_mirror(upstream_dir=root, output=tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_upstream_model_file_must_exist(tmp_path: Path) -> None:
    root = _write_upstream(tmp_path / "U-2-Net")
    (root / "model" / "u2net.py").unlink()
    with pytest.raises(UpstreamCheckoutError, match=r"has no model/u2net\.py"):
        export.export_mirror(upstream_dir=root, output=tmp_path / "m.onnx")
    with pytest.raises(UpstreamCheckoutError, match="not a directory"):
        export.export_mirror(upstream_dir=tmp_path / "absent", output=tmp_path / "m.onnx")


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ("import torch\nclass Other(torch.nn.Module):\n    pass\n", UpstreamCheckoutError, "no"),
        ("import vmafx_no_such_module\n", MissingDependencyError, "vmafx_no_such_module"),
        ("def broken(:\n", UpstreamCheckoutError, "failed to import"),
    ],
    ids=["no-class", "missing-import", "syntax-error"],
)
def test_upstream_model_file_must_define_u2netp(
    tmp_path: Path, source: str, error: type[Exception], message: str
) -> None:
    root = _write_upstream(tmp_path / "U-2-Net", model_source=source)
    with pytest.raises(error, match=message):
        export.load_upstream_class(export.audit_upstream_checkout(root))
    assert "vmafx_no_such_module" not in sys.modules


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


def test_a_model_that_cannot_take_the_size_fails_parity_in_one_line() -> None:
    """An older upstream u2net.py upsamples by a fixed 2: odd sizes break its skip joins."""
    import torch
    import torch.nn.functional as F

    from tests._onnx_models import conv_sigmoid_model

    class FixedFactorUpsample(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            coarse = F.max_pool2d(x, 2, ceil_mode=True)
            up = F.interpolate(coarse, scale_factor=2.0, mode="bilinear")
            return torch.sigmoid(torch.cat([x, up], 1).mean(1, keepdim=True))

    odd = export.ParityInput("odd.png", np.zeros((1, 3, 33, 35), np.float32))
    with pytest.raises(
        ParityError,
        match=r"parity check at 33x35 \(odd\.png\): PyTorch cannot run the model at this size "
        r"\(.*\): the model code does not take any input size; with --upstream-dir, use a "
        r"current U-2-Net checkout",
    ):
        export.parity_check(FixedFactorUpsample(), conv_sigmoid_model(), [odd], 1e-4)


def test_a_model_failing_for_another_reason_gets_no_checkout_advice() -> None:
    import torch

    from tests._onnx_models import conv_sigmoid_model

    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("weights are corrupt")

    probe = export.ParityInput("p.png", np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ParityError, match=r"\(weights are corrupt\): check the checkpoint") as err:
        export.parity_check(Broken(), conv_sigmoid_model(), [probe], 1e-4)
    assert "U-2-Net checkout" not in str(err.value)
