"""Saliency maps -> per-block QP offsets -> encoder inputs (ROI encoding).

The pipeline, for each frame the model sees:

1. the ``saliency_map`` (at the model's inference size) is resized to the
   frame size and reduced to the encoder's block grid by the block mean
   (16x16 for H.264/HEVC, 64x64 for AV1; a partial edge block is the mean of
   the pixels it has);
2. the block maps are aggregated over time (``per-frame``, ``mean``, ``ema``
   or ``max``);
3. each map becomes QP offsets by a z-score: ``-strength * (s - mean) /
   max(std, SIGMA_FLOOR)``, clamped to ``[-clamp, +clamp]`` and quantised to
   at most ``levels`` values on a grid symmetric about 0 (salient blocks get
   NEGATIVE offsets: more bits);
4. the offsets become encoder inputs: a chain of ffmpeg ``addroi`` filters
   (libx264/libx265), an SVT-AV1 ``--roi-map-file``, and an x265 ``--zones``
   string of per-segment bitrate factors.

``run_encode`` checks the result: two 2-pass encodes at the same target
bitrate, with and without the ``addroi`` chain, decoded and compared with the
source in numpy (luma PSNR inside the salient region, outside it and overall).
docs/roi.md explains the choices and has the measured figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from vmafx_saliency.errors import (
    EncodeError,
    MissingDependencyError,
    RoiError,
    UsageError,
    VideoError,
)
from vmafx_saliency.video.resize import resize_plane

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from vmafx_saliency.video.extract import InferSize
    from vmafx_saliency.video.frames import VideoInfo
    from vmafx_saliency.video.job import ModelChoice, VideoInput


Codec = Literal["h264", "hevc", "av1"]
Aggregate = Literal["per-frame", "mean", "ema", "max"]
Encoder = Literal["libx264", "libx265"]

CODECS: tuple[str, ...] = get_args(Codec)
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
ENCODERS: tuple[str, ...] = get_args(Encoder)

# Macroblock (H.264) / quantisation block (HEVC, ffmpeg's libx265 ROI grid at
# the default qg-size) / superblock as SVT-AV1's ROI map counts it (AV1).
BLOCK_SIZE: dict[str, int] = {"h264": 16, "hevc": 16, "av1": 64}
ENCODER_CODEC: dict[str, Codec] = {"libx264": "h264", "libx265": "hevc"}
# The largest offset each codec can take, in its own QP units: addroi's qoffset
# is a fraction of 51 (8-bit x264/x265); AV1 "QP" is 0..63 (qindex / 4).
MAX_CLAMP: dict[str, int] = {"h264": 51, "hevc": 51, "av1": 63}
# libx264.c/libx265.c scale addroi's qoffset by 51 + 6 * (bit_depth - 8) QP.
ADDROI_QP_RANGE = 51
# SVT-AV1's ROI map holds qindex deltas (0..255 scale); its --qp maps QP to qindex x4.
AV1_QINDEX_PER_QP = 4
# SVT-AV1 uses AV1 segmentation: at most 8 distinct offsets per picture.
MAX_LEVELS = 8
# A map whose spread is below this is treated as nearly flat: dividing by its
# tiny std would turn noise into full-strength offsets.
SIGMA_FLOOR = 0.05
# The rectangle search considers at most this many cut positions per axis, so
# its cost stays bounded on large frames (CIF's 22x18 grid is searched exactly).
MAX_CUTS = 49

# Defaults measured on foreman (docs/roi.md): three levels put a dead zone of
# +-clamp/2 around 0, so only clearly salient (or clearly dull) blocks move and
# the bits go where they show; more levels spread them over the transitions.
DEFAULT_STRENGTH = 3.0
DEFAULT_CLAMP = 6
DEFAULT_LEVELS = 3
DEFAULT_EMA_ALPHA = 0.2
DEFAULT_MAX_REGIONS = 12
# Zone bitrate factors: (m_zone / m_clip) ** exponent, clipped and rounded.
ZONE_EXPONENT = 0.5
ZONE_FACTOR_RANGE = (0.8, 1.25)
ZONE_FACTOR_STEP = 0.05
SIZE_TOLERANCE = 0.03  # the plain and ROI encodes must land this close in size
DEFAULT_RAW_FPS = 25.0  # raw YUV carries no rate: ffmpeg's own default for rawvideo


# --- settings ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RoiSettings:
    """How saliency becomes QP offsets; ``validate`` explains any bad value."""

    codec: Codec = "h264"
    strength: float = DEFAULT_STRENGTH
    clamp: int = DEFAULT_CLAMP
    levels: int = DEFAULT_LEVELS
    aggregate: Aggregate = "mean"
    ema_alpha: float = DEFAULT_EMA_ALPHA
    max_regions: int = DEFAULT_MAX_REGIONS
    zone_frames: int | None = None  # None: one second of frames (25 if the rate is unknown)

    @property
    def block_size(self) -> int:
        return BLOCK_SIZE[self.codec]

    def validate(self) -> RoiSettings:
        if self.codec not in CODECS:
            raise UsageError(
                f"unknown codec {self.codec!r}: --codec takes one of {', '.join(CODECS)}"
            )
        if not (math.isfinite(self.strength) and self.strength > 0):
            raise UsageError(
                f"--strength {self.strength}: give a positive number of QP per standard "
                f"deviation of saliency, e.g. {DEFAULT_STRENGTH:g}"
            )
        top = MAX_CLAMP[self.codec]
        if isinstance(self.clamp, bool) or not isinstance(self.clamp, int):
            raise UsageError(f"--clamp {self.clamp!r}: give a whole number of QP")
        if not 1 <= self.clamp <= top:
            raise UsageError(
                f"--clamp {self.clamp}: give a whole number of QP from 1 to {top} for {self.codec}"
            )
        if not 3 <= self.levels <= MAX_LEVELS:
            raise UsageError(
                f"--levels {self.levels}: give 3 to {MAX_LEVELS} (SVT-AV1 takes at most "
                f"{MAX_LEVELS} distinct offsets per picture; 3 is the least that has both signs)"
            )
        if self.aggregate not in AGGREGATES:
            raise UsageError(
                f"unknown aggregate {self.aggregate!r}: --aggregate takes one of "
                f"{', '.join(AGGREGATES)}"
            )
        if not (math.isfinite(self.ema_alpha) and 0 < self.ema_alpha <= 1):
            raise UsageError(
                f"--ema-alpha {self.ema_alpha}: give a weight in (0, 1] for the newest frame"
            )
        if not 1 <= self.max_regions <= 64:
            raise UsageError(f"--max-regions {self.max_regions}: give 1 to 64 addroi regions")
        if self.zone_frames is not None and self.zone_frames < 1:
            raise UsageError(f"--zone-frames {self.zone_frames}: give a whole number >= 1")
        return self


# --- block reduction and the offset mapping ------------------------------------


def grid_shape(frame_hw: tuple[int, int], block: int) -> tuple[int, int]:
    """(rows, cols) of blocks covering a frame; partial edge blocks count."""
    return (-(-frame_hw[0] // block), -(-frame_hw[1] // block))


def block_areas(frame_hw: tuple[int, int], block: int) -> np.ndarray:
    """Pixels in each block (edge blocks are smaller), float64 rows x cols."""
    height, width = frame_hw
    rows = np.minimum(block, height - np.arange(0, height, block))
    cols = np.minimum(block, width - np.arange(0, width, block))
    return np.outer(rows, cols).astype(np.float64)


def block_means(plane: np.ndarray, block: int) -> np.ndarray:
    """Mean of each ``block`` x ``block`` tile; a partial edge tile averages what it has."""
    if plane.ndim != 2 or plane.size == 0:
        raise UsageError(f"block_means needs a non-empty 2-D plane, got shape {plane.shape}")
    if block < 1:
        raise UsageError(f"block size {block}: give a positive number of pixels")
    height, width = plane.shape
    starts_y = np.arange(0, height, block)
    starts_x = np.arange(0, width, block)
    sums = np.add.reduceat(plane.astype(np.float64), starts_y, axis=0)
    sums = np.add.reduceat(sums, starts_x, axis=1)
    result: np.ndarray = sums / block_areas((height, width), block)
    return result


def map_to_blocks(saliency: np.ndarray, frame_hw: tuple[int, int], block: int) -> np.ndarray:
    """A saliency map at any size -> block means on the frame's block grid."""
    plane = saliency.astype(np.float32, copy=False)
    if plane.shape != frame_hw:
        plane = resize_plane(plane, frame_hw)
    return block_means(plane, block)


def raw_offsets(
    blocks: np.ndarray, *, strength: float, clamp: float, areas: np.ndarray | None = None
) -> np.ndarray:
    """Block saliency -> clamped float QP offsets (negative where salient).

    ``offset = clamp(-strength * (s - mean) / max(std, SIGMA_FLOOR))``, with the
    mean and std weighted by block area (so partial edge blocks weigh what
    they cover). Centring makes the offsets sum to about zero over the frame
    before clamping: bits move from the background to the salient region
    rather than being added or removed.
    """
    weights = np.ones_like(blocks, dtype=np.float64) if areas is None else areas
    weights = weights / weights.sum()
    values = blocks.astype(np.float64)
    mean = float((weights * values).sum())
    std = math.sqrt(float((weights * (values - mean) ** 2).sum()))
    scale = max(std, SIGMA_FLOOR)
    clipped: np.ndarray = np.clip(-strength * (values - mean) / scale, -clamp, clamp)
    return clipped


def _round_half_away(values: np.ndarray) -> np.ndarray:
    """Round to integers, halves away from zero (numpy rounds halves to even)."""
    rounded: np.ndarray = np.sign(values) * np.floor(np.abs(values) + 0.5)
    return rounded


def offset_levels(clamp: int, levels: int) -> np.ndarray:
    """The allowed integer offsets: an odd count <= ``levels``, symmetric, with 0 and +-clamp.

    ``levels`` 8 and ``clamp`` 8 give -8 -5 -3 0 3 5 8 (seven levels: an even
    count cannot be symmetric about a zero level).
    """
    count = min(levels if levels % 2 else levels - 1, 2 * clamp + 1)
    grid = _round_half_away(np.linspace(-clamp, clamp, count))
    return np.unique(grid.astype(np.int64))


def quantise_offsets(offsets: np.ndarray, *, clamp: int, levels: int) -> np.ndarray:
    """Float offsets -> the nearest allowed level (ties go to the smaller magnitude)."""
    allowed = offset_levels(clamp, levels)
    # Order candidates by magnitude so argmin's first hit breaks ties towards 0.
    order = allowed[np.lexsort((allowed, np.abs(allowed)))]
    distance = np.abs(offsets.astype(np.float64)[..., None] - order)
    result: np.ndarray = order[np.argmin(distance, axis=-1)].astype(np.int64)
    return result


def block_offsets(blocks: np.ndarray, areas: np.ndarray, settings: RoiSettings) -> np.ndarray:
    """Block saliency -> quantised integer QP offsets for one picture."""
    float_offsets = raw_offsets(
        blocks, strength=settings.strength, clamp=settings.clamp, areas=areas
    )
    return quantise_offsets(float_offsets, clamp=settings.clamp, levels=settings.levels)


class TemporalAggregator:
    """Collects per-frame block maps; memory is one grid plus int8 per computed picture.

    Callable as ``extract``'s ``on_map``. ``per-frame`` and ``ema`` keep one
    offset grid per computed picture (for the SVT-AV1 file); every mode keeps
    the running mean and max for the static map that ``addroi`` needs.
    """

    def __init__(self, settings: RoiSettings, frame_hw: tuple[int, int], start: int) -> None:
        self.settings = settings
        self.frame_hw = frame_hw
        self.start = start
        self.areas = block_areas(frame_hw, settings.block_size)
        shape = self.areas.shape
        self.total = np.zeros(shape, dtype=np.float64)
        self.peak = np.full(shape, -np.inf, dtype=np.float64)
        self.ema: np.ndarray | None = None
        self.count = 0
        self.frames: list[int] = []
        self.frame_means: list[float] = []
        self.pictures: list[tuple[int, np.ndarray]] = []

    def __call__(self, frame_num: int, saliency: np.ndarray) -> None:
        blocks = map_to_blocks(saliency, self.frame_hw, self.settings.block_size)
        self.total += blocks
        np.maximum(self.peak, blocks, out=self.peak)
        self.count += 1
        self.frames.append(frame_num)
        self.frame_means.append(float(np.mean(saliency, dtype=np.float64)))
        mode = self.settings.aggregate
        if mode == "ema":
            alpha = self.settings.ema_alpha
            self.ema = blocks if self.ema is None else alpha * blocks + (1 - alpha) * self.ema
            current = self.ema
        else:
            current = blocks
        if mode in ("per-frame", "ema"):
            offsets = block_offsets(current, self.areas, self.settings).astype(np.int8)
            self.pictures.append((frame_num - self.start, offsets))

    def static_blocks(self) -> np.ndarray:
        """The one map for static encoder inputs: max for ``max``, else the temporal mean."""
        if self.count == 0:
            raise RoiError("no frames were selected: check --frames and --subsample")
        if self.settings.aggregate == "max":
            return self.peak.copy()
        result: np.ndarray = self.total / self.count
        return result


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


# --- the whole map job ----------------------------------------------------------

SCHEMA = "vmafx-saliency/roi/v1"
FILE_OFFSETS = "roi_offsets.json"
FILE_ADDROI = "addroi.txt"
FILE_SVTAV1 = "svtav1_roi.txt"
FILE_ZONES = "x265_zones.txt"


@dataclass(frozen=True, eq=False)
class RoiPlan:
    """Everything ``roi map`` computed for one video."""

    settings: RoiSettings
    video: Path
    model: str
    model_sha256: str
    frame_hw: tuple[int, int]
    infer_hw: tuple[int, int]
    fps: float | None
    start: int
    frame_count: int  # frames in the range [start, start + frame_count)
    subsample: int
    frames: tuple[int, ...]  # the frames the model saw
    frame_means: tuple[float, ...]
    block_saliency: np.ndarray  # the static (time-aggregated) block map
    offsets: np.ndarray  # its quantised QP offsets
    pictures: tuple[tuple[int, np.ndarray], ...]  # per-picture offsets (per-frame, ema)
    regions: tuple[Region, ...]  # addroi, h264/hevc only
    zones: tuple[Zone, ...]
    seconds: float

    @property
    def block_size(self) -> int:
        return self.settings.block_size

    @property
    def applied(self) -> np.ndarray:
        """The static offsets the encoder applies: the rendered regions for addroi."""
        if self.settings.codec == "av1":
            return self.offsets
        return render_regions(self.regions, frame_hw=self.frame_hw, block=self.block_size)

    def salient_mask(self) -> np.ndarray:
        """Pixels (H x W bool) in blocks the encoder gives a negative offset."""
        blocks = self.applied < 0
        mask = np.repeat(np.repeat(blocks, self.block_size, axis=0), self.block_size, axis=1)
        height, width = self.frame_hw
        result: np.ndarray = mask[:height, :width]
        return result

    @property
    def addroi(self) -> str:
        return addroi_filter(self.regions)

    @property
    def svtav1(self) -> str:
        return svtav1_roi_map(self.pictures or ((0, self.offsets),))

    @property
    def x265_zones(self) -> str:
        # With no zone to set, one no-op zone over the clip keeps the documented
        # `zones=$(cat x265_zones.txt)` valid: x265 refuses an empty `zones=`.
        return zones_string(self.zones) or f"0,{self.frame_count},b=1.00"

    def output_files(self) -> dict[str, str]:
        """File name -> content for the map folder."""
        files = {FILE_OFFSETS: json.dumps(self.to_json(), indent=2) + "\n"}
        if self.settings.codec == "av1":
            files[FILE_SVTAV1] = self.svtav1
        else:
            files[FILE_ADDROI] = self.addroi + "\n"
        files[FILE_ZONES] = self.x265_zones + "\n"
        return files

    def to_json(self) -> dict[str, Any]:
        s = self.settings
        height, width = self.frame_hw
        rows, cols = self.offsets.shape
        applied = self.applied
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "video": str(self.video),
            "model": self.model,
            "model_sha256": self.model_sha256,
            "frame_size": [width, height],
            "infer_size": [self.infer_hw[1], self.infer_hw[0]],
            "fps": self.fps,
            "codec": s.codec,
            "block_size": s.block_size,
            "grid": {"cols": cols, "rows": rows},
            "mapping": {
                "formula": "clamp(-strength * (s - mean) / max(std, sigma_floor), -clamp, clamp)",
                "strength": s.strength,
                "clamp": s.clamp,
                "sigma_floor": SIGMA_FLOOR,
                "levels": [int(v) for v in offset_levels(s.clamp, s.levels)],
                "units": "AV1 QP (qindex / 4)" if s.codec == "av1" else "QP (8-bit)",
            },
            "aggregate": s.aggregate,
            "ema_alpha": s.ema_alpha if s.aggregate == "ema" else None,
            "frames": {
                "start": self.start,
                "count": self.frame_count,
                "subsample": self.subsample,
                "computed": list(self.frames),
            },
            "frame_saliency_mean": [round(m, 6) for m in self.frame_means],
            "block_saliency": np.round(self.block_saliency, 5).tolist(),
            "offsets": self.offsets.astype(int).tolist(),
            "applied_offsets": applied.astype(int).tolist(),
            "salient_fraction": round(float(self.salient_mask().mean()), 5),
            "zones": [{"start": z.start, "end": z.end, "factor": z.factor} for z in self.zones],
            "x265_zones": self.x265_zones,
        }
        if s.codec != "av1":
            doc["max_regions"] = s.max_regions
            doc["regions"] = [r.to_json() for r in self.regions]
            doc["addroi"] = self.addroi
        if self.pictures:
            doc["pictures"] = [
                {"picture": p, "offsets": o.astype(int).tolist()} for p, o in self.pictures
            ]
        return doc


def compute_plan(
    video: VideoInput,
    model: ModelChoice,
    settings: RoiSettings,
    *,
    infer_size: InferSize = None,
    threads: int | None = None,
    progress: bool = False,
) -> RoiPlan:
    """Run the model over the video and turn its maps into an ROI plan."""
    from vmafx_saliency.video import extract as ex
    from vmafx_saliency.video.frames import select_frames
    from vmafx_saliency.video.job import load_for_video

    settings.validate()
    source = video.open()
    with source:
        info = source.info
        loaded, pre, plan = load_for_video(model, threads=threads)
        frames = select_frames(source, start=video.start, end=video.end, subsample=video.subsample)
        frame_hw = (info.height, info.width)
        acc = TemporalAggregator(settings, frame_hw, video.start)
        result = ex.extract(
            frames,
            loaded,
            pre=pre,
            color_range=info.color_range,
            infer_size=infer_size,
            progress=ex.Progress(total=_expected(info, video), enabled=progress),
            on_map=acc,
            jobs=plan.frames,
        )
    frame_count = _range_length(info, video, last_seen=acc.frames[-1])
    static = acc.static_blocks()
    offsets = block_offsets(static, acc.areas, settings)
    regions: tuple[Region, ...] = ()
    if settings.codec != "av1":
        regions = regions_from_offsets(
            offsets,
            frame_hw=frame_hw,
            block=settings.block_size,
            clamp=settings.clamp,
            levels=settings.levels,
            max_regions=settings.max_regions,
        )
    zone_frames = settings.zone_frames or max(1, round(info.fps or DEFAULT_RAW_FPS))
    zones = plan_zones(
        [(f - video.start, m) for f, m in zip(acc.frames, acc.frame_means, strict=True)],
        frame_count=frame_count,
        zone_frames=zone_frames,
    )
    return RoiPlan(
        settings=settings,
        video=video.path,
        model=loaded.model_id or str(loaded.path),
        model_sha256=loaded.sha256,
        frame_hw=frame_hw,
        infer_hw=result.infer_size,
        fps=info.fps,
        start=video.start,
        frame_count=frame_count,
        subsample=video.subsample,
        frames=tuple(acc.frames),
        frame_means=tuple(acc.frame_means),
        block_saliency=static,
        offsets=offsets,
        pictures=tuple(acc.pictures),
        regions=regions,
        zones=zones,
        seconds=result.seconds,
    )


def _expected(info: VideoInfo, video: VideoInput) -> int | None:
    """Frames the model will see, for the progress bar (None when the count is unknown)."""
    if info.frame_count is None:
        return None
    end = info.frame_count if video.end is None else min(video.end, info.frame_count)
    return (max(end - video.start, 0) + video.subsample - 1) // video.subsample


def _range_length(info: VideoInfo, video: VideoInput, *, last_seen: int) -> int:
    """Frames in the selected range: from the container's count, else up to the last seen."""
    if info.frame_count is not None:
        end = info.frame_count if video.end is None else min(video.end, info.frame_count)
    else:
        end = video.end if video.end is not None else last_seen + 1
    return max(end - video.start, last_seen + 1 - video.start)


def _check_targets(targets: Sequence[Path], *, force: bool) -> None:
    """Refuse before any work when an output exists and --force was not given."""
    from vmafx_saliency._util import check_can_write

    for path in targets:
        if path.is_dir():
            raise UsageError(f"{path} is a directory, not a file: remove it or pick another --out")
        check_can_write(path, force=force)


def map_targets(out_dir: Path, codec: Codec) -> tuple[Path, ...]:
    names = [FILE_OFFSETS, FILE_SVTAV1 if codec == "av1" else FILE_ADDROI, FILE_ZONES]
    return tuple(out_dir / name for name in names)


def _other_codec_file(out_dir: Path, codec: Codec) -> Path:
    """The map file a run for the other kind of codec writes, which this run does not."""
    return out_dir / (FILE_ADDROI if codec == "av1" else FILE_SVTAV1)


def _check_out_dir(out_dir: Path) -> None:
    from vmafx_saliency._util import check_out_folder

    check_out_folder(out_dir, purpose="the map files")


def write_plan(plan: RoiPlan, out_dir: Path, *, force: bool) -> tuple[Path, ...]:
    """Write the map files into ``out_dir``, each atomically."""
    from vmafx_saliency._util import atomic_write_text

    _check_out_dir(out_dir)
    files = plan.output_files()
    stale = _other_codec_file(out_dir, plan.settings.codec)
    _check_targets([*(out_dir / name for name in files), stale], force=force)
    written = []
    for name, text in files.items():
        atomic_write_text(out_dir / name, text, force=force)
        written.append(out_dir / name)
    # An earlier run's map for the other codec would sit beside this clip's
    # offsets and read as if it were theirs (--force was checked above).
    stale.unlink(missing_ok=True)
    return tuple(written)


def run_map(
    video: VideoInput,
    model: ModelChoice,
    settings: RoiSettings,
    out_dir: Path,
    *,
    infer_size: InferSize = None,
    threads: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> tuple[RoiPlan, tuple[Path, ...]]:
    """``roi map``: refuse early, compute the plan, write its files."""
    settings.validate()
    _check_out_dir(out_dir)
    _check_targets(
        [*map_targets(out_dir, settings.codec), _other_codec_file(out_dir, settings.codec)],
        force=force,
    )
    plan = compute_plan(
        video, model, settings, infer_size=infer_size, threads=threads, progress=progress
    )
    return plan, write_plan(plan, out_dir, force=force)


# --- encoding with ffmpeg -------------------------------------------------------

_BITRATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKM]?)\s*$")


def parse_bitrate(text: str) -> int:
    """``300k`` / ``1.5M`` / ``250000`` -> bits per second."""
    match = _BITRATE.match(text)
    if not match:
        # ffmpeg reads a lowercase m as milli: refuse it rather than guess.
        hint = " (M is mega; ffmpeg reads m as milli)" if text.rstrip().endswith("m") else ""
        raise UsageError(
            f"--bitrate {text!r}: give bits per second, e.g. 300k, 1.5M or 250000{hint}"
        )
    scale = {"": 1, "k": 1000, "m": 1_000_000}[match.group(2).lower()]
    value = round(float(match.group(1)) * scale)
    if value < 1000:
        raise UsageError(f"--bitrate {text!r} is below 1 kb/s: give e.g. 300k")
    return value


@dataclass(frozen=True, kw_only=True)
class EncodeSettings:
    """How ``roi encode`` runs ffmpeg: the same for the plain and the ROI encode."""

    encoder: Encoder
    bitrate: int  # bits per second
    preset: str = "medium"
    threads: int | None = None  # encoder threads; None: the encoder decides
    passes: int = 2  # 2: two-pass ABR (sizes land closest to the target); 1: one-pass ABR
    ffmpeg: str = "ffmpeg"

    def validate(self) -> EncodeSettings:
        if self.encoder not in ENCODERS:
            raise UsageError(
                f"unknown encoder {self.encoder!r}: --codec takes one of {', '.join(ENCODERS)} "
                "(addroi is honoured by libx264 and libx265 only; for AV1 use 'roi map --codec "
                "av1' and SvtAv1EncApp --roi-map-file)"
            )
        if self.bitrate < 1000:
            raise UsageError(f"bitrate {self.bitrate} b/s is below 1 kb/s: give e.g. 300k")
        if not re.fullmatch(r"[a-z]+", self.preset):
            raise UsageError(f"--preset {self.preset!r}: give an encoder preset such as medium")
        if self.passes not in (1, 2):
            raise UsageError(f"--passes {self.passes}: give 1 (one-pass ABR) or 2 (two-pass)")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--encode-threads {self.threads}: give 1 or more")
        return self


def find_ffmpeg(ffmpeg: str = "ffmpeg") -> str:
    """The ffmpeg executable, or an error that says how to install it."""
    path = shutil.which(ffmpeg)
    if path is None:
        raise MissingDependencyError(
            f"ffmpeg ({ffmpeg!r}) was not found on PATH: 'roi encode' runs it to encode and "
            "needs its addroi filter and libx264/libx265: install Debian's package with "
            "'apt-get install ffmpeg' (or pass --ffmpeg PATH)"
        )
    return path


def _ffmpeg_list(ffmpeg: str, what: str) -> str:
    try:
        done = subprocess.run(
            [ffmpeg, "-hide_banner", what], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise MissingDependencyError(
            f"{ffmpeg} cannot be run ({exc}): install Debian's ffmpeg with 'apt-get install "
            "ffmpeg' (or pass --ffmpeg PATH)"
        ) from exc
    return done.stdout


def check_ffmpeg(ffmpeg: str, encoder: str) -> str:
    """Refuse early unless ffmpeg has the encoder and the addroi filter."""
    path = find_ffmpeg(ffmpeg)
    encoders = {
        parts[1]
        for line in _ffmpeg_list(path, "-encoders").splitlines()
        if len(parts := line.split()) >= 2 and parts[0].startswith("V")
    }
    if encoder not in encoders:
        raise MissingDependencyError(
            f"{path} has no {encoder} encoder (see '{path} -encoders'): install an ffmpeg "
            "built with it (Debian's 'apt-get install ffmpeg' has libx264 and libx265)"
        )
    listing = _ffmpeg_list(path, "-filters").splitlines()
    filters = {parts[1] for line in listing if len(parts := line.split()) >= 2}
    if "addroi" not in filters:
        raise MissingDependencyError(
            f"{path} has no addroi filter (see '{path} -filters'): it needs ffmpeg 4.3 or "
            "newer (Debian: 'apt-get install ffmpeg')"
        )
    return path


@dataclass(frozen=True)
class Psnr:
    """Luma PSNR (dB) of the pooled MSE over all frames, as ffmpeg's psnr 'average'."""

    inside: float
    outside: float
    overall: float
    mse_inside: float
    mse_outside: float
    mse_overall: float

    def to_json(self) -> dict[str, float | None]:
        def finite(x: float) -> float | None:
            return round(x, 4) if math.isfinite(x) else None  # JSON has no inf

        return {
            "inside": finite(self.inside),
            "outside": finite(self.outside),
            "overall": finite(self.overall),
            "mse_inside": round(self.mse_inside, 5),
            "mse_outside": round(self.mse_outside, 5),
            "mse_overall": round(self.mse_overall, 5),
        }


def psnr_db(mse: float, peak: float) -> float:
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


class MaskedMse:
    """Accumulates squared luma error inside and outside a pixel mask."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask
        self.inside_px = int(mask.sum())
        self.outside_px = int(mask.size - self.inside_px)
        self.sse_in = 0.0
        self.sse_out = 0.0
        self.frames = 0

    def add(self, reference: np.ndarray, decoded: np.ndarray) -> None:
        diff = reference.astype(np.float64) - decoded.astype(np.float64)
        sq = diff * diff
        inside = float(sq[self.mask].sum())
        self.sse_in += inside
        self.sse_out += float(sq.sum()) - inside
        self.frames += 1

    def result(self, peak: float) -> Psnr:
        n_in = self.inside_px * self.frames
        n_out = self.outside_px * self.frames
        mse_in = self.sse_in / n_in if n_in else math.nan
        mse_out = self.sse_out / n_out if n_out else math.nan
        mse_all = (self.sse_in + self.sse_out) / (n_in + n_out)
        return Psnr(
            inside=psnr_db(mse_in, peak) if n_in else math.nan,
            outside=psnr_db(mse_out, peak) if n_out else math.nan,
            overall=psnr_db(mse_all, peak),
            mse_inside=mse_in,
            mse_outside=mse_out,
            mse_overall=mse_all,
        )


@dataclass(frozen=True)
class EncodeResult:
    """One encode: what it cost and what it looks like."""

    name: str  # "plain" or "roi"
    path: Path | None  # None when the encode was not kept
    file_bytes: int
    stream_bytes: int
    frames: int
    bitrate: float  # video stream bits per second
    psnr: Psnr

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path) if self.path is not None else None,
            "file_bytes": self.file_bytes,
            "stream_bytes": self.stream_bytes,
            "frames": self.frames,
            "bitrate_kbps": round(self.bitrate / 1000, 3),
            "psnr_y": self.psnr.to_json(),
        }


@dataclass(frozen=True)
class EncodeReport:
    """``roi encode``: the plain and the ROI encode at the same target bitrate."""

    video: Path
    plan: RoiPlan
    settings: EncodeSettings
    plain: EncodeResult
    roi: EncodeResult
    commands: tuple[tuple[str, ...], ...]
    written: tuple[Path, ...] = field(default=())

    @property
    def size_delta(self) -> float:
        """(roi - plain) / plain of the video stream sizes."""
        return (self.roi.stream_bytes - self.plain.stream_bytes) / self.plain.stream_bytes

    @property
    def bitrate_match(self) -> bool:
        return abs(self.size_delta) <= SIZE_TOLERANCE

    def gain(self) -> dict[str, float]:
        a, b = self.plain.psnr, self.roi.psnr
        return {
            "inside": b.inside - a.inside,
            "outside": b.outside - a.outside,
            "overall": b.overall - a.overall,
        }

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "schema": "vmafx-saliency/roi-encode/v1",
            "video": str(self.video),
            "frames": {"start": plan.start, "count": self.plain.frames},
            "fps": plan.fps,
            "model": plan.model,
            "encoder": self.settings.encoder,
            "preset": self.settings.preset,
            "rate_control": f"{self.settings.passes}-pass ABR, identical settings for both",
            "target_bitrate_kbps": self.settings.bitrate / 1000,
            "roi": {
                "codec": plan.settings.codec,
                "block_size": plan.block_size,
                "strength": plan.settings.strength,
                "clamp": plan.settings.clamp,
                "levels": [
                    int(v) for v in offset_levels(plan.settings.clamp, plan.settings.levels)
                ],
                "aggregate": plan.settings.aggregate,
                "computed_frames": len(plan.frames),
                "subsample": plan.subsample,
                "regions": len(plan.regions),
                "addroi": plan.addroi,
                "salient_fraction": round(float(plan.salient_mask().mean()), 5),
                "salient_region": "blocks whose applied QP offset is negative",
            },
            "encodes": {"plain": self.plain.to_json(), "roi": self.roi.to_json()},
            "comparison": {
                "size_delta_pct": round(100 * self.size_delta, 3),
                "tolerance_pct": 100 * SIZE_TOLERANCE,
                "bitrate_match": self.bitrate_match,
                "psnr_gain_db": {k: round(v, 4) for k, v in self.gain().items()},
            },
            "commands": [shlex.join(c) for c in self.commands],
        }

    def render(self) -> str:
        plan, s = self.plan, self.settings
        gain = self.gain()
        lines = [
            f"{self.video.name}: frames {plan.start}..{plan.start + self.plain.frames - 1} "
            f"({self.plain.frames}), {s.encoder} preset {s.preset}, target "
            f"{s.bitrate / 1000:g} kb/s ({s.passes}-pass ABR)",
            f"ROI: strength {plan.settings.strength:g}, clamp {plan.settings.clamp}, "
            f"{plan.settings.aggregate} of {len(plan.frames)} maps, {len(plan.regions)} addroi "
            f"regions; salient region {100 * float(plan.salient_mask().mean()):.1f}% of the "
            "picture (blocks with a negative QP offset)",
            f"{'encode':<8}{'bytes':>10}{'kb/s':>10}{'PSNR-Y in':>11}{'out':>8}{'all':>8}",
        ]
        for r in (self.plain, self.roi):
            p = r.psnr
            lines.append(
                f"{r.name:<8}{r.stream_bytes:>10d}{r.bitrate / 1000:>10.1f}"
                f"{p.inside:>11.2f}{p.outside:>8.2f}{p.overall:>8.2f}"
            )
        lines.append(
            f"{'delta':<8}{100 * self.size_delta:>+9.2f}%{'':>10}"
            f"{gain['inside']:>+11.2f}{gain['outside']:>+8.2f}{gain['overall']:>+8.2f}"
        )
        if not self.bitrate_match:
            lines.append(
                f"warning: the sizes differ by more than {100 * SIZE_TOLERANCE:g}%: "
                "the PSNR comparison is not at equal bitrate"
            )
        return "\n".join(lines)


def _input_args(info: VideoInfo, *, rate: float | None) -> list[str]:
    """ffmpeg input options: raw YUV has no header, so its geometry goes on the command line.

    ``rate`` is the user's --fps: the encoders must see the frame rate that the
    kb/s figures are computed at, so it overrides the file's own (``-r`` before
    ``-i`` restamps the input at that constant rate).
    """
    source = str(info.path.resolve())  # ffmpeg runs in the work folder: no relative paths
    if info.container != "raw":
        return [*(["-r", f"{rate:g}"] if rate else []), "-i", source]
    return [
        "-f", "rawvideo", "-pixel_format", info.pixel_format,
        "-video_size", f"{info.width}x{info.height}",
        "-framerate", f"{rate or info.fps or DEFAULT_RAW_FPS:g}",
        "-i", source,
    ]  # fmt: skip


def _video_filter(start: int, roi_chain: str) -> str:
    parts = []
    if start > 0:
        parts.append(f"trim=start_frame={start},setpts=PTS-STARTPTS")
    if roi_chain:
        parts.append(roi_chain)
    return ",".join(parts) or "null"


def encode_commands(
    *,
    ffmpeg: str,
    info: VideoInfo,
    settings: EncodeSettings,
    start: int,
    frame_count: int,
    roi_chain: str,
    stats: Path,
    output: Path,
    rate: float | None = None,
) -> tuple[tuple[str, ...], ...]:
    """The ffmpeg command(s) of one encode: ABR at ``settings.bitrate``, 1 or 2 passes.

    Both passes carry the same ROI chain: x265 documents quant offsets that
    differ between passes as undefined, and x264's second pass predicts from
    the first pass's statistics.
    """
    if ":" in str(stats):  # x265-params separates options with ':'
        raise UsageError(f"{stats}: the stats path may not contain ':'; use another --out")
    inputs = _input_args(info, rate=rate)
    head = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *inputs]
    common = [
        "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", _video_filter(start, roi_chain),
        "-frames:v", str(frame_count),
        "-c:v", settings.encoder, "-preset", settings.preset,
        "-b:v", str(settings.bitrate),
    ]  # fmt: skip
    numbers = (1, 2) if settings.passes == 2 else (0,)
    commands = []
    for number in numbers:
        extra: list[str] = []
        if settings.encoder == "libx264":
            if number:
                extra += ["-pass", str(number), "-passlogfile", str(stats)]
            if settings.threads is not None:
                extra += ["-threads", str(settings.threads)]
        else:
            params = [f"pass={number}", f"stats={stats}"] if number else []
            params.append("log-level=error")
            if settings.threads is not None:
                params += [f"pools={settings.threads}", "frame-threads=1"]
            extra += ["-x265-params", ":".join(params)]
        sink = ["-f", "null", "-"] if number == 1 else [str(output)]
        commands.append(tuple([*head, *common, *extra, *sink]))
    return tuple(commands)


def _run(command: Sequence[str], *, cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise EncodeError(f"{what}: ffmpeg could not be started ({exc})") from exc
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-5:]) or "no message"
        raise EncodeError(
            f"{what}: ffmpeg exited with status {done.returncode} ({tail}); the command was: "
            f"{shlex.join(command)}"
        )


def _stream_bytes(path: Path) -> tuple[int, int]:
    """(video stream bytes, packets) of an encoded file, from its packets."""
    from vmafx_saliency._util import require

    av = require("av", purpose="reading the encodes back")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            total = packets = 0
            for packet in container.demux(stream):
                if packet.size:
                    total += packet.size
                    packets += 1
    except Exception as exc:  # PyAV raises its own error types
        raise EncodeError(f"{path}: cannot read the encode back ({exc})") from exc
    return total, packets


def _luma_frames(path: Path, **kwargs: Any) -> Iterator[np.ndarray]:
    from vmafx_saliency.video.frames import open_video, select_frames

    start = kwargs.pop("start", 0)
    end = kwargs.pop("end", None)
    with open_video(path, **kwargs) as source:
        for frame in select_frames(source, start=start, end=end):
            yield frame.luma


def measure(
    video: VideoInput,
    plan: RoiPlan,
    encodes: Sequence[Path],
) -> list[tuple[MaskedMse, int]]:
    """Decode the source and every encode in lockstep; masked squared error per encode."""
    mask = plan.salient_mask()
    meters = [MaskedMse(mask) for _ in encodes]
    source = _luma_frames(
        video.path,
        width=video.width,
        height=video.height,
        pixel_format=video.pixel_format,
        color_range=video.color_range,
        start=plan.start,
        end=plan.start + plan.frame_count,
    )
    decoded = [_luma_frames(path) for path in encodes]
    count = 0
    sentinel = object()
    while True:
        ref = next(source, None)
        outs = [next(d, sentinel) for d in decoded]
        if ref is None:
            extra = [str(p) for p, o in zip(encodes, outs, strict=True) if o is not sentinel]
            if extra:
                raise EncodeError(f"{', '.join(extra)}: more frames than the source's {count}")
            break
        for path, out, meter in zip(encodes, outs, meters, strict=True):
            if out is sentinel:
                raise EncodeError(
                    f"{path}: has {count} frames, the source range has more: the encode "
                    "dropped frames (check the source's timestamps)"
                )
            assert isinstance(out, np.ndarray)
            if out.shape != ref.shape:
                raise EncodeError(f"{path}: frame {count} is {out.shape}, the source {ref.shape}")
            meter.add(ref, out)
        count += 1
    if count == 0:
        raise VideoError(f"{video.path}: no frames in the selected range")
    return [(meter, count) for meter in meters]


def run_encode(
    video: VideoInput,
    model: ModelChoice,
    settings: RoiSettings,
    encode: EncodeSettings,
    *,
    out_dir: Path | None = None,
    infer_size: InferSize = None,
    threads: int | None = None,
    force: bool = False,
    progress: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> EncodeReport:
    """``roi encode``: plan, encode twice (plain and ROI), decode, compare.

    Everything is checked before the model runs (ffmpeg, encoder, outputs), so
    a refusal costs nothing. With ``out_dir`` the encodes, the map files and
    the report are written there (each atomically); without it the encodes
    live in a temporary folder that is removed.
    """
    from vmafx_saliency._util import atomic_write_text
    from vmafx_saliency.video.frames import open_video

    encode.validate()
    codec = ENCODER_CODEC[encode.encoder]
    if settings.codec != codec:
        settings = dataclasses.replace(settings, codec=codec)
    settings.validate()
    ffmpeg = check_ffmpeg(encode.ffmpeg, encode.encoder)
    say = on_step or (lambda _message: None)
    video_names = {"plain": "plain.mp4", "roi": "roi.mp4"}
    if out_dir is not None:
        _check_out_dir(out_dir)
        targets = [
            *map_targets(out_dir, codec),
            _other_codec_file(out_dir, codec),
            out_dir / "report.json",
            out_dir / "report.txt",
            *(out_dir / n for n in video_names.values()),
        ]
        _check_targets(targets, force=force)
    with open_video(
        video.path,
        width=video.width,
        height=video.height,
        pixel_format=video.pixel_format,
        fps=video.fps,
        color_range=video.color_range,
    ) as probe:
        info = probe.info
    if info.fps is None:
        logger.warning(
            "%s: raw YUV has no frame rate: the encodes and their kb/s assume %g fps; "
            "pass --fps for the clip's own",
            video.path, DEFAULT_RAW_FPS,
        )  # fmt: skip
    say("computing saliency")
    plan = compute_plan(
        video, model, settings, infer_size=infer_size, threads=threads, progress=progress
    )
    made_out = out_dir is not None and not out_dir.exists()
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".roi-encode.", dir=out_dir)).resolve()
    try:
        commands: list[tuple[str, ...]] = []
        paths: dict[str, Path] = {}
        for name, chain in (("plain", ""), ("roi", plan.addroi)):
            output = work / video_names[name]
            passes = encode_commands(
                ffmpeg=ffmpeg,
                info=info,
                settings=encode,
                start=plan.start,
                frame_count=plan.frame_count,
                roi_chain=chain,
                stats=work / f"{name}-2pass",
                output=output,
                rate=video.fps,
            )
            for number, command in enumerate(passes, start=1):
                say(f"{name} encode, pass {number}/{len(passes)}")
                _run(command, cwd=work, what=f"{name} encode pass {number} ({encode.encoder})")
                # Recorded as they would run again: the outputs and pass logs in --out,
                # not in the work folder that is removed at the end.
                home = str(out_dir.resolve()) if out_dir is not None else str(work)
                commands.append(tuple(arg.replace(str(work), home) for arg in command))
            paths[name] = output
        say("decoding and comparing")
        measured = measure(video, plan, [paths["plain"], paths["roi"]])
        peak = float((1 << info.bit_depth) - 1)
        fps = info.fps or DEFAULT_RAW_FPS
        results = {}
        for (name, path), (meter, frames) in zip(paths.items(), measured, strict=True):
            stream, _packets = _stream_bytes(path)
            results[name] = EncodeResult(
                name=name,
                path=(out_dir / video_names[name]) if out_dir is not None else None,
                file_bytes=path.stat().st_size,
                stream_bytes=stream,
                frames=frames,
                bitrate=stream * 8 * fps / frames,
                psnr=meter.result(peak),
            )
        report = EncodeReport(
            video=video.path,
            plan=plan,
            settings=encode,
            plain=results["plain"],
            roi=results["roi"],
            commands=tuple(commands),
        )
        if out_dir is None:
            return report
        written = list(write_plan(plan, out_dir, force=force))
        for name, path in paths.items():
            target = out_dir / video_names[name]
            path.replace(target)  # same folder: an atomic rename
            written.append(target)
        atomic_write_text(
            out_dir / "report.json", json.dumps(report.to_json(), indent=2) + "\n", force=force
        )
        atomic_write_text(out_dir / "report.txt", report.render() + "\n", force=force)
        written += [out_dir / "report.json", out_dir / "report.txt"]
        return EncodeReport(
            video=report.video,
            plan=plan,
            settings=encode,
            plain=report.plain,
            roi=report.roi,
            commands=report.commands,
            written=tuple(written),
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if made_out and out_dir is not None:
            with contextlib.suppress(OSError):  # only if nothing else landed there
                out_dir.rmdir()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = [
    "AGGREGATES",
    "BLOCK_SIZE",
    "CODECS",
    "ENCODERS",
    "EncodeReport",
    "EncodeResult",
    "EncodeSettings",
    "MaskedMse",
    "Psnr",
    "Region",
    "RoiPlan",
    "RoiSettings",
    "TemporalAggregator",
    "Zone",
    "addroi_filter",
    "block_areas",
    "block_means",
    "block_offsets",
    "check_ffmpeg",
    "compute_plan",
    "encode_commands",
    "find_ffmpeg",
    "grid_shape",
    "map_to_blocks",
    "offset_levels",
    "parse_bitrate",
    "plan_regions",
    "plan_zones",
    "quantise_offsets",
    "raw_offsets",
    "regions_from_offsets",
    "render_regions",
    "run_encode",
    "run_map",
    "svtav1_roi_map",
    "write_plan",
    "zones_string",
]
