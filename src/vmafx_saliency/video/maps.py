"""The pictures a run writes beside its features: saliency maps and a plot.

Maps are 8-bit grayscale PNGs, ``frame_000123.png`` (``round(x * 255)`` of the
[0, 1] map), written by a plain encoder of our own (zlib + struct): no imaging
library is needed. :func:`plot_series` draws one metric per frame with
matplotlib, imported lazily (the ``eval`` extra). Every file is written
atomically.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vmafx_saliency import _util
from vmafx_saliency.errors import OutputError
from vmafx_saliency.video.output import FrameRecord, pool

__all__ = ["plot_series", "save_map", "saved_maps", "write_png_gray"]


# ----------------------------------------------------------------------------- maps


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def write_png_gray(path: Path, image: np.ndarray) -> None:
    """Write an H x W uint8 array as an 8-bit grayscale PNG, atomically.

    The encoder is the plainest valid PNG: one IDAT, filter type 0 on every row,
    no interlace. An existing file is replaced.
    """
    if image.ndim != 2 or image.dtype != np.uint8:
        raise OutputError(
            f"a grayscale PNG needs an H x W uint8 array, got {image.dtype} {image.shape}"
        )
    height, width = image.shape
    if height == 0 or width == 0:
        raise OutputError(f"cannot write an empty {width}x{height} image to {path}")
    # Each scanline starts with its filter byte (0 = None).
    raw = np.zeros((height, width + 1), dtype=np.uint8)
    raw[:, 1:] = image
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )
    try:
        _util.atomic_write_bytes(Path(path), data)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


# A map a hair outside [0, 1] is float noise from the model's last sigmoid;
# further out is a bug upstream that should not be clipped away silently.
_MAP_SLACK = 1e-6
# What save_map names its files: the only files a maps folder's --force may replace.
_MAP_NAME = re.compile(r"frame_[0-9]{6,}\.png")


def saved_maps(directory: Path) -> list[Path]:
    """The maps :func:`save_map` wrote into ``directory`` (none if it is not a folder)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _MAP_NAME.fullmatch(p.name) and p.is_file())


def save_map(directory: Path, frame_num: int, saliency_map: np.ndarray) -> Path:
    """Save a [0, 1] float map as ``frame_000123.png`` (``round(x * 255)``)."""
    m = np.asarray(saliency_map, dtype=np.float64)
    if m.ndim != 2:
        raise OutputError(f"frame {frame_num}: a saliency map must be H x W, got {m.shape}")
    if not np.all(np.isfinite(m)) or m.min() < -_MAP_SLACK or m.max() > 1 + _MAP_SLACK:
        raise OutputError(
            f"frame {frame_num}: saliency map values must lie in [0, 1], "
            f"got [{np.nanmin(m):.6g}, {np.nanmax(m):.6g}] (or NaN)"
        )
    # np.rint rounds half to even, as Python's round() does.
    image = np.rint(np.clip(m, 0.0, 1.0) * 255.0).astype(np.uint8)
    path = Path(directory) / f"frame_{frame_num:06d}.png"
    write_png_gray(path, image)
    return path


# ----------------------------------------------------------------------------- plot


def plot_series(
    path: Path,
    frames: Sequence[FrameRecord],
    *,
    metric: str = "saliency_mean",
    title: str | None = None,
) -> None:
    """Plot one metric per frame (matplotlib, Agg) and save it atomically.

    The format follows the file's suffix (``.png`` when it has none). The figure
    is drawn through matplotlib's object API, not pyplot, so no global backend is
    switched and no window can open.
    """
    _util.require("matplotlib", purpose="--plot", extra="plot")
    figure_mod = _util.require("matplotlib.figure", purpose="--plot", extra="plot")
    agg = _util.require("matplotlib.backends.backend_agg", purpose="--plot", extra="plot")

    points = [(f.frame_num, float(f.metrics[metric])) for f in frames if metric in f.metrics]
    if not points:
        raise OutputError(f"no frame has the metric {metric!r} to plot")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]

    fig = figure_mod.Figure(figsize=(8, 3.5), dpi=100, layout="constrained")
    agg.FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(xs, ys, marker="." if len(xs) <= 200 else None, linewidth=1, label=metric)
    mean = pool(ys).mean
    if math.isfinite(mean):
        ax.axhline(mean, linestyle="--", linewidth=0.8, color="gray", label=f"mean {mean:.4f}")
    ax.set_xlabel("frame")
    ax.set_ylabel(metric)
    ax.set_title(title if title is not None else f"{metric} per frame")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        raise OutputError(f"{path}: matplotlib cannot write {fmt!r} files; use .png, .svg or .pdf")
    # Rendered in memory, then written like every other output: a temporary
    # file beside the target, renamed into place.
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    try:
        _util.atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
