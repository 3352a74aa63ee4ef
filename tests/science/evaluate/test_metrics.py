"""evaluate.metrics: the input checker, our metrics by hand, py_sod_metrics against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmafx_saliency.errors import UsageError
from vmafx_saliency.science import evaluate as ev

# --- the shared input checker ----------------------------------------------------------


def test_check_inputs_scales_and_binarises() -> None:
    pred = np.array([[0, 255], [128, 51]], dtype=np.uint8)
    gt = np.array([[0, 127], [128, 255]], dtype=np.uint8)
    data = ev.check_inputs(pred, gt)
    assert data.pred.dtype == np.float64
    np.testing.assert_allclose(data.pred, [[0.0, 1.0], [128 / 255, 0.2]])
    # > 127: 128 is salient (the data README); py_sod_metrics' > 128 would drop it.
    assert data.gt.tolist() == [[False, False], [True, True]]
    assert ev.check_inputs(pred, gt, gt_threshold=128).gt.tolist() == [
        [False, False],
        [False, True],
    ]
    np.testing.assert_allclose(data.gt_grey, gt / 255.0)


def test_check_inputs_accepts_float_and_bool() -> None:
    data = ev.check_inputs(np.full((2, 2), 0.25), np.eye(2, dtype=bool))
    assert data.gt.tolist() == [[True, False], [False, True]]
    np.testing.assert_allclose(data.gt_grey, np.eye(2))


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), r"prediction 3x2 and mask 2x3"),
        (np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8), r"must be 2-D"),
        (np.full((2, 2), 1.5), np.zeros((2, 2), np.uint8), r"finite and in \[0, 1\]"),
        (np.zeros((2, 2), np.int32), np.zeros((2, 2), np.uint8), r"uint8 or float"),
        (np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.float32), r"uint8 \(grey\) or bool"),
    ],
)
def test_check_inputs_refuses(pred: np.ndarray, gt: np.ndarray, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ev.check_inputs(pred, gt)


# --- our metrics, by hand ------------------------------------------------------------------


def test_iou_by_hand() -> None:
    p = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)
    g = np.array([[1, 0, 0], [1, 0, 0]], dtype=bool)
    assert ev.iou(p, g) == pytest.approx(1 / 3)  # 1 shared pixel, 3 in the union
    assert ev.iou(p, p) == 1.0
    assert ev.iou(p, np.zeros_like(p)) == 0.0
    assert ev.iou(np.zeros_like(p), np.zeros_like(p)) == 1.0  # both empty: they agree


def test_block_grid_by_hand() -> None:
    # 5 x 5 in 2 x 2 blocks: a 3 x 3 grid whose last row/column are partial.
    b = np.zeros((5, 5), dtype=bool)
    b[0, 0] = True  # block (0,0): 1 of 4  -> not salient
    b[0:2, 2] = True  # block (0,1): 2 of 4  -> salient (exactly half counts)
    b[4, 4] = True  # block (2,2): 1 of 1  -> salient (a partial corner block)
    b[2, 4] = True  # block (1,2): 1 of 2  -> salient (a partial edge block)
    b[4, 0] = True  # block (2,0): 1 of 2  -> salient
    expected = [
        [False, True, False],
        [False, False, True],
        [True, False, True],
    ]
    assert ev.block_grid(b, 2).tolist() == expected
    assert ev.block_grid(b, 5).tolist() == [[False]]  # 5 of 25
    assert ev.block_grid(b, 1).tolist() == b.tolist()


def test_block_iou_by_hand() -> None:
    p = np.zeros((4, 4), dtype=bool)
    g = np.zeros((4, 4), dtype=bool)
    p[0:2, 0:4] = True  # blocks (0,0) and (0,1)
    g[0:2, 0:2] = True  # block (0,0)
    g[2:4, 2:3] = True  # block (1,1): 2 of 4 pixels -> salient
    # salient blocks: P = {(0,0), (0,1)}, G = {(0,0), (1,1)} -> 1 / 3
    assert ev.block_iou(p, g, 2) == pytest.approx(1 / 3)
    # one 4 x 4 block: P has 8 of 16 (salient), G 6 of 16 (not) -> IoU 0
    assert ev.block_iou(p, g, 4) == 0.0
    with pytest.raises(UsageError, match="positive"):
        ev.block_grid(p, 0)


def test_iou_accumulators() -> None:
    pred = np.array([[255, 0], [0, 0]], dtype=np.uint8)
    gt = np.array([[255, 255], [0, 0]], dtype=np.uint8)
    mean_iou = ev.MeanIoU()
    assert mean_iou.step(pred, gt) == pytest.approx(0.5)
    assert mean_iou.step(gt, gt) == 1.0
    assert mean_iou.get_results() == {"iou": pytest.approx(0.75)}


def test_block_iou_accumulator_by_hand() -> None:
    pred = np.array([[255, 0], [0, 0]], dtype=np.uint8)  # 1 of 4 -> block not salient
    gt = np.array([[255, 255], [0, 0]], dtype=np.uint8)  # 2 of 4 -> salient
    blocks = ev.BlockIoU(2)
    assert blocks.step(pred, gt) == 0.0
    assert blocks.step(gt, gt) == 1.0
    assert blocks.get_results() == {"block_iou_2": 0.5}


def test_distribution_by_hand() -> None:
    d = ev.distribution([4.0, 1.0, 3.0, 2.0])
    assert (d.count, d.mean, d.min, d.median, d.max) == (4, 2.5, 1.0, 2.5, 4.0)
    assert d.std == pytest.approx(math.sqrt(1.25))  # population: (2.25 + .25 + .25 + 2.25) / 4
    assert ev.distribution([0.2]).std == 0.0
    assert ev.Distribution.from_json(d.to_json()) == d
    with pytest.raises(UsageError, match="empty"):
        ev.distribution([])
    with pytest.raises(UsageError, match="NaN"):
        ev.distribution([1.0, math.nan])


# --- py_sod_metrics-backed figures against a direct computation --------------------------


def _tiny_cases(count: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        gt = np.zeros((9, 11), dtype=np.uint8)
        y, x = rng.integers(0, 5, size=2)
        gt[y : y + 4, x : x + 5] = rng.choice([128, 200, 255])
        gt[0, 0] = 90  # a grey pixel below the threshold
        pred = rng.integers(0, 256, size=gt.shape).astype(np.uint8)
        pred[gt > 127] = np.maximum(pred[gt > 127], 120)
        cases.append((pred, gt))
    # Two images that disagree on the best threshold, so the conventions differ.
    gt = np.zeros((9, 11), dtype=np.uint8)
    gt[:3, :3] = 255
    cases.append((np.where(gt > 0, 255, 40).astype(np.uint8), gt))
    cases.append((np.where(gt > 0, 30, 200).astype(np.uint8), gt))
    return cases


def _brute_force(cases: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Precision, recall and F at every threshold by plain loops, both conventions."""
    precisions, recalls, fs = [], [], []
    for pred, gt in cases:
        g = gt > 127
        p_row, r_row, f_row = [], [], []
        for t in range(256):
            b = pred >= t
            tp = int(np.sum(b & g))
            p = tp / int(b.sum()) if b.sum() else 0.0
            r = tp / int(g.sum()) if g.sum() else 0.0
            f = 1.3 * p * r / (0.3 * p + r) if p + r else 0.0
            p_row.append(p)
            r_row.append(r)
            f_row.append(f)
        precisions.append(p_row)
        recalls.append(r_row)
        fs.append(f_row)
    pm, rm = np.mean(precisions, axis=0), np.mean(recalls, axis=0)
    f_pr = np.where(0.3 * pm + rm > 0, 1.3 * pm * rm / np.maximum(0.3 * pm + rm, 1e-300), 0.0)
    f_img = np.mean(fs, axis=0)
    maes = [np.mean(np.abs(pred / 255.0 - gt / 255.0)) for pred, gt in cases]
    maes_bin = [np.mean(np.abs(pred / 255.0 - (gt > 127))) for pred, gt in cases]
    return {
        "max_f": float(f_pr.max()),
        "mean_f": float(f_pr.mean()),
        "max_f_per_image": float(f_img.max()),
        "mean_f_per_image": float(f_img.mean()),
        "mae": float(np.mean(maes)),
        "mae_binary": float(np.mean(maes_bin)),
    }


def test_f_measures_and_mae_match_brute_force() -> None:
    cases = _tiny_cases()
    metrics = ev.DatasetMetrics()
    for pred, gt in cases:
        metrics.step(pred, gt)
    got, curves = metrics.get_results()
    want = _brute_force(cases)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    # The two conventions really differ on these cases, so the test tells them apart.
    assert abs(got["max_f"] - got["max_f_per_image"]) > 1e-3
    assert len(curves.precision) == 256
    assert curves.recall[0] == 1.0  # t = 0: every pixel is predicted salient


def test_score_image_single_case() -> None:
    pred = np.array([[255, 200, 0], [0, 100, 0]], dtype=np.uint8)
    gt = np.array([[255, 255, 0], [0, 0, 0]], dtype=np.uint8)
    s = ev.score_image(pred, gt)
    assert s.mae == pytest.approx(np.mean(np.abs(pred / 255 - gt / 255)))
    assert s.iou == pytest.approx(1.0)  # 255 and 200 are >= 128; 100 is not
    assert s.max_f == pytest.approx(1.0)  # t in (100, 200]: exactly the mask
    assert s.mean_saliency == pytest.approx(pred.mean() / 255)
    assert 0.0 <= s.s_measure <= 1.0 and 0.0 <= s.weighted_f <= 1.0
    assert s.e_curve.shape == (256,) and s.precision[255] == 1.0
