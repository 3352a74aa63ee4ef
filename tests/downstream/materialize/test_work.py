"""The per-clip work: pooling the extractor's features, a model that goes NaN."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests._materialize import MAX_FRAMES, _options, _read_jsonl, _write_jsonl, _write_model
from tests._onnx_models import conv_sigmoid_model, refused_on_bright_model
from vmafx_saliency.downstream import materialize as mz
from vmafx_saliency.downstream.materialize import work
from vmafx_saliency.video.job import ModelChoice


def _nan_on_bright_model() -> bytes:
    """Passes the loader's probe (N(0, 1) noise) but gives NaN on bright, smooth frames.

    s = the sum over a 3x3x3 window: about 60 in a bright area of a real frame
    (divided by its max, ImageNet-normalised), below 40 for the probe's noise.
    Relu(1e30 (s - 40)) times 1e10 overflows to inf where s > 40, and
    inf + (-inf) is NaN; elsewhere the map is Sigmoid(0) = 0.5.
    """
    f = TensorProto.FLOAT
    weights = {
        "w1": np.full((1, 3, 3, 3), 1e30, np.float32),
        "b1": np.array([-40e30], np.float32),
        "w2": np.full((1, 1, 1, 1), 1e10, np.float32),
        "w3": np.full((1, 1, 1, 1), -1.0, np.float32),
        "b0": np.zeros(1, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["s"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b0"], ["big"]),
        helper.make_node("Conv", ["big", "w3", "b0"], ["neg"]),
        helper.make_node("Add", ["big", "neg"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["saliency_map"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nan_on_bright",
        [helper.make_tensor_value_info("input", f, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("saliency_map", f, [1, 1, "h", "w"])],
        initializer=[numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def test_aggregate() -> None:
    assert mz.aggregate([1.0, 2.0, 4.0], "mean", alpha=0.5) == pytest.approx(7 / 3)
    assert mz.aggregate([1.0, 2.0, 4.0], "max", alpha=0.5) == 4.0
    assert mz.aggregate([1.0, 2.0, 4.0], "ema", alpha=0.5) == 2.75  # ((1+2)/2 + 4) / 2
    assert mz.aggregate([3.0], "ema", alpha=0.1) == 3.0


def test_values_are_the_extractor_pooled(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path
) -> None:
    """mean / ema / max of the extractor's per-frame features over the first N frames."""
    from vmafx_saliency.video.extract import extract
    from vmafx_saliency.video.frames import open_video, select_frames
    from vmafx_saliency.video.job import load_model

    loaded, pre = load_model(tiny, threads=1)
    with open_video(videos_dir / "carphone_pristine.mp4") as source:
        direct = extract(
            select_frames(source, end=MAX_FRAMES),
            loaded,
            pre=pre,
            color_range=source.info.color_range,
        ).features
    means = [f.saliency_mean for f in direct]
    assert len(means) == MAX_FRAMES
    table = _write_jsonl(tmp_path / "one.jsonl", [{"src": "carphone_pristine.mp4"}])
    alpha = 0.5
    expected = {
        "mean": math.fsum(means) / len(means),
        "max": max(means),
        "ema": means[0],
    }
    for value in means[1:]:
        expected["ema"] = alpha * value + (1 - alpha) * expected["ema"]
    for how, want in expected.items():
        out = tmp_path / f"{how}.jsonl"
        extra = {"ema_alpha": alpha} if how == "ema" else {}
        mz.materialize(table, out, _options(tiny, videos_dir, aggregator=how, **extra))
        assert _read_jsonl(out)[0]["saliency_mean"] == pytest.approx(want, abs=1e-12)
    assert len(set(expected.values())) == 3  # the three aggregators really differ here


def test_nan_model_gives_model_failed(tmp_path: Path, videos_dir: Path) -> None:
    """A model that passes the loader's probe but goes NaN on real, bright frames."""
    model = ModelChoice(model_path=_write_model(tmp_path, "nan_v1", _nan_on_bright_model()))
    black = tmp_path / "black_32x32.yuv"  # a black frame stays black: no NaN there
    black.write_bytes(bytes([16] * 32 * 32 + [128] * 2 * 16 * 16) * 2)
    rows: list[dict[str, Any]] = [
        {"src": "carphone_pristine.mp4"},
        {"src": str(black), "width": 32, "height": 32},
        {"src": "akiyo_cif.mp4"},
    ]
    table = _write_jsonl(tmp_path / "t.jsonl", rows)
    summary = mz.materialize(table, tmp_path / "o.jsonl", _options(model, videos_dir))
    after = _read_jsonl(tmp_path / "o.jsonl")
    assert [r["saliency_status"] for r in after] == ["model-failed", "ok", "model-failed"]
    assert after[1]["saliency_mean"] == pytest.approx(0.5)
    assert "the model produced NaN or infinite values" in summary.render()


def test_a_model_onnx_runtime_refuses_gives_model_failed_without_cli_advice(
    tmp_path: Path, videos_dir: Path
) -> None:
    path = _write_model(tmp_path, "refused_v1", refused_on_bright_model(kernel=3))
    black = tmp_path / "black_32x32.yuv"  # a black frame indexes the table within bounds
    black.write_bytes(bytes([16] * 32 * 32 + [128] * 2 * 16 * 16) * 2)
    rows: list[dict[str, Any]] = [
        {"src": "carphone_pristine.mp4"},
        {"src": str(black), "width": 32, "height": 32},
    ]
    table = _write_jsonl(tmp_path / "t.jsonl", rows)
    options = _options(ModelChoice(model_path=path), videos_dir)
    summary = mz.materialize(table, tmp_path / "o.jsonl", options)
    failed, fine = _read_jsonl(tmp_path / "o.jsonl")
    assert (failed["saliency_status"], fine["saliency_status"]) == ("model-failed", "ok")
    # One account of the failure, with advice this command can follow (no --infer-size).
    (failure,) = summary.failures
    message = str(failure.message)
    assert message.startswith(f"{videos_dir / 'carphone_pristine.mp4'}: frame 0: model ")
    assert "failed at 176x144 (" in message and message.endswith("): try another model")
    assert message.count("failed") == 1 and "--infer-size" not in message


def test_a_row_naming_a_pipe_or_a_folder_fails_alone_without_blocking(
    tmp_path: Path, videos_dir: Path
) -> None:
    # The review's row: a FIFO no one writes to blocked the run for ever.
    fifo = tmp_path / "live.y4m"
    os.mkfifo(fifo)
    model = ModelChoice(model_path=_write_model(tmp_path / "m", "tiny_v1", conv_sigmoid_model()))
    rows: list[dict[str, Any]] = [
        {"src": str(fifo)},
        {"src": str(tmp_path)},
        {"src": "akiyo_cif.mp4"},
    ]
    table = _write_jsonl(tmp_path / "t.jsonl", rows)
    summary = mz.materialize(table, tmp_path / "o.jsonl", _options(model, videos_dir))
    after = _read_jsonl(tmp_path / "o.jsonl")
    assert [r["saliency_status"] for r in after] == ["decode-failed", "decode-failed", "ok"]
    assert f"{fifo}: not a regular file (a folder, a pipe or a device)" in summary.render()


def test_a_pool_worker_ends_quietly_on_ctrl_c_unless_the_driver_ignores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C reaches every worker; under nohup or `cmd &` it stays ignored, as the driver's."""
    monkeypatch.setattr(work, "ClipWorker", lambda settings: settings)  # no model needed
    saved = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        work._init_pool_worker(None)  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        work._init_pool_worker(None)  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGINT) is work._end_quietly
    finally:
        signal.signal(signal.SIGINT, saved)
