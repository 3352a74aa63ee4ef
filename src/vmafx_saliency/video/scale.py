"""Raw video luma to the model's inference size, through FFmpeg's swscale (PyAV).

The filter is the antialiased bilinear of
:func:`vmafx_saliency.video.resize.resize_plane` (a triangle whose support
widens with the downscale factor), evaluated by swscale in fixed point with
``ACCURATE_RND`` and ``BITEXACT`` (swscale's promise of the same bytes on
every CPU, in place of its fastest SIMD path). The output is 16-bit
(``gray16le``): the input's samples shifted left (by 8 bits, or 6 at 10
bits), so the result keeps 1/256 of an 8-bit code value, and 8-bit and
10-bit copies of one picture scale to the same values. Against
``resize_plane``, on the picture-like planes of
``tests/video/test_scale.py::test_agrees_with_the_numpy_resize`` (its
``_compare`` over its ``SIZES`` on 2026-12-07, printed from the repository root by::

    .venv/bin/python -c "from tests.video.test_scale import SIZES, _smooth_plane, _compare;
    from vmafx_saliency.video.scale import scale_luma;
    from vmafx_saliency.video.resize import resize_plane;
    [print(k, _compare(scale_luma(_smooth_plane(i, 3), o, bit_depth=8),
    resize_plane(_smooth_plane(i, 3), o))) for k, (i, o) in SIZES.items()]"

(one line): within 0.11 of a code value inside
the outer two rows and columns (0.102 for CIF to 320x320, at most 0.013 when
both sides shrink); on those outer lines swscale keeps its taps inside the
plane instead of renormalising the in-range weights, 10.1 code values apart at
4K, where one output line spans twelve input lines, and more on planes a few
pixels across, all outer lines. The test holds them to 0.12 and 12.

Why swscale: scaling a 720p frame's luma to 320x320 cost 0.49 ms of CPU read
from the decoded picture (:func:`scale_picture`, the path of container
frames) and 0.56 ms from a copied plane (:func:`scale_luma`, raw YUV and Y4M),
against 1.59 ms for the numpy resize, medians of 7 alternating rounds of
``benchmarks/hd_resize.py --rounds 7`` (2026-12-07, a 2-core AMD EPYC of
family 25); in the extractor those milliseconds come out of the cores that
inference runs on.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np

from vmafx_saliency._util import require
from vmafx_saliency.video.resize import resize_plane

# swscale's names for one plane of 8-bit and of 10-bit (little-endian words) samples.
_FORMATS = {8: "gray", 10: "gray10le"}
_OUT_FORMAT = "gray16le"
_DTYPES = {8: np.dtype(np.uint8), 10: np.dtype(np.uint16)}
# One reformatter (it keeps swscale's context from frame to frame), used only under
# the lock: two threads in one reformatter crash the process, and PyAV's reformat
# sets the source frame's colour range while it runs, so two threads scaling one
# frame could read each other's.
_LOCK = threading.Lock()


@functools.cache
def _reformatter() -> tuple[Any, Any, int]:
    """PyAV, the reformatter and the interpolation flags."""
    av = require("av", purpose="scaling video frames to the model's size", extra=None)
    interpolation = av.video.reformatter.Interpolation
    flags = interpolation.BILINEAR | interpolation.ACCURATE_RND | interpolation.BITEXACT
    return av, av.video.reformatter.VideoReformatter(), int(flags)


def can_scale(luma: np.ndarray, bit_depth: int) -> bool:
    """Whether :func:`scale_luma` takes this plane: 2-D raw samples of 8 or 10 bits."""
    dtype = _DTYPES.get(bit_depth)
    return dtype is not None and luma.ndim == 2 and luma.dtype == dtype


class ScaleRefused(ValueError):
    """swscale refused the geometry (4096x2 to 32x4096, say): :func:`resize_luma`
    then resizes with numpy, the same filter."""


def scale_luma(luma: np.ndarray, size: tuple[int, int], *, bit_depth: int) -> np.ndarray:
    """Raw luma samples (``uint8`` at 8 bits, ``uint16`` at 10) scaled to ``size`` = (H, W).

    The result is float32 on the input's scale (0..255 or 0..1023), as
    ``resize_plane`` returns: no range conversion is made (the extractor does
    that after, explicitly). At the same size the samples are returned as they
    are (swscale would fill the low bits of its 16-bit output with the top ones).
    """
    if not can_scale(luma, bit_depth):
        raise ValueError(
            f"scale_luma takes a 2-D plane of {_DTYPES.get(bit_depth, 'uint8/uint16')} samples "
            f"at 8 or 10 bits, not {luma.dtype} {luma.shape} at {bit_depth} bits"
        )
    if luma.shape == size:
        return luma.astype(np.float32)
    av, _, _ = _reformatter()
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(luma), format=_FORMATS[bit_depth])
    return scale_picture(frame, size, bit_depth=bit_depth)


def scale_picture(picture: Any, size: tuple[int, int], *, bit_depth: int) -> np.ndarray:
    """The luma of a PyAV ``VideoFrame`` scaled to ``size``: as :func:`scale_luma` of its plane 0.

    For a decoded picture of a YUV or grey format with ``bit_depth``-bit
    samples (8, or 10 in 16-bit words): swscale reads its luma plane where the
    decoder left it, with no copy of the whole frame first. A geometry swscale
    refuses raises :class:`ScaleRefused`.
    """
    if bit_depth not in _FORMATS:
        raise ValueError(f"scale_picture takes 8 or 10-bit samples, not {bit_depth} bits")
    av, reformatter, flags = _reformatter()
    height, width = size
    try:
        with _LOCK:
            # Both sides full range: swscale then only shifts the samples into 16
            # bits (left unspecified, it would expand limited-range luma into grey).
            scaled = reformatter.reformat(
                picture,
                width=width,
                height=height,
                format=_OUT_FORMAT,
                interpolation=flags,
                src_color_range="JPEG",
                dst_color_range="JPEG",
                # One thread: the extractor's own threads have the cores, and swscale's
                # slice threads have been seen to corrupt a slice's first row (container.py).
                threads=1,
            )
    except av.error.FFmpegError as exc:
        raise ScaleRefused(
            f"swscale refused {picture.width}x{picture.height} to {width}x{height}"
        ) from exc
    out: np.ndarray = scaled.to_ndarray().astype(np.float32)
    out *= np.float32(1.0 / (1 << (16 - bit_depth)))  # a power of two: exact
    return out


def resize_luma(
    luma: np.ndarray, size: tuple[int, int], *, bit_depth: int, picture: Any = None
) -> np.ndarray:
    """Luma samples resized to ``size`` = (H, W): float32, on the samples' own scale.

    Raw samples (uint8, or uint16 at 10 bits) go through swscale, from
    ``picture`` (the decoded frame ``luma`` was copied from) where given
    (:func:`scale_picture`), else from ``luma`` (:func:`scale_luma`); float
    planes, and geometries swscale refuses, through :func:`resize_plane`, the
    same filter in numpy.
    """
    if luma.shape == size:
        return luma.astype(np.float32)
    if can_scale(luma, bit_depth):
        try:
            if picture is not None:
                return scale_picture(picture, size, bit_depth=bit_depth)
            return scale_luma(luma, size, bit_depth=bit_depth)
        except ScaleRefused:
            pass  # numpy below
    return resize_plane(luma, size)
