"""The per-clip work, the same code in every executor: one clip -> two pooled numbers.

A :class:`ClipWorker` loads the model once through the loader gate and
computes clips: it opens the source, runs the extractor over the first N
frames and pools the per-frame ``saliency_mean`` and ``saliency_var`` with
:func:`aggregate`; a missing file, a decode failure or a model failure becomes
the clip's status. The in-process path, each process-pool worker (through
``_init_pool_worker`` and ``_compute_in_pool``, which the pool pickles by this
module's path) and each Ray actor hold one.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from vmafx_saliency.downstream.materialize.records import (
    Aggregator,
    Clip,
    ClipResult,
    Settings,
    Status,
)
from vmafx_saliency.errors import (
    ExtractionError,
    MaterializeError,
    ModelRunError,
    UsageError,
    VideoError,
)

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.supply.registry import Preprocessing
    from vmafx_saliency.video.frames import Frame

# --- aggregation ---------------------------------------------------------------


def aggregate(values: Sequence[float], aggregator: Aggregator, *, alpha: float) -> float:
    """Pool per-frame values into one: mean, exponential moving average, or max.

    The EMA starts at the first frame and ends at the last
    (``e = alpha * v + (1 - alpha) * e``), so late frames weigh most.
    """
    if not values:
        raise ValueError("aggregate() needs at least one value")
    if aggregator == "mean":
        # fsum: exact summation, so the result cannot depend on how the values arrived.
        return math.fsum(values) / len(values)
    if aggregator == "max":
        return max(values)
    ema = values[0]
    for value in values[1:]:
        ema = alpha * value + (1.0 - alpha) * ema
    return ema


# --- the per-clip work (the same code in every executor) ------------------------


class _Counted:
    """Counts the frames the source handed out, to tell 'no frames' from a model failure."""

    def __init__(self, frames: Iterable[Frame]) -> None:
        self._frames = frames
        self.count = 0

    def __iter__(self) -> Iterator[Frame]:
        for frame in self._frames:
            self.count += 1
            yield frame


def _load(settings: Settings) -> tuple[LoadedModel, Preprocessing]:
    from vmafx_saliency.video.job import load_model

    loaded, pre = load_model(settings.model, threads=settings.threads)
    if pre.colour_mode != "luma_tile":
        source = loaded.model_id or loaded.path
        raise MaterializeError(
            f"{source}: its sidecar declares colour mode {pre.colour_mode!r}; the materializer "
            "feeds luma only (luma_tile): use a model whose sidecar declares luma_tile"
        )
    return loaded, pre


class ClipWorker:
    """Holds one model session (loaded through the loader gate) and computes clips.

    The in-process path, each process-pool worker and each Ray actor hold one.
    """

    def __init__(self, settings: Settings) -> None:
        # A Ray node does not inherit the driver's environment. Fill in what the node
        # lacks, never replace what it has: a node's own jail stays in force.
        for name, value in settings.environment:
            os.environ.setdefault(name, value)
        self.settings = settings
        self.loaded, self.pre = _load(settings)

    def compute(self, clip: Clip) -> ClipResult:
        # Looked up on the module at call time, so tests can count or break the calls.
        from vmafx_saliency.video import extract as ex
        from vmafx_saliency.video.frames import RawYuvSource, open_video, select_frames

        path = clip.path
        sha = self.loaded.sha256

        def result(status: Status, message: str | None = None, **values: Any) -> ClipResult:
            return ClipResult(
                source=str(path),
                clip=clip,
                status=status,
                message=message,
                model_sha256=sha,
                **values,
            )

        if not path.exists():
            return result("missing-source", f"{path}: no such file")
        if not path.is_file():
            # A table names video files: a named pipe would block the worker for
            # as long as nobody writes to it, a device for ever.
            return result(
                "decode-failed", f"{path}: not a regular file (a folder, a pipe or a device)"
            )
        geometry = clip.geometry
        try:
            source = open_video(
                path,
                width=geometry.width,
                height=geometry.height,
                pixel_format=geometry.pixel_format,
            )
        except (VideoError, UsageError) as exc:
            # UsageError: raw YUV without geometry, or an unknown pixel format in the row.
            return result("decode-failed", str(exc))
        if isinstance(source, RawYuvSource) and source.leftover_bytes:
            # The extractor warns and goes on; in a table a wrong geometry would pass as
            # an "ok" row of meaningless numbers.
            source.close()
            return result(
                "decode-failed",
                f"{path}: {path.stat().st_size} bytes are not a whole number of "
                f"{geometry.width}x{geometry.height} {geometry.pixel_format or 'yuv420p'} frames: "
                "check the row's width, height and pixel_format",
            )
        with source:
            frames = _Counted(select_frames(source, end=self.settings.max_frames))
            try:
                extraction = ex.extract(
                    frames, self.loaded, pre=self.pre, color_range=source.info.color_range
                )
            except VideoError as exc:
                return result("decode-failed", str(exc))
            except ModelRunError as exc:
                # Run at the size its sidecar declares: no inference size to try here.
                return result("model-failed", f"{path}: {exc.detail}: try another model")
            except ExtractionError as exc:
                if frames.count == 0:
                    return result("decode-failed", f"{path}: no frame could be decoded")
                return result("model-failed", f"{path}: {exc}")
        features = extraction.features
        how = self.settings.aggregator
        alpha = self.settings.ema_alpha
        return result(
            "ok",
            saliency_mean=aggregate([f.saliency_mean for f in features], how, alpha=alpha),
            saliency_var=aggregate([f.saliency_var for f in features], how, alpha=alpha),
            frames=len(features),
        )

    def model_sha256(self) -> str:
        return self.loaded.sha256


# Process-pool workers keep their ClipWorker here: the initializer loads the model once.
_POOL_WORKER: ClipWorker | None = None


def _init_pool_worker(settings: Settings) -> None:
    global _POOL_WORKER
    # Ctrl-C reaches the whole process group: the driver says "interrupted" and cleans
    # up; a worker holds no output, so it just ends, without a traceback of its own.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # nohup, `cmd &`: stays so
        signal.signal(signal.SIGINT, _end_quietly)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # held while it started
    _POOL_WORKER = ClipWorker(settings)


def _end_quietly(signum: int, _frame: object) -> None:
    os._exit(128 + signum)


def _compute_in_pool(clip: Clip) -> ClipResult:
    if _POOL_WORKER is None:  # the initializer always runs first; keep mypy honest
        raise RuntimeError("process-pool worker used before its initializer ran")
    return _POOL_WORKER.compute(clip)
