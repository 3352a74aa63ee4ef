"""The mobilesal frame loop: pre-processing, the pipeline, inference and the features.

Pre-processing is checked against hand-computed values, and ``extract`` runs on
fake sessions, so every test here is fast and needs no video file. Whole jobs on
the real clips are in ``test_job.py``.

Tolerance: ``SAME``, values that must agree to float64 round-off; 1e-6 is the
stated bound.
"""

from __future__ import annotations

import errno
import io
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest

from vmafx_saliency.errors import ExtractionError, ModelRunError, UsageError, VideoError
from vmafx_saliency.supply.registry import Preprocessing
from vmafx_saliency.video.extract import (
    ExtractionResult,
    Progress,
    extract,
    inferred,
    luma_to_unit,
    parse_infer_size,
    pipelined,
    preprocess,
    resolve_size,
)
from vmafx_saliency.video.frames import Frame

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel


SAME = 1e-6
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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

    def run(
        self, names: list[str], feeds: dict[str, np.ndarray], run_options: Any = None
    ) -> list[np.ndarray]:
        assert names == ["saliency_map"]
        tensor = feeds["input"]
        self.inputs.append(tensor)
        return [self.make(len(self.inputs) - 1, tensor).astype(np.float32)]


@dataclass
class FakeModel:
    session: FakeSession
    model_id: str | None = "fake"


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

    def run(
        self, names: list[str], feeds: dict[str, np.ndarray], run_options: Any = None
    ) -> list[np.ndarray]:
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
    # ONNX Runtime's error becomes the product's, naming the frame (issue 37).
    with pytest.raises(
        ExtractionError, match=r"^frame 5: the model failed at .*boom on input 0\.05"
    ):
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


def test_extract_refuses_zero_jobs() -> None:
    model, session = _fake(_ramp_map)
    with pytest.raises(UsageError, match="--threads 0: give a whole number >= 1"):
        extract(_pattern_frames(2), model, pre=_pre(), color_range=None, jobs=0)
    assert session.inputs == []


# --- an inference that ONNX Runtime refuses -------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_inference_failure_is_the_products_error_naming_frame_and_model(jobs: int) -> None:
    from tests._onnx_models import conv_sigmoid_model
    from vmafx_saliency.supply.contract import make_session

    session = make_session(conv_sigmoid_model(), source="tiny")
    good = np.zeros((1, 3, 8, 8), np.float32)
    wrong = np.zeros((1, 3, 8, 8), np.float64)  # ONNX Runtime refuses the element type
    tensors: list[tuple[int, np.ndarray]] = [(0, good), (7, wrong), (8, good)]
    stream = inferred(session, iter(tensors), jobs=jobs, label="model x")
    assert next(stream)[0] == 0
    with pytest.raises(
        ExtractionError,
        match=r"^frame 7: model x failed at 8x8 \(.*\): the model cannot run this input; "
        r"try --infer-size 320x320 or another model \(--model; infer_size=, model= in Python\)$",
    ) as caught:
        next(stream)
    assert caught.value.__cause__ is not None  # ONNX Runtime's own error, for -v
    assert isinstance(caught.value, ModelRunError)
    assert caught.value.detail.startswith("frame 7: model x failed at 8x8 (")


def test_the_progress_bar_stops_when_its_terminal_is_gone() -> None:
    """After a hangup stderr raises EIO: the run goes on (or unwinds) without the bar."""

    class Gone(io.StringIO):
        writes = 0

        def write(self, _: str) -> int:
            Gone.writes += 1
            raise OSError(errno.EIO, "Input/output error")

    progress = Progress(total=10, stream=Gone(), enabled=True)
    progress.update()  # the first update draws, and finds the terminal gone
    progress.update()
    progress.close()
    assert (Gone.writes, progress.enabled, progress.done) == (1, False, 2)
