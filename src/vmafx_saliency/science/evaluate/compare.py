"""``compare``: two models on the same clips through the extractor, and how far they agree.

Each model runs over each clip through :func:`extract.extract`; the report gives
the agreement of their per-frame ``saliency_mean`` series (correlation, mean
absolute difference, Kolmogorov-Smirnov) and of their block maps (block IoU),
per clip and over all clips.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vmafx_saliency._util import require
from vmafx_saliency.errors import ExtractionError, UsageError
from vmafx_saliency.science.evaluate.helpers import _finite_or_none
from vmafx_saliency.science.evaluate.metrics import MAP_THRESHOLD, block_grid, distribution, iou
from vmafx_saliency.science.evaluate.models import (
    EvalModel,
    ModelSpec,
    _threads,
    load_models,
    spec_inputs,
)
from vmafx_saliency.science.evaluate.report import (
    COMPARE_MARKER,
    _figure,
    _ReportDir,
    check_report_folder,
)
from vmafx_saliency.video.frames.stdin import check_rereadable
from vmafx_saliency.video.resize import resize_plane

if TYPE_CHECKING:
    from vmafx_saliency.video.job import VideoInput

COMPARE_SCHEMA = "vmafx-saliency/compare/v1"


@dataclass(frozen=True, kw_only=True)
class CompareOptions:
    videos: tuple[VideoInput, ...]
    models: tuple[ModelSpec, ModelSpec]
    report: Path
    force: bool = False
    threads: int | None = None
    signed: bool = False
    provider: str = "cpu"  # ONNX Runtime's execution provider, by short name
    progress: bool = False
    command: str = ""
    block: int = 16


@dataclass(frozen=True)
class ClipComparison:
    """Two models' per-frame ``saliency_mean`` on one clip (or all clips), and agreement."""

    video: str
    frames: tuple[int, ...]
    series_a: tuple[float, ...]
    series_b: tuple[float, ...]
    pearson: float | None  # None: fewer than 3 frames, or a constant series
    spearman: float | None
    mean_abs_diff: float
    ks_statistic: float
    ks_pvalue: float
    block_iou: float  # mean over frames

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "frames": len(self.frames),
            "pearson": self.pearson,
            "spearman": self.spearman,
            "mean_abs_diff": self.mean_abs_diff,
            "ks_statistic": self.ks_statistic,
            "ks_pvalue": self.ks_pvalue,
            "block_iou": self.block_iou,
            "a": distribution(self.series_a).to_json(),
            "b": distribution(self.series_b).to_json(),
            "series": {
                "frame": list(self.frames),
                "a": list(self.series_a),
                "b": list(self.series_b),
            },
        }


@dataclass(frozen=True)
class CompareResult:
    model_a: str
    model_b: str
    block: int
    clips: tuple[ClipComparison, ...]
    overall: ClipComparison
    command: str
    report: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": COMPARE_SCHEMA,
            "command": self.command,
            "models": [self.model_a, self.model_b],
            "block": self.block,
            "conventions": {
                "saliency_mean": "the extractor's per-frame plain mean of the raw map",
                "correlation": "Pearson and Spearman over frames (scipy.stats); null for fewer "
                "than 3 frames or a constant series",
                "mean_abs_diff": "mean over frames of |saliency_mean_a - saliency_mean_b|",
                "ks": "two-sample Kolmogorov-Smirnov statistic and p-value of the two "
                "per-frame distributions (scipy.stats.ks_2samp)",
                "block_iou": f"each map resized to the frame size, binarised at >= 0.5; blocks "
                f"of {self.block}x{self.block} frame pixels, salient when at least half their "
                "pixels are; IoU of the two models' salient-block sets per frame (1 when both "
                "are empty), averaged over frames",
            },
            "clips": [c.to_json() for c in self.clips],
            "overall": self.overall.to_json(),
        }


def _agreement(
    video: str,
    frames: Sequence[int],
    a: Sequence[float],
    b: Sequence[float],
    ious: Sequence[float],
) -> ClipComparison:
    stats = require("scipy.stats", purpose="compare", extra="eval")
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    pearson: float | None = None
    spearman: float | None = None
    # Correlation is undefined for a constant series and meaningless on two points.
    if len(xa) >= 3 and np.ptp(xa) > 0 and np.ptp(xb) > 0:
        pearson = _finite_or_none(float(stats.pearsonr(xa, xb)[0]))
        spearman = _finite_or_none(float(stats.spearmanr(xa, xb)[0]))
    with warnings.catch_warnings():
        # Where the exact p-value fails scipy falls back to the asymptotic one and warns
        # on stderr, between the command's own lines; the statistic is the same.
        warnings.simplefilter("ignore", RuntimeWarning)
        ks = stats.ks_2samp(xa, xb)
    return ClipComparison(
        video=video,
        frames=tuple(int(f) for f in frames),
        series_a=tuple(float(v) for v in xa),
        series_b=tuple(float(v) for v in xb),
        pearson=pearson,
        spearman=spearman,
        mean_abs_diff=float(np.mean(np.abs(xa - xb))),
        ks_statistic=float(ks.statistic),
        ks_pvalue=float(ks.pvalue),
        block_iou=float(np.mean(ious)),
    )


def _series(
    video: VideoInput, model: EvalModel, *, block: int, progress: bool, first: bool
) -> tuple[list[int], list[float], dict[int, np.ndarray]]:
    """One model over one clip through the extractor; the block grid of each frame's map."""
    from vmafx_saliency.video.job import extract_video

    grids: dict[int, np.ndarray] = {}
    with video.open() as source:
        info = source.info
        frame_hw = (info.height, info.width)

        def on_map(frame_num: int, saliency: np.ndarray) -> None:
            plane = np.asarray(saliency, dtype=np.float32)
            if plane.shape != frame_hw:
                plane = resize_plane(plane, frame_hw)
            # Only the small block grid is kept per frame, not the map.
            grids[frame_num] = block_grid(plane >= MAP_THRESHOLD, block)

        # The extractor's own run of a clip: a range past its end warns, or, when it
        # selects nothing, is refused naming the clip and its length.
        # One frame at a time: the model's session keeps the threads it was loaded with.
        result, _ = extract_video(
            source,
            video,
            model.loaded,
            model.pre,
            infer_size=None,
            progress=progress,
            on_map=on_map,
            warn_past_the_end=first,  # once a clip, not once a model
        )
    frames = [f.frame_num for f in result.features]
    return frames, [f.saliency_mean for f in result.features], grids


# A block a side of the largest frame the readers take (MAX_FRAME_PIXELS' 16384 wide).
MAX_BLOCK = 16384


def run_compare(options: CompareOptions) -> CompareResult:
    """Both models over every clip, the agreement per clip and over all clips."""
    reads = [("the video", v.path) for v in options.videos] + spec_inputs(options.models)
    check_report_folder(options.report, marker=COMPARE_MARKER, force=options.force, reads=reads)
    require("scipy.stats", purpose="compare", extra="eval")
    require("matplotlib", purpose="compare plots", extra="eval")
    if not options.videos:
        raise UsageError("give at least one video")
    if not 1 <= options.block <= MAX_BLOCK:
        raise UsageError(
            f"--block {options.block}: give 1 to {MAX_BLOCK} pixels (block= in Python); a "
            "block is a square of frame pixels"
        )
    for video in options.videos:
        check_rereadable(video.path, reads="compare reads each clip once per model")
    models = load_models(
        options.models,
        threads=_threads(options.threads),
        signed=options.signed,
        provider=options.provider,
    )
    a_model, b_model = models
    clips = []
    all_frames: list[int] = []
    all_a: list[float] = []
    all_b: list[float] = []
    all_iou: list[float] = []
    for video in options.videos:
        block, progress = options.block, options.progress
        fa, sa, ga = _series(video, a_model, block=block, progress=progress, first=True)
        fb, sb, gb = _series(video, b_model, block=block, progress=progress, first=False)
        if fa != fb:  # the same selection over the same file: a mismatch is a decoder bug
            raise ExtractionError(
                f"{video.path}: the two runs decoded different frames ({len(fa)} and {len(fb)}): "
                "check the file with 'vmafx-saliency extract'"
            )
        ious = [iou(ga[f], gb[f]) for f in fa]
        clips.append(_agreement(str(video.path), fa, sa, sb, ious))
        all_frames += fa
        all_a += sa
        all_b += sb
        all_iou += ious
    overall = _agreement("all clips", all_frames, all_a, all_b, all_iou)
    result = CompareResult(
        model_a=a_model.id,
        model_b=b_model.id,
        block=options.block,
        clips=tuple(clips),
        overall=overall,
        command=options.command,
        report=options.report,
    )
    out = _ReportDir(options.report, marker=COMPARE_MARKER, force=options.force)
    try:
        out.path(COMPARE_MARKER).write_text(
            json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        out.path("compare.md").write_text(render_compare_markdown(result), encoding="utf-8")
        _plot_series(result, out.path("series.png"))
        out.commit()
    except BaseException:
        out.discard()
        raise
    return result


def _opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_compare_markdown(result: CompareResult) -> str:
    lines = [
        f"# `{result.model_a}` vs `{result.model_b}`: per-frame saliency_mean",
        "",
        f"Command: `{result.command}`" if result.command else "Command: (library call)",
        "",
        "| clip | frames | mean A | mean B | Pearson | Spearman | mean abs diff | KS stat "
        f"(p) | block IoU {result.block}x{result.block} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in (*result.clips, result.overall):
        lines.append(
            f"| {Path(c.video).name if c is not result.overall else '**all clips**'} | "
            f"{len(c.frames)} | {float(np.mean(c.series_a)):.4f} | "
            f"{float(np.mean(c.series_b)):.4f} | "
            f"{_opt(c.pearson)} | {_opt(c.spearman)} | {c.mean_abs_diff:.4f} | "
            f"{c.ks_statistic:.3f} ({c.ks_pvalue:.3g}) | {c.block_iou:.4f} |"
        )
    conventions = result.to_json()["conventions"]
    lines += ["", "A is `" + result.model_a + "`, B is `" + result.model_b + "`.", ""]
    lines += [f"- **{k}**: {v}." for k, v in conventions.items()]
    lines.append("")
    return "\n".join(lines)


def _plot_series(result: CompareResult, path: Path) -> None:
    clips = result.clips
    fig = _figure((8.0, 2.6 * len(clips)))
    axes = fig.subplots(len(clips), 1, squeeze=False)
    for ax_row, clip in zip(axes, clips, strict=True):
        ax = ax_row[0]
        marker = "." if len(clip.frames) <= 200 else None
        ax.plot(clip.frames, clip.series_a, marker=marker, linewidth=1, label=result.model_a)
        ax.plot(clip.frames, clip.series_b, marker=marker, linewidth=1, label=result.model_b)
        ax.set_title(f"{Path(clip.video).name}: saliency_mean", fontsize="medium")
        ax.set_xlabel("frame")
        ax.set_ylabel("saliency_mean")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.savefig(path, format="png")
