"""Pixel formats: the table, its aliases and the bytes of a frame."""

from __future__ import annotations

from tests._video import CANONICAL
from vmafx_saliency.video.frames import PIXEL_FORMATS

# frame_bytes worked out by hand for an odd 33x17 frame: luma 561 samples,
# 4:2:0 chroma 17x9 (rounded up), 4:2:2 chroma 17x17, 4:4:4 chroma 33x17.
FRAME_BYTES_33x17 = {
    "yuv420p": 561 + 2 * 17 * 9,
    "yuv422p": 561 + 2 * 17 * 17,
    "yuv444p": 561 * 3,
    "yuv420p10le": 2 * (561 + 2 * 17 * 9),
    "yuv422p10le": 2 * (561 + 2 * 17 * 17),
    "yuv444p10le": 2 * 561 * 3,
    "yuv400p": 561,
    "gray10le": 2 * 561,
}


def test_pixel_format_table_and_aliases() -> None:
    assert set(CANONICAL) <= set(PIXEL_FORMATS)
    assert PIXEL_FORMATS["gray"] is PIXEL_FORMATS["yuv400p"]
    assert PIXEL_FORMATS["yuv400p10le"] is PIXEL_FORMATS["gray10le"]
    for name in CANONICAL:
        fmt = PIXEL_FORMATS[name]
        assert fmt.name == name
        assert fmt.bit_depth == (10 if "10" in name else 8)
        assert fmt.frame_bytes(33, 17) == FRAME_BYTES_33x17[name], name
    # Even sizes: the familiar I420 1.5 bytes per pixel.
    assert PIXEL_FORMATS["yuv420p"].frame_bytes(352, 288) == 352 * 288 * 3 // 2
