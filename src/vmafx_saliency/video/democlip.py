"""The demo's embedded default: a short synthetic clip, generated on the fly.

Our own content (so no licence question), written as Y4M (4:2:0, 8-bit,
limited range): a textured, softly lit background and a bright disc that moves
across it and grows, then a second object that enters: enough for
``saliency_mean`` to change over time. Deterministic: the same arguments give
the same bytes.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vmafx_saliency._util import atomic_writer

WIDTH, HEIGHT, FRAMES, FPS = 352, 288, 48, 25


def _frame(index: int, *, width: int, height: int, frames: int) -> np.ndarray:
    """Full-range luma in [0, 1] for one frame."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = index / max(frames - 1, 1)
    # Background: a soft gradient with a low-contrast texture that drifts.
    background = 0.30 + 0.15 * (xx / width) + 0.05 * np.sin(xx / 9.0 + 3.0 * t) * np.cos(yy / 11.0)
    # A disc moving left to right and growing.
    cx, cy = width * (0.2 + 0.6 * t), height * (0.5 + 0.15 * math.sin(2 * math.pi * t))
    radius = min(width, height) * (0.10 + 0.12 * t)
    disc = np.clip((radius - np.hypot(xx - cx, yy - cy)) / 3.0, 0.0, 1.0)
    luma = background * (1 - disc) + 0.92 * disc
    # A dark square enters from the top in the second half.
    if t > 0.5:
        top = int(height * (t - 0.5) * 1.2)
        left = int(width * 0.65)
        size = int(min(width, height) * 0.18)
        luma[max(top - size, 0) : top, left : left + size] = 0.08
    return np.asarray(np.clip(luma, 0.0, 1.0), dtype=np.float32)


def write_demo_clip(
    path: Path, *, width: int = WIDTH, height: int = HEIGHT, frames: int = FRAMES, fps: int = FPS
) -> Path:
    """Write the clip as Y4M atomically; returns the path."""
    header = f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\n"
    chroma = np.full(((height + 1) // 2) * ((width + 1) // 2) * 2, 128, dtype=np.uint8)
    with atomic_writer(path) as fh:
        fh.write(header.encode("ascii"))
        for index in range(frames):
            luma = _frame(index, width=width, height=height, frames=frames)
            limited = np.round(16.0 + 219.0 * luma).astype(np.uint8)  # BT.601 limited range
            fh.write(b"FRAME\n")
            fh.write(limited.tobytes())
            fh.write(chroma.tobytes())
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vmafx_saliency.video.democlip", description=__doc__.splitlines()[0]
    )
    parser.add_argument("output", type=Path)
    parser.add_argument("--frames", type=int, default=FRAMES)
    args = parser.parse_args(argv)
    print(write_demo_clip(args.output, frames=args.frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
