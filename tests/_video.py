"""Builders shared by the video tests: synthetic raw YUV and Y4M files, and a
JSON as the ``vmaf`` tool writes it (for ``--merge-into``).

Raw and Y4M files are written byte by byte here (numpy only), independently of
the readers in ``vmafx_saliency.video.frames``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vmafx_saliency.video.frames import PIXEL_FORMATS, PixelFormat

RNG_SEED = 20240611
# The pixel formats the readers support, by their canonical names.
CANONICAL = (
    "yuv420p",
    "yuv422p",
    "yuv444p",
    "yuv420p10le",
    "yuv422p10le",
    "yuv444p10le",
    "yuv400p",
    "gray10le",
)
# Y4M chroma tag -> the pixel format it stores.
Y4M_TAGS = {
    "420jpeg": "yuv420p",
    "420paldv": "yuv420p",
    "420mpeg2": "yuv420p",
    "420": "yuv420p",
    "422": "yuv422p",
    "444": "yuv444p",
    "mono": "yuv400p",
    "420p10": "yuv420p10le",
    "422p10": "yuv422p10le",
    "444p10": "yuv444p10le",
    "mono10": "gray10le",
}
# Pixel format -> a Y4M tag that stores it (the first one listed above).
Y4M_TAG_FOR = {fmt: tag for tag, fmt in reversed(Y4M_TAGS.items())}


def luma_pattern(index: int, width: int, height: int, bit_depth: int) -> np.ndarray:
    """An index-dependent gradient that touches both ends of the sample range."""
    peak = (1 << bit_depth) - 1
    yy, xx = np.mgrid[0:height, 0:width]
    luma = (xx * 7 + yy * 13 + index * 31) % (peak + 1)
    luma[0, 0] = peak
    luma[-1, -1] = 0
    out: np.ndarray = luma.astype(np.uint16 if bit_depth > 8 else np.uint8)
    return out


def raw_frame(fmt: PixelFormat, luma: np.ndarray, rng: np.random.Generator) -> bytes:
    """One raw frame: the given luma plus random chroma of the right size."""
    height, width = luma.shape
    chroma_samples = (fmt.frame_bytes(width, height) // fmt.bytes_per_sample) - width * height
    peak = (1 << fmt.bit_depth) - 1
    dtype = "<u2" if fmt.bit_depth > 8 else "u1"
    chroma = rng.integers(0, peak + 1, chroma_samples).astype(dtype)
    data: bytes = luma.astype(dtype).tobytes() + chroma.tobytes()
    return data


def write_raw(
    path: Path,
    fmt_name: str,
    width: int,
    height: int,
    frames: int,
    seed: int = RNG_SEED,
    *,
    lumas: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Headerless planar YUV; ``lumas`` (default: :func:`luma_pattern`) are the planes."""
    fmt = PIXEL_FORMATS[fmt_name]
    rng = np.random.default_rng(seed)
    planes = (
        list(lumas)
        if lumas is not None
        else [luma_pattern(i, width, height, fmt.bit_depth) for i in range(frames)]
    )
    with path.open("wb") as fh:
        for luma in planes:
            fh.write(raw_frame(fmt, luma, rng))
    return planes


def write_y4m(
    path: Path,
    tag: str | None,
    width: int,
    height: int,
    frames: int,
    *,
    extra: str = " F30000:1001 Ip A1:1",
    frame_line: bytes = b"FRAME\n",
    lumas: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """YUV4MPEG2 with header ``W H <extra> C<tag>``; ``lumas`` as in :func:`write_raw`."""
    fmt = PIXEL_FORMATS[Y4M_TAGS[tag or "420jpeg"]]
    rng = np.random.default_rng(RNG_SEED)
    chroma = f" C{tag}" if tag else ""
    planes = (
        list(lumas)
        if lumas is not None
        else [luma_pattern(i, width, height, fmt.bit_depth) for i in range(frames)]
    )
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height}{extra}{chroma}\n".encode())
        for luma in planes:
            fh.write(frame_line)
            fh.write(raw_frame(fmt, luma, rng))
    return planes


# --- the vmaf tool's JSON ---------------------------------------------------------------

POOL_KEYS = ["min", "max", "mean", "harmonic_mean"]

VMAF_METRICS = {
    "integer_adm2": [1.0, 0.983284, 0.98066, 0.980248],
    "integer_motion2": [0.0, 20.447048, 45.471954, 44.605442],
    "integer_vif_scale0": [1.0, 0.955685, 0.901099, 0.845639],
    "vmaf": [97.428043, 100.0, 93.297156, 93.129023],
}


def vmaf_doc(metrics: dict[str, list[float]], nums: list[int]) -> str:
    """A JSON as the vmaf tool writes it: %.6f numbers, its key order, and a
    pooled block computed here independently (statistics module, not pool())."""
    names = list(metrics)

    def frame(i: int, n: int) -> str:
        lines = ",\n".join(f'        "{k}": {metrics[k][i]:.6f}' for k in names)
        return f'    {{\n      "frameNum": {n},\n      "metrics": {{\n{lines}\n      }}\n    }}'

    frames = ",\n".join(frame(i, n) for i, n in enumerate(nums))
    pooled = []
    for k in names:
        xs = metrics[k]
        # vmaf's harmonic mean is the harmonic mean of x + 1, less 1.
        hm = statistics.harmonic_mean([x + 1 for x in xs]) - 1
        stats = (min(xs), max(xs), statistics.fmean(xs), hm)
        body = ",\n".join(
            f'      "{key}": {v:.6f}' for key, v in zip(POOL_KEYS, stats, strict=True)
        )
        pooled.append(f'    "{k}": {{\n{body}\n    }}')
    return (
        '{\n  "version": "3.0.0",\n  "fps": 444.26,\n  "frames": [\n'
        + frames
        + '\n  ],\n  "pooled_metrics": {\n'
        + ",\n".join(pooled)
        + '\n  },\n  "aggregate_metrics": {\n  }\n}\n'
    )


def vmaf_file(path: Path, nums: list[int] | None = None) -> Path:
    """Write :func:`vmaf_doc` of :data:`VMAF_METRICS` (four frames) to ``path``."""
    numbers = nums or [0, 1, 2, 3]
    metrics = {k: (v * len(numbers))[: len(numbers)] for k, v in VMAF_METRICS.items()}
    path.write_text(vmaf_doc(metrics, numbers), encoding="utf-8")
    return path
