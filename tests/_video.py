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
from vmafx_saliency.video.output import FrameRecord

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


def write_audio_only(path: Path) -> Path:
    """A WAV file of 0.1 s of silence: a container with no video stream (PyAV)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


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


# --- vmaf-format records and real vmaf output (the output and merge tests) -----------------

# The top-level keys libvmaf's vmaf_write_output_json writes, in its order.
VMAF_JSON_KEYS = ["version", "fps", "frames", "pooled_metrics", "aggregate_metrics"]

# A value printed with %.6f is within half a unit of the sixth decimal.
PRINTED = 5e-7 + 1e-12


def frame_records(values: list[tuple[float, float]], *, step: int = 1) -> list[FrameRecord]:
    """Records of ``(saliency_mean, saliency_var)`` pairs, frames 0, step, 2 * step, ..."""
    return [
        FrameRecord(i * step, {"saliency_mean": m, "saliency_var": v})
        for i, (m, v) in enumerate(values)
    ]


# Awkward values on purpose: a repeating fraction, one that rounds up to
# 1.000000, one below the printed precision, and an exact zero.
AWKWARD = [(1 / 3, 0.0000004), (0.9999996, 2 / 7), (0.0, 0.125), (0.5, 0.0012345678)]

# Real vmaf output: three of the metrics in a 48-frame JSON written by the vmaf
# tool (libvmaf, version "0677637f", testdata/scores_cpu_576.json of the
# Netflix/vmaf tree), as printed there with %.6f, with its pooled block.
REAL_VMAF = {
    "vmaf": [
        97.428043, 97.428043, 97.428043, 100.0, 100.0, 100.0, 100.0, 93.297156,
        93.297029, 93.129023, 93.353280, 93.411694, 93.461135, 93.489400, 93.375617,
        93.413759, 93.541789, 93.520326, 93.730405, 93.490448, 93.494036, 93.707218,
        93.557213, 93.797764, 93.440078, 93.554527, 93.660620, 93.644349, 93.408295,
        93.587685, 93.994964, 93.686070, 93.540831, 93.584258, 93.466789, 93.631166,
        93.614716, 93.548853, 93.537820, 93.764782, 93.567849, 93.687889, 93.776222,
        93.749126, 93.412494, 93.442175, 93.356981, 93.494516,
    ],
    "integer_motion2": [
        0.0, 0.0, 0.0, 20.447048, 45.471954, 44.605442, 44.605442, 0.000132, 0.000132,
        0.061155, 0.061155, 0.083048, 0.061237, 0.061237, 0.087438, 0.087438, 0.081849,
        0.081849, 0.099452, 0.042641, 0.042641, 0.080048, 0.080048, 0.103425, 0.019551,
        0.019551, 0.107806, 0.050060, 0.035792, 0.035792, 0.248749, 0.067295, 0.067295,
        0.173798, 0.028675, 0.028675, 0.134328, 0.174694, 0.070587, 0.047916, 0.047916,
        0.049428, 0.086115, 0.110967, 0.123509, 0.115957, 0.076322, 0.076322,
    ],
    "integer_vif_scale0": [
        1.0, 1.0, 1.0, 0.955685, 0.901099, 0.845639, 0.815226, 0.805365, 0.805367,
        0.805152, 0.805264, 0.805973, 0.806254, 0.807323, 0.806266, 0.808296, 0.808053,
        0.807189, 0.808827, 0.808144, 0.807582, 0.808825, 0.807913, 0.810295, 0.809431,
        0.809572, 0.809038, 0.809120, 0.808209, 0.809295, 0.808953, 0.810351, 0.809701,
        0.809273, 0.809135, 0.809741, 0.808440, 0.808788, 0.809961, 0.810897, 0.810709,
        0.810703, 0.811127, 0.809839, 0.807320, 0.807870, 0.807210, 0.806729,
    ],
}  # fmt: skip
REAL_POOLED = {
    "vmaf": (93.129023, 100.0, 94.323010, 94.284562),
    "integer_motion2": (0.0, 45.471954, 3.296707, 0.162508),
    "integer_vif_scale0": (0.805152, 1.0, 0.826274, 0.824934),
}
