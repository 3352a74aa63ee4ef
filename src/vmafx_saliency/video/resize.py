"""Antialiased bilinear resize of a 2-D plane with numpy only.

The extractor's runtime has no PIL or OpenCV, so the resize is written here:
a separable triangle filter whose support widens with the downscale factor
(the same definition as PIL's ``BILINEAR`` resampling, which the tests use as
the second implementation). Upstream U^2-Net resizes with scikit-image, which
also antialiases when downscaling.

Two evaluations of the same filter:

- the *window* form, for the size pairs video meets (1280 -> 320, 720 -> 320,
  352 -> 320, 288 -> 320 ...): with ``in/out = p/q`` in lowest terms, the
  ``q`` outputs of block ``k`` read one window of input lines starting at
  ``p*k + lo``, with weights that depend on the position in the block only.
  So a pass is one matrix product: ``weights [q, window] @ windows [blocks,
  window, line]``, where ``windows`` is a strided *view* of the plane (no
  gathered copies) and BLAS does the multiply-adds. The horizontal pass runs
  on the transposed view of its buffer. Windows that reach outside the plane
  read a zero border and each output is divided by the sum of its in-range
  weights, which is exactly the renormalisation of the gather form.
- the *gather* form, for ratios with a large ``q`` (e.g. 333 -> 320), whose
  weight matrix would be nearly dense.

When the height shrinks, both passes run a strip at a time (``STRIP_BYTES``
of float32 input rows), so an HD plane is never converted to float32 whole: a
3.7 MB buffer that, in the extractor, evicts the model's working set from the
cache of the core it shares with inference. When the width shrinks too (video
to the model's square input), the horizontal pass goes first, over strips of
input rows, and the vertical pass follows over the narrow result: in the
window form that is 3.0 M multiply-adds for 720p -> 320x320 against 5.3 M
the other way, and 20 M against 43 M for 4K (each pass: its input lines x
its outputs x its plan's window, ``_window_plan(...).weights.shape[1]``: 8 and
11 taps at 720p, 24 and 33 at 4K). When only the height shrinks,
the vertical pass goes first, over strips of output rows.

Which order is faster depends on the CPU. On the AVX2-only kind of 2026-12-05
(an AMD EPYC, 512 KiB L2 a core) the horizontal-first strips took a plane to
320x320 in 1.22 ms at 720p, 2.2 ms at 1080p and 5.6 ms at 4K, against 1.85,
3.9 and 14.5 ms for the vertical-first strips before them
(``benchmarks/producer_cost.py``, medians of three runs). On the AVX-512 kind
of 2026-12-07 (an AMD EPYC of family 25) the same benchmark gave the
horizontal-first strips 0.81 ms at 720p, 1.41 ms at 1080p and 3.8 to 4.1 ms
at 4K, against 0.60 to 0.61, 1.16 to 1.33 and 8.1 to 9.4 ms for whole-plane
vertical-first passes (two runs): there vertical first wins below 4K by
0.1 to 0.2 ms, and at 4K the horizontal-first strips win against either
vertical-first form (strips on the one kind, whole-plane passes on the other). The order stays: the
extractor no longer resizes raw luma here (swscale does, ``video/scale.py``),
so what remains (float planes, the evaluation protocols, maps back to a
frame's size) is not where the frame loop's time goes. Before swscale, in the
extractor (720p frame loop over the bare loop), the horizontal-first strips
gained 0.014 and 0.008 in the medians of two sittings
(docs/models/saliency_student_v2.history.md, "Re-measured after the horizontal-first resize").

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
class _WindowPlan:
    """Outputs ``q*k .. q*k + q-1`` = ``weights @`` padded lines ``start + p*k`` onwards."""

    step: int  # p: input lines per block of q outputs
    blocks: int  # k = 0 .. blocks-1
    start: int  # the first window's first line, in the zero-bordered axis
    pad_before: int  # zero lines before the plane
    padded: int  # length of the zero-bordered axis
    weights: np.ndarray  # [q, window] float32: the raw triangle weights
    inv_norm: np.ndarray  # [out]: 1 / (sum of the in-range weights of each output)


@functools.lru_cache(maxsize=32)
def _window_plan(in_size: int, out_size: int) -> _WindowPlan | None:
    g = math.gcd(in_size, out_size)
    step, period = in_size // g, out_size // g
    if period > MAX_PHASES:
        return None
    scale, support, taps = _support(in_size, out_size)
    # The same float64 arithmetic as _taps, on the first `period` outputs; output
    # q*k + r has output r's taps shifted by p*k, because q * scale = p.
    centers = (np.arange(period, dtype=np.float64) + 0.5) * scale
    first = np.floor(centers - support + 0.5).astype(np.int64)
    index = first[:, None] + np.arange(taps)[None, :]
    raw = 1.0 - np.abs((index + 0.5 - centers[:, None]) / support)
    used = raw > 0
    low, high = int(index[used].min()), int(index[used].max())
    weights = np.zeros((period, high - low + 1), dtype=np.float64)
    rows, cols = np.nonzero(used)
    weights[rows, index[rows, cols] - low] = raw[rows, cols]
    blocks = out_size // period
    lines = (np.arange(blocks) * step + low)[:, None] + np.arange(weights.shape[1])[None, :]
    in_range = (lines >= 0) & (lines < in_size)  # [blocks, window]
    norm = (weights[None, :, :] * in_range[:, None, :]).sum(axis=2).reshape(out_size)
    pad_before = max(0, -low)
    pad_after = max(0, high + step * (blocks - 1) - (in_size - 1))
    return _WindowPlan(
        step=step,
        blocks=blocks,
        start=pad_before + low,
        pad_before=pad_before,
        padded=pad_before + in_size + pad_after,
        weights=weights.astype(np.float32),
        inv_norm=(1.0 / norm).astype(np.float32),
    )


# Float32 input rows per strip. 1 MiB was faster alone than 512 KiB and level in the
# extractor; 128 KiB vertical-first strips had cost 0.06 of the 720p ratio (the card's history).
STRIP_BYTES = 1024 * 1024


def _filter_lines(lines: np.ndarray, plan: _WindowPlan, first: int, last: int) -> np.ndarray:
    """Outputs ``q*first .. q*last - 1`` along axis 0 of ``lines``, a zero-bordered
    (possibly transposed) view whose line 0 is block ``first``'s first line."""
    q, window = plan.weights.shape
    other = lines.shape[1]
    along, across = lines.strides
    windows = np.lib.stride_tricks.as_strided(
        lines,
        shape=(last - first, window, other),
        strides=(plan.step * along, along, across),
        writeable=False,
    )
    out: np.ndarray = np.matmul(plan.weights, windows).reshape((last - first) * q, other)
    out *= plan.inv_norm[first * q : last * q, None]
    return out


def _rows_pass(plane: np.ndarray, plan: _WindowPlan, first: int, last: int) -> np.ndarray:
    """Output rows ``q*first .. q*last - 1`` of the vertical window pass; float32 out."""
    in_size, width = plane.shape
    window = plan.weights.shape[1]
    # The padded-axis lines the blocks first..last-1 read, and where they sit in the plane.
    lo = plan.start + plan.step * first
    hi = plan.start + plan.step * (last - 1) + window
    top, bottom = max(lo - plan.pad_before, 0), min(hi - plan.pad_before, in_size)
    # The zero-bordered float32 copy is also where integer samples become float.
    buffer = np.zeros((hi - lo, width), dtype=np.float32)
    offset = top - (lo - plan.pad_before)
    buffer[offset : offset + bottom - top] = plane[top:bottom]
    return _filter_lines(buffer, plan, first, last)


def _resize_axis(plane: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """Resize a 2-D plane along ``axis`` (0: rows, 1: columns); float32 out."""
    in_size = plane.shape[axis]
    plan = _window_plan(in_size, out_size)
    if plan is None:
        plane = plane.astype(np.float32, copy=False)
        index, weight = _taps(in_size, out_size)
        if axis == 1:
            out: np.ndarray = np.einsum("hwt,wt->hw", plane[:, index], weight, optimize=True)
        else:
            out = np.einsum("htw,ht->hw", plane[index, :], weight, optimize=True)
        return out
    if axis == 0:
        return _rows_pass(plane, plan, 0, plan.blocks)
    # The horizontal pass is the vertical one on the transposed plane: each
    # "line" is a column of the buffer (a strided view, no transposed copy).
    other = plane.shape[0]
    inside = slice(plan.pad_before, plan.pad_before + in_size)
    buffer = np.zeros((other, plan.padded), dtype=np.float32)
    buffer[:, inside] = plane
    return _filter_lines(buffer.T[plan.start :], plan, 0, plan.blocks).T


def _rows_then_columns_in_strips(plane: np.ndarray, plan: _WindowPlan, out_w: int) -> np.ndarray:
    """Both passes, vertical first, one strip of output rows at a time.

    The same arithmetic as the two whole-plane passes, but each strip's float32
    rows are converted, filtered vertically and then horizontally while they
    are still in cache (``STRIP_BYTES``).
    """
    width = plane.shape[1]
    q = plan.weights.shape[0]
    blocks_per_strip = max(1, STRIP_BYTES // (plan.step * width * 4))
    out = np.empty((q * plan.blocks, out_w), dtype=np.float32)
    for first in range(0, plan.blocks, blocks_per_strip):
        last = min(plan.blocks, first + blocks_per_strip)
        rows = _rows_pass(plane, plan, first, last)
        out[first * q : last * q] = rows if width == out_w else _resize_axis(rows, out_w, 1)
    return out


def _columns_then_rows_in_strips(
    plane: np.ndarray, columns: _WindowPlan, rows: _WindowPlan, out_size: tuple[int, int]
) -> np.ndarray:
    """Both passes, horizontal first, one strip of input rows at a time.

    Each strip's rows are converted to float32 and filtered horizontally into
    the vertical pass's zero-bordered buffer; then every block of output rows
    whose window is now complete is filtered vertically while its lines are
    still in cache. The same arithmetic as the two whole-plane passes.
    """
    in_h, in_w = plane.shape
    out_h, out_w = out_size
    q, window = rows.weights.shape
    rows_per_strip = max(1, STRIP_BYTES // (columns.padded * 4))
    inside = slice(columns.pad_before, columns.pad_before + in_w)
    strip = np.zeros((min(rows_per_strip, in_h), columns.padded), dtype=np.float32)
    narrow = np.zeros((rows.padded, out_w), dtype=np.float32)
    out = np.empty((out_h, out_w), dtype=np.float32)
    done = 0  # output blocks filtered so far
    for top in range(0, in_h, rows_per_strip):
        bottom = min(in_h, top + rows_per_strip)
        lines = strip[: bottom - top]
        lines[:, inside] = plane[top:bottom]
        narrow[rows.pad_before + top : rows.pad_before + bottom] = _filter_lines(
            lines.T[columns.start :], columns, 0, columns.blocks
        ).T
        # Lines below `ready` are final (the bottom border is zeros from the start).
        ready = rows.padded if bottom == in_h else rows.pad_before + bottom
        last = min(rows.blocks, max(done, (ready - rows.start - window) // rows.step + 1))
        if last > done:
            out[done * q : last * q] = _filter_lines(
                narrow[rows.start + rows.step * done :], rows, done, last
            )
            done = last
    return out


def resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D plane (any real dtype, e.g. raw uint8 luma) to ``size`` = (height, width).

    The result is float32. Integer samples are converted as they are read (the
    window form copies them into its zero-bordered float32 buffer anyway), so a
    caller need not make a float copy of a whole HD frame first.
    """
    out_h, out_w = size
    in_h, in_w = plane.shape
    rows = _window_plan(in_h, out_h) if out_h < in_h else None
    columns = _window_plan(in_w, out_w) if out_w < in_w else None
    if rows is not None and columns is not None:
        # Both shrink: the horizontal pass first leaves the vertical one a narrow
        # plane, the fewer multiply-adds (see the module docstring).
        return _columns_then_rows_in_strips(plane, columns, rows, size)
    if rows is not None:
        # Only the height shrinks: the vertical pass first, on contiguous rows.
        return _rows_then_columns_in_strips(plane, rows, out_w)
    axes = (0, 1) if out_h < in_h else (1, 0)
    out = plane
    for axis in axes:
        target = out_h if axis == 0 else out_w
        if out.shape[axis] != target:
            out = _resize_axis(out, target, axis=axis)
    return np.ascontiguousarray(out, dtype=np.float32)
