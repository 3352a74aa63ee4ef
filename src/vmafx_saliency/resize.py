"""Antialiased bilinear resize of a 2-D plane with numpy only.

The extractor's runtime has no PIL or OpenCV, so the resize is written here:
a separable triangle filter whose support widens with the downscale factor
(the same definition as PIL's ``BILINEAR`` resampling, which the tests use as
the second implementation). Upstream U^2-Net resizes with scikit-image, which
also antialiases when downscaling.

Two evaluations of the same filter:

- the *phase* form, for the size pairs video meets (1280 -> 320, 720 -> 320,
  352 -> 320 ...): with ``in/out = p/q`` in lowest terms, output ``q*k + r``
  reads inputs ``first[r] + p*k + t`` with weights that depend on ``r`` and
  ``t`` only, so each (phase, tap) pair is one multiply-add over a strided
  *view* of the plane: no gathered copies. Taps that fall outside the plane
  read a zero border and each output is divided by the sum of its in-range
  weights, which is exactly the renormalisation of the gather form.
- the *gather* form, for ratios with a large ``q`` (e.g. 333 -> 320), where
  the phase form would loop too often, and for mild rescales (less than 2x
  down), where the few taps make one gather cheaper.

Plans depend only on the two sizes, so they are cached and a video's frames
all reuse them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

# Above this many phases the per-phase Python loop costs more than a gather.
MAX_PHASES = 16


def _support(in_size: int, out_size: int) -> tuple[float, float, int]:
    scale = in_size / out_size
    support = max(scale, 1.0)  # widen the triangle when downscaling: antialiasing
    return scale, support, math.ceil(support) * 2 + 1


@functools.lru_cache(maxsize=32)
def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices (out_size x taps) and normalised weights for one axis."""
    scale, support, taps = _support(in_size, out_size)
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    first = np.floor(centers - support + 0.5).astype(np.int64)
    index = first[:, None] + np.arange(taps)[None, :]
    # Distance of each input pixel centre (x + 0.5) from the output centre, in filter units.
    weight = 1.0 - np.abs((index + 0.5 - centers[:, None]) / support)
    valid = (index >= 0) & (index < in_size) & (weight > 0)
    weight = np.where(valid, weight, 0.0)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.clip(index, 0, in_size - 1), weight.astype(np.float32)


@dataclass(frozen=True)
class _PhasePlan:
    step: int  # p: input samples per q outputs
    pad_before: int  # zero samples before the plane
    padded: int  # length of the zero-bordered axis
    # Per phase r: the outputs it makes, and (start in the padded axis, weight) per tap.
    phases: tuple[tuple[int, tuple[tuple[int, float], ...]], ...]
    inv_norm: np.ndarray  # [out]: 1 / (sum of the in-range weights of each output)


@functools.lru_cache(maxsize=32)
def _phase_plan(in_size: int, out_size: int) -> _PhasePlan | None:
    g = math.gcd(in_size, out_size)
    step, period = in_size // g, out_size // g
    if period > MAX_PHASES or in_size < 2 * out_size:
        # Mild rescales (352 -> 320) have few taps: one gather is cheaper there.
        return None
    scale, support, taps = _support(in_size, out_size)
    # The same float64 arithmetic as _taps, on the first `period` outputs.
    centers = (np.arange(period, dtype=np.float64) + 0.5) * scale
    first = np.floor(centers - support + 0.5).astype(np.int64)
    offsets = np.arange(taps)
    raw = 1.0 - np.abs((first[:, None] + offsets + 0.5 - centers[:, None]) / support)
    raw = np.where(raw > 0, raw, 0.0)
    outputs = np.arange(out_size)
    index = (first[outputs % period] + (outputs // period) * step)[:, None] + offsets
    in_range = (index >= 0) & (index < in_size)
    norm = (raw[outputs % period] * in_range).sum(axis=1)
    used = raw[outputs % period] > 0
    pad_before = max(0, -int(index[used].min()))
    padded = max(in_size, int(index[used].max()) + 1) + pad_before
    phases = tuple(
        (
            len(range(r, out_size, period)),
            tuple(
                (int(first[r] + t + pad_before), float(raw[r, t])) for t in offsets if raw[r, t] > 0
            ),
        )
        for r in range(period)
    )
    inv_norm = (1.0 / norm).astype(np.float32)
    return _PhasePlan(step, pad_before, padded, phases, inv_norm)


def _resize_axis(plane: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """Resize a 2-D float32 plane along ``axis`` (0: rows, 1: columns)."""
    in_size = plane.shape[axis]
    plan = _phase_plan(in_size, out_size)
    if plan is None:
        plane = plane.astype(np.float32, copy=False)
        index, weight = _taps(in_size, out_size)
        if axis == 1:
            out: np.ndarray = np.einsum("hwt,wt->hw", plane[:, index], weight, optimize=True)
        else:
            out = np.einsum("htw,ht->hw", plane[index, :], weight, optimize=True)
        return out

    def along(array: np.ndarray, part: slice) -> np.ndarray:
        return array[:, part] if axis == 1 else array[part, :]

    other = plane.shape[1 - axis]
    shape = (other, plan.padded) if axis == 1 else (plan.padded, other)
    src = np.zeros(shape, dtype=np.float32)
    along(src, slice(plan.pad_before, plan.pad_before + in_size))[...] = plane
    period = len(plan.phases)
    result = np.empty((other, out_size) if axis == 1 else (out_size, other), dtype=np.float32)
    longest = -(-out_size // period)
    scratch = np.empty((other, longest) if axis == 1 else (longest, other), dtype=np.float32)
    for r, (count, taps) in enumerate(plan.phases):
        acc = along(result, slice(r, None, period))
        tmp = along(scratch, slice(0, count))
        for t, (start, w) in enumerate(taps):
            view = along(src, slice(start, start + (count - 1) * plan.step + 1, plan.step))
            if t == 0:
                np.multiply(view, np.float32(w), out=acc)
            else:
                np.multiply(view, np.float32(w), out=tmp)
                acc += tmp
    result *= plan.inv_norm if axis == 1 else plan.inv_norm[:, None]
    return result


def resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D plane (any real dtype, e.g. raw uint8 luma) to ``size`` = (height, width).

    The result is float32. Integer samples are converted as they are read (the
    phase form copies them into its zero-bordered float32 buffer anyway), so a
    caller need not make a float copy of a whole HD frame first.
    """
    out_h, out_w = size
    # A vertical pass reads whole contiguous rows; a horizontal one reads strided
    # columns, which costs more per sample the wider the rows. So shrink the rows
    # first when the height shrinks: 4K -> 320x320 takes 9.2 ms instead of 24.6 ms
    # (benchmarks/producer_cost.py times the video sizes).
    axes = (0, 1) if out_h < plane.shape[0] else (1, 0)
    out = plane
    for axis in axes:
        target = out_h if axis == 0 else out_w
        if out.shape[axis] != target:
            out = _resize_axis(out, target, axis=axis)
    return np.ascontiguousarray(out, dtype=np.float32)
