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
(``benchmarks/extract_throughput.py`` measures both; see :class:`InferencePlan`).
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
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import numpy as np

from vmafx_saliency.errors import ExtractionError, OutputExistsError, UsageError
from vmafx_saliency.video.resize import resize_plane

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.supply.registry import ModelEntry, Preprocessing
    from vmafx_saliency.video.frames import Frame, FrameSource
    from vmafx_saliency.video.output import FrameRecord, RunInfo

FEATURES = ("saliency_mean", "saliency_var")
# Sigmoid outputs can touch 0 or 1; beyond this slack the model is broken.
RANGE_SLACK = 1e-5
QUEUE_DEPTH = 4

InferSize = tuple[int, int] | Literal["native"] | None  # None: as the sidecar says


def default_threads() -> int:
    """Inference threads: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# Both models halve the plane five times (u2netp's pools, the student's strided
# stages): below 32 pixels a side their deepest stage sees less than a pixel.
MIN_INFER_SIDE = 32


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
        luma = resize_plane(luma, size)
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


@dataclass(frozen=True)
class FrameFeatures:
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
        self.stream.write("\r" + text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


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


def _run(session: Any, tensor: np.ndarray) -> np.ndarray:
    (saliency,) = session.run(["saliency_map"], {"input": tensor})
    return np.asarray(saliency)


def inferred(
    session: Any, tensors: Iterable[tuple[int, np.ndarray]], *, jobs: int = 1
) -> Generator[tuple[int, np.ndarray], None, None]:
    """``(frame number, saliency map)`` for each input tensor, in input order.

    With ``jobs`` > 1, that many ``session.run`` calls are in flight at once
    (ONNX Runtime sessions are thread-safe and release the GIL); at most
    ``2 * jobs`` inputs wait, so memory stays bounded. An error in one run is
    raised here, in order; closing early waits for the runs in flight.
    """
    if jobs == 1:
        for frame_num, tensor in tensors:
            yield frame_num, _run(session, tensor)
        return
    pending: deque[tuple[int, Future[np.ndarray]]] = deque()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="vmafx-infer") as pool:
        try:
            for frame_num, tensor in tensors:
                pending.append((frame_num, pool.submit(_run, session, tensor)))
                # A second batch queued behind the running one keeps every
                # worker busy while this thread reduces and fetches.
                if len(pending) >= 2 * jobs:
                    done_num, future = pending.popleft()
                    yield done_num, future.result()
            while pending:
                done_num, future = pending.popleft()
                yield done_num, future.result()
        finally:
            for _, future in pending:
                future.cancel()


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

    ``jobs`` frames are inferred at once (give the session one intra-op thread
    then: see :func:`load_model`). Features and ``on_map`` calls keep frame order.
    """
    sizes: dict[str, tuple[int, int]] = {}

    def work(frame: Frame) -> tuple[int, np.ndarray]:
        frame_hw = (int(frame.luma.shape[0]), int(frame.luma.shape[1]))
        size = resolve_size(pre, infer_size, frame_hw)
        sizes.setdefault("frame", frame_hw)
        sizes.setdefault("infer", size)
        tensor = preprocess(
            frame.luma, bit_depth=frame.bit_depth, color_range=color_range, pre=pre, size=size
        )
        return frame.index, tensor

    if jobs < 1:
        raise UsageError(f"--threads {jobs}: give a whole number >= 1")
    features: list[FrameFeatures] = []
    start = time.perf_counter()
    # closing(): on any error the worker is stopped and joined here, before the
    # caller closes the frame source it reads from; finally: the progress line is
    # ended before an error message is printed.
    try:
        with (
            contextlib.closing(pipelined(frames, work)) as stream,
            contextlib.closing(inferred(model.session, stream, jobs=jobs)) as maps,
        ):
            for frame_num, saliency in maps:
                features.append(_reduce(frame_num, saliency))
                if on_map is not None:
                    on_map(frame_num, saliency[0, 0])
                if progress is not None:
                    progress.update()
    finally:
        if progress is not None:
            progress.close()
    seconds = time.perf_counter() - start
    if not features:
        raise ExtractionError("no frames were selected: check --frames and --subsample")
    return ExtractionResult(
        features=tuple(features),
        infer_size=sizes["infer"],
        frame_size=sizes["frame"],
        seconds=seconds,
    )


def _reduce(frame_num: int, saliency: np.ndarray) -> FrameFeatures:
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
    # One float64 copy, centred and squared in place: the float64 result of
    # mean(dtype=float64) and var(dtype=float64) in about 0.6 of their time.
    # No np.dot: OpenBLAS would wake its own threads on the cores inference uses.
    work = saliency.astype(np.float64).reshape(-1)
    mean = float(work.sum()) / work.size
    work -= mean
    np.square(work, out=work)
    return FrameFeatures(frame_num, mean, float(work.sum()) / work.size)


# --- the whole job: video in, vmaf-format features out -------------------------

MODEL_PATH_ENV = "VMAF_MOBILESAL_MODEL_PATH"
EXTRACTOR = "mobilesal"


@dataclass(frozen=True, kw_only=True)
class ModelChoice:
    """Which model: a registry id, an ad-hoc file, or (neither) the registry default."""

    model_id: str | None = None
    model_path: Path | None = None
    sidecar: Path | None = None
    signed: bool = False


def sidecar_beside(model_path: Path) -> Path | None:
    """``x.onnx`` -> ``x.sidecar.json`` when it exists (the repository's convention)."""
    candidate = model_path.with_name(f"{model_path.stem}.sidecar.json")
    return candidate if candidate.is_file() else None


def _locate(choice: ModelChoice) -> tuple[Path, Path] | ModelEntry:
    """An ad-hoc (model, sidecar) pair, or the registry entry the choice names."""
    from vmafx_saliency.supply.registry import Registry

    path = choice.model_path
    if path is None and choice.model_id is None and os.environ.get(MODEL_PATH_ENV):
        path = Path(os.environ[MODEL_PATH_ENV])
    if choice.sidecar is not None and path is None:
        raise UsageError(
            f"--sidecar {choice.sidecar} goes with --model-path (or ${MODEL_PATH_ENV}): a "
            "registered model uses the sidecar its registry entry names"
        )
    if path is not None:
        if choice.model_id is not None:
            raise UsageError("give --model or --model-path, not both")
        if choice.signed:
            # Fail closed: an ad-hoc file has no registry entry naming a bundle and a key.
            raise UsageError(
                f"--signed needs a registered model, and {path} is an ad-hoc file: register "
                "it with its bundle ('vmafx-saliency registry add') and pass --model ID"
            )
        sidecar_path = choice.sidecar or sidecar_beside(path)
        if sidecar_path is None:
            raise UsageError(
                f"{path}: no sidecar JSON declares its pre-processing: pass --sidecar FILE "
                f"or put {path.stem}.sidecar.json beside it"
            )
        return path, sidecar_path
    registry = Registry.load()
    return registry.get(choice.model_id) if choice.model_id else registry.default_for(EXTRACTOR)


def load_model(choice: ModelChoice, *, threads: int | None) -> tuple[LoadedModel, Preprocessing]:
    """Load the chosen model through the loader's gate; ``threads``: intra-op threads."""
    return _load_found(_locate(choice), signed=choice.signed, threads=threads)


def _load_found(
    found: tuple[Path, Path] | ModelEntry, *, signed: bool, threads: int | None
) -> tuple[LoadedModel, Preprocessing]:
    from vmafx_saliency.supply import loader
    from vmafx_saliency.supply.registry import Sidecar

    if isinstance(found, tuple):
        path, sidecar_path = found
        sidecar = Sidecar.load(sidecar_path)
        loaded = loader.load_ad_hoc(path, sidecar=sidecar, threads=threads)
        return loaded, sidecar.preprocessing
    policy = loader.Policy.SIGNED if signed else loader.Policy.PINNED
    loaded = loader.load_entry(found, policy=policy, threads=threads)
    if loaded.sidecar is None:  # load_entry always reads the sidecar; keep mypy honest
        raise UsageError(f"{found.id}: no sidecar")
    return loaded, loaded.sidecar.preprocessing


# Models up to this size (the student: 0.74 MB) infer several frames at once, one
# thread each; larger ones (the mirror: 4.65 MB) one frame at a time on all the
# threads: on 2 cores the mirror's frames gain 3 % side by side (8.53 vs 8.31
# frames/s) while each frame in flight holds its own activations (peak RSS 752
# vs 471 MiB, growing with the cores). Figures: benchmarks/extract_throughput.py.
SMALL_MODEL_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class InferencePlan:
    """How ``threads`` inference threads are spent on a video."""

    frames: int  # frames inferred at once (extract's ``jobs``)
    threads_per_frame: int  # ONNX Runtime intra-op threads of the session

    @classmethod
    def for_model(cls, model_bytes: int, threads: int) -> InferencePlan:
        if threads < 1:
            raise UsageError(f"--threads {threads}: give a whole number >= 1")
        if model_bytes <= SMALL_MODEL_BYTES:
            return cls(frames=threads, threads_per_frame=1)
        return cls(frames=1, threads_per_frame=threads)


def load_for_video(
    choice: ModelChoice, *, threads: int | None
) -> tuple[LoadedModel, Preprocessing, InferencePlan]:
    """:func:`load_model` with the session threads of the plan for this model's size."""
    found = _locate(choice)
    onnx = found[0] if isinstance(found, tuple) else found.onnx
    try:
        size = onnx.stat().st_size  # a hint for the plan; the loader checks the file itself
    except OSError:
        size = 0  # the loader reports the missing file, in its own words
    plan = InferencePlan.for_model(size, threads or default_threads())
    # The location found above, not a second look-up (the registry is read once).
    loaded, pre = _load_found(found, signed=choice.signed, threads=plan.threads_per_frame)
    return loaded, pre, plan


@dataclass(frozen=True, kw_only=True)
class VideoInput:
    """A video and what the user said about it (raw YUV needs the geometry)."""

    path: Path
    width: int | None = None
    height: int | None = None
    pixel_format: str | None = None
    fps: float | None = None
    color_range: str | None = None
    start: int = 0
    end: int | None = None
    subsample: int = 1

    def open(self) -> FrameSource:
        """Open the video for streaming with the geometry and overrides given."""
        from vmafx_saliency.video.frames import open_video

        return open_video(
            self.path,
            width=self.width,
            height=self.height,
            pixel_format=self.pixel_format,
            fps=self.fps,
            color_range=self.color_range,
        )


@dataclass(frozen=True, kw_only=True)
class Outputs:
    """Where the results go; every file is written atomically at the end."""

    output: Path | Literal["-"] | None = "-"
    fmt: Literal["json", "xml", "csv"] = "json"
    merge_into: Path | None = None
    merge_output: Path | None = None
    save_maps: Path | None = None
    maps_every: int = 1
    plot: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class JobResult:
    records: tuple[FrameRecord, ...]
    run: RunInfo
    extraction: ExtractionResult
    written: tuple[Path, ...]


def _check_outputs(outputs: Outputs) -> None:
    """Refuse before any work is done, so a refusal costs nothing and writes nothing."""
    from vmafx_saliency._util import check_can_write, require

    if outputs.maps_every < 1:
        raise UsageError(f"--maps-every {outputs.maps_every}: give a whole number >= 1")
    # Every path a run reads or writes, once: -o onto the --merge-into file would
    # replace the vmaf scores with ours, -o onto the maps folder fail at the end.
    named: dict[Path, str] = {}
    for flag, path in (
        ("--merge-into", outputs.merge_into),
        ("--merge-output", outputs.merge_output),
        ("--output", None if outputs.output in (None, "-") else Path(outputs.output)),
        ("--plot", outputs.plot),
        ("--save-maps", outputs.save_maps),
    ):
        if path is None:
            continue
        if path.resolve() in named:
            raise UsageError(
                f"{flag} {path} is also {named[path.resolve()]}: give each its own path"
            )
        named[path.resolve()] = flag
    if outputs.output not in (None, "-"):
        check_can_write(Path(outputs.output), force=outputs.force)
    if outputs.plot is not None:
        check_can_write(outputs.plot, force=outputs.force)
        agg = require("matplotlib.backends.backend_agg", purpose="--plot")
        fmt = outputs.plot.suffix.lstrip(".").lower() or "png"
        if fmt not in agg.FigureCanvasAgg.get_supported_filetypes():
            raise UsageError(
                f"--plot {outputs.plot}: matplotlib cannot write {fmt!r} files; "
                "use .png, .svg or .pdf"
            )
    if outputs.save_maps is not None:
        check_maps_folder(outputs.save_maps, force=outputs.force)
    if outputs.merge_into is not None:
        if not outputs.merge_into.is_file():
            raise UsageError(f"--merge-into {outputs.merge_into}: no such file")
        target = outputs.merge_output or outputs.merge_into
        if target == outputs.merge_into and not outputs.force:
            raise UsageError(
                f"--merge-into {outputs.merge_into} would modify that file in place: pass "
                "--merge-output PATH for a new file, or --force to rewrite it"
            )
        if target != outputs.merge_into:
            check_can_write(target, force=outputs.force)


def check_maps_folder(folder: Path, *, force: bool) -> None:
    """Refuse a ``--save-maps`` folder that is a file, or that holds maps, unless --force.

    The folder may exist and hold other files (this run's JSON, the user's notes):
    those are never touched. --force replaces only the maps a previous run wrote,
    all of them, so no stale frame is taken for one of this run's.
    """
    from vmafx_saliency.video.output import saved_maps

    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise UsageError(f"--save-maps {folder}: not a folder; give a folder for the PNG maps")
    old = saved_maps(folder)
    if old and not force:
        raise OutputExistsError(
            f"{folder} already holds saliency maps ({old[0].name}, ...): pass --force to "
            "replace them (other files there are kept), or give another folder"
        )


class _MapWriter:
    """Writes every N-th map into a hidden folder, moved into place at the end."""

    def __init__(self, target: Path, every: int, *, force: bool) -> None:
        import tempfile

        target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        self.every = every
        self.force = force
        self.count = 0
        # Beside the target when it is new (one rename), inside it when it exists.
        home = target if target.is_dir() else target.parent
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name or 'maps'}.", dir=home))

    def __call__(self, frame_num: int, saliency: np.ndarray) -> None:
        from vmafx_saliency.video.output import save_map

        if self.count % self.every == 0:
            save_map(self.tmp, frame_num, saliency)
        self.count += 1

    def commit(self) -> None:
        from vmafx_saliency.video.output import saved_maps

        if not self.target.is_dir():
            self.tmp.chmod(0o755)
            self.tmp.replace(self.target)
            return
        # The folder exists (the user's, or made by this run's -o/--plot inside it):
        # swap the maps only, file by file, and leave every other file where it is.
        check_maps_folder(self.target, force=self.force)  # maps may have appeared since
        for old in saved_maps(self.target):
            old.unlink()
        for new in sorted(self.tmp.iterdir()):
            new.replace(self.target / new.name)
        self.tmp.rmdir()

    def discard(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


def run_job(
    video: VideoInput,
    model: ModelChoice,
    outputs: Outputs,
    *,
    infer_size: InferSize = None,
    threads: int | None = None,
    progress: bool = False,
) -> JobResult:
    """The extractor end to end: open, load, extract, write. No partial output on failure.

    ``threads`` (default: the cores available) are spent as
    :class:`InferencePlan` says: on a small model, that many frames at once.
    """
    from vmafx_saliency import __version__
    from vmafx_saliency.video.frames import select_frames
    from vmafx_saliency.video.output import FrameRecord, RunInfo

    _check_outputs(outputs)
    source = video.open()
    with source:
        info = source.info
        loaded, pre, plan = load_for_video(model, threads=threads)
        decoded = 0

        def counted(frames: Iterable[Frame]) -> Iterator[Frame]:
            # Every frame read, including those --frames/--subsample skip: vmaf's
            # fps counts every picture it reads (see output.RunInfo).
            nonlocal decoded
            for frame in frames:
                decoded += 1
                yield frame

        frames = select_frames(
            counted(source), start=video.start, end=video.end, subsample=video.subsample
        )
        total = _expected_count(info.frame_count, video)
        maps = (
            _MapWriter(outputs.save_maps, outputs.maps_every, force=outputs.force)
            if outputs.save_maps
            else None
        )
        try:
            result = extract(
                frames,
                loaded,
                pre=pre,
                color_range=info.color_range,
                infer_size=infer_size,
                progress=Progress(total=total, enabled=progress),
                on_map=maps,
                jobs=plan.frames,
            )
        except BaseException:
            if maps is not None:
                maps.discard()
            raise
    records = tuple(FrameRecord(f.frame_num, f.metrics()) for f in result.features)
    (frame_h, frame_w), (infer_h, infer_w) = result.frame_size, result.infer_size
    native = result.infer_size == result.frame_size
    run = RunInfo(
        version=f"vmafx-saliency {__version__}",
        fps=decoded / result.seconds if result.seconds > 0 else 0.0,
        model_id=loaded.model_id,
        model_sha256=loaded.sha256,
        infer_size=None if native else (infer_w, infer_h),
        frame_size=(frame_w, frame_h),
        map_note=None
        if native
        else f"saliency_map computed at {infer_w}x{infer_h}, frame is {frame_w}x{frame_h}",
        subsample=video.subsample,
        source=str(video.path),
    )
    title = f"{video.path.name}: {loaded.model_id or 'ad hoc'}"
    written = _write_outputs(outputs, records, run, maps, title=title)
    return JobResult(records, run, result, tuple(written))


def _write_outputs(
    outputs: Outputs,
    records: tuple[FrameRecord, ...],
    run: RunInfo,
    maps: _MapWriter | None,
    *,
    title: str,
) -> list[Path]:
    """Write every output, or none: a failure removes the files this run created
    and the maps folder, so no partial result is left behind."""
    from vmafx_saliency.video.output import merge_into, plot_series, write_output

    written: list[Path] = []
    created: list[Path] = []

    def wrote(path: Path, existed: bool) -> None:
        written.append(path)
        if not existed:
            created.append(path)

    try:
        # The merge is the write most likely to be refused (frame numbers): do it first.
        if outputs.merge_into is not None:
            target = outputs.merge_output or outputs.merge_into
            existed = target.exists()
            wrote(
                merge_into(
                    outputs.merge_into, records, out=outputs.merge_output, force=outputs.force
                ),
                existed,
            )
        if outputs.output not in (None, "-"):
            path = Path(outputs.output)
            existed = path.exists()
            write_output(records, run, path=path, fmt=outputs.fmt, force=outputs.force)
            wrote(path, existed)
        if outputs.plot is not None:
            existed = outputs.plot.exists()
            plot_series(outputs.plot, records, title=title)
            wrote(outputs.plot, existed)
        if maps is not None:
            maps.commit()
            written.append(maps.target)
    except BaseException:
        if maps is not None:
            maps.discard()
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    # Standard output last: what is printed cannot be taken back.
    if outputs.output == "-":
        write_output(records, run, path="-", fmt=outputs.fmt, force=outputs.force)
    return written


def _expected_count(frame_count: int | None, video: VideoInput) -> int | None:
    if frame_count is None:
        return None
    end = frame_count if video.end is None else min(video.end, frame_count)
    span = max(end - video.start, 0)
    return (span + video.subsample - 1) // video.subsample
