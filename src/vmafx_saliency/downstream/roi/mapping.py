"""Saliency maps -> block means -> quantised per-block QP offsets.

A ``saliency_map`` (at the model's inference size) is resized to the frame
size and reduced to the encoder's block grid by the block mean (a partial edge
block is the mean of the pixels it has). Each block map becomes QP offsets by
an area-weighted z-score, clamped and quantised to at most ``levels`` values
on a grid symmetric about 0 (salient blocks get NEGATIVE offsets: more bits).
:class:`TemporalAggregator` collects the maps of a clip over time.
"""

from __future__ import annotations

import math

import numpy as np

from vmafx_saliency.downstream.roi.settings import RoiSettings
from vmafx_saliency.errors import RoiError, UsageError
from vmafx_saliency.video.resize import resize_plane

# A map whose spread is below this is treated as nearly flat: dividing by its
# tiny std would turn noise into full-strength offsets.
SIGMA_FLOOR = 0.05


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
