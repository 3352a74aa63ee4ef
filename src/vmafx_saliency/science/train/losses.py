"""What training minimises and what selection scores.

The loss of a map of logits against the soft teacher map: BCE plus a region
term (soft IoU, F3Net's boundary-weighted structure loss, or one minus a soft
F-measure), and optionally an L1 term. Validation scores maps by max F-measure
against the teacher binarised at 0.5, as the benchmark does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vmafx_saliency._util import require
from vmafx_saliency.errors import UsageError
from vmafx_saliency.science.train.config import LOSSES

F_BETA2 = 0.3  # the F-measure's beta^2 in --loss fmeasure, the benchmark's (Achanta et al. 2009)
# What each --loss computes, in the training record's words.
LOSS_DESCRIPTIONS = {
    "bce_iou": "BCE(logits, teacher map) + iou_weight * soft IoU",
    "structure": "F3Net structure loss: (1 + 5 |avgpool31(t) - t|)-weighted BCE + "
    "iou_weight * weighted IoU",
    "fmeasure": "BCE(logits, teacher map) + iou_weight * (1 - soft F-measure, beta^2 0.3): "
    "FLoss (Zhao et al., ICCV 2019)",
}


def _loss(
    torch: Any,
    logits: Any,
    target: Any,
    iou_weight: float,
    l1_weight: float = 0.0,
    kind: str = "bce_iou",
) -> Any:
    """BCE + ``iou_weight`` x soft IoU against the soft teacher map (+ optional L1).

    ``kind`` ``fmeasure`` puts ``iou_weight`` x (1 - soft F-measure) in the IoU
    term's place: with TP = sum(p t), FP = sum(p (1 - t)) and FN = sum((1 - p) t),
    F = (1 + b2) TP / ((1 + b2) TP + b2 FN + FP) = (1 + b2) sum(p t) /
    (b2 sum(t) + sum(p)), b2 = 0.3 as in the benchmark's max F: the "FLoss" of
    Zhao et al., "Optimizing the F-measure for threshold-free salient object
    detection", ICCV 2019, which aims the training at max F's precision bias.

    ``kind`` ``structure`` weights both terms per pixel by
    ``1 + 5 |avgpool31(target) - target|``, which is large near the teacher's
    object boundaries and in small structures: the "structure loss" of F3Net
    (Wei, Wang and Huang, AAAI 2020, ``structure_loss`` in their code), which
    aims the training at the regions S-measure and F-measure punish.
    """
    functional = require("torch.nn.functional", purpose="training", extra="train")
    prob = torch.sigmoid(logits)
    if kind == "structure":
        weight = 1.0 + 5.0 * torch.abs(_box_mean(target, 31) - target)
        bce_map = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        bce = ((weight * bce_map).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3))).mean()
        inter = (prob * target * weight).sum(dim=(1, 2, 3))
        union = ((prob + target) * weight).sum(dim=(1, 2, 3))
        iou = 1.0 - (inter + 1.0) / (union - inter + 1.0)
    elif kind == "bce_iou":
        bce = functional.binary_cross_entropy_with_logits(logits, target)
        inter = (prob * target).sum(dim=(1, 2, 3))
        union = (prob + target - prob * target).sum(dim=(1, 2, 3))
        iou = 1.0 - (inter + 1.0) / (union + 1.0)
    elif kind == "fmeasure":
        bce = functional.binary_cross_entropy_with_logits(logits, target)
        tp = (prob * target).sum(dim=(1, 2, 3))
        # +1 on both sides, as for the IoU: an empty map against an empty target scores 1.
        f = ((1.0 + F_BETA2) * tp + 1.0) / (
            F_BETA2 * target.sum(dim=(1, 2, 3)) + prob.sum(dim=(1, 2, 3)) + 1.0
        )
        iou = 1.0 - f
    else:
        raise UsageError(f"--loss {kind!r}: give one of {', '.join(LOSSES)}")
    loss = bce + iou_weight * iou.mean()
    if l1_weight:
        loss = loss + l1_weight * (prob - target).abs().mean()
    return loss


def _box_mean(x: Any, size: int) -> Any:
    """``avg_pool2d(x, size, stride=1, padding=size // 2)`` (zeros outside, counted)
    from running sums along each axis: two cumsums instead of size^2 adds per pixel."""
    functional = require("torch.nn.functional", purpose="training", extra="train")
    half = size // 2
    out = x
    for dim in (2, 3):
        pad = [0, 0, 0, 0]
        pad[2 * (3 - dim)] = half + 1  # F.pad lists the last dimension first
        pad[2 * (3 - dim) + 1] = half
        sums = functional.pad(out, pad).cumsum(dim=dim)
        length = out.shape[dim]
        out = sums.narrow(dim, size, length) - sums.narrow(dim, 0, length)
    return out / float(size * size)


def max_f_measure(pred: np.ndarray, gt: np.ndarray, beta2: float = 0.3) -> float:
    """Max over 256 thresholds of the F-measure (beta^2 = 0.3) of one map vs a binary mask."""
    p = np.rint(np.clip(pred, 0, 1) * 255).astype(np.int64).ravel()
    g = gt.ravel().astype(bool)
    pos = np.bincount(p[g], minlength=256)[::-1].cumsum()  # true positives at threshold >= t
    alln = np.bincount(p, minlength=256)[::-1].cumsum()
    n_gt = int(g.sum())
    if n_gt == 0:
        return 1.0 if alln[-1] == 0 else 0.0
    precision = pos / np.maximum(alln, 1)
    recall = pos / n_gt
    f = (1 + beta2) * precision * recall / np.maximum(beta2 * precision + recall, 1e-12)
    return float(f.max())


# _loss is private to the training, but the package re-exports it for the tests.
__all__ = [
    "F_BETA2",
    "LOSS_DESCRIPTIONS",
    "_loss",
    "max_f_measure",
]
