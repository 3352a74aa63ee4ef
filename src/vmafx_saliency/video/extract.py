"""The ``mobilesal`` feature extractor: per-frame saliency over a video.

For every frame: take the raw luma plane, convert it to full-range [0, 1]
(limited range 16..235, or 64..940 at 10 bits, is expanded explicitly), resize
it to the model's inference size, apply the sidecar's scaling and mean/std,
tile it into three channels (``luma_tile``: ``Y -> [Y, Y, Y]``), run the model
and reduce the raw ``saliency_map`` to ``saliency_mean`` (its plain mean, no
per-frame min-max) and ``saliency_var``.

Decoding and pre-processing run in a worker thread feeding a bounded queue, so
they overlap with inference (ONNX Runtime releases the GIL) and memory stays
flat however long the video is. A small model infers several frames at once,
each on one thread of a single-threaded session, as vmaf's ``--threads`` runs
frames in parallel: this keeps the cores busier than one frame at a time on an
intra-op thread pool, whose threads wait for each other at every operator
(``benchmarks/extract_throughput.py`` measures both; see
:class:`vmafx_saliency.video.job.InferencePlan`).

This module is the frame loop: pre-process, infer, reduce. A whole run (the
model chosen and loaded, the video opened, the outputs written) is
:func:`vmafx_saliency.video.job.run_job`.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO

import numpy as np

from vmafx_saliency.errors import ExtractionError, NoFramesSelectedError, UsageError
from vmafx_saliency.supply.runs import run_map
from vmafx_saliency.video.scale import resize_luma

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.supply.registry import Preprocessing
    from vmafx_saliency.video.frames import Frame

FEATURES = ("saliency_mean", "saliency_var")
# Sigmoid outputs can touch 0 or 1; beyond this slack the model is broken.
RANGE_SLACK = 1e-5
QUEUE_DEPTH = 4

InferSize = tuple[int, int] | Literal["native"] | None  # None: as the sidecar says


# Each thread of the extractor's plan holds a frame in flight (and its queue
# slots): the cap bounds that memory where a typo asks for thousands.
MAX_THREADS = 256


def check_threads(threads: int) -> None:
    """``--threads``: 1 to :data:`MAX_THREADS`, wherever a command takes it."""
    if threads < 1:
        raise UsageError(f"--threads {threads}: give a whole number >= 1")
    if threads > MAX_THREADS:
        raise UsageError(
            f"--threads {threads}: give at most {MAX_THREADS} (this machine lets "
            f"the process use {default_threads()} cores)"
        )


def default_threads() -> int:
    """Inference threads: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# Both models halve the plane five times (u2netp's pools, the student's strided
# stages): below 32 pixels a side their deepest stage sees less than a pixel.
MIN_INFER_SIDE = 32
MAX_INFER_SIDE = 4096


def parse_infer_size(text: str) -> tuple[int, int] | Literal["native"]:
    """``native`` or ``WxH`` (width x height, as video people write it) -> (H, W)."""
    if text == "native":
        return "native"
    parts = text.lower().split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
        width, height = (int(p) for p in parts)
        if min(width, height) < MIN_INFER_SIDE:
            raise UsageError(
                f"--infer-size {text!r}: give at least {MIN_INFER_SIDE} pixels a side; the "
                "models halve the plane five times, so a smaller input yields no saliency"
            )
        if max(width, height) > MAX_INFER_SIDE:
            raise UsageError(
                f"--infer-size {text!r}: give at most {MAX_INFER_SIDE} pixels a side (a "
                "sidecar's limit too); the activations of a larger input fill the memory"
            )
        return (height, width)
    raise UsageError(f"--infer-size {text!r}: give 'native' or WIDTHxHEIGHT, e.g. 320x320")


def luma_to_unit(luma: np.ndarray, *, bit_depth: int, limited: bool) -> np.ndarray:
    """Raw luma samples -> full-range float32 in [0, 1]."""
    plane = luma.astype(np.float32)
    if limited:
        # ITU-R BT.601/709 limited range: black 16, white 235 at 8 bits, scaled by 2^(n-8).
        shift = float(1 << (bit_depth - 8))
        black, white = 16.0 * shift, 235.0 * shift
        return np.clip((plane - black) / (white - black), 0.0, 1.0)
    return plane / float((1 << bit_depth) - 1)


def resolve_size(
    pre: Preprocessing, override: InferSize, frame_hw: tuple[int, int]
) -> tuple[int, int]:
    if override == "native":
        return frame_hw
    if override is not None:
        return override
    return pre.inference_size if pre.inference_size is not None else frame_hw


def preprocess(
    luma: np.ndarray,
    *,
    bit_depth: int,
    color_range: str | None,
    pre: Preprocessing,
    size: tuple[int, int],
) -> np.ndarray:
    """One frame's luma -> the model input, float32 [1, 3, H, W]."""
    if pre.colour_mode != "luma_tile":
        raise UsageError(
            f"colour mode {pre.colour_mode!r} needs RGB input; the video extractor feeds "
            "luma only (luma_tile): use a model whose sidecar declares luma_tile"
        )
    # An unknown YUV range means limited, as in video.
    auto = pre.luma_range == "auto"
    limited = color_range != "full" if auto else pre.luma_range == "limited"
    if luma.shape != size:
        # Resize the raw samples first: the range conversion is affine, so it
        # commutes with the (linear) resize, and it then touches 320x320 values
        # instead of a whole HD frame. Only the clip of sub-black/super-white
        # samples moves after the averaging.
        luma = resize_luma(luma, size, bit_depth=bit_depth)
    plane = luma_to_unit(luma, bit_depth=bit_depth, limited=limited)
    if pre.scaling == "divide_by_max":
        # Upstream divides by the image maximum after resizing; a black frame stays black.
        peak = float(plane.max())
        if peak > 0.0:
            plane = plane / peak
    # Written channel by channel into the batch tensor: no 3-plane temporaries.
    tensor = np.empty((1, 3, *plane.shape), dtype=np.float32)
    for channel, (mean, std) in enumerate(zip(pre.mean, pre.std, strict=True)):
        out = tensor[0, channel]
        np.subtract(plane, np.float32(mean), out=out)
        np.divide(out, np.float32(std), out=out)
    return tensor


def frame_input(
    frame: Frame, *, pre: Preprocessing, color_range: str | None, size: tuple[int, int]
) -> np.ndarray:
    """A video frame -> the model input: :func:`preprocess` of its luma, resized
    straight from the decoded picture where there is one (``Frame.luma_at``: no
    copy of an HD plane in and out of swscale)."""
    return preprocess(
        frame.luma_at(size), bit_depth=frame.bit_depth, color_range=color_range, pre=pre, size=size
    )


@dataclass(frozen=True)
class FrameFeatures:
    """One frame's features: ``frame_num`` (its number in the video, from 0), the
    plain mean of the raw saliency map and the variance of its values."""

    frame_num: int
    saliency_mean: float
    saliency_var: float

    def metrics(self) -> dict[str, float]:
        return {"saliency_mean": self.saliency_mean, "saliency_var": self.saliency_var}


@dataclass(frozen=True)
class ExtractionResult:
    features: tuple[FrameFeatures, ...]
    infer_size: tuple[int, int]
    frame_size: tuple[int, int]  # (H, W)
    seconds: float

    @property
    def fps(self) -> float:
        return len(self.features) / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """A one-line progress bar on a terminal: frames, fps, ETA. Silent otherwise."""

    def __init__(self, *, total: int | None, stream: TextIO | None = None, enabled: bool) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.start = time.perf_counter()
        self.done = 0
        self._last = 0.0

    def update(self, frames: int = 1) -> None:
        self.done += frames
        now = time.perf_counter()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        elapsed = now - self.start
        fps = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            eta = (self.total - self.done) / fps if fps > 0 else math.inf
            bar = "#" * int(30 * self.done / self.total)
            text = f"[{bar:<30}] {self.done}/{self.total} frames {fps:6.1f} fps ETA {eta:5.0f}s"
        else:
            text = f"{self.done} frames {fps:6.1f} fps"
        self._show("\r" + text)

    def close(self) -> None:
        if self.enabled:
            self._show("\n")

    def _show(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:
            # The terminal is gone (a hangup, a closed ssh session): the bar is
            # only for a watcher, so the run goes on, or unwinds, without it.
            self.enabled = False


_DONE = object()
STOP_WAIT = 2.0  # seconds to wait for a worker to stop when the consumer gives up


def _produce(
    frames: Iterable[Frame],
    work: Callable[[Frame], tuple[int, np.ndarray]],
    out: queue.Queue[object],
    stop: threading.Event,
) -> None:
    """Worker thread: decode and pre-process, hand results (or the error) over."""

    def put(item: object) -> bool:
        # Bounded wait, so a consumer that gave up (stop set) never leaves us blocked.
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for frame in frames:
            if not put(work(frame)):
                return
        put(_DONE)
    except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer thread
        put(exc)


def pipelined(
    frames: Iterable[Frame],
    work: Callable[[Frame], tuple[int, np.ndarray]],
    *,
    depth: int = QUEUE_DEPTH,
) -> Generator[tuple[int, np.ndarray], None, None]:
    """Yield ``work(frame)`` for each frame, computed ahead in a worker thread.

    At most ``depth`` results wait in the queue, plus one the worker is
    computing or handing over: memory is bounded whatever the length of
    ``frames``. An exception in the worker is re-raised here; closing the
    generator early stops and joins the worker.
    """
    out: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    worker = threading.Thread(target=_produce, args=(frames, work, out, stop), daemon=True)
    worker.start()
    finished = False
    try:
        while True:
            item = out.get()
            if item is _DONE:
                finished = True
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # The worker sees `stop` within a put's 0.1 s, unless it is blocked reading
        # a stalled pipe: then an interrupt's clean-up must not wait for the writer
        # (the thread is a daemon and is left to the read).
        worker.join(timeout=None if finished else STOP_WAIT)


def _run(session: Any, tensor: np.ndarray, frame_num: int, label: str) -> np.ndarray:
    return run_map(
        session,
        tensor,
        what=f"frame {frame_num}: {label}",
        advice="the model cannot run this input; try --infer-size 320x320 or another "
        "model (--model; infer_size=, model= in Python)",
    )


def inferred(
    session: Any,
    tensors: Iterable[tuple[int, np.ndarray]],
    *,
    jobs: int = 1,
    label: str = "the model",
) -> Generator[tuple[int, np.ndarray], None, None]:
    """``(frame number, saliency map)`` for each input tensor, in input order.

    ``jobs`` ``session.run`` calls are in flight at once, in worker threads
    (ONNX Runtime sessions are thread-safe and release the GIL); at most
    ``2 * jobs`` inputs wait, so memory stays bounded. An error in one run is
    raised here, in order; closing early waits for the runs in flight.
    """
    # Even one job runs in a worker: this thread then waits on a future, where Ctrl-C and
    # SIGTERM reach it (and stop the run, runs.stop_runs), not inside ONNX Runtime. One
    # job runs one frame at a time, as a plain loop would: nothing past a failing frame.
    waiting = 2 * jobs if jobs > 1 else 1
    pending: deque[tuple[int, Future[np.ndarray]]] = deque()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="vmafx-infer") as pool:
        try:
            for frame_num, tensor in tensors:
                pending.append((frame_num, pool.submit(_run, session, tensor, frame_num, label)))
                # A second batch queued behind the running one keeps every
                # worker busy while this thread reduces and fetches.
                if len(pending) >= waiting:
                    done_num, future = pending.popleft()
                    yield done_num, future.result()
            while pending:
                done_num, future = pending.popleft()
                yield done_num, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def saliency_stream(
    frames: Iterable[Frame],
    model: LoadedModel,
    *,
    pre: Preprocessing,
    color_range: str | None,
    infer_size: InferSize = None,
    jobs: int = 1,
    sizes: dict[str, tuple[int, int]] | None = None,
) -> Generator[tuple[int, np.ndarray], None, None]:
    """``(frame number, saliency map)`` for each frame, in order, streaming.

    Each map is the model's float32 ``[H, W]`` output at the inference size,
    checked finite and in [0, 1]. Decoding and pre-processing run in a worker
    thread ahead of inference, and ``jobs`` frames are inferred at once (give
    the session one intra-op thread then: see
    :func:`vmafx_saliency.video.job.load_model`); memory does not grow with the
    number of frames. ``sizes`` receives ``"frame"`` and ``"infer"`` (H, W) once
    the first frame is seen. Closing the generator stops the worker.
    """
    seen = sizes if sizes is not None else {}

    def work(frame: Frame) -> tuple[int, np.ndarray]:
        frame_hw = (int(frame.luma.shape[0]), int(frame.luma.shape[1]))
        size = resolve_size(pre, infer_size, frame_hw)
        seen.setdefault("frame", frame_hw)
        seen.setdefault("infer", size)
        return frame.index, frame_input(frame, pre=pre, color_range=color_range, size=size)

    if jobs < 1:
        raise UsageError(f"--threads {jobs}: give a whole number >= 1")
    # closing(): on any error, or when the caller stops early, the worker is
    # stopped and joined here, before the caller closes the frame source it reads.
    with (
        contextlib.closing(pipelined(frames, work)) as stream,
        contextlib.closing(inferred(model.session, stream, jobs=jobs, label=_label(model))) as maps,
    ):
        for frame_num, saliency in maps:
            plane = saliency[0, 0]
            _check_map(frame_num, plane)
            yield frame_num, plane


def extract(
    frames: Iterable[Frame],
    model: LoadedModel,
    *,
    pre: Preprocessing,
    color_range: str | None,
    infer_size: InferSize = None,
    progress: Progress | None = None,
    on_map: Callable[[int, np.ndarray], None] | None = None,
    jobs: int = 1,
) -> ExtractionResult:
    """Run the model over the frames; features per frame, in order.

    The maps of :func:`saliency_stream`, each reduced to its features;
    ``on_map`` sees every map, in frame order.
    """
    sizes: dict[str, tuple[int, int]] = {}
    features: list[FrameFeatures] = []
    start = time.perf_counter()
    stream = saliency_stream(
        frames,
        model,
        pre=pre,
        color_range=color_range,
        infer_size=infer_size,
        jobs=jobs,
        sizes=sizes,
    )
    # finally: the progress line is ended before an error message is printed.
    try:
        with contextlib.closing(stream):
            for frame_num, saliency in stream:
                features.append(_reduce(frame_num, saliency))
                if on_map is not None:
                    on_map(frame_num, saliency)
                if progress is not None:
                    progress.update()
    finally:
        if progress is not None:
            progress.close()
    seconds = time.perf_counter() - start
    if not features:
        raise NoFramesSelectedError(
            "no frames were selected: check --frames and --subsample (frames=, subsample= in "
            "Python)"
        )
    return ExtractionResult(
        features=tuple(features),
        infer_size=sizes["infer"],
        frame_size=sizes["frame"],
        seconds=seconds,
    )


def _label(model: LoadedModel) -> str:
    return f"model {model.model_id}" if model.model_id else f"model {model.path}"


def _check_map(frame_num: int, saliency: np.ndarray) -> None:
    # min and max propagate NaN and expose infinities, so they double as the
    # finiteness check (one pass fewer per frame than np.isfinite).
    lo, hi = float(saliency.min()), float(saliency.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ExtractionError(
            f"frame {frame_num}: the model produced NaN or infinite values: the model is "
            "broken for this input; try another model (--model) or report it"
        )
    if lo < -RANGE_SLACK or hi > 1.0 + RANGE_SLACK:
        raise ExtractionError(
            f"frame {frame_num}: saliency_map values in [{lo:.4g}, {hi:.4g}] are outside "
            "[0, 1]: the model breaks the deployment contract"
        )


def _reduce(frame_num: int, saliency: np.ndarray) -> FrameFeatures:
    """The features of one checked map (see :func:`_check_map`)."""
    # One float64 copy, centred and squared in place: the float64 result of
    # mean(dtype=float64) and var(dtype=float64) in about 0.6 of their time.
    # No np.dot: OpenBLAS would wake its own threads on the cores inference uses.
    work = saliency.astype(np.float64).reshape(-1)
    mean = float(work.sum()) / work.size
    work -= mean
    np.square(work, out=work)
    return FrameFeatures(frame_num, mean, float(work.sum()) / work.size)
