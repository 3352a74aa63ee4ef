"""The mobilesal extractor: pre-processing, the pipeline, features, and whole jobs.

Most tests use the tiny contract-meeting model from ``tests/_onnx_models.py``
at a small inference size, so they run on the real clips in
``../shared/data/videos`` (and on synthetic raw YUV / Y4M written here) in a
fraction of a second each. One test runs the real u2netp mirror on a few
frames to show that real content gives sensible saliency.

Tolerances, stated once:

* ``SAME``: the same luma through two containers or two bit depths gives the
  same model input bit for bit (limited-range 10-bit maps to the same float32
  values: (4v - 64) / 876 and (v - 16) / 219 are the same correctly rounded
  quotient), so the features agree to float64 round-off; 1e-6 is the stated
  bound, 0.0 is what is observed.
* ``PRINTED``: a value printed with ``%.6f`` is within half a sixth decimal.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import threading
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest

from tests._jobs import (
    TINY_SIZE,
    assert_nothing_written,
    broken_foreman,
    white_on_frame_3,
    write_tiny,
)
from tests._onnx_models import nan_on_bright_model
from tests._trust import MIRROR_SIDECAR
from tests._video import CANONICAL, Y4M_TAG_FOR, vmaf_file, write_raw, write_y4m
from vmafx_saliency.errors import (
    ExtractionError,
    OutputError,
    OutputExistsError,
    UsageError,
    VideoError,
)
from vmafx_saliency.supply.registry import Preprocessing
from vmafx_saliency.video.extract import (
    ExtractionResult,
    InferencePlan,
    JobResult,
    ModelChoice,
    Outputs,
    VideoInput,
    extract,
    inferred,
    load_for_video,
    load_model,
    luma_to_unit,
    parse_infer_size,
    pipelined,
    preprocess,
    resolve_size,
    run_job,
)
from vmafx_saliency.video.frames import PIXEL_FORMATS, Frame

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel

SAME = 1e-6
PRINTED = 5e-7 + 1e-12
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIPS = {  # name: (frames, width, height)
    "foreman_cif.mp4": (300, 352, 288),
    "akiyo_cif.mp4": (300, 352, 288),
    "carphone_pristine.mp4": (120, 176, 144),
    "carphone_distorted.mp4": (120, 176, 144),
}
CISCO = {  # raw I420: name -> (width, height, frames)
    "CiscoVT2people_320x192_12fps.yuv": (320, 192, 9),
    "CiscoVT2people_160x96_6fps.yuv": (160, 96, 5),
}


def _pre(**changes: Any) -> Preprocessing:
    base: dict[str, Any] = {
        "colour_mode": "luma_tile",
        "inference_size": None,
        "scaling": "divide_by_max",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "luma_range": "auto",
    }
    base.update(changes)
    return Preprocessing(**base)


@pytest.fixture
def tiny(tmp_path: Path) -> ModelChoice:
    model, sidecar = write_tiny(tmp_path / "model")
    return ModelChoice(model_path=model, sidecar=sidecar)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty folder for outputs: after a failure it must still be empty."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def means(job: JobResult | ExtractionResult) -> dict[int, float]:
    if isinstance(job, JobResult):
        return {r.frame_num: float(r.metrics["saliency_mean"]) for r in job.records}
    return {f.frame_num: f.saliency_mean for f in job.features}


def max_diff(a: dict[int, float], b: dict[int, float]) -> float:
    assert list(a) == list(b)
    return max(abs(a[k] - b[k]) for k in a)


def quiet_job(video: VideoInput, model: ModelChoice, **kwargs: Any) -> JobResult:
    """run_job writing nothing (output=None) unless told otherwise."""
    outputs = kwargs.pop("outputs", Outputs(output=None))
    return run_job(video, model, outputs, threads=1, **kwargs)


# --- luma_to_unit and preprocess, against hand-computed values -----------------------------


def test_luma_to_unit_limited_8bit() -> None:
    luma = np.array([[0, 16, 125, 235, 255]], np.uint8)
    got = luma_to_unit(luma, bit_depth=8, limited=True)
    assert got.dtype == np.float32
    # 16 -> 0, 235 -> 1, (125 - 16) / 219 in between; outside 16..235 clips.
    np.testing.assert_allclose(got, [[0.0, 0.0, 109 / 219, 1.0, 1.0]], rtol=0, atol=1e-7)


def test_luma_to_unit_full_8bit() -> None:
    luma = np.array([[0, 51, 204, 255]], np.uint8)
    got = luma_to_unit(luma, bit_depth=8, limited=False)
    np.testing.assert_allclose(got, [[0.0, 0.2, 0.8, 1.0]], rtol=0, atol=1e-7)


def test_luma_to_unit_10bit() -> None:
    luma = np.array([[0, 64, 502, 940, 1023]], np.uint16)
    limited = luma_to_unit(luma, bit_depth=10, limited=True)
    # 64 -> 0, 940 -> 1, (502 - 64) / 876 = 0.5.
    np.testing.assert_allclose(limited, [[0.0, 0.0, 0.5, 1.0, 1.0]], rtol=0, atol=1e-7)
    full = luma_to_unit(luma, bit_depth=10, limited=False)
    np.testing.assert_allclose(full, [[0.0, 64 / 1023, 502 / 1023, 940 / 1023, 1.0]], atol=1e-7)


def test_limited_10bit_is_the_8bit_value_shifted_left_by_two() -> None:
    luma8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    luma10 = luma8.astype(np.uint16) << 2
    a = luma_to_unit(luma8, bit_depth=8, limited=True)
    b = luma_to_unit(luma10, bit_depth=10, limited=True)
    np.testing.assert_allclose(a, b, rtol=0, atol=SAME)


def _expected_tensor(unit: list[list[float]]) -> np.ndarray:
    """Hand pipeline: (x - mean_c) / std_c for each channel, tiled, [1, 3, H, W]."""
    plane = np.asarray(unit, np.float64)
    channels = [(plane - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    return np.stack(channels)[None]


def test_preprocess_limited_divide_by_max_and_tiling() -> None:
    # Limited range: 16 -> 0, 60 -> 44/219, 126 -> 110/219, 71 -> 55/219.
    # Divided by the maximum 110/219: 0, 0.4, 1.0 and 0.5.
    luma = np.array([[16, 60, 126], [16, 71, 16]], np.uint8)
    tensor = preprocess(luma, bit_depth=8, color_range=None, pre=_pre(), size=(2, 3))
    assert tensor.shape == (1, 3, 2, 3)
    assert tensor.dtype == np.float32
    assert tensor.flags["C_CONTIGUOUS"]
    want = _expected_tensor([[0.0, 0.4, 1.0], [0.0, 0.5, 0.0]])
    np.testing.assert_allclose(tensor, want, rtol=0, atol=1e-6)
    # Channel 0 at 0.4, worked out by hand: (0.4 - 0.485) / 0.229.
    assert float(tensor[0, 0, 0, 1]) == pytest.approx(-0.37117904, abs=1e-6)
    # The three channels are the same plane, each with its own mean/std.
    for c in range(3):
        restored = tensor[0, c] * IMAGENET_STD[c] + IMAGENET_MEAN[c]
        np.testing.assert_allclose(restored, [[0.0, 0.4, 1.0], [0.0, 0.5, 0.0]], atol=1e-6)


def test_preprocess_auto_range_follows_the_stream() -> None:
    luma = np.array([[0, 51, 102]], np.uint8)
    unit_range = _pre(scaling="unit_range")
    full = preprocess(luma, bit_depth=8, color_range="full", pre=unit_range, size=(1, 3))
    np.testing.assert_allclose(full, _expected_tensor([[0.0, 0.2, 0.4]]), atol=1e-6)
    # color_range None (unknown) is limited, as in video: 0 and 16 -> 0, 51 -> 35/219.
    unknown = preprocess(luma, bit_depth=8, color_range=None, pre=unit_range, size=(1, 3))
    np.testing.assert_allclose(unknown, _expected_tensor([[0.0, 35 / 219, 86 / 219]]), atol=1e-6)
    limited = preprocess(luma, bit_depth=8, color_range="limited", pre=unit_range, size=(1, 3))
    np.testing.assert_allclose(limited, unknown, rtol=0, atol=0)


def test_preprocess_explicit_luma_range_overrides_the_stream() -> None:
    luma = np.array([[0, 51, 102]], np.uint8)
    as_full = _pre(scaling="unit_range", luma_range="full")
    got = preprocess(luma, bit_depth=8, color_range=None, pre=as_full, size=(1, 3))
    np.testing.assert_allclose(got, _expected_tensor([[0.0, 0.2, 0.4]]), atol=1e-6)
    as_limited = _pre(scaling="unit_range", luma_range="limited")
    got = preprocess(luma, bit_depth=8, color_range="full", pre=as_limited, size=(1, 3))
    np.testing.assert_allclose(got, _expected_tensor([[0.0, 35 / 219, 86 / 219]]), atol=1e-6)


def test_preprocess_10bit_limited() -> None:
    luma = np.array([[64, 502], [940, 283]], np.uint16)  # 283 -> 219/876 = 0.25
    got = preprocess(
        luma, bit_depth=10, color_range="limited", pre=_pre(scaling="unit_range"), size=(2, 2)
    )
    np.testing.assert_allclose(got, _expected_tensor([[0.0, 0.5], [1.0, 0.25]]), atol=1e-6)


def test_preprocess_black_frame_stays_black_under_divide_by_max() -> None:
    luma = np.full((4, 5), 16, np.uint8)  # limited-range black: 0 everywhere, max 0
    got = preprocess(luma, bit_depth=8, color_range=None, pre=_pre(), size=(4, 5))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _expected_tensor(np.zeros((4, 5)).tolist()), atol=1e-6)


def test_preprocess_resizes_before_dividing_by_the_max() -> None:
    luma = np.zeros((32, 48), np.uint8) + 16
    luma[::2, ::2] = 235  # a fine pattern: resizing averages its peaks away
    got = preprocess(luma, bit_depth=8, color_range=None, pre=_pre(), size=(8, 12))
    assert got.shape == (1, 3, 8, 12)
    restored = got[0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    # After the resize the maximum is below 1; dividing by it brings it back to 1.
    assert float(restored.max()) == pytest.approx(1.0, abs=1e-6)


def test_preprocess_refuses_rgb_colour_mode() -> None:
    luma = np.zeros((2, 2), np.uint8)
    with pytest.raises(UsageError, match=r"colour mode 'rgb' needs RGB input.*luma_tile"):
        preprocess(luma, bit_depth=8, color_range=None, pre=_pre(colour_mode="rgb"), size=(2, 2))


@pytest.mark.parametrize(
    ("text", "want"), [("native", "native"), ("64x48", (48, 64)), ("320X320", (320, 320))]
)
def test_parse_infer_size(text: str, want: object) -> None:
    assert parse_infer_size(text) == want


@pytest.mark.parametrize("text", ["", "64", "64x", "x48", "0x48", "-64x48", "64x48x3", "big"])
def test_parse_infer_size_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="give 'native' or WIDTHxHEIGHT"):
        parse_infer_size(text)


@pytest.mark.parametrize("text", ["1x1", "31x48", "64x16"])
def test_parse_infer_size_refuses_a_side_under_32(text: str) -> None:
    with pytest.raises(UsageError, match=rf"--infer-size '{text}': give at least 32 pixels a side"):
        parse_infer_size(text)
    assert parse_infer_size("32x32") == (32, 32)


def test_resolve_size() -> None:
    sized = _pre(inference_size=(320, 320))
    assert resolve_size(sized, None, (288, 352)) == (320, 320)
    assert resolve_size(sized, "native", (288, 352)) == (288, 352)
    assert resolve_size(sized, (48, 64), (288, 352)) == (48, 64)
    assert resolve_size(_pre(inference_size=None), None, (288, 352)) == (288, 352)


# --- the pipeline ---------------------------------------------------------------------------


def _frames(count: int | None, *, counter: list[int] | None = None) -> Iterator[Frame]:
    """Tiny frames 0, 1, ... (endless when ``count`` is None); ``counter[0]`` counts them."""
    index = 0
    while count is None or index < count:
        if counter is not None:
            counter[0] += 1
        yield Frame(index=index, luma=np.full((2, 2), index % 256, np.uint8), bit_depth=8)
        index += 1


def _identity_work(frame: Frame) -> tuple[int, np.ndarray]:
    return frame.index, frame.luma


def _run_with_timeout(target: Callable[[], None], seconds: float = 10.0) -> None:
    """Run ``target`` in a thread; fail (instead of hanging the suite) if it does not end."""
    errors: list[BaseException] = []

    def call() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: the pipeline hangs"
    if errors:
        raise errors[0]


def _pipeline_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.current_thread()}


def test_pipelined_preserves_order() -> None:
    rng = np.random.default_rng(3)
    delays = rng.uniform(0, 0.002, 60)

    def work(frame: Frame) -> tuple[int, np.ndarray]:
        time.sleep(float(delays[frame.index]))  # uneven work must not reorder anything
        return frame.index, frame.luma * 2

    got = list(pipelined(_frames(60), work, depth=3))
    assert [i for i, _ in got] == list(range(60))
    for i, array in got:
        np.testing.assert_array_equal(array, np.full((2, 2), (i % 256) * 2))


def test_pipelined_reraises_the_workers_exception() -> None:
    def work(frame: Frame) -> tuple[int, np.ndarray]:
        if frame.index == 3:
            raise ValueError("cannot pre-process frame 3")
        return frame.index, frame.luma

    before = _pipeline_threads()
    received: list[int] = []

    def consume() -> None:
        with pytest.raises(ValueError, match="cannot pre-process frame 3"):
            for index, _ in pipelined(_frames(10), work, depth=2):
                received.append(index)

    _run_with_timeout(consume)
    assert received == [0, 1, 2]  # everything before the failure, in order
    assert not _pipeline_threads() - before  # the worker ended


def test_pipelined_reraises_a_decoding_error() -> None:
    def failing() -> Iterator[Frame]:
        yield from _frames(2)
        raise VideoError("clip.mp4: decoding failed at frame 2 (2 frames decoded before it)")

    received: list[int] = []

    def consume() -> None:
        with pytest.raises(VideoError, match="decoding failed at frame 2"):
            for index, _ in pipelined(failing(), _identity_work):
                received.append(index)

    _run_with_timeout(consume)
    assert received == [0, 1]


def test_pipelined_stops_the_worker_when_the_consumer_stops_early() -> None:
    produced = [0]
    before = _pipeline_threads()
    stream = pipelined(_frames(None, counter=produced), _identity_work, depth=2)
    assert [next(stream)[0] for _ in range(3)] == [0, 1, 2]
    worker = _pipeline_threads() - before
    assert len(worker) == 1
    _run_with_timeout(stream.close)  # GeneratorExit: stop and join the worker
    assert not any(t.is_alive() for t in worker)
    count = produced[0]
    time.sleep(0.05)
    assert produced[0] == count  # an endless source is no longer read
    assert count <= 3 + 2 + 2


def test_pipelined_break_out_of_a_for_loop_does_not_hang() -> None:
    before = _pipeline_threads()

    def consume() -> None:
        for index, _ in pipelined(_frames(None), _identity_work, depth=2):
            if index == 5:
                break  # the generator is dropped (and closed) right here

    _run_with_timeout(consume)
    assert not _pipeline_threads() - before


@pytest.mark.parametrize("depth", [1, 4])
def test_pipelined_holds_at_most_depth_plus_two_frames_ahead(depth: int) -> None:
    produced = [0]
    ahead: list[int] = []
    consumed = 0
    for _ in pipelined(_frames(30, counter=produced), _identity_work, depth=depth):
        consumed += 1
        time.sleep(0.01)  # a slow consumer: the worker runs as far ahead as it may
        ahead.append(produced[0] - consumed)
    assert consumed == 30
    assert max(ahead) <= depth + 2, ahead
    # ... and it does run ahead: decoding overlaps inference.
    assert max(ahead) >= depth, ahead


# --- extract() with a fake model: features, NaN and range checks --------------------------


@dataclass
class FakeSession:
    """Stands in for an ONNX Runtime session: ``make(call, input)`` gives the map."""

    make: Callable[[int, np.ndarray], np.ndarray]
    inputs: list[np.ndarray] = field(default_factory=list)

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        assert names == ["saliency_map"]
        tensor = feeds["input"]
        self.inputs.append(tensor)
        return [self.make(len(self.inputs) - 1, tensor).astype(np.float32)]


@dataclass
class FakeModel:
    session: FakeSession


def _fake(make: Callable[[int, np.ndarray], np.ndarray]) -> tuple[LoadedModel, FakeSession]:
    session = FakeSession(make)
    return cast("LoadedModel", FakeModel(session)), session


def _pattern_frames(count: int, height: int = 12, width: int = 16) -> list[Frame]:
    rng = np.random.default_rng(5)
    return [
        Frame(index=i, luma=rng.integers(16, 236, (height, width), dtype=np.uint8), bit_depth=8)
        for i in range(count)
    ]


def _ramp_map(call: int, tensor: np.ndarray) -> np.ndarray:
    """A map in [0, 1] that depends on the input: a rescaled channel 0."""
    plane = tensor[:, :1].astype(np.float64)
    out: np.ndarray = (plane - plane.min()) / (plane.max() - plane.min() + 1e-6)
    return out


def test_extract_reduces_each_map_to_its_plain_mean_and_variance() -> None:
    frames = _pattern_frames(5)
    model, session = _fake(_ramp_map)
    maps: list[tuple[int, np.ndarray]] = []
    result = extract(
        frames,
        model,
        pre=_pre(),
        color_range=None,
        infer_size=(6, 8),
        on_map=lambda n, m: maps.append((n, m.copy())),
    )
    assert [f.frame_num for f in result.features] == [0, 1, 2, 3, 4]
    assert (result.infer_size, result.frame_size) == ((6, 8), (12, 16))
    assert result.seconds > 0
    for frame, feature, tensor, (num, saliency) in zip(
        frames, result.features, session.inputs, maps, strict=True
    ):
        # The model saw exactly what preprocess makes of the frame ...
        want = preprocess(frame.luma, bit_depth=8, color_range=None, pre=_pre(), size=(6, 8))
        np.testing.assert_array_equal(tensor, want)
        # ... and the features are the raw map's plain mean and variance (no min-max).
        raw = _ramp_map(0, tensor).astype(np.float32)[0, 0].astype(np.float64)
        assert num == frame.index
        np.testing.assert_array_equal(saliency, raw.astype(np.float32))
        assert feature.saliency_mean == pytest.approx(float(raw.mean()), abs=1e-9)
        assert feature.saliency_var == pytest.approx(float(raw.var()), abs=1e-9)
        assert feature.metrics() == {
            "saliency_mean": feature.saliency_mean,
            "saliency_var": feature.saliency_var,
        }


def test_extract_keeps_source_frame_numbers() -> None:
    frames = [f for f in _pattern_frames(9) if f.index % 4 == 1]
    model, _ = _fake(lambda call, t: np.full((1, 1, *t.shape[2:]), 0.25))
    result = extract(frames, model, pre=_pre(), color_range=None)
    assert [f.frame_num for f in result.features] == [1, 5]
    assert [f.saliency_mean for f in result.features] == pytest.approx([0.25, 0.25], abs=1e-9)
    assert result.infer_size == result.frame_size == (12, 16)  # sidecar says native


def _bad_on_call(call_index: int, value: float) -> Callable[[int, np.ndarray], np.ndarray]:
    def make(call: int, tensor: np.ndarray) -> np.ndarray:
        out = np.full((1, 1, *tensor.shape[2:]), 0.5)
        if call == call_index:
            out[0, 0, 1, 2] = value
        return out

    return make


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, r"frame 3: the model produced NaN or infinite values"),
        (math.inf, r"frame 3: the model produced NaN or infinite values"),
        (1.5, r"frame 3: saliency_map values in \[0\.5, 1\.5\] are outside \[0, 1\]"),
        (-0.01, r"frame 3: saliency_map values in \[-0\.01, 0\.5\] are outside \[0, 1\]"),
    ],
)
def test_extract_refuses_a_broken_map_naming_the_frame(value: float, message: str) -> None:
    model, session = _fake(_bad_on_call(3, value))
    with pytest.raises(ExtractionError, match=message):
        extract(_pattern_frames(6), model, pre=_pre(), color_range=None)
    assert len(session.inputs) == 4  # it stopped at the broken frame


def test_extract_names_the_source_frame_not_the_call() -> None:
    frames = [f for f in _pattern_frames(10) if f.index % 3 == 0]  # 0, 3, 6, 9
    model, _ = _fake(_bad_on_call(2, math.nan))  # the third frame run is frame 6
    with pytest.raises(ExtractionError, match="frame 6: the model produced NaN"):
        extract(frames, model, pre=_pre(), color_range=None)


def test_extract_accepts_sigmoid_rounding_at_the_ends() -> None:
    model, _ = _fake(_bad_on_call(0, 1.0 + 5e-6))
    result = extract(_pattern_frames(2), model, pre=_pre(), color_range=None)
    assert len(result.features) == 2


def test_extract_with_no_frames() -> None:
    model, session = _fake(_ramp_map)
    with pytest.raises(ExtractionError, match="no frames were selected: check --frames"):
        extract([], model, pre=_pre(), color_range=None)
    assert session.inputs == []


# --- frames inferred in parallel (jobs > 1) ----------------------------------------------


class SlowSession:
    """A thread-safe fake session: the map is the input's channel 0 rescaled, after a
    delay that varies by input, so parallel runs finish out of order."""

    def __init__(self, *, fail_on: float | None = None, nan_on: float | None = None) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0
        self.fail_on = fail_on
        self.nan_on = nan_on

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        tensor = feeds["input"]
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.calls += 1
        try:
            # 1-9 ms, from the content: later frames often finish first.
            time.sleep(0.001 * (1 + int(abs(float(tensor[0, 0, 0, 0])) * 1000) % 9))
            if self.fail_on is not None and abs(float(tensor[0, 0, 0, 0]) - self.fail_on) < 1e-6:
                raise RuntimeError(f"boom on input {self.fail_on}")
            out = _ramp_map(0, tensor).astype(np.float32)
            if self.nan_on is not None and abs(float(tensor[0, 0, 0, 0]) - self.nan_on) < 1e-6:
                out[0, 0, 1, 1] = np.nan
            return [out]
        finally:
            with self.lock:
                self.running -= 1


def _numbered(count: int) -> Iterator[tuple[int, np.ndarray]]:
    rng = np.random.default_rng(11)
    for i in range(count):
        tensor = rng.random((1, 3, 4, 5), dtype=np.float32)
        tensor[0, 0, 0, 0] = i / 100  # names the input, for SlowSession.fail_on
        yield i, tensor


def _slow_extract(frames: list[Frame], jobs: int) -> tuple[ExtractionResult, list[int], int]:
    session = SlowSession()
    seen: list[int] = []
    model = cast("LoadedModel", FakeModel(cast("FakeSession", session)))
    result = extract(
        frames, model, pre=_pre(), color_range=None, on_map=lambda f, _m: seen.append(f), jobs=jobs
    )
    return result, seen, session.most


@pytest.mark.parametrize("jobs", [2, 3])
def test_parallel_extract_matches_one_frame_at_a_time(jobs: int) -> None:
    frames = _pattern_frames(24)
    one, _, most_one = _slow_extract(frames, 1)
    many, seen, most = _slow_extract(frames, jobs)
    assert seen == list(range(24))  # on_map sees frame order whatever finishes first
    assert (most_one, most) == (1, jobs)  # exactly `jobs` runs overlapped, never more
    assert [f.frame_num for f in many.features] == list(range(24))
    for a, b in zip(one.features, many.features, strict=True):
        assert b.saliency_mean == pytest.approx(a.saliency_mean, abs=1e-12)
        assert b.saliency_var == pytest.approx(a.saliency_var, abs=1e-12)


def test_inferred_reads_at_most_two_batches_ahead() -> None:
    session = SlowSession()
    read = []

    def source() -> Iterator[tuple[int, np.ndarray]]:
        for item in _numbered(40):
            read.append(item[0])
            yield item

    ahead = [len(read) - (num + 1) for num, _ in inferred(session, source(), jobs=2)]
    assert max(ahead) <= 4  # 2 * jobs inputs wait beyond the one being yielded
    assert max(ahead) >= 2  # and the workers were kept fed


def test_inferred_raises_a_run_error_in_frame_order() -> None:
    session = SlowSession(fail_on=0.05)
    got = []
    with pytest.raises(RuntimeError, match=r"boom on input 0\.05"):
        for num, _ in inferred(session, _numbered(30), jobs=3):
            got.append(num)
    assert got == [0, 1, 2, 3, 4]  # every frame before the failing one, none after


def test_parallel_extract_names_the_broken_frame() -> None:
    frames = _pattern_frames(8)
    tensors = [
        preprocess(f.luma, bit_depth=8, color_range=None, pre=_pre(), size=(12, 16)) for f in frames
    ]
    session = SlowSession(nan_on=float(tensors[3][0, 0, 0, 0]))
    model = cast("LoadedModel", FakeModel(cast("FakeSession", session)))
    with pytest.raises(ExtractionError, match="frame 3: the model produced NaN"):
        extract(frames, model, pre=_pre(), color_range=None, jobs=2)


def test_inferred_closed_early_waits_for_the_runs_in_flight() -> None:
    session = SlowSession()
    stream = inferred(session, _numbered(1000), jobs=2)
    next(stream)
    stream.close()
    assert session.running == 0  # nothing still running on the session
    assert session.calls <= 6  # and nothing more was started


def test_a_small_model_runs_frames_side_by_side_a_large_one_uses_intra_op_threads() -> None:
    assert InferencePlan.for_model(736_882, 4) == InferencePlan(frames=4, threads_per_frame=1)
    assert InferencePlan.for_model(4_654_809, 4) == InferencePlan(frames=1, threads_per_frame=4)
    assert InferencePlan.for_model(4_654_809, 1) == InferencePlan(frames=1, threads_per_frame=1)
    with pytest.raises(UsageError, match="--threads 0: give a whole number >= 1"):
        InferencePlan.for_model(736_882, 0)


def test_load_for_video_plans_by_the_model_file(tiny: ModelChoice) -> None:
    loaded, _pre, plan = load_for_video(tiny, threads=3)
    assert plan == InferencePlan(frames=3, threads_per_frame=1)  # the tiny model is small
    assert loaded.session.get_session_options().intra_op_num_threads == 1


def test_extract_refuses_zero_jobs() -> None:
    model, session = _fake(_ramp_map)
    with pytest.raises(UsageError, match="--threads 0: give a whole number >= 1"):
        extract(_pattern_frames(2), model, pre=_pre(), color_range=None, jobs=0)
    assert session.inputs == []


# --- whole jobs on the real clips -----------------------------------------------------------


@pytest.mark.parametrize("name", list(CLIPS))
def test_every_frame_of_the_real_clips(videos_dir: Path, tiny: ModelChoice, name: str) -> None:
    count, width, height = CLIPS[name]
    job = quiet_job(VideoInput(path=videos_dir / name), tiny)
    assert [r.frame_num for r in job.records] == list(range(count))
    assert job.run.frame_size == (width, height)
    assert job.run.infer_size == (TINY_SIZE[1], TINY_SIZE[0])
    assert job.run.map_note == (
        f"saliency_map computed at {TINY_SIZE[1]}x{TINY_SIZE[0]}, frame is {width}x{height}"
    )
    values = list(means(job).values())
    assert all(0.0 < v < 1.0 for v in values)
    assert statistics.pstdev(values) > 1e-6  # the content changes, so does the feature


def test_two_threads_give_the_same_features_as_one(videos_dir: Path, tiny: ModelChoice) -> None:
    video = VideoInput(path=videos_dir / "foreman_cif.mp4", end=40)
    one = run_job(video, tiny, Outputs(output=None), threads=1)
    two = run_job(video, tiny, Outputs(output=None), threads=2)
    assert [r.frame_num for r in two.records] == list(range(40))
    for a, b in zip(one.records, two.records, strict=True):
        for name in ("saliency_mean", "saliency_var"):
            assert b.metrics[name] == pytest.approx(a.metrics[name], abs=1e-9)


@pytest.mark.parametrize("name", list(CISCO))
def test_real_raw_i420_files(videos_dir: Path, tiny: ModelChoice, name: str) -> None:
    width, height, count = CISCO[name]
    job = quiet_job(VideoInput(path=videos_dir / name, width=width, height=height), tiny)
    assert [r.frame_num for r in job.records] == list(range(count))
    assert job.run.frame_size == (width, height)
    assert job.run.source == str(videos_dir / name)


@pytest.mark.parametrize(
    ("start", "end", "subsample", "want"),
    [
        (0, None, 1, list(range(9))),
        (0, None, 4, [0, 4, 8]),
        (2, 8, 3, [2, 5]),  # counted from the start of the range; END is excluded
        (1, 9, 2, [1, 3, 5, 7]),
        (7, None, 1, [7, 8]),
        (0, 1, 5, [0]),
        (3, 100, 10, [3]),  # an END past the last frame just reads to the end
    ],
)
def test_range_and_subsample_follow_vmaf(
    videos_dir: Path,
    tiny: ModelChoice,
    start: int,
    end: int | None,
    subsample: int,
    want: list[int],
) -> None:
    path = videos_dir / "CiscoVT2people_320x192_12fps.yuv"
    full = means(quiet_job(VideoInput(path=path, width=320, height=192), tiny))
    video = VideoInput(path=path, width=320, height=192, start=start, end=end, subsample=subsample)
    job = quiet_job(video, tiny)
    assert [r.frame_num for r in job.records] == want
    assert job.run.subsample == subsample
    # The frames keep their numbers and their values: the same frame, the same feature.
    for num, value in means(job).items():
        assert value == pytest.approx(full[num], abs=SAME)


def test_range_and_subsample_on_a_container(videos_dir: Path, tiny: ModelChoice) -> None:
    video = VideoInput(path=videos_dir / "foreman_cif.mp4", start=2, end=10, subsample=3)
    assert [r.frame_num for r in quiet_job(video, tiny).records] == [2, 5, 8]
    every_7th = quiet_job(VideoInput(path=videos_dir / "foreman_cif.mp4", subsample=7), tiny)
    assert [r.frame_num for r in every_7th.records] == list(range(0, 300, 7))


# --- the same frames from every container, pixel format and bit depth -----------------------

N_FOREMAN = 8


@pytest.fixture(scope="module")
def foreman_lumas(videos_dir: Path) -> list[np.ndarray]:
    from vmafx_saliency.video.frames import open_video, select_frames

    with open_video(videos_dir / "foreman_cif.mp4") as src:
        return [f.luma for f in select_frames(src, end=N_FOREMAN)]


@pytest.fixture(scope="module")
def foreman_means(
    videos_dir: Path, foreman_lumas: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, float]:
    model, sidecar = write_tiny(tmp_path_factory.mktemp("model"))
    video = VideoInput(path=videos_dir / "foreman_cif.mp4", end=N_FOREMAN)
    return means(quiet_job(video, ModelChoice(model_path=model, sidecar=sidecar)))


def _as_format(lumas: list[np.ndarray], fmt_name: str) -> list[np.ndarray]:
    """8-bit luma as the pixel format stores it: 10-bit is the value shifted left by two."""
    if PIXEL_FORMATS[fmt_name].bit_depth == 10:
        return [luma.astype(np.uint16) << 2 for luma in lumas]
    return lumas


@pytest.mark.parametrize("container", ["raw", "y4m"])
@pytest.mark.parametrize("fmt_name", CANONICAL)
def test_same_frames_give_the_same_saliency_in_every_format(
    tmp_path: Path,
    tiny: ModelChoice,
    foreman_lumas: list[np.ndarray],
    foreman_means: dict[int, float],
    fmt_name: str,
    container: str,
) -> None:
    """mp4-decoded foreman frames 0..7, written here as raw YUV and as Y4M in every
    supported pixel format (10-bit: value << 2), give the mp4's saliency_mean."""
    lumas = _as_format(foreman_lumas, fmt_name)
    if container == "raw":
        path = tmp_path / f"foreman_{fmt_name}.yuv"
        write_raw(path, fmt_name, 352, 288, N_FOREMAN, lumas=lumas)
        video = VideoInput(path=path, width=352, height=288, pixel_format=fmt_name)
    else:
        path = tmp_path / f"foreman_{fmt_name}.y4m"
        write_y4m(path, Y4M_TAG_FOR[fmt_name], 352, 288, N_FOREMAN, extra=" F25:1", lumas=lumas)
        video = VideoInput(path=path)  # no XCOLORRANGE: unknown, taken as limited
    job = quiet_job(video, tiny)
    assert job.run.frame_size == (352, 288)
    diff = max_diff(means(job), foreman_means)
    assert diff <= SAME, f"{container} {fmt_name}: max |difference| {diff:.3g}"


def test_colour_range_changes_the_values_and_is_honoured(
    tmp_path: Path,
    tiny: ModelChoice,
    foreman_lumas: list[np.ndarray],
    foreman_means: dict[int, float],
) -> None:
    limited = tmp_path / "limited.y4m"
    write_y4m(
        limited, "420jpeg", 352, 288, N_FOREMAN, extra=" XCOLORRANGE=LIMITED", lumas=foreman_lumas
    )
    assert max_diff(means(quiet_job(VideoInput(path=limited), tiny)), foreman_means) <= SAME
    full = tmp_path / "full.y4m"
    write_y4m(full, "420jpeg", 352, 288, N_FOREMAN, extra=" XCOLORRANGE=FULL", lumas=foreman_lumas)
    from_y4m = means(quiet_job(VideoInput(path=full), tiny))
    assert max_diff(from_y4m, foreman_means) > 1e-4  # full range is a different input
    # --color-range full on raw YUV (no flag of its own) gives the Y4M's full-range values.
    raw = tmp_path / "foreman.yuv"
    write_raw(raw, "yuv420p", 352, 288, N_FOREMAN, lumas=foreman_lumas)
    video = VideoInput(path=raw, width=352, height=288, color_range="full")
    assert max_diff(means(quiet_job(video, tiny)), from_y4m) <= SAME
    # ... and 10-bit full range (x / 1023) scales away under divide_by_max.
    raw10 = tmp_path / "foreman10.yuv"
    write_raw(
        raw10, "yuv420p10le", 352, 288, N_FOREMAN, lumas=_as_format(foreman_lumas, "yuv420p10le")
    )
    video10 = VideoInput(
        path=raw10, width=352, height=288, pixel_format="yuv420p10le", color_range="full"
    )
    assert max_diff(means(quiet_job(video10, tiny)), from_y4m) <= SAME  # observed 3.6e-8


# --- pooled values and the three output formats ----------------------------------------------


def _cisco(videos_dir: Path, **changes: Any) -> VideoInput:
    fields: dict[str, Any] = {
        "path": videos_dir / "CiscoVT2people_320x192_12fps.yuv",
        "width": 320,
        "height": 192,
    }
    fields.update(changes)
    return VideoInput(**fields)


def test_pooled_values_match_an_independent_computation(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    job = run_job(_cisco(videos_dir), tiny, Outputs(output=out / "cisco.json"), threads=1)
    doc = json.loads((out / "cisco.json").read_text())
    assert list(doc["pooled_metrics"]) == ["saliency_mean", "saliency_var"]
    for name in ("saliency_mean", "saliency_var"):
        xs = [float(r.metrics[name]) for r in job.records]
        assert len(xs) == 9
        expected = {
            "min": min(xs),
            "max": max(xs),
            "mean": statistics.fmean(xs),
            # vmaf: n / sum(1 / (x + 1)) - 1, the harmonic mean of x + 1, less 1.
            "harmonic_mean": statistics.harmonic_mean([x + 1 for x in xs]) - 1,
        }
        array = np.asarray(xs)
        assert expected["harmonic_mean"] == pytest.approx(
            len(xs) / float(np.sum(1.0 / (array + 1.0))) - 1.0, abs=1e-12
        )
        assert expected["mean"] == pytest.approx(float(np.mean(array)), abs=1e-12)
        for key, value in expected.items():
            assert doc["pooled_metrics"][name][key] == pytest.approx(value, abs=PRINTED), key
        # The per-frame values printed are the records', to six decimals.
        printed = [f["metrics"][name] for f in doc["frames"]]
        np.testing.assert_allclose(printed, xs, rtol=0, atol=PRINTED)


def test_json_xml_and_csv_outputs_parse_and_agree(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    video = _cisco(videos_dir, subsample=2)
    jobs = {
        fmt: run_job(video, tiny, Outputs(output=out / f"cisco.{fmt}", fmt=fmt), threads=1)
        for fmt in ("json", "xml", "csv")
    }
    doc = json.loads((out / "cisco.json").read_text())
    root = ET.fromstring((out / "cisco.xml").read_text())
    rows = [line.split(",") for line in (out / "cisco.csv").read_text().splitlines()]
    records = jobs["json"].records

    nums = [0, 2, 4, 6, 8]
    assert [f["frameNum"] for f in doc["frames"]] == nums
    xml_frames = root.findall("./frames/frame")
    assert [int(f.get("frameNum", "-1")) for f in xml_frames] == nums
    assert rows[0] == ["Frame", "saliency_mean", "saliency_var", ""]
    assert [int(r[0]) for r in rows[1:]] == nums
    for i, record in enumerate(records):
        for j, name in enumerate(("saliency_mean", "saliency_var")):
            from_json = doc["frames"][i]["metrics"][name]
            assert float(xml_frames[i].get(name, "nan")) == pytest.approx(from_json, abs=1e-12)
            assert float(rows[i + 1][j + 1]) == pytest.approx(from_json, abs=1e-12)
            assert from_json == pytest.approx(float(record.metrics[name]), abs=PRINTED)
    # The three runs computed the same values.
    for fmt in ("xml", "csv"):
        for a, b in zip(jobs[fmt].records, records, strict=True):
            assert a.frame_num == b.frame_num
            assert a.metrics == pytest.approx(b.metrics, abs=SAME)
    pooled_xml = {m.get("name"): m for m in root.findall("./pooled_metrics/metric")}
    for name, stats in doc["pooled_metrics"].items():
        for key, value in stats.items():
            assert float(pooled_xml[name].get(key, "nan")) == pytest.approx(value, abs=1e-12)
    # What the run says about itself.
    assert doc["params"] == {
        "qualityWidth": 320,
        "qualityHeight": 192,
        "subsample": 2,
        "source": str(video.path),
    }
    assert doc["model"]["id"] is None  # ad hoc
    assert doc["model"]["sha256"] == jobs["json"].run.model_sha256
    assert doc["model"]["infer_size"] == "64x48"
    params = root.find("params")
    assert params is not None and params.get("subsample") == "2"


def test_fps_counts_every_frame_read(videos_dir: Path, tiny: ModelChoice) -> None:
    """vmaf's fps is pictures read per second, the subsampled ones included."""
    job = quiet_job(_cisco(videos_dir, subsample=4), tiny)
    assert len(job.records) == 3
    assert job.run.fps == pytest.approx(9 / job.extraction.seconds, rel=1e-9)


# --- the real mirror on a few frames ----------------------------------------------------------


def test_real_mirror_gives_sensible_saliency_on_foreman(
    mirror_onnx: Path, videos_dir: Path
) -> None:
    model = ModelChoice(model_path=mirror_onnx, sidecar=MIRROR_SIDECAR)
    video = VideoInput(path=videos_dir / "foreman_cif.mp4", end=181, subsample=60)
    job = run_job(video, model, Outputs(output=None), infer_size=(128, 160), threads=2)
    assert [r.frame_num for r in job.records] == [0, 60, 120, 180]
    assert job.run.infer_size == (160, 128)
    values = means(job)
    assert all(0.0 < v < 1.0 for v in values.values()), values
    assert max(values.values()) - min(values.values()) > 0.05, values  # not constant
    # Frame 0 is a face against a wall: a salient object, so a bimodal map.
    first = job.records[0].metrics
    assert 0.1 < first["saliency_mean"] < 0.9
    assert first["saliency_var"] > 0.03


# --- streaming: memory does not grow with the number of frames ------------------------------


def test_memory_does_not_grow_with_the_number_of_frames(
    tmp_path: Path, tiny: ModelChoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python-side peak (tracemalloc) of run_job from the model's load to the written
    output, for 40 and for 200 frames of 640x360: the frames stream.

    The peak is reset once the model is loaded: the loader's one-off read of the
    model file is not per frame, and would hide what is.
    """
    from vmafx_saliency.video import extract as extract_module

    load = extract_module.load_for_video

    def load_then_reset(*args: Any, **kwargs: Any) -> Any:
        loaded = load(*args, **kwargs)
        tracemalloc.reset_peak()
        return loaded

    monkeypatch.setattr(extract_module, "load_for_video", load_then_reset)
    width, height = 640, 360
    fmt = PIXEL_FORMATS["yuv420p"]
    frame = np.random.default_rng(9).integers(16, 236, fmt.frame_bytes(width, height), np.uint8)
    peaks = {}
    for count in (40, 200):
        path = tmp_path / f"long{count}.yuv"
        path.write_bytes(frame.tobytes() * count)
        video = VideoInput(path=path, width=width, height=height)
        outputs = Outputs(output=tmp_path / f"long{count}.json")
        tracemalloc.start()
        try:
            job = run_job(video, tiny, outputs, threads=1)
            _, peaks[count] = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(job.records) == count
        path.unlink()
    luma_bytes = width * height
    # 160 more frames cost their records and output text (well under 1 KB each), not
    # their frames (230 KB of luma each, 37 MB for 160): five times the frames, the
    # same peak, give or take a frame more in flight when the machine is busy (how
    # far the decoding thread gets ahead depends on timing).
    assert peaks[200] - peaks[40] < 2 * luma_bytes, peaks
    # A few frames in flight (and their float32 pre-processing), never the whole file.
    assert peaks[200] < 30 * luma_bytes < 200 * fmt.frame_bytes(width, height), peaks


# --- bad inputs: a message, and nothing left behind -----------------------------------------


def test_missing_video(tmp_path: Path, tiny: ModelChoice, out: Path) -> None:
    target, maps = out / "x.json", out / "maps"
    with pytest.raises(VideoError, match=r"gone\.mp4: no such file"):
        run_job(
            VideoInput(path=tmp_path / "gone.mp4"),
            tiny,
            Outputs(output=target, save_maps=maps),
        )
    assert_nothing_written(out, target, maps)


def test_raw_size_not_a_whole_number_of_frames(
    videos_dir: Path, tmp_path: Path, tiny: ModelChoice, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cut.yuv"
    path.write_bytes((videos_dir / "CiscoVT2people_160x96_6fps.yuv").read_bytes() + bytes(1000))
    size = 5 * 23040 + 1000
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"):
        job = quiet_job(VideoInput(path=path, width=160, height=96), tiny)
    assert f"file size {size} bytes is not a whole number of frames" in caplog.text
    assert "160 x 96 yuv420p (23040 bytes each)" in caplog.text
    assert "reading 5 whole frames and ignoring the 1000 leftover bytes" in caplog.text
    assert [r.frame_num for r in job.records] == [0, 1, 2, 3, 4]


def test_unknown_pixel_format_lists_the_known_ones(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    video = VideoInput(
        path=videos_dir / "CiscoVT2people_160x96_6fps.yuv",
        width=160,
        height=96,
        pixel_format="nv12",
    )
    with pytest.raises(UsageError, match="unknown pixel format 'nv12'") as err:
        run_job(video, tiny, Outputs(output=out / "x.json"))
    for name in CANONICAL:
        assert name in str(err.value)
    assert_nothing_written(out)


def test_corrupt_container_fails_mid_stream_and_writes_nothing(
    videos_dir: Path, tmp_path: Path, tiny: ModelChoice, out: Path
) -> None:
    path = broken_foreman(videos_dir, tmp_path)
    target, maps = out / "broken.json", out / "maps"
    with pytest.raises(VideoError) as err:
        # Maps are being written for ~160 frames when decoding fails: all must go.
        run_job(VideoInput(path=path), tiny, Outputs(output=target, save_maps=maps))
    message = str(err.value)
    assert str(path) in message
    frame = int(message.split("decoding failed at frame ")[1].split()[0])
    assert 100 < frame < 300, message
    assert f"({frame} frames decoded before it)" in message
    assert_nothing_written(out, target, maps)


def test_unreadable_container(tmp_path: Path, tiny: ModelChoice, out: Path) -> None:
    path = tmp_path / "text.mp4"
    path.write_bytes(b"this is not a video\n" * 20)
    with pytest.raises(VideoError, match=rf"cannot open {path}.*is it a video file\?"):
        run_job(VideoInput(path=path), tiny, Outputs(output=out / "x.json"))
    assert_nothing_written(out)


def test_a_range_past_the_end_selects_no_frames(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    video = VideoInput(path=videos_dir / "carphone_distorted.mp4", start=400, end=500)
    target, maps = out / "x.json", out / "maps"
    with pytest.raises(ExtractionError, match="no frames were selected"):
        run_job(video, tiny, Outputs(output=target, save_maps=maps))
    assert_nothing_written(out, target, maps)


def test_nan_map_from_a_real_model_names_the_frame(tmp_path: Path, out: Path) -> None:
    """The model passes the loader's contract probe, then puts NaN into frame 3's map."""
    model, sidecar = write_tiny(
        tmp_path / "model", data=nan_on_bright_model(), inference_size="native"
    )
    path = tmp_path / "clip.yuv"
    white_on_frame_3(path)
    target, maps = out / "x.json", out / "maps"
    with pytest.raises(ExtractionError, match="frame 3: the model produced NaN or infinite"):
        run_job(
            VideoInput(path=path, width=64, height=48),
            ModelChoice(model_path=model, sidecar=sidecar),
            Outputs(output=target, save_maps=maps),
        )
    assert_nothing_written(out, target, maps)
    # Frames 0..2 alone are fine: it is frame 3 that breaks it.
    job = quiet_job(
        VideoInput(path=path, width=64, height=48, end=3),
        ModelChoice(model_path=model, sidecar=sidecar),
    )
    assert len(job.records) == 3


def test_existing_output_is_refused_before_any_work(tmp_path: Path, tiny: ModelChoice) -> None:
    target = tmp_path / "x.json"
    target.write_text("mine\n")
    # The video does not even exist: the output is checked first, so a refusal is free.
    with pytest.raises(OutputExistsError, match=r"x\.json already exists: pass --force"):
        run_job(VideoInput(path=tmp_path / "absent.mp4"), tiny, Outputs(output=target))
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "x.json"]


def test_existing_plot_is_refused(tmp_path: Path, tiny: ModelChoice) -> None:
    existing = tmp_path / "plot.png"
    existing.write_bytes(b"png")
    with pytest.raises(OutputExistsError, match="already exists: pass --force"):
        run_job(VideoInput(path=tmp_path / "absent.mp4"), tiny, Outputs(output=None, plot=existing))
    assert existing.read_bytes() == b"png"


def test_a_maps_folder_holding_maps_is_refused_before_any_work(
    tmp_path: Path, tiny: ModelChoice
) -> None:
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "frame_000003.png").write_bytes(b"old map")
    with pytest.raises(
        OutputExistsError,
        match=r"maps already holds saliency maps \(frame_000003\.png, \.\.\.\): pass --force "
        r"to replace them \(other files there are kept\)",
    ):
        run_job(VideoInput(path=tmp_path / "absent.mp4"), tiny, Outputs(save_maps=maps))
    assert (maps / "frame_000003.png").read_bytes() == b"old map"


def test_a_maps_path_that_is_a_file_is_refused_even_with_force(
    tmp_path: Path, tiny: ModelChoice
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    with pytest.raises(UsageError, match=r"--save-maps .*notes\.txt: not a folder"):
        run_job(
            VideoInput(path=tmp_path / "absent.mp4"),
            tiny,
            Outputs(output=None, save_maps=notes, force=True),
        )
    assert notes.read_text() == "mine\n"


def test_maps_go_into_an_existing_folder_beside_what_is_there(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    """An existing folder without maps needs no --force, and its files stay."""
    (out / "notes.txt").write_text("mine\n")
    run_job(_cisco(videos_dir, end=2), tiny, Outputs(output=None, save_maps=out), threads=1)
    names = ["frame_000000.png", "frame_000001.png", "notes.txt"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert (out / "notes.txt").read_text() == "mine\n"


def test_outputs_inside_a_new_maps_folder_are_kept(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    """-o and --plot create the maps folder first; committing the maps must not drop them."""
    run_dir = out / "run1"
    target, plot = run_dir / "x.json", run_dir / "plot.png"
    job = run_job(
        _cisco(videos_dir, end=2),
        tiny,
        Outputs(output=target, plot=plot, save_maps=run_dir),
        threads=1,
    )
    names = ["frame_000000.png", "frame_000001.png", "plot.png", "x.json"]
    assert sorted(p.name for p in run_dir.iterdir()) == names
    assert json.loads(target.read_text())["frames"][1]["frameNum"] == 1
    assert job.written == (target, plot, run_dir)


def test_maps_into_the_working_folder_keep_its_files(
    videos_dir: Path, tiny: ModelChoice, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (out / "notes.txt").write_text("mine\n")
    (out / "frame_000009.png").write_bytes(b"an earlier run's map")
    monkeypatch.chdir(out)
    video = _cisco(videos_dir, end=1)
    run_job(video, tiny, Outputs(output=None, save_maps=Path(), force=True), threads=1)
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png", "notes.txt"]


def test_force_overwrites(videos_dir: Path, tiny: ModelChoice, out: Path) -> None:
    target, maps = out / "x.json", out / "maps"
    target.write_text("old\n")
    maps.mkdir()
    (maps / "frame_000007.png").write_bytes(b"an earlier run's map")
    (maps / "stale.png").write_bytes(b"the user's")
    video = _cisco(videos_dir, end=2)
    job = run_job(video, tiny, Outputs(output=target, save_maps=maps, force=True), threads=1)
    assert json.loads(target.read_text())["frames"][1]["frameNum"] == 1
    # Every map of the earlier run goes (frame 7 is not one of this run's); other files stay.
    names = ["frame_000000.png", "frame_000001.png", "stale.png"]
    assert sorted(p.name for p in maps.iterdir()) == names
    assert (maps / "stale.png").read_bytes() == b"the user's"
    assert job.written == (target, maps)
    assert sorted(p.name for p in out.iterdir()) == ["maps", "x.json"]


def test_bad_plot_suffix_is_refused_before_any_work(tmp_path: Path, tiny: ModelChoice) -> None:
    with pytest.raises(UsageError, match=r"matplotlib cannot write 'xyz' files"):
        run_job(
            VideoInput(path=tmp_path / "absent.mp4"),
            tiny,
            Outputs(output=None, plot=tmp_path / "plot.xyz"),
        )


def test_a_failed_write_takes_back_the_outputs_already_written(
    videos_dir: Path, tiny: ModelChoice, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmafx_saliency.video import output

    def broken_plot(*args: Any, **kwargs: Any) -> None:
        raise OutputError("cannot write the plot: disk full")

    monkeypatch.setattr(output, "plot_series", broken_plot)
    target, plot, maps = out / "x.json", out / "plot.png", out / "maps"
    with pytest.raises(OutputError, match="disk full"):
        run_job(
            _cisco(videos_dir, end=3),
            tiny,
            Outputs(output=target, plot=plot, save_maps=maps),
            threads=1,
        )
    assert_nothing_written(out, target, plot, maps)


def test_maps_every_must_be_positive(tmp_path: Path, tiny: ModelChoice) -> None:
    with pytest.raises(UsageError, match="--maps-every 0"):
        run_job(
            VideoInput(path=tmp_path / "absent.mp4"),
            tiny,
            Outputs(output=None, save_maps=tmp_path / "maps", maps_every=0),
        )


# --- --merge-into ----------------------------------------------------------------------------


def test_merge_into_adds_the_features(videos_dir: Path, tiny: ModelChoice, out: Path) -> None:
    vmaf = vmaf_file(out / "vmaf.json", [0, 1, 2, 3])
    before = vmaf.read_bytes()
    merged = out / "merged.json"
    job = run_job(
        _cisco(videos_dir, end=4),
        tiny,
        Outputs(output=None, merge_into=vmaf, merge_output=merged),
        threads=1,
    )
    assert job.written == (merged,)
    assert vmaf.read_bytes() == before  # the user's file is untouched
    doc = json.loads(merged.read_text())
    for frame, record in zip(doc["frames"], job.records, strict=True):
        assert frame["frameNum"] == record.frame_num
        assert frame["metrics"]["vmaf"] > 90  # vmaf's own metrics stay
        assert frame["metrics"]["saliency_mean"] == pytest.approx(
            record.metrics["saliency_mean"], abs=PRINTED
        )
    assert "saliency_mean" in doc["pooled_metrics"]


def test_merge_into_with_other_frame_numbers_is_refused(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    vmaf = vmaf_file(out / "vmaf.json", [0, 1, 2, 3])
    before = vmaf.read_bytes()
    merged, target, maps = out / "merged.json", out / "x.json", out / "maps"
    with pytest.raises(
        OutputError, match=r"frame numbers do not match.*missing from the vmaf file: 4"
    ):
        run_job(
            _cisco(videos_dir),  # 9 frames, the vmaf file has 4
            tiny,
            Outputs(output=target, merge_into=vmaf, merge_output=merged, save_maps=maps),
            threads=1,
        )
    assert vmaf.read_bytes() == before
    assert_nothing_written(out, merged, target, maps, keep=["vmaf.json"])


def test_merge_into_in_place_needs_force(videos_dir: Path, tiny: ModelChoice, out: Path) -> None:
    vmaf = vmaf_file(out / "vmaf.json", [0, 1, 2, 3])
    before = vmaf.read_bytes()
    with pytest.raises(UsageError, match=r"would modify that file in place.*--force"):
        run_job(_cisco(videos_dir, end=4), tiny, Outputs(output=None, merge_into=vmaf))
    assert vmaf.read_bytes() == before
    assert_nothing_written(out, keep=["vmaf.json"])
    job = run_job(
        _cisco(videos_dir, end=4), tiny, Outputs(output=None, merge_into=vmaf, force=True)
    )
    assert job.written == (vmaf,)
    assert "saliency_mean" in json.loads(vmaf.read_text())["frames"][3]["metrics"]


def test_merge_into_a_missing_file(tmp_path: Path, tiny: ModelChoice) -> None:
    with pytest.raises(UsageError, match=r"--merge-into .*vmaf\.json: no such file"):
        run_job(
            VideoInput(path=tmp_path / "absent.mp4"),
            tiny,
            Outputs(output=None, merge_into=tmp_path / "vmaf.json"),
        )


# --- model choice -----------------------------------------------------------------------------


def test_model_choice_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, sidecar = write_tiny(tmp_path)
    with pytest.raises(UsageError, match="give --model or --model-path, not both"):
        load_model(ModelChoice(model_id="tiny", model_path=model, sidecar=sidecar), threads=1)
    with pytest.raises(
        UsageError,
        match=r"no sidecar JSON.*pass --sidecar FILE or put tiny\.sidecar\.json beside it",
    ):
        load_model(ModelChoice(model_path=model), threads=1)
    with pytest.raises(UsageError, match=r"--sidecar .* goes with --model-path"):
        load_model(ModelChoice(model_id="tiny", sidecar=sidecar), threads=1)
    with pytest.raises(UsageError, match="--signed needs a registered model"):
        load_model(ModelChoice(model_path=model, sidecar=sidecar, signed=True), threads=1)
    # The environment variable names an ad-hoc model when no --model is given.
    monkeypatch.setenv("VMAF_MOBILESAL_MODEL_PATH", str(model))
    loaded, pre = load_model(ModelChoice(sidecar=sidecar), threads=1)
    assert loaded.path == model.resolve()
    assert pre.inference_size == TINY_SIZE
