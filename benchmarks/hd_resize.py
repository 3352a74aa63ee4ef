"""Decoding a 720p clip with the luma resize in numpy against swscale (PyAV's reformat).

Issue 38 asks whether letting the decoder scale the frame to the inference size
would save the extractor's time on HD. This decodes the first 120 frames of
the 720p clip (PyAV, threaded decoding) five ways, in one run: decode only;
decode and the extractor's own antialiased luma resize to 320x320
(``video.resize.resize_plane``); decode and ``frame.reformat`` to 320x320
yuv420p with swscale's AREA, BILINEAR and BICUBIC filters (the luma plane
taken raw, no range expansion). It prints frames/s and how far each swscale
luma is from the extractor's, in 8-bit steps.

    .venv/bin/python benchmarks/hd_resize.py
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from vmafx_saliency.video.resize import resize_plane

CLIP = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "videos"
    / "bigbuckbunny_720p.mp4"
)
FRAMES = 120


def _luma(frame: Any) -> np.ndarray:
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def _run(mode: str) -> tuple[float, list[np.ndarray]]:
    out: list[np.ndarray] = []
    with av.open(str(CLIP)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = time.perf_counter()
        for index, frame in enumerate(container.decode(stream)):
            if index >= FRAMES:
                break
            if mode == "decode":
                _luma(frame)
            elif mode == "numpy":
                out.append(resize_plane(_luma(frame), (320, 320)))
            else:
                small = frame.reformat(width=320, height=320, format="yuv420p", interpolation=mode)
                out.append(_luma(small).copy())
        return FRAMES / (time.perf_counter() - start), out


def main() -> int:
    reference: list[np.ndarray] = []
    for mode in ("decode", "numpy", "AREA", "BILINEAR", "BICUBIC"):
        fps, out = _run(mode)
        line = f"{mode:>9}: {fps:6.1f} frames/s"
        if mode == "numpy":
            reference = out
        elif out:
            diff = np.abs(np.stack(out).astype(float) - np.stack(reference).astype(float))
            line += (
                f"  vs the extractor's resize: mean |diff| {diff.mean():.3f}, max {diff.max():.0f}"
            )
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
