"""The luma resize of a 720p frame to 320x320: numpy against swscale (PyAV).

Issue 38 asks whether swscale should scale the luma plane to the inference
size. This decodes the first 120 frames of the 720p clip (PyAV, one decoder
thread, so the process CPU time is the decoder's and the resize's alone)
and, in one run, alternating over ``--rounds`` rounds, times per frame:

- ``decode``: decoding only, the luma plane viewed, not copied;
- ``numpy``: plus the numpy antialiased bilinear (``video.resize.resize_plane``),
  the extractor's resize before issue 38;
- ``swscale, plane``: plus ``video.scale.scale_luma`` of the luma plane (a
  kept ``VideoReformatter``, one swscale thread, 16-bit output), as the
  extractor scales frames of raw YUV and Y4M;
- ``swscale, picture``: plus ``video.scale.scale_picture`` of the decoded
  frame itself, as the extractor scales frames of containers (no copy of
  the plane in and out);
- ``reformat per frame``: plus ``frame.reformat(...)`` with PyAV's defaults (a
  new reformatter per call, automatic swscale threads), the first attempt at
  this, which measured swscale slower than numpy.

It prints the median CPU milliseconds a frame of each, the resize's own share
(minus ``decode``), and how far the swscale luma is from numpy's in 8-bit code
values, inside the outer two lines and anywhere.

    .venv/bin/python benchmarks/hd_resize.py

CPU times on a shared machine: compare figures within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

from vmafx_saliency.video.resize import resize_plane
from vmafx_saliency.video.scale import scale_luma, scale_picture

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "bigbuckbunny_720p.mp4"
FRAMES = 120
SIZE = (320, 320)


def _luma(frame: Any) -> np.ndarray:
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def _per_call_reformat(frame: Any) -> np.ndarray:
    small = frame.reformat(width=SIZE[1], height=SIZE[0], format="yuv420p")
    return _luma(small).astype(np.float32)


MODES: dict[str, Callable[[Any], np.ndarray | None]] = {
    "decode": lambda frame: None,
    "numpy": lambda frame: resize_plane(_luma(frame), SIZE),
    "swscale, plane": lambda frame: scale_luma(
        np.ascontiguousarray(_luma(frame)), SIZE, bit_depth=8
    ),
    "swscale, picture": lambda frame: scale_picture(frame, SIZE, bit_depth=8),
    "reformat per frame": _per_call_reformat,
}


def _run(work: Callable[[Any], np.ndarray | None]) -> tuple[float, list[np.ndarray]]:
    """CPU ms a frame, and what ``work`` returned for each frame."""
    out: list[np.ndarray] = []
    with av.open(str(CLIP)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        start = time.process_time()
        for index, frame in enumerate(container.decode(stream)):
            if index >= FRAMES:
                break
            result = work(frame)
            if result is not None:
                out.append(result)
        return (time.process_time() - start) / FRAMES * 1e3, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not CLIP.is_file():
        print(f"skipped: {CLIP} not found")
        return 0
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    outputs: dict[str, list[np.ndarray]] = {}
    for _ in range(args.rounds):
        for mode, work in MODES.items():
            ms, outputs[mode] = _run(work)
            times[mode].append(ms)
    base = statistics.median(times["decode"])
    print(f"{CLIP.name}, {FRAMES} frames to {SIZE[1]}x{SIZE[0]}, medians of {args.rounds} rounds:")
    for mode, each in times.items():
        ms = statistics.median(each)
        line = f"  {mode:<19} {ms:6.3f} ms CPU a frame"
        if mode != "decode":
            line += f", the resize {ms - base:6.3f}"
        print(line + "  (" + ", ".join(f"{t:.3f}" for t in each) + ")")
    reference = np.stack(outputs["numpy"]).astype(np.float64)
    for mode in ("swscale, plane", "swscale, picture", "reformat per frame"):
        diff = np.abs(np.stack(outputs[mode]).astype(np.float64) - reference)
        print(
            f"  {mode} against numpy: mean |diff| {diff.mean():.4f}, inside the outer two "
            f"lines max {diff[:, 2:-2, 2:-2].max():.3f}, anywhere max {diff.max():.2f} code values"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
