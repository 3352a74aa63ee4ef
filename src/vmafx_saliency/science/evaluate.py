"""Dataset accuracy, model comparison over video, reports and plots (DESIGN job 5).

``eval``: run one or more models over a labelled salient-object dataset
(``images/`` and ``masks/`` paired by file stem) under one of two protocols and
score the 8-bit maps against the masks:

* ``upstream`` reproduces the test-time pipeline of upstream ``u2net_test.py``
  (U-2-Net, commit pin ``ac7e1c81``): RGB in (a grey image goes to all three
  channels with the first channel's mean/std, as upstream's ``ToTensorLab``
  does), resize to the inference size, divide by the image maximum, ImageNet
  mean/std, take ``d0`` (our ``saliency_map``), min-max it per image
  (``normPRED``), quantise ``x * 255`` by truncation (PIL's float-to-8-bit
  conversion), and resize the 8-bit map back to the image size with PIL's
  ``BILINEAR``, exactly as ``save_output`` does.
* ``deployment`` is the extractor's own pipeline, what production sees: the
  BT.601 full-range luma of the RGB image (``Y = 0.299 R + 0.587 G + 0.114 B``,
  as JPEG stores it, rounded to 8 bits) through :func:`extract.preprocess`
  (``luma_tile``), the raw map (no min-max), resized back with the extractor's
  antialiased bilinear and rounded to 8 bits as ``--save-maps`` does.

The scores come from py_sod_metrics (PySODMetrics), the field's reference
implementation, fed through one input checker (:func:`check_inputs`) so every
metric sees the same binarised mask and the same [0, 1] prediction; IoU and
block IoU (the granularity encoders consume) are computed here in the same
accumulator style (``step(pred, gt)`` then ``get_results()``). The conventions
are written into every report (:data:`CONVENTIONS`).

``compare``: two models on the same clips through the extractor itself
(:func:`extract.extract`), and how far their per-frame ``saliency_mean``
series and their block maps agree.

Reports are folders built in a hidden temporary folder and renamed into place,
so a failed run leaves nothing behind.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import numpy as np

from vmafx_saliency._util import check_can_write, require, sha256_bytes
from vmafx_saliency.errors import (
    ExtractionError,
    InputFileError,
    MissingDependencyError,
    OutputError,
    OutputExistsError,
    UsageError,
)
from vmafx_saliency.video.resize import resize_plane

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.supply.registry import Preprocessing
    from vmafx_saliency.video.job import VideoInput

__all__ = [
    "BLOCK_SIZES",
    "COMPARE_SCHEMA",
    "CONVENTIONS",
    "GT_THRESHOLD",
    "SUMMARY_SCHEMA",
    "BlockIoU",
    "ClipComparison",
    "CompareOptions",
    "CompareResult",
    "DatasetInfo",
    "DatasetMetrics",
    "Distribution",
    "EvalOptions",
    "EvalResult",
    "EvalSummary",
    "ImageScores",
    "MeanIoU",
    "MetricInput",
    "ModelCost",
    "ModelResult",
    "ModelSpec",
    "Pair",
    "block_grid",
    "block_iou",
    "check_inputs",
    "count_cost",
    "distribution",
    "iou",
    "pair_dataset",
    "parse_models",
    "run_compare",
    "run_eval",
    "score_image",
    "validate_summary",
]

SUMMARY_SCHEMA = "vmafx-saliency/eval-summary/v1"
COMPARE_SCHEMA = "vmafx-saliency/compare/v1"
# F-measure weight: beta^2 = 0.3 stresses precision, as every SOD paper since
# Achanta et al. 2009 (py_sod_metrics calls this number "beta").
BETA2 = 0.3
# An 8-bit mask pixel is salient when > 127 (the shared data README). py_sod_metrics'
# own prepare_data and the U^2-Net authors' tool use > 128; it is an option.
GT_THRESHOLD = 127
MAP_THRESHOLD = 0.5
BLOCK_SIZES = (16, 64)  # pixels: an H.264 macroblock and an HEVC/AV1 superblock
THRESHOLDS = 256  # pred8 >= t for t = 0..255
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
Protocol = Literal["upstream", "deployment"]
PROTOCOLS: tuple[Protocol, ...] = ("upstream", "deployment")

# Metrics whose value lies in [0, 1] by definition (the rest are costs).
UNIT_METRICS = (
    "mae",
    "mae_binary",
    "max_f",
    "mean_f",
    "adp_f",
    "max_f_per_image",
    "mean_f_per_image",
    "s_measure",
    "max_e",
    "mean_e",
    "adp_e",
    "weighted_f",
    "iou",
    *(f"block_iou_{b}" for b in BLOCK_SIZES),
)
COST_METRICS = ("params", "macs", "ms_per_image")
METRIC_NAMES = (*UNIT_METRICS, *COST_METRICS)

CONVENTIONS: dict[str, str] = {
    "ground_truth": (
        "the 8-bit mask, converted to grey; a pixel is salient when mask > {gt_threshold} "
        "(py_sod_metrics' own prepare_data and the U^2-Net authors' evaluation tool use "
        "> 128); masks are never resized: a mask must have its image's size"
    ),
    "prediction": (
        "the 8-bit map divided by 255, given to py_sod_metrics with normalize=False, so it is "
        "NOT min-max normalised again (py_sod_metrics' default normalize=True would apply "
        "MATLAB mapminmax per image and binarise the mask at > 128); the upstream protocol "
        "min-max normalises d0 itself (normPRED) before quantising, the deployment protocol "
        "does not"
    ),
    "thresholds": (
        "curves use 256 thresholds t = 0..255, salient when pred8 >= t (py_sod_metrics "
        "truncates pred * 255 to uint8, which gives back pred8 exactly)"
    ),
    "f_measure": (
        "F = (1 + b2) P R / (b2 P + R), b2 = 0.3. max_f / mean_f: precision and recall "
        "averaged over images at each threshold, then F, then max / mean over thresholds: "
        "the U^2-Net paper's convention ('the precision and recall of a dataset are computed "
        "by averaging the precision and recall scores of those saliency maps'; the authors' "
        "tool measures.py). max_f_per_image / mean_f_per_image: per-image F averaged over "
        "images at each threshold, then max / mean (py_sod_metrics' F-measure curve). adp_f: "
        "per-image F at the threshold min(2 mean(pred), 1), averaged"
    ),
    "mae": (
        "mae: mean |pred - mask/255| against the grey mask; mae_binary: against the "
        "binarised mask (py_sod_metrics MAE); both averaged over images"
    ),
    "structure_and_enhanced": (
        "s_measure: py_sod_metrics Smeasure (alpha 0.5); max_e / mean_e: max / mean over "
        "thresholds of the image-averaged Emeasure curve; adp_e: adaptive E-measure, "
        "averaged; weighted_f: py_sod_metrics WeightedFmeasure (beta 1), 0 for an empty mask"
    ),
    "iou": (
        "the map binarised at >= 0.5 (pred8 >= 128) against the binarised mask; "
        "IoU = |P and G| / |P or G|, 1 when both are empty; averaged over images"
    ),
    "block_iou": (
        "blocks of B x B pixels (B = 16, 64: an encoder's macroblock / superblock) tiling "
        "the image from its top-left corner, edge blocks partial; a block is salient when at "
        "least half of its pixels are salient (binarised as for iou); IoU of the two sets "
        "of salient blocks, 1 when both are empty; averaged over images"
    ),
    "costs": (
        "params: sum of the ONNX initializers' element counts; macs: multiply-accumulates "
        "of Conv (and MatMul/Gemm) nodes after onnx shape inference with the input fixed to "
        "[1, 3, H, W] at the inference size, out_elems x C_in/groups x kH x kW (bias, "
        "Resize, pooling, activations and elementwise ops excluded); ms_per_image: median "
        "wall time of ONNX Runtime's session.run per image (inference only)"
    ),
}

PROTOCOL_TEXT: dict[str, str] = {
    "upstream": (
        "upstream u2net_test.py: RGB (grey: channel 0's mean/std on all three), resize to "
        "the sidecar's inference size with the extractor's antialiased bilinear (upstream: "
        "skimage transform.resize), divide by the image max, sidecar mean/std, d0, per-image "
        "min-max (normPRED), x255 truncated to 8 bits, PIL BILINEAR back to the image size"
    ),
    "deployment": (
        "the extractor: BT.601 full-range luma Y = 0.299 R + 0.587 G + 0.114 B rounded to "
        "8 bits, extract.preprocess (luma_tile, color_range full, the sidecar's size, scaling "
        "and mean/std), raw map (no min-max), antialiased bilinear back to the image size, "
        "rounded to 8 bits"
    ),
}


# --- small helpers -------------------------------------------------------------------------------


def _pil() -> Any:
    return require("PIL.Image", purpose="eval (image loading)")


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _listed(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


class _Progress:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, *, total: int, unit: str, enabled: bool, stream: TextIO | None = None):
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.done = 0
        self._last = 0.0

    def update(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.2 and self.done < self.total):
            return
        self._last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        bar = "#" * int(30 * self.done / max(self.total, 1))
        self.stream.write(
            f"\r[{bar:<30}] {self.done}/{self.total} {self.unit} {rate:5.1f}/s ETA {eta:4.0f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# --- metrics: one input checker, then accumulators -----------------------------------------------


@dataclass(frozen=True)
class MetricInput:
    """One image's prediction and mask, as every metric here sees them."""

    pred: np.ndarray  # float64 in [0, 1]
    gt: np.ndarray  # bool, salient pixels
    gt_grey: np.ndarray  # float64 in [0, 1], the mask before binarisation


def check_inputs(
    pred: np.ndarray, gt: np.ndarray, *, gt_threshold: int = GT_THRESHOLD
) -> MetricInput:
    """The shared input checker: shapes, dtypes and ranges, binarisation of the mask.

    ``pred``: an 8-bit map (uint8, divided by 255) or floats in [0, 1]. ``gt``: an 8-bit
    grey mask (uint8, salient when ``> gt_threshold``) or a bool mask.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim != 2 or gt.ndim != 2:
        raise UsageError(
            f"a prediction and a mask must be 2-D (H x W), got {pred.shape} and {gt.shape}"
        )
    if pred.shape != gt.shape:
        raise UsageError(
            f"prediction {pred.shape[1]}x{pred.shape[0]} and mask {gt.shape[1]}x{gt.shape[0]} "
            "differ in size: resize the map to the mask's size first"
        )
    if pred.dtype == np.uint8:
        pred_f = pred.astype(np.float64) / 255.0
    elif np.issubdtype(pred.dtype, np.floating):
        pred_f = pred.astype(np.float64)
        if not np.all(np.isfinite(pred_f)) or pred_f.min() < 0.0 or pred_f.max() > 1.0:
            raise UsageError("a float prediction must be finite and in [0, 1]")
    else:
        raise UsageError(f"a prediction must be uint8 or float in [0, 1], got {pred.dtype}")
    if gt.dtype == np.bool_:
        gt_bool = gt
        gt_grey = gt.astype(np.float64)
    elif gt.dtype == np.uint8:
        gt_bool = gt > gt_threshold
        gt_grey = gt.astype(np.float64) / 255.0
    else:
        raise UsageError(f"a mask must be uint8 (grey) or bool, got {gt.dtype}")
    return MetricInput(pred=pred_f, gt=gt_bool, gt_grey=gt_grey)


def iou(pred_bin: np.ndarray, gt_bin: np.ndarray) -> float:
    """|P and G| / |P or G| of two bool masks; 1.0 when both are empty (they agree)."""
    union = int(np.count_nonzero(pred_bin | gt_bin))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred_bin & gt_bin)) / union


def block_grid(binary: np.ndarray, block: int) -> np.ndarray:
    """Which B x B blocks are salient: at least half of their pixels are.

    Blocks tile the plane from the top-left corner; the last row and column of
    blocks are partial when the size is not a multiple of ``block``, and their
    fraction is taken over the pixels they have.
    """
    if block < 1:
        raise UsageError(f"block size {block}: give a positive number of pixels")
    height, width = binary.shape
    rows = np.arange(0, height, block)
    cols = np.arange(0, width, block)
    counts = np.add.reduceat(np.add.reduceat(binary.astype(np.int64), rows, axis=0), cols, axis=1)
    row_sizes = np.minimum(rows + block, height) - rows
    col_sizes = np.minimum(cols + block, width) - cols
    # 2 * count >= size is "fraction >= 0.5" in integers: no rounding at exactly half.
    result: np.ndarray = 2 * counts >= np.outer(row_sizes, col_sizes)
    return result


def block_iou(pred_bin: np.ndarray, gt_bin: np.ndarray, block: int) -> float:
    """IoU of the salient-block sets of two bool masks (see :func:`block_grid`)."""
    return iou(block_grid(pred_bin, block), block_grid(gt_bin, block))


class MeanIoU:
    """Mean IoU over images of the map at >= 0.5 against the binarised mask."""

    def __init__(self, *, gt_threshold: int = GT_THRESHOLD) -> None:
        self.gt_threshold = gt_threshold
        self.values: list[float] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> float:
        data = check_inputs(pred, gt, gt_threshold=self.gt_threshold)
        value = iou(data.pred >= MAP_THRESHOLD, data.gt)
        self.values.append(value)
        return value

    def get_results(self) -> dict[str, float]:
        return {"iou": float(np.mean(self.values)) if self.values else math.nan}


class BlockIoU:
    """Mean block IoU over images at one block size."""

    def __init__(self, block: int, *, gt_threshold: int = GT_THRESHOLD) -> None:
        self.block = block
        self.gt_threshold = gt_threshold
        self.values: list[float] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> float:
        data = check_inputs(pred, gt, gt_threshold=self.gt_threshold)
        value = block_iou(data.pred >= MAP_THRESHOLD, data.gt, self.block)
        self.values.append(value)
        return value

    def get_results(self) -> dict[str, float]:
        mean = float(np.mean(self.values)) if self.values else math.nan
        return {f"block_iou_{self.block}": mean}


@dataclass(frozen=True)
class Distribution:
    """Pooled statistics of a per-image (or per-frame) series."""

    count: int
    mean: float
    std: float  # population standard deviation
    min: float
    median: float
    max: float

    def to_json(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "median": self.median,
            "max": self.max,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Distribution:
        return cls(
            count=int(doc["count"]),
            mean=float(doc["mean"]),
            std=float(doc["std"]),
            min=float(doc["min"]),
            median=float(doc["median"]),
            max=float(doc["max"]),
        )


def distribution(values: Sequence[float]) -> Distribution:
    """Pool a series; math.fsum keeps the mean independent of the order."""
    if len(values) == 0:
        raise UsageError("cannot pool an empty series")
    xs = [float(v) for v in values]
    if not all(math.isfinite(x) for x in xs):
        raise UsageError("cannot pool a series with NaN or infinite values")
    mean = math.fsum(xs) / len(xs)
    var = math.fsum((x - mean) ** 2 for x in xs) / len(xs)
    return Distribution(
        count=len(xs),
        mean=mean,
        std=math.sqrt(var),
        min=min(xs),
        median=float(statistics.median(xs)),
        max=max(xs),
    )


@dataclass(frozen=True)
class ImageScores:
    """Every per-image figure; curves are indexed by threshold t = 0..255 (pred8 >= t)."""

    mae: float
    mae_binary: float
    adp_f: float
    max_f: float  # this image's best F over thresholds
    s_measure: float
    adp_e: float
    max_e: float
    weighted_f: float
    iou: float
    block_iou: Mapping[int, float]
    mean_saliency: float
    precision: np.ndarray
    recall: np.ndarray
    f_curve: np.ndarray
    e_curve: np.ndarray

    def row(self) -> dict[str, float]:
        """The scalar figures, as per_image.csv writes them."""
        out = {
            "mae": self.mae,
            "mae_binary": self.mae_binary,
            "adp_f": self.adp_f,
            "max_f": self.max_f,
            "s_measure": self.s_measure,
            "adp_e": self.adp_e,
            "max_e": self.max_e,
            "weighted_f": self.weighted_f,
            "iou": self.iou,
        }
        out.update({f"block_iou_{b}": v for b, v in self.block_iou.items()})
        out["mean_saliency"] = self.mean_saliency
        return out


def _sod() -> Any:
    return require("py_sod_metrics", purpose="eval (metrics)")


def _ascending(curve: Any) -> np.ndarray:
    return np.asarray(curve, dtype=np.float64)[::-1].copy()


def score_image(
    pred: np.ndarray, gt: np.ndarray, *, gt_threshold: int = GT_THRESHOLD
) -> ImageScores:
    """Score one image: py_sod_metrics for the SOD measures, ours for IoU and blocks.

    Fresh py_sod_metrics objects per call: Emeasure keeps per-image state on the
    instance between its steps, so sharing one across worker threads would race.
    """
    sod = _sod()
    data = check_inputs(pred, gt, gt_threshold=gt_threshold)
    p, g = data.pred, data.gt

    fm = sod.FmeasureV2(
        metric_handlers={
            "fm": sod.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=BETA2),
            "pre": sod.PrecisionHandler(with_dynamic=True, with_adaptive=False),
            "rec": sod.RecallHandler(with_dynamic=True, with_adaptive=False),
        }
    )
    fm.step(p, g, normalize=False)
    # One step, so get_results() is this image's own figures. py_sod_metrics orders
    # curves by falling threshold (>= 255 first); flip them to t = 0..255.
    fm_res = fm.get_results()
    precision = _ascending(fm_res["pre"]["dynamic"])
    recall = _ascending(fm_res["rec"]["dynamic"])
    f_curve = _ascending(fm_res["fm"]["dynamic"])
    mae_bin = sod.MAE()
    mae_bin.step(p, g, normalize=False)
    sm = sod.Smeasure()
    sm.step(p, g, normalize=False)
    em = sod.Emeasure()
    em.step(p, g, normalize=False)
    em_res = em.get_results()["em"]
    e_curve = _ascending(em_res["curve"])
    wfm = sod.WeightedFmeasure()
    wfm.step(p, g, normalize=False)

    pred_bin = p >= MAP_THRESHOLD
    return ImageScores(
        mae=float(np.mean(np.abs(p - data.gt_grey))),
        mae_binary=float(mae_bin.get_results()["mae"]),
        adp_f=float(fm_res["fm"]["adaptive"]),
        max_f=float(f_curve.max()),
        s_measure=float(sm.get_results()["sm"]),
        adp_e=float(em_res["adp"]),
        max_e=float(e_curve.max()),
        weighted_f=float(wfm.get_results()["wfm"]),
        iou=iou(pred_bin, g),
        block_iou={b: block_iou(pred_bin, g, b) for b in BLOCK_SIZES},
        mean_saliency=float(p.mean()),
        precision=precision,
        recall=recall,
        f_curve=f_curve,
        e_curve=e_curve,
    )


@dataclass(frozen=True)
class Curves:
    """Dataset curves over thresholds t = 0..255 (index t)."""

    precision: tuple[float, ...]  # averaged over images
    recall: tuple[float, ...]
    f_pr: tuple[float, ...]  # F of the averaged P and R: convention (i)
    f_per_image: tuple[float, ...]  # per-image F averaged: convention (ii)
    e: tuple[float, ...]

    def to_json(self) -> dict[str, list[float]]:
        return {
            "precision": list(self.precision),
            "recall": list(self.recall),
            "f_pr": list(self.f_pr),
            "f_per_image": list(self.f_per_image),
            "e": list(self.e),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Curves:
        def get(key: str) -> tuple[float, ...]:
            return tuple(float(v) for v in doc[key])

        return cls(
            precision=get("precision"),
            recall=get("recall"),
            f_pr=get("f_pr"),
            f_per_image=get("f_per_image"),
            e=get("e"),
        )


class DatasetMetrics:
    """All dataset figures of one model: ``step(pred, gt)`` per image, then ``get_results()``.

    ``step`` = ``add(score_image(...))``; worker threads may call the pure
    :func:`score_image` and hand the result to :meth:`add` in image order.
    """

    def __init__(self, *, gt_threshold: int = GT_THRESHOLD) -> None:
        self.gt_threshold = gt_threshold
        self.scores: list[ImageScores] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> ImageScores:
        scores = score_image(pred, gt, gt_threshold=self.gt_threshold)
        self.add(scores)
        return scores

    def add(self, scores: ImageScores) -> None:
        self.scores.append(scores)

    def get_results(self) -> tuple[dict[str, float], Curves]:
        if not self.scores:
            raise UsageError("no image was scored")

        def mean(values: Iterable[float]) -> float:
            return float(np.mean(np.fromiter(values, dtype=np.float64)))

        def stack(name: str) -> np.ndarray:
            return np.stack([getattr(s, name) for s in self.scores])

        precision = stack("precision").mean(axis=0)
        recall = stack("recall").mean(axis=0)
        numerator = (1.0 + BETA2) * precision * recall
        denominator = BETA2 * precision + recall
        f_pr = np.divide(
            numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0
        )
        f_img = stack("f_curve").mean(axis=0)
        e_curve = stack("e_curve").mean(axis=0)
        s = self.scores
        metrics = {
            "mae": mean(x.mae for x in s),
            "mae_binary": mean(x.mae_binary for x in s),
            "max_f": float(f_pr.max()),
            "mean_f": float(f_pr.mean()),
            "adp_f": mean(x.adp_f for x in s),
            "max_f_per_image": float(f_img.max()),
            "mean_f_per_image": float(f_img.mean()),
            "s_measure": mean(x.s_measure for x in s),
            "max_e": float(e_curve.max()),
            "mean_e": float(e_curve.mean()),
            "adp_e": mean(x.adp_e for x in s),
            "weighted_f": mean(x.weighted_f for x in s),
            "iou": mean(x.iou for x in s),
        }
        for b in BLOCK_SIZES:
            metrics[f"block_iou_{b}"] = mean(x.block_iou[b] for x in s)
        curves = Curves(
            precision=tuple(float(v) for v in precision),
            recall=tuple(float(v) for v in recall),
            f_pr=tuple(float(v) for v in f_pr),
            f_per_image=tuple(float(v) for v in f_img),
            e=tuple(float(v) for v in e_curve),
        )
        return metrics, curves


# --- the dataset ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path


def _by_stem(folder: Path, what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not path.is_file():
            continue
        if path.stem in found:
            raise InputFileError(
                f"{folder}: two {what} share the stem {path.stem!r} ({found[path.stem].name} "
                f"and {path.name}): keep one, pairs are matched by file stem"
            )
        found[path.stem] = path
    return found


def pair_dataset(root: Path, *, limit: int | None = None) -> tuple[Pair, ...]:
    """Pairs of ``root/images/X.*`` and ``root/masks/X.*``, sorted by stem (string order).

    Every image needs a mask and every mask an image: a stray file is an error,
    not something to skip silently, because it changes what the figures mean.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(
            f"dataset {root}: no such folder: give a folder with images/ and masks/"
        )
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise InputFileError(
                f"dataset {root} has no {sub}/ folder: give a folder with images/ and masks/ "
                "whose files pair by stem (images/12.jpg with masks/12.png)"
            )
    images = _by_stem(root / "images", "images")
    masks = _by_stem(root / "masks", "masks")
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(f"{len(no_mask)} image(s) without a mask (first: {_listed(no_mask)})")
        if no_image:
            parts.append(f"{len(no_image)} mask(s) without an image (first: {_listed(no_image)})")
        raise InputFileError(
            f"dataset {root} has unpaired files: {'; '.join(parts)}: pair them by file stem "
            "or move the strays out"
        )
    if not images:
        raise InputFileError(f"dataset {root}: images/ and masks/ hold no image files")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit}: give a positive number of pairs")
    stems = sorted(images)[:limit]
    return tuple(Pair(s, images[s], masks[s]) for s in stems)


def check_sizes(pairs: Sequence[Pair]) -> None:
    """Refuse a mask whose size differs from its image's, before any work is done.

    Resizing a mask would change the ground truth (interpolated edges, a new
    threshold crossing), so eval refuses instead. Only the headers are read.
    """
    pil = _pil()
    for pair in pairs:
        try:
            with pil.open(pair.image) as img, pil.open(pair.mask) as msk:
                image_size, mask_size = img.size, msk.size
        except (OSError, ValueError) as exc:
            raise InputFileError(
                f"pair {pair.stem!r}: cannot read {pair.image.name} or {pair.mask.name} ({exc}): "
                "fix or remove the pair"
            ) from exc
        if image_size != mask_size:
            raise InputFileError(
                f"pair {pair.stem!r}: mask {pair.mask} is {mask_size[0]}x{mask_size[1]} but its "
                f"image {pair.image.name} is {image_size[0]}x{image_size[1]}: eval does not "
                "resize ground truth; give the mask its image's size or remove the pair"
            )


@dataclass(frozen=True)
class LoadedPair:
    stem: str
    image: np.ndarray  # uint8, H x W x 3 (RGB) or H x W (grey)
    mask: np.ndarray  # uint8, H x W


_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def load_pair(pair: Pair) -> LoadedPair:
    pil = _pil()
    try:
        with pil.open(pair.image) as img:
            # Upstream reads grey images as one channel (and treats them apart); any
            # other mode (RGBA, P, CMYK) becomes RGB, dropping alpha.
            image = np.asarray(img.convert("L" if img.mode in _GREY_MODES else "RGB"))
        with pil.open(pair.mask) as msk:
            mask = np.asarray(msk.convert("L"))
    except (OSError, ValueError) as exc:
        raise InputFileError(
            f"pair {pair.stem!r}: cannot decode {pair.image} or {pair.mask} ({exc}): "
            "fix or remove the pair"
        ) from exc
    if image.shape[:2] != mask.shape:
        raise InputFileError(
            f"pair {pair.stem!r}: mask and image differ in size: give the mask its image's size"
        )
    return LoadedPair(pair.stem, image, mask)


# --- the two protocols ---------------------------------------------------------------------------


def _size_for(pre: Preprocessing, image_hw: tuple[int, int]) -> tuple[int, int]:
    return pre.inference_size if pre.inference_size is not None else image_hw


def upstream_input(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """Upstream's RescaleT + ToTensorLab(flag=0), with the sidecar's size and mean/std."""
    size = _size_for(pre, (image.shape[0], image.shape[1]))
    planes = [image] if image.ndim == 2 else [image[:, :, c] for c in range(3)]
    # skimage's resize turns uint8 into [0, 1] floats before resizing, as here.
    resized = [resize_plane(p.astype(np.float32) / 255.0, size) for p in planes]
    stack = np.stack(resized)
    if pre.scaling == "divide_by_max":
        peak = float(stack.max())
        if peak > 0.0:  # upstream divides unconditionally; a black image would give NaN
            stack = stack / peak
    if len(resized) == 1:
        # ToTensorLab: a one-channel image gets channel 0's mean/std on all three.
        mean = np.full((3, 1, 1), pre.mean[0], dtype=np.float32)
        std = np.full((3, 1, 1), pre.std[0], dtype=np.float32)
        stack = np.repeat(stack, 3, axis=0)
    else:
        mean = np.asarray(pre.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(pre.std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray(((stack - mean) / std)[None], dtype=np.float32)


def luma8(image: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma of an 8-bit RGB image, rounded to 8 bits (JPEG's Y)."""
    if image.ndim == 2:
        return image
    rgb = image.astype(np.float32)
    y = 0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]
    out: np.ndarray = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    return out


def deployment_input(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    from vmafx_saliency.video.extract import preprocess

    size = _size_for(pre, (image.shape[0], image.shape[1]))
    return preprocess(luma8(image), bit_depth=8, color_range="full", pre=pre, size=size)


def upstream_output(saliency: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """normPRED, x255 truncated to 8 bits, PIL BILINEAR back to the image size."""
    pil = _pil()
    sal = saliency.astype(np.float32)
    lo, hi = float(sal.min()), float(sal.max())
    # Upstream divides by (max - min) unguarded; a flat map becomes all zeros here.
    norm = (sal - lo) / (hi - lo) if hi > lo else np.zeros_like(sal)
    # PIL's float -> 8-bit conversion clips to [0, 255] and truncates.
    map8 = np.clip(norm * np.float32(255.0), 0.0, 255.0).astype(np.uint8)
    height, width = image_hw
    if map8.shape == image_hw:
        return map8
    # A 2-D uint8 array becomes a mode "L" image; one channel of upstream's RGB copy.
    resized = pil.fromarray(map8).resize((width, height), pil.Resampling.BILINEAR)
    out: np.ndarray = np.asarray(resized, dtype=np.uint8)
    return out


def deployment_output(saliency: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """The raw map, antialiased bilinear to the image size, rounded to 8 bits."""
    plane = saliency.astype(np.float32)
    if plane.shape != image_hw:
        plane = resize_plane(plane, image_hw)
    out: np.ndarray = np.rint(np.clip(plane, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


_INPUTS: dict[str, Callable[[np.ndarray, Preprocessing], np.ndarray]] = {
    "upstream": upstream_input,
    "deployment": deployment_input,
}
_OUTPUTS: dict[str, Callable[[np.ndarray, tuple[int, int]], np.ndarray]] = {
    "upstream": upstream_output,
    "deployment": deployment_output,
}


# --- models --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A ``--models`` entry: a registry id, or an ONNX file loaded ad hoc with its sidecar."""

    text: str
    model_id: str | None = None
    path: Path | None = None
    sidecar: Path | None = None


def _is_path(token: str) -> bool:
    return token.lower().endswith(".onnx") or "/" in token or os.sep in token


def parse_models(text: str, *, sidecars: Sequence[Path] = ()) -> tuple[ModelSpec, ...]:
    """``ID[,ID...]``: registry ids and .onnx paths; ``--sidecar`` files pair with the paths."""
    tokens = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in tokens):
        raise UsageError(
            f"--models {text!r}: give comma-separated registry ids or .onnx paths, e.g. "
            "u2netp_mirror_v1,models/student.onnx"
        )
    paths = [t for t in tokens if _is_path(t)]
    if sidecars and len(sidecars) != len(paths):
        raise UsageError(
            f"{len(sidecars)} --sidecar file(s) for {len(paths)} model path(s): give one "
            "--sidecar per .onnx path, in order, or none to use <stem>.sidecar.json beside each"
        )
    queue = list(sidecars)
    specs = []
    for token in tokens:
        if _is_path(token):
            specs.append(
                ModelSpec(token, path=Path(token), sidecar=queue.pop(0) if queue else None)
            )
        else:
            specs.append(ModelSpec(token, model_id=token))
    return tuple(specs)


@dataclass(frozen=True)
class EvalModel:
    id: str
    loaded: LoadedModel
    pre: Preprocessing
    source: Literal["registry", "ad-hoc"]


def load_models(
    specs: Sequence[ModelSpec], *, threads: int | None, signed: bool = False
) -> list[EvalModel]:
    """Every model through the loader gate; ids must be unique (they key the report)."""
    from vmafx_saliency.supply import loader
    from vmafx_saliency.supply.registry import Registry, Sidecar

    models: list[EvalModel] = []
    registry: Registry | None = None
    for spec in specs:
        if spec.path is not None:
            if signed:
                raise UsageError(
                    f"--signed needs registered models: {spec.path} is an ad-hoc file with no "
                    "pin or bundle"
                )
            sidecar_path = spec.sidecar or _sidecar_beside(spec.path)
            if sidecar_path is None:
                raise UsageError(
                    f"{spec.path}: no sidecar JSON declares its pre-processing: pass --sidecar "
                    f"FILE or put {spec.path.stem}.sidecar.json beside it"
                )
            sidecar = Sidecar.load(sidecar_path)
            loaded = loader.load_ad_hoc(spec.path, sidecar=sidecar, threads=threads)
            models.append(EvalModel(spec.path.stem, loaded, sidecar.preprocessing, "ad-hoc"))
        else:
            assert spec.model_id is not None
            registry = registry or Registry.load()
            entry = registry.get(spec.model_id)
            policy = loader.Policy.SIGNED if signed else loader.Policy.PINNED
            loaded = loader.load_entry(entry, policy=policy, threads=threads)
            side = loaded.sidecar or entry.load_sidecar()
            models.append(EvalModel(entry.id, loaded, side.preprocessing, "registry"))
    ids = [m.id for m in models]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise UsageError(
            f"--models names {', '.join(dupes)} more than once (ad-hoc files are named by their "
            "stem): each model appears once in a report"
        )
    return models


def _sidecar_beside(model_path: Path) -> Path | None:
    candidate = model_path.with_name(f"{model_path.stem}.sidecar.json")
    return candidate if candidate.is_file() else None


# --- costs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCost:
    params: int | None  # None: the onnx package is not installed (the note says so)
    macs: int | None
    note: str | None = None


def count_cost(data: bytes, size: tuple[int, int]) -> ModelCost:
    """Parameters and MACs of an ONNX model at ``size`` = (H, W); see CONVENTIONS['costs']."""
    try:
        onnx = require("onnx", purpose="counting MACs")
    except MissingDependencyError as exc:
        return ModelCost(params=None, macs=None, note=str(exc))
    model = onnx.load_from_string(data)
    params = sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer)
    graph_input = model.graph.input[0]
    dims = graph_input.type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, size[0], size[1]), strict=False):
        dim.ClearField("dim_param")
        dim.dim_value = value
    # data_prop: the decoder's Resize sizes come from Shape/Gather/Concat arithmetic,
    # which plain shape inference leaves unknown.
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int | None]] = {}
    for info in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        shapes[info.name] = [
            d.dim_value if d.HasField("dim_value") else None
            for d in info.type.tensor_type.shape.dim
        ]
    weights = {t.name: list(t.dims) for t in inferred.graph.initializer}
    macs = 0
    unknown: list[str] = []
    for node in inferred.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        out = shapes.get(node.output[0])
        if out is None or any(d is None for d in out):
            unknown.append(node.name or node.output[0])
            continue
        out_elems = int(np.prod([d for d in out if d is not None], dtype=np.int64))
        if node.op_type == "Conv":
            w = weights.get(node.input[1]) or shapes.get(node.input[1])
            if w is None or any(d is None for d in w) or len(w) < 3:
                unknown.append(node.name or node.output[0])
                continue
            # The weight is [C_out, C_in / groups, kH, kW]: its dims after the first are
            # exactly the per-output-element multiply count.
            macs += out_elems * int(np.prod([d for d in w[1:] if d is not None], dtype=np.int64))
        else:
            a = shapes.get(node.input[0])
            if not a or a[-1] is None:
                unknown.append(node.name or node.output[0])
                continue
            transposed = any(x.name == "transA" and x.i for x in node.attribute)
            k = a[0] if node.op_type == "Gemm" and transposed else a[-1]
            macs += out_elems * int(k or 0)
    if unknown:
        return ModelCost(
            params=params,
            macs=None,
            note=f"shape inference left {len(unknown)} Conv/MatMul output(s) unknown",
        )
    return ModelCost(params=params, macs=macs)


# --- the summary ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    path: str
    name: str
    count: int  # pairs evaluated
    pairs: int  # pairs in the folder
    limit: int | None
    grey_masks: int  # masks with values other than 0 and 255
    empty_masks: int  # masks with no salient pixel after binarisation
    pixels_at_threshold_plus_one: int  # mask pixels equal to gt_threshold + 1 (> 127 vs > 128)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "count": self.count,
            "pairs": self.pairs,
            "limit": self.limit,
            "grey_masks": self.grey_masks,
            "empty_masks": self.empty_masks,
            "pixels_at_threshold_plus_one": self.pixels_at_threshold_plus_one,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DatasetInfo:
        return cls(
            path=str(doc["path"]),
            name=str(doc["name"]),
            count=int(doc["count"]),
            pairs=int(doc["pairs"]),
            limit=None if doc["limit"] is None else int(doc["limit"]),
            grey_masks=int(doc["grey_masks"]),
            empty_masks=int(doc["empty_masks"]),
            pixels_at_threshold_plus_one=int(doc["pixels_at_threshold_plus_one"]),
        )


@dataclass(frozen=True)
class ModelResult:
    id: str
    source: str  # "registry" | "ad-hoc"
    path: str
    sha256: str
    inference_size: tuple[int, int] | None  # (H, W); None: each image's own size
    metrics: Mapping[str, float | None]
    mean_saliency: Distribution
    curves: Curves
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "path": self.path,
            "sha256": self.sha256,
            "inference_size": None if self.inference_size is None else list(self.inference_size),
            "metrics": dict(self.metrics),
            "mean_saliency": self.mean_saliency.to_json(),
            "curves": self.curves.to_json(),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ModelResult:
        size = doc["inference_size"]
        return cls(
            id=str(doc["id"]),
            source=str(doc["source"]),
            path=str(doc["path"]),
            sha256=str(doc["sha256"]),
            inference_size=None if size is None else (int(size[0]), int(size[1])),
            metrics={k: None if v is None else float(v) for k, v in doc["metrics"].items()},
            mean_saliency=Distribution.from_json(doc["mean_saliency"]),
            curves=Curves.from_json(doc["curves"]),
            notes=tuple(str(n) for n in doc.get("notes", ())),
        )


@dataclass(frozen=True)
class EvalSummary:
    """``summary.json``: its core ``{"schema", "models": [{"id", "metrics"}]}`` is what
    ``registry promote`` reads; the rest says how the figures were made."""

    tool: str
    command: str
    dataset: DatasetInfo
    protocol: str
    gt_threshold: int
    conventions: Mapping[str, str]
    versions: Mapping[str, str]
    models: tuple[ModelResult, ...]
    schema: str = SUMMARY_SCHEMA

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "tool": self.tool,
            "command": self.command,
            "dataset": self.dataset.to_json(),
            "protocol": {"name": self.protocol, "description": PROTOCOL_TEXT[self.protocol]},
            "gt_threshold": self.gt_threshold,
            "conventions": dict(self.conventions),
            "versions": dict(self.versions),
            "models": [m.to_json() for m in self.models],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EvalSummary:
        return cls(
            schema=str(doc["schema"]),
            tool=str(doc["tool"]),
            command=str(doc["command"]),
            dataset=DatasetInfo.from_json(doc["dataset"]),
            protocol=str(doc["protocol"]["name"]),
            gt_threshold=int(doc["gt_threshold"]),
            conventions={str(k): str(v) for k, v in doc["conventions"].items()},
            versions={str(k): str(v) for k, v in doc["versions"].items()},
            models=tuple(ModelResult.from_json(m) for m in doc["models"]),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"


def validate_summary(doc: Any) -> list[str]:
    """Problems of a summary document against ``schemas/eval-summary.schema.json``."""
    from importlib import resources

    import jsonschema

    text = resources.files("vmafx_saliency").joinpath("schemas", "eval-summary.schema.json")
    schema = json.loads(text.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or 'document'}: {err.message}"
        for err in validator.iter_errors(doc)
    ]


def _versions() -> dict[str, str]:
    from importlib import metadata

    from vmafx_saliency import __version__

    out = {"python": sys.version.split()[0], "vmafx-saliency": __version__}
    for dist in ("numpy", "onnxruntime", "onnx", "pysodmetrics", "scipy", "pillow", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


# --- report folders ------------------------------------------------------------------------------

# The file that marks a folder as an earlier report, the only kind --force replaces.
EVAL_MARKER = "summary.json"
COMPARE_MARKER = "compare.json"


def check_report_folder(folder: Path, *, marker: str, force: bool) -> None:
    """Refuse a ``--report`` folder that this run may not replace.

    A new or empty folder is fine. An earlier report (it holds ``marker``) is
    replaced with --force. Anything else, a file, a dataset, the folder we are
    in, is refused even with --force: replacing a report folder removes all of it.
    """
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UsageError(
            f"--report {folder}: exists and is not a folder (or is a symlink): "
            "give a new or empty folder"
        )
    if not folder.exists():
        return
    here = Path.cwd().resolve()
    if folder.resolve() in (here, *here.parents):
        raise UsageError(
            f"--report {folder}: that is the folder you are in (or holds it): "
            "give a new folder, e.g. --report report/"
        )
    if not any(folder.iterdir()):
        return
    if not (folder / marker).is_file():
        raise OutputExistsError(
            f"{folder} exists and is not an earlier report (it has no {marker}), so even "
            "--force will not replace it: give a new or empty folder"
        )
    check_can_write(folder, force=force, folder=True)


class _ReportDir:
    """A hidden folder beside the target, renamed into place by :meth:`commit`."""

    def __init__(self, target: Path, *, marker: str, force: bool) -> None:
        check_report_folder(target, marker=marker, force=force)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))

    def path(self, name: str) -> Path:
        return self.tmp / name

    def commit(self) -> None:
        umask = os.umask(0)
        os.umask(umask)
        self.tmp.chmod(0o777 & ~umask)
        old: Path | None = None
        if self.target.exists() or self.target.is_symlink():  # --force was checked up front
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            self.target.replace(old)
        self.tmp.replace(self.target)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _figure(size: tuple[float, float]) -> Any:
    figure_mod = require("matplotlib.figure", purpose="eval plots")
    agg = require("matplotlib.backends.backend_agg", purpose="eval plots")
    # The object API, not pyplot: no global backend switch, no window.
    fig = figure_mod.Figure(figsize=size, dpi=100, layout="constrained")
    agg.FigureCanvasAgg(fig)
    return fig


# --- eval ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    dataset: Path
    models: tuple[ModelSpec, ...]
    protocol: Protocol
    report: Path
    limit: int | None = None
    force: bool = False
    jobs: int = 1
    threads: int | None = None
    gt_threshold: int = GT_THRESHOLD
    grid: int = 4
    signed: bool = False
    progress: bool = False
    command: str = ""


@dataclass(frozen=True)
class EvalResult:
    summary: EvalSummary
    report: Path
    seconds: float


@dataclass(frozen=True)
class _Sample:
    """An image kept for the grid figure, with each model's map."""

    stem: str
    image: np.ndarray
    mask: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)


class _Inline(Executor):
    """``--jobs 1``: run submitted work at once in the calling thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed over through the future
            future.set_exception(exc)
        return future


def _check_options(options: EvalOptions) -> None:
    if options.protocol not in PROTOCOLS:
        raise UsageError(f"--protocol {options.protocol!r}: give upstream or deployment")
    if options.jobs < 1:
        raise UsageError(f"--jobs {options.jobs}: give 1 or more worker threads")
    if not 0 <= options.gt_threshold <= 254:
        raise UsageError(f"--gt-threshold {options.gt_threshold}: give 0..254 (mask > N)")
    if options.grid < 0:
        raise UsageError(f"--grid {options.grid}: give 0 (no grid) or more images")
    if not options.models:
        raise UsageError("--models is empty: name at least one model")


def run_eval(options: EvalOptions) -> EvalResult:
    """Evaluate the models on the dataset and write the report folder."""
    _check_options(options)
    # Refuse before any work: an existing report, a broken dataset, missing packages.
    check_report_folder(options.report, marker=EVAL_MARKER, force=options.force)
    if options.limit is not None and options.limit < 1:
        raise UsageError(f"--limit {options.limit}: give a positive number of pairs")
    all_pairs = pair_dataset(options.dataset)
    pairs = all_pairs[: options.limit] if options.limit is not None else all_pairs
    for module, purpose in (
        ("PIL.Image", "eval (image loading)"),
        ("py_sod_metrics", "eval (metrics)"),
        ("matplotlib", "eval plots"),
    ):
        require(module, purpose=purpose)
    check_sizes(pairs)
    threads = options.threads
    if threads is None:
        from vmafx_saliency.video.extract import default_threads

        threads = default_threads()
    models = load_models(options.models, threads=threads, signed=options.signed)
    if options.protocol == "deployment":
        for m in models:
            if m.pre.colour_mode != "luma_tile":
                raise UsageError(
                    f"{m.id}: its sidecar declares colour mode {m.pre.colour_mode!r}; the "
                    "deployment protocol feeds luma (luma_tile): use --protocol upstream"
                )

    start = time.perf_counter()
    outcome = _evaluate(pairs, models, options)
    seconds = time.perf_counter() - start

    results = []
    for i, m in enumerate(models):
        metrics, curves = outcome.metrics[i].get_results()
        data = m.loaded.path.read_bytes()
        notes: list[str] = []
        if sha256_bytes(data) != m.loaded.sha256:
            raise InputFileError(
                f"{m.loaded.path} changed while it was evaluated: re-run the evaluation"
            )
        size = m.pre.inference_size
        # A native-size model's MACs depend on each image: count params only.
        cost = count_cost(data, size or (320, 320))
        if cost.note:
            notes.append(cost.note)
        if size is None:
            notes.append("native inference size: MACs depend on each image's size")
        metrics_all: dict[str, float | None] = dict(metrics)
        metrics_all["params"] = None if cost.params is None else float(cost.params)
        metrics_all["macs"] = None if cost.macs is None or size is None else float(cost.macs)
        metrics_all["ms_per_image"] = float(np.median(outcome.ms[i]))
        results.append(
            ModelResult(
                id=m.id,
                source=m.source,
                path=str(m.loaded.path),
                sha256=m.loaded.sha256,
                inference_size=size,
                metrics={k: _finite_or_none(v) for k, v in metrics_all.items()},
                mean_saliency=distribution([s.mean_saliency for s in outcome.metrics[i].scores]),
                curves=curves,
                notes=tuple(notes),
            )
        )
    summary = EvalSummary(
        tool=_versions()["vmafx-saliency"],
        command=options.command,
        dataset=DatasetInfo(
            path=str(Path(options.dataset).resolve()),
            name=Path(options.dataset).resolve().name,
            count=len(pairs),
            pairs=len(all_pairs),
            limit=options.limit,
            grey_masks=outcome.grey_masks,
            empty_masks=outcome.empty_masks,
            pixels_at_threshold_plus_one=outcome.pixels_at_edge,
        ),
        protocol=options.protocol,
        gt_threshold=options.gt_threshold,
        conventions={
            k: v.replace("{gt_threshold}", str(options.gt_threshold))
            for k, v in CONVENTIONS.items()
        },
        versions=_versions(),
        models=tuple(results),
    )
    problems = validate_summary(summary.to_json())
    if problems:  # a bug here, not the user's: keep the report from being written
        raise OutputError(f"the summary breaks its own schema: {'; '.join(problems[:3])}")
    _write_eval_report(options, summary, outcome, models)
    return EvalResult(summary=summary, report=options.report, seconds=seconds)


@dataclass
class _Outcome:
    metrics: list[DatasetMetrics]
    ms: list[list[float]]
    rows: list[dict[str, Any]]
    samples: list[_Sample]
    grey_masks: int = 0
    empty_masks: int = 0
    pixels_at_edge: int = 0


@dataclass(frozen=True)
class _Prepared:
    pair: LoadedPair
    tensors: tuple[np.ndarray, ...]


def _evaluate(pairs: Sequence[Pair], models: Sequence[EvalModel], options: EvalOptions) -> _Outcome:
    """Pre-processing and scoring in ``--jobs`` worker threads, inference in this one.

    ONNX Runtime, numpy's resizes, PIL's decoder and most of py_sod_metrics release
    the GIL, so the workers overlap with inference. Results are consumed in image
    order through bounded windows, so memory stays flat and the output is the same
    whatever ``--jobs`` is.
    """
    make_input = _INPUTS[options.protocol]
    make_map = _OUTPUTS[options.protocol]
    gt_threshold = options.gt_threshold
    n = len(pairs)
    picks = (
        set(np.unique(np.linspace(0, n - 1, min(options.grid, n)).round().astype(int)).tolist())
        if options.grid
        else set()
    )
    outcome = _Outcome(
        metrics=[DatasetMetrics(gt_threshold=gt_threshold) for _ in models],
        ms=[[] for _ in models],
        rows=[],
        samples=[],
    )

    def prepare(pair: Pair) -> _Prepared:
        loaded = load_pair(pair)
        return _Prepared(loaded, tuple(make_input(loaded.image, m.pre) for m in models))

    def post(saliency: np.ndarray, pair: LoadedPair) -> tuple[np.ndarray, ImageScores]:
        map8 = make_map(saliency, (pair.mask.shape[0], pair.mask.shape[1]))
        return map8, score_image(map8, pair.mask, gt_threshold=gt_threshold)

    window = 2 * options.jobs + 2
    executor: Executor = ThreadPoolExecutor(options.jobs) if options.jobs > 1 else _Inline()
    progress = _Progress(total=n, unit="images", enabled=options.progress)
    pending: deque[tuple[int, int, float, Future[tuple[np.ndarray, ImageScores]]]] = deque()
    loaded_pairs: dict[int, LoadedPair] = {}

    def drain(keep: int) -> None:
        while len(pending) > keep:
            index, model_index, ms, future = pending.popleft()
            map8, scores = future.result()
            model = models[model_index]
            outcome.metrics[model_index].add(scores)
            outcome.ms[model_index].append(ms)
            pair = loaded_pairs[index]
            outcome.rows.append(
                {
                    "model": model.id,
                    "stem": pair.stem,
                    "height": pair.mask.shape[0],
                    "width": pair.mask.shape[1],
                    **scores.row(),
                    "ms": ms,
                }
            )
            if index in picks:
                sample = next((s for s in outcome.samples if s.stem == pair.stem), None)
                if sample is None:
                    sample = _Sample(pair.stem, pair.image, pair.mask)
                    outcome.samples.append(sample)
                sample.maps[model.id] = map8
            if model_index == len(models) - 1:
                loaded_pairs.pop(index, None)
                progress.update()

    try:
        ahead: deque[tuple[int, Future[_Prepared]]] = deque()
        feed = iter(enumerate(pairs))

        def refill() -> None:
            while len(ahead) < window:
                item = next(feed, None)
                if item is None:
                    return
                ahead.append((item[0], executor.submit(prepare, item[1])))

        refill()
        while ahead:
            index, future = ahead.popleft()
            prepared = future.result()
            refill()
            pair = prepared.pair
            loaded_pairs[index] = pair
            mask = pair.mask
            values = np.unique(mask)
            outcome.grey_masks += int(not np.all(np.isin(values, (0, 255))))
            outcome.empty_masks += int(not np.any(mask > gt_threshold))
            outcome.pixels_at_edge += int(np.count_nonzero(mask == gt_threshold + 1))
            for model_index, (model, tensor) in enumerate(
                zip(models, prepared.tensors, strict=True)
            ):
                t0 = time.perf_counter()
                (saliency,) = model.loaded.session.run(["saliency_map"], {"input": tensor})
                ms = (time.perf_counter() - t0) * 1000.0
                sal = np.asarray(saliency)[0, 0]
                _check_map(sal, model.id, pair.stem)
                pending.append((index, model_index, ms, executor.submit(post, sal, pair)))
            drain(window * len(models))
        drain(0)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        progress.close()
    return outcome


def _check_map(saliency: np.ndarray, model_id: str, stem: str) -> None:
    if not np.all(np.isfinite(saliency)):
        raise ExtractionError(
            f"{model_id} on image {stem!r}: the map holds NaN or infinite values: the model "
            "is broken for this input"
        )
    lo, hi = float(saliency.min()), float(saliency.max())
    if lo < -1e-5 or hi > 1.0 + 1e-5:
        raise ExtractionError(
            f"{model_id} on image {stem!r}: map values in [{lo:.4g}, {hi:.4g}] are outside "
            "[0, 1]: the model breaks the deployment contract"
        )


# --- the eval report -----------------------------------------------------------------------------


_LABELS = {
    "mae": "MAE (grey mask)",
    "mae_binary": "MAE (binarised mask)",
    "max_f": "max F (i: dataset P/R, paper)",
    "mean_f": "mean F (i: dataset P/R)",
    "adp_f": "adaptive F",
    "max_f_per_image": "max F (ii: per-image F)",
    "mean_f_per_image": "mean F (ii: per-image F)",
    "s_measure": "S-measure",
    "max_e": "max E-measure",
    "mean_e": "mean E-measure",
    "adp_e": "adaptive E-measure",
    "weighted_f": "weighted F",
    "iou": "IoU @0.5",
    "block_iou_16": "block IoU 16x16",
    "block_iou_64": "block IoU 64x64",
    "params": "parameters",
    "macs": "MACs",
    "ms_per_image": "ms / image (median)",
}


def _fmt(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if name == "params":
        return f"{value:,.0f}"
    if name == "macs":
        return f"{value / 1e9:.3f} G"
    if name == "ms_per_image":
        return f"{value:.1f}"
    return f"{value:.4f}"


def render_markdown(summary: EvalSummary) -> str:
    """report.md: the side-by-side table (best value in bold, differences to the first
    model), the conventions and the command line."""
    from vmafx_saliency.supply.registry import higher_is_better

    models = summary.models
    ds = summary.dataset
    lines = [
        f"# Saliency evaluation: {ds.name} ({ds.count} of {ds.pairs} pairs), "
        f"protocol `{summary.protocol}`",
        "",
        f"Command: `{summary.command}`" if summary.command else "Command: (library call)",
        "",
        f"Protocol `{summary.protocol}`: {PROTOCOL_TEXT[summary.protocol]}.",
        "",
    ]
    header = ["metric", *(f"`{m.id}`" for m in models)]
    if len(models) > 1:
        header += [f"Δ `{m.id}` − `{models[0].id}`" for m in models[1:]]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---|" + "---:|" * (len(header) - 1))
    for name in METRIC_NAMES:
        values = [m.metrics.get(name) for m in models]
        known = [v for v in values if v is not None]
        best = None
        if len(models) > 1 and known:
            best = max(known) if higher_is_better(name) else min(known)
        cells = []
        for v in values:
            text = _fmt(name, v)
            cells.append(f"**{text}**" if best is not None and v == best else text)
        arrow = "↑" if higher_is_better(name) else "↓"
        row = [f"{_LABELS.get(name, name)} {arrow}", *cells]
        for v in values[1:]:
            base = values[0]
            if v is None or base is None:
                row.append("n/a")
            elif name in ("params", "macs", "ms_per_image"):
                row.append(f"{v / base:.2f}x" if base else "n/a")
            else:
                row.append(f"{v - base:+.4f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "↑ higher is better, ↓ lower is better; with several models the best value is in bold.",
        "",
        "Per-image mean saliency (the quantity `saliency_mean` pools per frame):",
        "",
        "| model | mean | std | min | median | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in models:
        d = m.mean_saliency
        lines.append(
            f"| `{m.id}` | {d.mean:.4f} | {d.std:.4f} | {d.min:.4f} | {d.median:.4f} | "
            f"{d.max:.4f} |"
        )
    lines += ["", "Models:", ""]
    for m in models:
        size = "native" if m.inference_size is None else "x".join(map(str, m.inference_size[::-1]))
        lines.append(
            f"- `{m.id}` ({m.source}): `{m.path}`, sha256 `{m.sha256[:16]}…`, inference {size}"
            + ("".join(f"; {n}" for n in m.notes))
        )
    lines += [
        "",
        f"Dataset: `{ds.path}`; {ds.grey_masks} of {ds.count} masks are grey (not binary), "
        f"{ds.empty_masks} have no salient pixel, {ds.pixels_at_threshold_plus_one:,} mask "
        f"pixels equal {summary.gt_threshold + 1} (salient here; background under > "
        f"{summary.gt_threshold + 1}).",
        "",
        "## Conventions",
        "",
    ]
    lines += [f"- **{k}**: {v}." for k, v in summary.conventions.items()]
    lines += [
        "",
        "## Files",
        "",
        "- `summary.json` (schema `" + summary.schema + "`; `registry promote --report "
        "summary.json --metric NAME` reads it)",
        "- `per_image.csv`: one row per image per model; its `max_f` and `max_e` are each "
        "image's own best over the thresholds, so their mean is neither summary figure of "
        "that name (those take the best threshold of the mean curves)",
        "- `pr_curves.png`, `f_threshold.png`, `mean_saliency_hist.png`, `grid.png`",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in summary.versions.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def _write_eval_report(
    options: EvalOptions, summary: EvalSummary, outcome: _Outcome, models: Sequence[EvalModel]
) -> None:
    out = _ReportDir(options.report, marker=EVAL_MARKER, force=options.force)
    try:
        out.path(EVAL_MARKER).write_text(summary.dumps(), encoding="utf-8")
        with out.path("per_image.csv").open("w", newline="", encoding="utf-8") as fh:
            fields = list(outcome.rows[0]) if outcome.rows else ["model", "stem"]
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for row in outcome.rows:
                writer.writerow(
                    {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()}
                )
        out.path("report.md").write_text(render_markdown(summary), encoding="utf-8")
        _plot_curves(summary, out.path("pr_curves.png"), out.path("f_threshold.png"))
        _plot_hist(summary, outcome, out.path("mean_saliency_hist.png"))
        _plot_grid(outcome.samples, [m.id for m in models], out.path("grid.png"))
        out.commit()
    except BaseException:
        out.discard()
        raise


def _plot_curves(summary: EvalSummary, pr_path: Path, f_path: Path) -> None:
    fig = _figure((5.5, 5.0))
    ax = fig.add_subplot()
    for m in summary.models:
        ax.plot(
            m.curves.recall, m.curves.precision, label=f"{m.id} (max F {m.metrics['max_f']:.3f})"
        )
    ax.set_xlabel("recall (averaged over images)")
    ax.set_ylabel("precision (averaged over images)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    ax.set_title(f"{summary.dataset.name}: precision-recall ({summary.protocol})")
    fig.savefig(pr_path, format="png")

    fig = _figure((7.0, 4.0))
    ax = fig.add_subplot()
    thresholds = np.arange(THRESHOLDS) / 255.0
    for m in summary.models:
        (line,) = ax.plot(thresholds, m.curves.f_pr, label=f"{m.id}: F of mean P, R (i)")
        ax.plot(
            thresholds,
            m.curves.f_per_image,
            linestyle="--",
            color=line.get_color(),
            label=f"{m.id}: mean per-image F (ii)",
        )
    ax.set_xlabel("threshold (map >= t)")
    ax.set_ylabel("F-measure (beta^2 = 0.3)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", fontsize="small")
    ax.set_title(f"{summary.dataset.name}: F-measure over threshold ({summary.protocol})")
    fig.savefig(f_path, format="png")


def _plot_hist(summary: EvalSummary, outcome: _Outcome, path: Path) -> None:
    fig = _figure((6.5, 4.0))
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 41)
    for i, m in enumerate(summary.models):
        values = [s.mean_saliency for s in outcome.metrics[i].scores]
        ax.hist(values, bins=bins, histtype="step", linewidth=1.5, label=m.id)
    ax.set_xlabel("per-image mean saliency")
    ax.set_ylabel("images")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"{summary.dataset.name}: mean saliency per image ({summary.protocol})")
    fig.savefig(path, format="png")


def _plot_grid(samples: Sequence[_Sample], model_ids: Sequence[str], path: Path) -> None:
    cols = 2 + len(model_ids)
    rows = max(len(samples), 1)
    fig = _figure((2.2 * cols, 2.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        for c in range(cols):
            axes[r][c].axis("off")
    for r, sample in enumerate(samples):
        panels: list[tuple[str, np.ndarray | None]] = [
            ("image " + sample.stem, sample.image),
            ("mask", sample.mask),
        ]
        panels += [(mid, sample.maps.get(mid)) for mid in model_ids]
        for c, (title, picture) in enumerate(panels):
            if picture is None:
                continue
            ax = axes[r][c]
            ax.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize="small")
    fig.savefig(path, format="png")


# --- compare over videos -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CompareOptions:
    videos: tuple[VideoInput, ...]
    models: tuple[ModelSpec, ModelSpec]
    report: Path
    force: bool = False
    threads: int | None = None
    signed: bool = False
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
    stats = require("scipy.stats", purpose="compare")
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    pearson: float | None = None
    spearman: float | None = None
    # Correlation is undefined for a constant series and meaningless on two points.
    if len(xa) >= 3 and np.ptp(xa) > 0 and np.ptp(xb) > 0:
        pearson = _finite_or_none(float(stats.pearsonr(xa, xb)[0]))
        spearman = _finite_or_none(float(stats.spearmanr(xa, xb)[0]))
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
    video: VideoInput, model: EvalModel, *, block: int, progress: bool
) -> tuple[list[int], list[float], dict[int, np.ndarray]]:
    """One model over one clip through the extractor; the block grid of each frame's map."""
    from vmafx_saliency.video import extract
    from vmafx_saliency.video.frames import select_frames

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

        result = extract.extract(
            select_frames(source, start=video.start, end=video.end, subsample=video.subsample),
            model.loaded,
            pre=model.pre,
            color_range=info.color_range,
            progress=extract.Progress(total=None, enabled=progress),
            on_map=on_map,
        )
    frames = [f.frame_num for f in result.features]
    return frames, [f.saliency_mean for f in result.features], grids


def run_compare(options: CompareOptions) -> CompareResult:
    """Both models over every clip, the agreement per clip and over all clips."""
    check_report_folder(options.report, marker=COMPARE_MARKER, force=options.force)
    require("scipy.stats", purpose="compare")
    require("matplotlib", purpose="compare plots")
    if not options.videos:
        raise UsageError("give at least one video")
    threads = options.threads
    if threads is None:
        from vmafx_saliency.video.extract import default_threads

        threads = default_threads()
    models = load_models(options.models, threads=threads, signed=options.signed)
    a_model, b_model = models
    clips = []
    all_frames: list[int] = []
    all_a: list[float] = []
    all_b: list[float] = []
    all_iou: list[float] = []
    for video in options.videos:
        fa, sa, ga = _series(video, a_model, block=options.block, progress=options.progress)
        fb, sb, gb = _series(video, b_model, block=options.block, progress=options.progress)
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
