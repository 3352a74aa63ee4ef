"""Planar YUV (and grey) pixel formats, named as ffmpeg names them.

A :class:`PixelFormat` knows the bit depth and the chroma subsampling of a
layout, hence the bytes of one frame; :data:`PIXEL_FORMATS` maps the names the
command line accepts (ffmpeg's, plus vmaf's ``yuv400p`` spellings of grey) to
them. Standard library only: no numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmafx_saliency.errors import UsageError


@dataclass(frozen=True)
class PixelFormat:
    """A planar YUV (or grey) layout as ffmpeg names it."""

    name: str
    bit_depth: int  # 8 or 10; 10-bit samples are stored little-endian in 16 bits
    chroma_w_shift: int  # log2 of the horizontal chroma subsampling
    chroma_h_shift: int  # log2 of the vertical chroma subsampling
    has_chroma: bool

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.bit_depth <= 8 else 2

    def luma_bytes(self, width: int, height: int) -> int:
        return width * height * self.bytes_per_sample

    def frame_bytes(self, width: int, height: int) -> int:
        """Bytes of one frame: luma plus two chroma planes.

        Chroma sizes round up for odd sizes (``-((-w) >> shift)``), as ffmpeg's
        ``AV_CEIL_RSHIFT`` does, so a 4:2:0 frame of 33x17 has 17x9 chroma.
        """
        samples = width * height
        if self.has_chroma:
            cw = -((-width) >> self.chroma_w_shift)
            ch = -((-height) >> self.chroma_h_shift)
            samples += 2 * cw * ch
        return samples * self.bytes_per_sample


def _formats() -> dict[str, PixelFormat]:
    canonical = [
        PixelFormat("yuv420p", 8, 1, 1, True),
        PixelFormat("yuv422p", 8, 1, 0, True),
        PixelFormat("yuv444p", 8, 0, 0, True),
        PixelFormat("yuv420p10le", 10, 1, 1, True),
        PixelFormat("yuv422p10le", 10, 1, 0, True),
        PixelFormat("yuv444p10le", 10, 0, 0, True),
        PixelFormat("yuv400p", 8, 0, 0, False),
        PixelFormat("gray10le", 10, 0, 0, False),
    ]
    table = {fmt.name: fmt for fmt in canonical}
    # ffmpeg calls 8-bit grey "gray"; vmaf and some tools say yuv400p. Accept both.
    table["gray"] = table["yuv400p"]
    table["yuv400p10le"] = table["gray10le"]
    return table


PIXEL_FORMATS: dict[str, PixelFormat] = _formats()


def get_pixel_format(name: str) -> PixelFormat:
    """Look a pixel format up by name (case-insensitive) or explain the choices."""
    fmt = PIXEL_FORMATS.get(name.strip().lower())
    if fmt is None:
        known = ", ".join(sorted(PIXEL_FORMATS))
        raise UsageError(
            f"unknown pixel format {name!r}: --pixel-format (raw=RawVideo(pixel_format=...) "
            f"in Python) takes one of {known}"
        )
    return fmt
