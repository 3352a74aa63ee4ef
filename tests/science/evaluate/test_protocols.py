"""evaluate.protocols: the upstream and deployment inputs and outputs, by hand."""

from __future__ import annotations

import numpy as np

from vmafx_saliency.science import evaluate as ev
from vmafx_saliency.supply.registry import Preprocessing

# --- protocols -----------------------------------------------------------------------------


PRE = Preprocessing(
    colour_mode="luma_tile",
    inference_size=(4, 4),
    scaling="divide_by_max",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    luma_range="auto",
)


def test_upstream_input_grey_uses_channel_zero_statistics() -> None:
    grey = np.full((4, 4), 100, dtype=np.uint8)
    x = ev.upstream_input(grey, PRE)
    assert x.shape == (1, 3, 4, 4)
    # divided by its own max -> 1.0 everywhere; every channel (1 - 0.485) / 0.229
    np.testing.assert_allclose(x, (1.0 - 0.485) / 0.229, rtol=1e-6)
    rgb = np.stack([grey] * 3, axis=-1)
    y = ev.upstream_input(rgb, PRE)
    np.testing.assert_allclose(y[0, 2], (1.0 - 0.406) / 0.225, rtol=1e-6)


def test_luma_and_deployment_input() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    assert ev.luma8(rgb).tolist() == [[76, 150, 29, 18]]  # rint(0.299 R + 0.587 G + 0.114 B)
    x = ev.deployment_input(np.repeat(rgb, 4, axis=0), PRE)
    assert x.shape == (1, 3, 4, 4)
    # luma_tile: one plane (luma / 255, then / its max 150/255) under each channel's mean/std
    planes = [x[0, c] * PRE.std[c] + PRE.mean[c] for c in range(3)]
    np.testing.assert_allclose(planes[0], planes[2], atol=1e-6)
    np.testing.assert_allclose(planes[0][0], np.array([76, 150, 29, 18]) / 150, atol=1e-6)


def test_upstream_output_min_max_and_truncation() -> None:
    sal = np.array([[0.2, 0.6], [0.4, 0.2 + 0.4 * (200.7 / 255)]], dtype=np.float32)
    out = ev.upstream_output(sal, (2, 2))
    # (x - 0.2) / 0.4 * 255, truncated: 0, 255, 127 (127.5), 200 (200.7)
    assert out.tolist() == [[0, 255], [127, 200]]
    assert ev.upstream_output(np.full((2, 2), 0.3, np.float32), (2, 2)).tolist() == [[0, 0], [0, 0]]
    assert ev.upstream_output(sal, (4, 6)).shape == (4, 6)


def test_deployment_output_rounds_raw_map() -> None:
    sal = np.array([[0.0, 0.5], [1.0, 0.2]], dtype=np.float32)
    assert ev.deployment_output(sal, (2, 2)).tolist() == [[0, 128], [255, 51]]
