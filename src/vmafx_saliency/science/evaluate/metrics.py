"""Saliency metrics: one input checker, then accumulators (``step(pred, gt)``, ``get_results()``).

The scores come from py_sod_metrics (PySODMetrics), the field's reference
implementation, fed through one input checker (:func:`check_inputs`) so every
metric sees the same binarised mask and the same [0, 1] prediction; IoU and
block IoU (the granularity encoders consume) are computed here in the same
accumulator style. The definitions, with their sources, are :data:`CONVENTIONS`,
written into every report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vmafx_saliency._util import require
from vmafx_saliency.errors import UsageError

# F-measure weight: beta^2 = 0.3 stresses precision, as every SOD paper since
# Achanta et al. 2009 (py_sod_metrics calls this number "beta").
BETA2 = 0.3
# An 8-bit mask pixel is salient when > 127 (the shared data README). py_sod_metrics'
# own prepare_data and the U^2-Net authors' tool use > 128; it is an option.
GT_THRESHOLD = 127
MAP_THRESHOLD = 0.5
BLOCK_SIZES = (16, 64)  # pixels: an H.264 macroblock and an HEVC/AV1 superblock
THRESHOLDS = 256  # pred8 >= t for t = 0..255

# The scores, in report order: [0, 1] by definition, but for E-measure (below).
_SCORES = (
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
# E-measure divides by h*w - 1 (the reference code): an exact match on an
# all-background (or all-foreground) mask scores h*w / (h*w - 1), just over 1.
ENHANCED_METRICS = ("max_e", "mean_e", "adp_e")
UNIT_METRICS = tuple(name for name in _SCORES if name not in ENHANCED_METRICS)
COST_METRICS = ("params", "macs", "ms_per_image")
METRIC_NAMES = (*_SCORES, *COST_METRICS)

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
        "averaged; E-measure divides by h w - 1 (Fan et al.'s reference code), so an exact "
        "match on an all-background or all-foreground mask scores h w / (h w - 1), just over "
        "1; weighted_f: py_sod_metrics WeightedFmeasure (beta 1), 0 for an empty mask"
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
        return asdict(self)  # the fields, in their order

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
    return require("py_sod_metrics", purpose="eval (metrics)", extra="eval")


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
