"""The Python API: per-frame saliency features and maps of a video in a few lines.

What ``vmafx-saliency extract`` does, for pipelines that call it from Python::

    from vmafx_saliency import extract_features, saliency_maps

    features = extract_features("clip.mp4", frames=(0, 100), subsample=2)
    for frame in features.frames:
        print(frame.frame_num, frame.saliency_mean, frame.saliency_var)
    print(features.pooled["saliency_mean"].mean, features.to_json()[:40])

    for frame_num, saliency in saliency_maps("clip.mp4", frames=(0, 5)):
        print(frame_num, saliency.shape, float(saliency.mean()))

The model is the registry's ``mobilesal`` default (the shipped
``saliency_student_v2_int8``) unless ``model`` names a registry id (a string)
or an ONNX file (a path, with its ``.sidecar.json`` beside it or named by
``sidecar``), and it is loaded through the loader's gate, as on the command line;
or ``model`` is what :func:`load_model` returned, for many videos, never loaded again.
Errors are :class:`~vmafx_saliency.errors.VmafxSaliencyError` subclasses whose
message says what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from vmafx_saliency._util import shown, str_path
from vmafx_saliency.errors import UsageError
from vmafx_saliency.video.extract import MAX_THREADS, FrameFeatures, InferSize
from vmafx_saliency.video.job import ModelChoice, Outputs, ReadyModel, VideoInput
from vmafx_saliency.video.job import load_model as _load
from vmafx_saliency.video.output import PooledStats, RunInfo

if TYPE_CHECKING:
    import numpy as np

    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.video.output import FrameRecord

__all__ = [
    "Features",
    "FrameFeatures",
    "ModelRef",
    "PooledStats",
    "RawVideo",
    "RunInfo",
    "VideoRef",
    "extract_features",
    "load_model",
    "saliency_maps",
]

VideoRef = str | os.PathLike[str]
# A registry id (str), or an ONNX file (a Path, or a str ending in .onnx).
ModelRef = str | os.PathLike[str]


@dataclass(frozen=True, kw_only=True)
class RawVideo:
    """The geometry of headerless raw YUV, which carries none (``.yuv``, a raw pipe).

    ``pixel_format``: ``yuv420p`` (the default), ``yuv422p``, ``yuv444p``,
    ``yuv400p`` or their 10-bit ``...10le`` forms.
    """

    width: int
    height: int
    pixel_format: str = "yuv420p"

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(
                    f"RawVideo {name}={shown(value)}: give a whole number of pixels >= 1"
                )
        if not isinstance(self.pixel_format, str):
            raise UsageError(
                f"RawVideo pixel_format={shown(self.pixel_format)}: give a name, e.g. 'yuv420p'"
            )


@dataclass(frozen=True, kw_only=True)
class Features:
    """The features of one run: the numbers ``extract`` writes, unrounded.

    ``frames`` in order, each with ``frame_num`` (the frame's number in the
    video), ``saliency_mean`` and ``saliency_var``; ``pooled`` maps each
    feature to vmaf's min, max, mean and harmonic mean over those frames;
    ``run`` says which model ran, at which size, on what.
    """

    frames: tuple[FrameFeatures, ...]
    pooled: Mapping[str, PooledStats]
    run: RunInfo

    def to_json(self) -> str:
        """The JSON ``extract`` writes (``docs/output.md``, ``schemas/features.schema.json``)."""
        from vmafx_saliency.video.output import render_json

        return render_json(self._records(), self.run)

    def to_xml(self) -> str:
        """The XML ``extract --format xml`` writes."""
        from vmafx_saliency.video.output import render_xml

        return render_xml(self._records(), self.run)

    def to_csv(self) -> str:
        """The CSV ``extract --format csv`` writes."""
        from vmafx_saliency.video.output import render_csv

        return render_csv(self._records(), self.run)

    def _records(self) -> tuple[FrameRecord, ...]:
        from vmafx_saliency.video.output import FrameRecord

        return tuple(FrameRecord(f.frame_num, f.metrics()) for f in self.frames)


def _choice(
    model: ModelRef | LoadedModel | None,
    *,
    signed: bool,
    provider: str | None = None,
    sidecar: str | os.PathLike[str] | None = None,
) -> ModelChoice | ReadyModel:
    from vmafx_saliency.supply.loader import LoadedModel

    if isinstance(model, LoadedModel):
        _check_provider(provider)
        return _ready(model, signed=signed, provider=provider, sidecar=sidecar)
    return _model_choice(model, signed=signed, provider=provider, sidecar=sidecar)


def _check_provider(provider: str | None) -> None:
    from vmafx_saliency.supply.providers import PROVIDERS

    if provider is not None and provider not in PROVIDERS:
        known = ", ".join(map(repr, PROVIDERS))
        raise UsageError(f"provider={shown(provider)}: give one of {known}")


def _model_choice(
    model: ModelRef | None,
    *,
    signed: bool,
    provider: str | None,
    sidecar: str | os.PathLike[str] | None,
) -> ModelChoice:
    """What to load: the default, a registry id or an ONNX file (with its sidecar)."""
    from vmafx_saliency.supply.providers import DEFAULT_PROVIDER

    _check_provider(provider)
    provider = provider or DEFAULT_PROVIDER
    sidecar_path = _sidecar_path(sidecar)
    if model is None:  # the default, or the file $VMAF_MOBILESAL_MODEL_PATH names
        return ModelChoice(sidecar=sidecar_path, signed=signed, provider=provider)
    text = str_path(model)
    if text and (isinstance(model, os.PathLike) or text.endswith(".onnx")):
        return ModelChoice(
            model_path=Path(text), sidecar=sidecar_path, signed=signed, provider=provider
        )
    if not isinstance(model, str) or not model:
        raise UsageError(
            f"model={shown(model)}: give a registry id, a path to an ONNX file, or None "
            "(the default)"
        )
    if sidecar_path is not None:
        raise UsageError(
            f"sidecar={shown(sidecar)} goes with a model file (a Path, or a str ending in .onnx), "
            f"and model={shown(model)} is a registry id, whose entry names its sidecar"
        )
    return ModelChoice(model_id=model, signed=signed, provider=provider)


def _ready(
    loaded: LoadedModel, *, signed: bool, provider: str | None, sidecar: object
) -> ReadyModel:
    """A model :func:`load_model` returned, run without a second load, if the arguments
    agree with how it was loaded."""
    if sidecar is not None:
        raise UsageError(
            f"sidecar={shown(sidecar)} goes with a model file: a loaded model keeps the "
            "sidecar it was loaded with"
        )
    if signed and loaded.signature is None:
        raise UsageError(
            "signed=True, and this model was loaded without its signature verified: load "
            "it with load_model(..., signed=True)"
        )
    if provider is not None and provider != loaded.provider:
        raise UsageError(
            f"provider={shown(provider)}, and this model was loaded on {loaded.provider!r}: "
            f"load it with load_model(..., provider={provider!r}), or leave provider out"
        )
    return ReadyModel.of(loaded)


def _sidecar_path(sidecar: object) -> Path | None:
    if sidecar is None:
        return None
    text = str_path(sidecar)
    if text is None:
        raise UsageError(f"sidecar={shown(sidecar)}: give the sidecar JSON's path, or None")
    return Path(text)


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _frame_range(frames: object) -> tuple[int, int | None]:
    if frames is None:
        return 0, None
    if isinstance(frames, tuple) and len(frames) == 2:
        start, end = frames
        if _whole(start) and start >= 0:
            if end is None:
                return start, None
            if _whole(end) and end > start:
                return start, end
    raise UsageError(
        f"frames={shown(frames)}: give (start, end) with 0 <= start < end (end exclusive, or "
        "None for the rest), or None for every frame"
    )


def _check_threads(threads: object) -> None:
    if threads is not None and not (_whole(threads) and 1 <= threads <= MAX_THREADS):
        raise UsageError(
            f"threads={shown(threads)}: give a whole number from 1 to {MAX_THREADS}, or None "
            "(all cores)"
        )


def _check_run(*, subsample: object, threads: object, raw: object) -> None:
    if not (_whole(subsample) and subsample >= 1):
        raise UsageError(f"subsample={shown(subsample)}: give a whole number >= 1")
    _check_threads(threads)
    if raw is not None and not isinstance(raw, RawVideo):
        raise UsageError(f"raw={shown(raw)}: give RawVideo(width=..., height=...) or None")


def _infer_size(infer_size: str | None) -> InferSize:
    from vmafx_saliency.video.extract import parse_infer_size

    if infer_size is None:
        return None
    if not isinstance(infer_size, str):
        raise UsageError(
            f"infer_size={shown(infer_size)}: give 'WIDTHxHEIGHT' (e.g. '320x320'), 'native' "
            "or None"
        )
    try:
        return parse_infer_size(infer_size)
    except UsageError as exc:  # the same rule, in the API's words
        raise UsageError(str(exc).replace("--infer-size ", "infer_size=", 1)) from exc


def _color_range(color_range: str | None) -> str | None:
    from vmafx_saliency.video.frames.base import check_color_range

    if color_range is not None and not isinstance(color_range, str):
        raise UsageError(f"color_range={shown(color_range)}: give 'limited', 'full' or None")
    try:
        return check_color_range(color_range)
    except UsageError as exc:  # the same rule, in the API's words
        raise UsageError(str(exc).replace("--color-range ", "color_range=", 1)) from exc


def _video(
    video: VideoRef,
    *,
    frames: tuple[int, int | None] | None,
    subsample: int,
    raw: RawVideo | None,
    color_range: str | None,
) -> VideoInput:
    from vmafx_saliency.video.frames.stdin import video_path

    start, end = _frame_range(frames)
    return VideoInput(
        path=video_path(video),
        width=raw.width if raw else None,
        height=raw.height if raw else None,
        pixel_format=raw.pixel_format if raw else None,
        color_range=_color_range(color_range),
        start=start,
        end=end,
        subsample=subsample,
    )


def extract_features(  # noqa: PLR0913 -- the public API: one keyword per option of 'extract'
    video: VideoRef,
    *,
    model: ModelRef | LoadedModel | None = None,
    sidecar: str | os.PathLike[str] | None = None,
    frames: tuple[int, int | None] | None = None,
    subsample: int = 1,
    threads: int | None = None,
    raw: RawVideo | None = None,
    signed: bool = False,
    infer_size: str | None = None,
    provider: str | None = None,
    color_range: str | None = None,
) -> Features:
    """Per-frame ``saliency_mean`` and ``saliency_var`` of a video, and their pooling.

    Args:
        video: a file (mp4, mkv, ... through PyAV; ``.y4m``; raw ``.yuv`` with
            ``raw``) or ``"-"`` for standard input.
        model: ``None`` for the registry's ``mobilesal`` default (the shipped
            ``saliency_student_v2_int8``), a registry id such as
            ``"u2netp_mirror_v1"``, or an ONNX file (a ``Path``, or a string
            ending in ``.onnx``) with its ``<name>.sidecar.json`` beside it or
            named by ``sidecar``. ``None`` also honours
            ``$VMAF_MOBILESAL_MODEL_PATH`` when it is set (a file, as above),
            as the command line does. Or a model :func:`load_model` returned,
            run without a second load (for many videos).
        sidecar: the pre-processing JSON of a model file, where it is not
            beside it (``--sidecar``); a registered model uses its entry's, a
            loaded model its own.
        frames: ``(start, end)``, ``end`` exclusive or ``None`` for the rest;
            ``None`` for every frame.
        subsample: every N-th frame from ``start``, as vmaf's ``--subsample``.
        threads: inference threads; ``None`` for all cores. With a loaded
            model: frames at once for a small model, or one loaded with
            ``threads=1``; else ``None`` (its session's threads).
        raw: the geometry of headerless raw YUV (:class:`RawVideo`).
        signed: require the model's verified Sigstore signature (a loaded
            model must have been loaded with it).
        infer_size: ``"WIDTHxHEIGHT"`` or ``"native"``, overriding the
            sidecar's inference size (``"320x320"`` for the shipped models).
        provider: ONNX Runtime's execution provider: ``None`` for ``"cpu"`` (or
            a loaded model's own), or ``"cpu"``,
            ``"cuda"``, ``"tensorrt"``, ``"openvino"``, ``"coreml"`` or ``"dml"``;
            one the installed onnxruntime lacks, or that does not start, is an
            error, never a silent fallback. ``run.provider`` says which ran.
        color_range: ``"limited"`` or ``"full"``, overriding what the video says
            (or does not say: raw YUV is taken as limited range), as
            ``--color-range``; ``None`` to trust the video.

    Returns:
        :class:`Features`: ``frames`` (each a :class:`FrameFeatures`),
        ``pooled`` (feature name -> :class:`PooledStats`) and ``run``
        (:class:`RunInfo`: model id and sha256, sizes as (width, height)).

    Raises:
        VmafxSaliencyError: a subclass saying what is wrong and what to do: a
            bad argument (:class:`~vmafx_saliency.errors.UsageError`), a video
            that cannot be read (:class:`~vmafx_saliency.errors.VideoError`), a
            model the registry or the loader's gate refuses.
    """
    from vmafx_saliency.video.job import run_job
    from vmafx_saliency.video.output import pool_metrics

    _check_run(subsample=subsample, threads=threads, raw=raw)
    job = run_job(
        _video(video, frames=frames, subsample=subsample, raw=raw, color_range=color_range),
        _choice(model, signed=signed, provider=provider, sidecar=sidecar),
        Outputs(output=None),
        infer_size=_infer_size(infer_size),
        threads=threads,
    )
    return Features(frames=job.extraction.features, pooled=pool_metrics(job.records), run=job.run)


def saliency_maps(  # noqa: PLR0913 -- the arguments of extract_features
    video: VideoRef,
    *,
    model: ModelRef | LoadedModel | None = None,
    sidecar: str | os.PathLike[str] | None = None,
    frames: tuple[int, int | None] | None = None,
    subsample: int = 1,
    threads: int | None = None,
    raw: RawVideo | None = None,
    signed: bool = False,
    infer_size: str | None = None,
    provider: str | None = None,
    color_range: str | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame number, saliency map)`` for each selected frame, streaming.

    Each map is the model's float32 ``[H, W]`` output at the inference size
    (320x320 for the shipped models), values in [0, 1]. Frames are decoded
    ahead while earlier ones are inferred, and memory does not grow with the
    video's length; stop iterating (or close the iterator) to stop early. The
    arguments are those of :func:`extract_features`, and are checked when it is
    called; the video is opened and the model loaded at the first ``next``.
    """
    _check_run(subsample=subsample, threads=threads, raw=raw)
    size = _infer_size(infer_size)
    chosen = _video(video, frames=frames, subsample=subsample, raw=raw, color_range=color_range)
    choice = _choice(model, signed=signed, provider=provider, sidecar=sidecar)
    if isinstance(choice, ReadyModel):
        choice.plan(threads)  # its threads= refused here, as the docstring says, not at next()
    return _maps(chosen, choice, size=size, threads=threads)


def _maps(
    chosen: VideoInput, choice: ModelChoice | ReadyModel, *, size: InferSize, threads: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    from vmafx_saliency.video.extract import saliency_stream
    from vmafx_saliency.video.frames import select_frames
    from vmafx_saliency.video.job import load_for_video

    with chosen.open() as source:
        loaded, pre, plan = load_for_video(choice, threads=threads)
        selected = select_frames(
            source, start=chosen.start, end=chosen.end, subsample=chosen.subsample
        )
        yield from saliency_stream(
            selected,
            loaded,
            pre=pre,
            color_range=source.info.color_range,
            infer_size=size,
            jobs=plan.frames,
        )


def load_model(
    model: ModelRef | None = None,
    *,
    sidecar: str | os.PathLike[str] | None = None,
    signed: bool = False,
    threads: int | None = None,
    provider: str | None = None,
) -> LoadedModel:
    """A model through the loader's gate: path, pin, signature (``signed``), scan, contract.

    Its ONNX Runtime ``session`` takes ``{"input": float32 [1, 3, H, W]}`` and
    returns ``saliency_map``; its ``sidecar`` attribute holds the pre-processing.
    The arguments are those of :func:`extract_features`. Pass the result as
    ``model=`` to :func:`extract_features` or :func:`saliency_maps` to load a
    model once for many videos: a small model (the shipped students), or one
    loaded with ``threads=1``, infers ``threads=`` frames side by side there, as
    the extractor does; a large one, one frame at a time on its own threads.
    """
    from vmafx_saliency.supply.loader import LoadedModel

    if isinstance(model, LoadedModel):
        raise UsageError(
            "model= is a model load_model already loaded: pass it to extract_features or "
            "saliency_maps as it is"
        )
    _check_threads(threads)
    choice = _model_choice(model, signed=signed, provider=provider, sidecar=sidecar)
    loaded, _ = _load(choice, threads=threads)
    return loaded
