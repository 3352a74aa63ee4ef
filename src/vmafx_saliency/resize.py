"""Antialiased bilinear resize of a 2-D plane with numpy only.

The extractor's runtime has no PIL or OpenCV, so the resize is written here:
a separable triangle filter whose support widens with the downscale factor
(the same definition as PIL's ``BILINEAR`` resampling, which the tests use as
the second implementation). Upstream U^2-Net resizes with scikit-image, which
also antialiases when downscaling.

The per-axis taps and weights depend only on the two sizes, so they are cached
and a video's frames all reuse them.
"""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.lru_cache(maxsize=32)
def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices (out_size x taps) and normalised weights for one axis."""
    scale = in_size / out_size
    support = max(scale, 1.0)  # widen the triangle when downscaling: antialiasing
    taps = math.ceil(support) * 2 + 1
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    first = np.floor(centers - support + 0.5).astype(np.int64)
    index = first[:, None] + np.arange(taps)[None, :]
    # Distance of each input pixel centre (x + 0.5) from the output centre, in filter units.
    weight = 1.0 - np.abs((index + 0.5 - centers[:, None]) / support)
    valid = (index >= 0) & (index < in_size) & (weight > 0)
    weight = np.where(valid, weight, 0.0)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.clip(index, 0, in_size - 1), weight.astype(np.float32)


def resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D float32 plane to ``size`` = (height, width)."""
    out_h, out_w = size
    in_h, in_w = plane.shape
    out = plane.astype(np.float32, copy=False)
    if in_w != out_w:
        index, weight = _taps(in_w, out_w)
        out = np.einsum("hwt,wt->hw", out[:, index], weight, optimize=True)
    if in_h != out_h:
        index, weight = _taps(in_h, out_h)
        out = np.einsum("htw,ht->hw", out[index, :], weight, optimize=True)
    return np.ascontiguousarray(out, dtype=np.float32)
