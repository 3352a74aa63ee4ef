"""The training losses (BCE + IoU, F3Net's structure loss, FLoss) and max-F."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from vmafx_saliency.errors import (  # noqa: E402
    UsageError,
)
from vmafx_saliency.science import train  # noqa: E402


def test_max_f_measure() -> None:
    gt = np.zeros((10, 10), bool)
    gt[2:6, 2:6] = True
    assert train.max_f_measure(gt.astype(np.float32), gt) == pytest.approx(1.0)
    assert train.max_f_measure(np.zeros((10, 10), np.float32), gt) < 0.5


def _structure_loss_numpy(logits: np.ndarray, target: np.ndarray) -> float:
    """F3Net's structure loss written out in numpy: the second implementation."""
    total = 0.0
    for z, t in zip(logits[:, 0].astype(np.float64), target[:, 0].astype(np.float64), strict=True):
        padded = np.pad(t, 15)
        box = np.zeros_like(t)
        for dy in range(31):
            for dx in range(31):
                box += padded[dy : dy + t.shape[0], dx : dx + t.shape[1]]
        weight = 1.0 + 5.0 * np.abs(box / 31**2 - t)  # avg_pool2d counts the zero padding
        p = 1.0 / (1.0 + np.exp(-z))
        bce = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        wbce = (weight * bce).sum() / weight.sum()
        inter = (p * t * weight).sum()
        union = ((p + t) * weight).sum()
        total += wbce + 1.0 - (inter + 1.0) / (union - inter + 1.0)
    return total / len(logits)


def _loss_case(
    seed: int, size: tuple[int, int], box: tuple[slice, slice]
) -> tuple[np.ndarray, np.ndarray]:
    """Two maps of logits, against a binary box and against a soft random target."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (2, 1, *size)).astype(np.float32)
    target = np.zeros((2, 1, *size), np.float32)
    target[0, 0][box] = 1.0
    target[1, 0] = rng.random(size, dtype=np.float32)
    return logits, target


def test_structure_loss_matches_a_numpy_implementation() -> None:
    logits, target = _loss_case(3, (24, 20), (slice(5, 15), slice(4, 12)))
    got = train._loss(
        torch, torch.from_numpy(logits), torch.from_numpy(target), 1.0, kind="structure"
    )
    assert float(got) == pytest.approx(_structure_loss_numpy(logits, target), rel=1e-5)


def test_structure_loss_on_an_empty_target_is_bce_plus_iou() -> None:
    # avgpool(0) - 0 = 0: every weight is 1, so both losses are the same number.
    logits = torch.from_numpy(np.random.default_rng(4).normal(0, 1, (2, 1, 16, 16)))
    target = torch.zeros_like(logits)
    plain = train._loss(torch, logits, target, 1.0, kind="bce_iou")
    structure = train._loss(torch, logits, target, 1.0, kind="structure")
    assert float(structure) == pytest.approx(float(plain), rel=1e-6)


def test_fmeasure_loss_matches_the_tp_fp_fn_definition() -> None:
    # The second implementation: F from its three counts, not the simplified sums.
    logits, target = _loss_case(5, (12, 10), (slice(2, 8), slice(3, 7)))
    z, t = logits.astype(np.float64), target.astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-z))
    bce = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean()
    tp, fp, fn = (
        (p * t).sum((1, 2, 3)),
        (p * (1 - t)).sum((1, 2, 3)),
        ((1 - p) * t).sum((1, 2, 3)),
    )
    f = (1.3 * tp + 1.0) / (1.3 * tp + 0.3 * fn + fp + 1.0)
    want = bce + 0.7 * (1.0 - f).mean()
    got = train._loss(
        torch, torch.from_numpy(logits), torch.from_numpy(target), 0.7, kind="fmeasure"
    )
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_fmeasure_loss_by_hand_at_an_undecided_map() -> None:
    # p = 0.5 everywhere, 20 salient pixels of 100: F = (1.3 * 10 + 1) / (0.3 * 20 + 50 + 1)
    # = 14 / 57, and BCE at a zero logit is ln 2.
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, :2] = 1.0
    got = train._loss(torch, torch.zeros(1, 1, 10, 10), target, 1.0, kind="fmeasure")
    assert float(got) == pytest.approx(math.log(2) + 1.0 - 14 / 57, rel=1e-6)


def test_fmeasure_loss_costs_a_false_positive_more_than_a_miss_of_the_same_area() -> None:
    # beta^2 = 0.3 weighs precision over recall, as the benchmark's max F does; BCE is
    # symmetric at logits of +-6, so the difference is the F term's alone.
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, 2:6, 2:6] = 1.0  # 16 pixels
    exact = torch.where(target > 0, 6.0, -6.0)
    extra = exact.clone()
    extra[0, 0, 7:9, 2:6] = 6.0  # 8 false positives
    missed = exact.clone()
    missed[0, 0, 2:4, 2:6] = -6.0  # 8 misses
    cost = [
        float(train._loss(torch, x, target, 1.0, kind="fmeasure")) for x in (exact, extra, missed)
    ]
    assert cost[0] < cost[2] < cost[1]


def test_the_loss_itself_refuses_an_unknown_kind() -> None:
    # train_student is public: a bad config reaching it directly fails on the first step.
    logits = torch.zeros(1, 1, 4, 4)
    with pytest.raises(UsageError, match="--loss 'focal': give one of bce_iou, structure"):
        train._loss(torch, logits, torch.zeros_like(logits), 1.0, kind="focal")
