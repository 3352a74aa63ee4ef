"""What every frame source shares: :class:`Frame`, :class:`VideoInfo`, :class:`FrameSource`.

A source yields :class:`Frame` objects holding the RAW luma plane of one frame:
the samples exactly as stored (8-bit ``uint8`` or 10-bit ``uint16``), with no
range conversion, so the extractor decides explicitly how to treat
limited-range (16..235) video. Also here: the checks of the ``fps`` and
``color_range`` overrides every reader accepts, and the one logger of the frame
sources (named after the package, as it was when the readers were one module).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from vmafx_saliency.errors import UsageError, VideoError
from vmafx_saliency.video.scale import resize_luma

# One logger for every reader: warnings keep the name they had before the split.
logger = logging.getLogger("vmafx_saliency.video.frames")

ContainerKind = Literal["raw", "y4m", "av"]
ColorRange = Literal["limited", "full"]


@dataclass(frozen=True)
class VideoInfo:
    """What a source says about its video before any frame is consumed."""

    path: Path
    container: ContainerKind
    width: int
    height: int
    pixel_format: str  # the source's own format name (e.g. "yuv420p", "nv12", "rgb24")
    bit_depth: int  # of the luma samples the source yields: 8 or 10
    fps: float | None
    frame_count: int | None  # None when the container does not say
    color_range: ColorRange | None  # None: unknown (callers assume limited for YUV)
    # Degrees the frames were turned (counter-clockwise) to stand as a player shows
    # them, following the container's rotation tag; width and height are after it.
    rotation: int = 0


@dataclass(frozen=True)
class Frame:
    """One frame's raw luma plane (H x W, C-contiguous, uint8 or uint16).

    ``picture`` is the decoded PyAV frame the plane was copied from, where
    swscale can scale that frame's plane 0 as it is (a YUV or grey format, not
    turned); ``None`` otherwise. A frame kept keeps its picture too: drop
    frames as they are used.
    """

    index: int  # 0-based frame number in the source
    luma: np.ndarray
    bit_depth: int
    picture: Any = field(default=None, repr=False, compare=False)

    def luma_at(self, size: tuple[int, int]) -> np.ndarray:
        """The luma samples at ``size`` = (H, W), float32 on the samples' own scale.

        The extractor's resize (:func:`vmafx_saliency.video.scale.resize_luma`),
        read straight from the decoded picture where there is one.
        """
        return resize_luma(self.luma, size, bit_depth=self.bit_depth, picture=self.picture)


class FrameSource(ABC):
    """An open video: ``info`` up front, then frames one at a time.

    A source is single-pass: iterate it once, then close it (or use it as a
    context manager). Iterating it a second time is a programming error.
    """

    info: VideoInfo

    def __init__(self) -> None:
        self._iterated = False

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError(f"{type(self).__name__} for {self.info.path} was already iterated")
        self._iterated = True
        return self._frames()

    @abstractmethod
    def _frames(self) -> Iterator[Frame]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# A frame of more pixels than this (16384 x 8192, twice 8K) is a wrong header or
# wrong flags, not a video: reading one would allocate gigabytes for one plane.
MAX_FRAME_PIXELS = 16384 * 8192


def check_frame_size(path: Path, width: int, height: int) -> None:
    """Refuse a geometry no video has, before any plane of that size is allocated."""
    if width * height > MAX_FRAME_PIXELS:
        raise VideoError(
            f"{path}: {width}x{height} is over the {MAX_FRAME_PIXELS:,}-pixel limit of a frame: "
            "check the geometry (--width/--height, or the Y4M header)"
        )


def check_color_range(value: str | None) -> ColorRange | None:
    """The ``--color-range`` override in its canonical spelling (``None``: not given)."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("limited", "tv", "mpeg"):
        return "limited"
    if text in ("full", "pc", "jpeg"):
        return "full"
    raise UsageError(f"--color-range {value!r}: give 'limited' (16..235) or 'full' (0..255)")


def check_fps(fps: float | None) -> float | None:
    """The ``--fps`` override as a float (``None``: not given)."""
    if fps is None:
        return None
    if not math.isfinite(fps) or fps <= 0:
        raise UsageError(f"--fps {fps}: give a positive frame rate, e.g. 25 or 29.97")
    return float(fps)


def native_uint16(luma: np.ndarray) -> np.ndarray:
    # Little-endian on disk; on a little-endian host this is already native uint16.
    return luma if luma.dtype == np.uint16 else luma.astype(np.uint16)
