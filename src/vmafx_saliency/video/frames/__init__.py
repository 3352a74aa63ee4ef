"""Streaming frame sources: raw planar YUV, Y4M, and containers through PyAV.

Every source yields :class:`Frame` objects holding the RAW luma plane of one
frame: the samples exactly as stored (8-bit ``uint8`` or 10-bit ``uint16``),
with no range conversion, so the extractor decides explicitly how to treat
limited-range (16..235) video. Sources read one frame at a time and never load
the whole file, so memory does not grow with the length of the video.

Only numpy is needed for raw and Y4M input; PyAV is imported when a container
is opened.

Colour range (``VideoInfo.color_range``): an explicit ``color_range`` argument
always wins. Otherwise raw YUV carries no flag and is reported as ``"limited"``
(video is limited range by convention, and that is what the ``vmaf`` tool
assumes); Y4M reports its ``XCOLORRANGE`` tag or ``None``; containers report
the decoder's value (``yuvj*`` formats are full range) or ``None`` when the
stream leaves it unspecified, in which case callers assume limited for YUV.

The modules: ``formats`` (pixel formats), ``base`` (Frame, VideoInfo,
FrameSource), ``raw`` (raw YUV and Y4M), ``container`` (PyAV) and ``open``
(open_video, select_frames, parse_frame_range).
"""

from __future__ import annotations

from vmafx_saliency.video.frames.base import (
    ColorRange,
    ContainerKind,
    Frame,
    FrameSource,
    VideoInfo,
)
from vmafx_saliency.video.frames.container import AvSource
from vmafx_saliency.video.frames.formats import PIXEL_FORMATS, PixelFormat, get_pixel_format
from vmafx_saliency.video.frames.open import (
    CONTAINER_SUFFIXES,
    RAW_SUFFIXES,
    open_video,
    parse_frame_range,
    select_frames,
)
from vmafx_saliency.video.frames.raw import Y4M_CHROMA, Y4M_MAGIC, RawYuvSource, Y4mSource

__all__ = [
    "CONTAINER_SUFFIXES",
    "PIXEL_FORMATS",
    "RAW_SUFFIXES",
    "Y4M_CHROMA",
    "Y4M_MAGIC",
    "AvSource",
    "ColorRange",
    "ContainerKind",
    "Frame",
    "FrameSource",
    "PixelFormat",
    "RawYuvSource",
    "VideoInfo",
    "Y4mSource",
    "get_pixel_format",
    "open_video",
    "parse_frame_range",
    "select_frames",
]
