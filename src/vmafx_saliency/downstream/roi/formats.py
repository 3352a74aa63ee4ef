"""Encoder ROI formats: ffmpeg ``addroi`` regions, the SVT-AV1 ROI map, x265 zones.

Block offsets become encoder inputs here: a chain of ``addroi`` rectangles
(libx264/libx265 through ffmpeg), planned by a greedy painter and rendered back
by libx264's own rule; an SVT-AV1 ``--roi-map-file`` of qindex deltas per
64x64 block; and an x265 ``--zones`` string of per-segment bitrate factors
from the frames' mean saliency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from vmafx_saliency.downstream.roi.mapping import grid_shape, quantise_offsets
from vmafx_saliency.downstream.roi.settings import MAX_LEVELS
from vmafx_saliency.errors import RoiError

# libx264.c/libx265.c scale addroi's qoffset by 51 + 6 * (bit_depth - 8) QP.
ADDROI_QP_RANGE = 51
# SVT-AV1's ROI map holds qindex deltas (0..255 scale); its --qp maps QP to qindex x4.
AV1_QINDEX_PER_QP = 4
# The rectangle search considers at most this many cut positions per axis, so
# its cost stays bounded on large frames (CIF's 22x18 grid is searched exactly).
MAX_CUTS = 49
# Zone bitrate factors: (m_zone / m_clip) ** exponent, clipped and rounded.
ZONE_EXPONENT = 0.5
ZONE_FACTOR_RANGE = (0.8, 1.25)
ZONE_FACTOR_STEP = 0.05


# --- addroi regions -------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """One ``addroi`` rectangle in pixels, with its offset in QP."""

    x: int
    y: int
    w: int
    h: int
    offset: int

    @property
    def qoffset(self) -> Fraction:
        """addroi's qoffset: the offset as a fraction of the 8-bit QP range (51)."""
        return Fraction(self.offset, ADDROI_QP_RANGE)

    def to_filter(self) -> str:
        # Written as n/51 (not reduced), so x264/x265 multiply back to exactly n QP.
        return (
            f"addroi=x={self.x}:y={self.y}:w={self.w}:h={self.h}"
            f":qoffset={self.offset}/{ADDROI_QP_RANGE}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "x": self.x,
            "y": self.y,
            "w": self.w,
            "h": self.h,
            "offset": self.offset,
            "qoffset": f"{self.offset}/{ADDROI_QP_RANGE}",
        }


def _cuts(size: int) -> np.ndarray:
    if size + 1 <= MAX_CUTS:
        return np.arange(size + 1)
    return np.unique(np.round(np.linspace(0, size, MAX_CUTS)).astype(np.int64))


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    out[1:, 1:] = values.cumsum(axis=0).cumsum(axis=1)
    return out


def _box_sums(
    prefix: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray
) -> np.ndarray:
    """Sums over every (row pair) x (column pair) rectangle, as a 2-D table."""
    result: np.ndarray = (
        prefix[r1[:, None], c1[None, :]]
        - prefix[r0[:, None], c1[None, :]]
        - prefix[r1[:, None], c0[None, :]]
        + prefix[r0[:, None], c0[None, :]]
    )
    return result


def plan_regions(
    offsets: np.ndarray, *, clamp: int, levels: int, max_regions: int
) -> tuple[tuple[int, int, int, int, int], ...]:
    """Cover a block grid of offsets with at most ``max_regions`` rectangles.

    Greedy painter: start from the all-zero map (what the encoder applies to
    blocks no region covers) and, ``max_regions`` times, paint the rectangle
    and allowed level that most reduce the squared error to ``offsets``;
    stop early when nothing helps. Each step is the most important remaining
    change (large offsets over large areas first), and a later rectangle may
    paint over an earlier one. Returns block rectangles ``(row, col, rows,
    cols, offset)`` in PRECEDENCE order (first wins where they overlap, as in
    libx264/libx265): the reverse of painting order.
    """
    target = offsets.astype(np.float64)
    rows, cols = target.shape
    current = np.zeros_like(target)
    row_cuts, col_cuts = _cuts(rows), _cuts(cols)
    r0, r1 = (a.ravel() for a in np.triu_indices(len(row_cuts), k=1))
    c0, c1 = (a.ravel() for a in np.triu_indices(len(col_cuts), k=1))
    r0, r1, c0, c1 = row_cuts[r0], row_cuts[r1], col_cuts[c0], col_cuts[c1]
    count = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    target_sum = _box_sums(_prefix(target), r0, r1, c0, c1)
    target_sq = _box_sums(_prefix(target**2), r0, r1, c0, c1)
    means = target_sum / count
    level = quantise_offsets(means, clamp=clamp, levels=levels).astype(np.float64)
    # Error inside the box after painting it with `level`: sum (level - t)^2.
    painted_error = count * level**2 - 2 * level * target_sum + target_sq
    painted: list[tuple[int, int, int, int, int]] = []
    for _ in range(max_regions):
        gain = _box_sums(_prefix((current - target) ** 2), r0, r1, c0, c1) - painted_error
        # Gains are whole numbers; among equal ones prefer the smallest box (tidier chains).
        best = int(np.argmax(gain - 1e-6 * count))
        i, j = divmod(best, gain.shape[1])
        if gain[i, j] <= 1e-9:
            break
        top, bottom, left, right = int(r0[i]), int(r1[i]), int(c0[j]), int(c1[j])
        value = int(level[i, j])
        current[top:bottom, left:right] = value
        painted.append((top, left, bottom - top, right - left, value))
    ordered = painted[::-1]
    # Drop rectangles that later (higher-precedence) ones hide completely.
    covered = np.zeros(target.shape, dtype=bool)
    visible = []
    for rect in ordered:
        top, left, height, width, _value = rect
        window = covered[top : top + height, left : left + width]
        if not window.all():
            visible.append(rect)
            window[...] = True
    return tuple(visible)


def regions_from_offsets(
    offsets: np.ndarray,
    *,
    frame_hw: tuple[int, int],
    block: int,
    clamp: int,
    levels: int,
    max_regions: int,
) -> tuple[Region, ...]:
    """Block offsets -> pixel ``addroi`` regions (precedence order, clipped to the frame)."""
    height, width = frame_hw
    regions = []
    for top, left, rows, cols, value in plan_regions(
        offsets, clamp=clamp, levels=levels, max_regions=max_regions
    ):
        x, y = left * block, top * block
        w = min((left + cols) * block, width) - x
        h = min((top + rows) * block, height) - y
        regions.append(Region(x, y, w, h, value))
    return tuple(regions)


def render_regions(
    regions: Sequence[Region], *, frame_hw: tuple[int, int], block: int
) -> np.ndarray:
    """The block offsets an encoder applies for these regions (libx264.c's rule).

    libx264/libx265 walk the regions from last to first, each overwriting the
    blocks it touches (``top / mb`` to ``ceil(bottom / mb)``), so the first
    region wins; uncovered blocks get 0.
    """
    rows, cols = grid_shape(frame_hw, block)
    out = np.zeros((rows, cols), dtype=np.int64)
    for region in reversed(regions):
        top, left = region.y // block, region.x // block
        bottom = min(rows, -(-(region.y + region.h) // block))
        right = min(cols, -(-(region.x + region.w) // block))
        out[top:bottom, left:right] = region.offset
    return out


def addroi_filter(regions: Sequence[Region]) -> str:
    """The ``-vf`` chain: one ``addroi`` per region, most important (first-wins) first."""
    return ",".join(region.to_filter() for region in regions)


# --- SVT-AV1 ROI map and x265 zones ---------------------------------------------


def svtav1_roi_map(pictures: Sequence[tuple[int, np.ndarray]]) -> str:
    """SVT-AV1 ``--roi-map-file`` text: ``<picture> <offset> ...`` per line.

    One offset per 64x64 block in raster order, as qindex deltas
    (``AV1_QINDEX_PER_QP`` x the AV1 QP offset, within -255..255). Each line
    starts an ROI event that lasts until the next line's picture, so a
    static map is one line for picture 0. Pictures count from 0 at the first
    encoded frame; they must increase.
    """
    lines = []
    last = -1
    for picture, offsets in pictures:
        if picture <= last:
            raise RoiError(f"SVT-AV1 ROI pictures must increase: {picture} after {last}")
        last = picture
        values = offsets.astype(np.int64).ravel() * AV1_QINDEX_PER_QP
        if values.size and int(np.abs(values).max()) > 255:
            raise RoiError(f"picture {picture}: a qindex offset is outside -255..255")
        if len(np.unique(values)) > MAX_LEVELS:
            raise RoiError(f"picture {picture}: more than {MAX_LEVELS} distinct offsets")
        lines.append(" ".join([str(picture), *(str(int(v)) for v in values)]))
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class Zone:
    """Frames ``start`` .. ``end - 1`` (0-based, of the encode) get bitrate factor ``factor``."""

    start: int
    end: int
    factor: float

    def to_x265(self) -> str:
        return f"{self.start},{self.end},b={self.factor:.2f}"


def plan_zones(
    frame_means: Sequence[tuple[int, float]], *, frame_count: int, zone_frames: int
) -> tuple[Zone, ...]:
    """Per-segment bitrate factors from the frames' mean saliency.

    Frames are cut into segments of ``zone_frames``; a segment whose mean
    saliency ``m`` is above the clip's ``M`` gets ``b = (m / M) ** 0.5``
    (clipped to 0.8..1.25, rounded to 0.05), one below gets less. Runs of
    equal factors merge; factor 1.00 is left out. ``frame_means`` holds
    ``(picture, mean)`` for the computed pictures only.
    """
    if not frame_means or frame_count < 1:
        return ()
    overall = float(np.mean([m for _, m in frame_means]))
    if overall <= 0:
        return ()
    lo, hi = ZONE_FACTOR_RANGE
    raw: list[tuple[int, int, float]] = []
    for start in range(0, frame_count, zone_frames):
        end = min(start + zone_frames, frame_count)
        inside = [m for p, m in frame_means if start <= p < end]
        if not inside:
            factor = 1.0
        else:
            ratio = float(np.mean(inside)) / overall
            factor = float(np.clip(ratio**ZONE_EXPONENT, lo, hi))
            factor = round(round(factor / ZONE_FACTOR_STEP) * ZONE_FACTOR_STEP, 2)
        if raw and raw[-1][2] == factor:
            raw[-1] = (raw[-1][0], end, factor)
        else:
            raw.append((start, end, factor))
    return tuple(Zone(s, e, f) for s, e, f in raw if f != 1.0)


def zones_string(zones: Sequence[Zone]) -> str:
    """x265 ``--zones`` (also ``-x265-params zones=...``): ``start,end,b=F/...``."""
    return "/".join(zone.to_x265() for zone in zones)
