"""Masked luma MSE and PSNR, hand-worked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmafx_saliency.downstream import roi


def test_masked_mse_hand_worked() -> None:
    mask = np.array([[True, True], [False, False]])
    meter = roi.MaskedMse(mask)
    meter.add(np.zeros((2, 2), np.uint8), np.array([[1, 1], [3, 3]], np.uint8))
    result = meter.result(255.0)
    assert (result.mse_inside, result.mse_outside, result.mse_overall) == (1.0, 9.0, 5.0)
    assert result.inside == pytest.approx(10 * math.log10(255**2 / 1))
    assert result.outside == pytest.approx(10 * math.log10(255**2 / 9))
    assert result.to_json()["inside"] == pytest.approx(48.1308, abs=1e-4)
    same = roi.MaskedMse(mask)
    same.add(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    assert same.result(255.0).to_json()["overall"] is None  # identical: infinite PSNR
