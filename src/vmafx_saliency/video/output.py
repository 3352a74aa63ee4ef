"""Per-frame saliency features in the output formats of Netflix's ``vmaf`` tool.

The shapes follow libvmaf's ``src/output.c`` (``vmaf_write_output_json``,
``_xml`` and ``_csv``) and the pooling follows ``vmaf_feature_score_pooled`` in
``src/libvmaf.c``:

* every per-frame value and every pooled value is printed with ``%.6f``, as a
  JSON number (``null`` where it is NaN or infinite), and ``fps`` with ``%.2f``;
* JSON: ``{"version", "fps", "frames": [{"frameNum", "metrics"}],
  "pooled_metrics": {name: {"min", "max", "mean", "harmonic_mean"}},
  "aggregate_metrics": {}}``;
* XML: ``<VMAF version>`` holding ``<params qualityWidth qualityHeight/>``,
  ``<fyi fps/>``, ``<frames><frame frameNum .../></frames>``,
  ``<pooled_metrics><metric name min max mean harmonic_mean/></pooled_metrics>``
  and ``<aggregate_metrics/>``;
* CSV: a header ``Frame,<name>,<name>,`` and rows ``<n>,<value>,<value>,``,
  each line ending in the trailing comma vmaf writes;
* the harmonic mean is vmaf's ``n / sum(1 / (x + 1)) - 1``, and the pooled
  values are taken over the frames that are written (with ``--subsample N`` vmaf
  both prints and pools frames 0, N, 2N, ... only).

What we add, as extra top-level keys (JSON) or elements and attributes (XML),
never renaming vmaf's own: ``params`` gains ``subsample`` and ``source``, and a
``model`` block names the model id, its sha256, the inference size and a note
where the map was computed at another size than the frame's.

Standard library and numpy only at import time; matplotlib is imported lazily
for :func:`plot_series`, and PNGs are written by hand (zlib + struct).
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import sys
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vmafx_saliency import _util
from vmafx_saliency.errors import InputFileError, OutputError, OutputExistsError

__all__ = [
    "FrameRecord",
    "PooledStats",
    "RunInfo",
    "merge_into",
    "plot_series",
    "pool",
    "pool_metrics",
    "render_csv",
    "render_json",
    "render_xml",
    "save_map",
    "write_output",
    "write_png_gray",
]

OutputFormat = Literal["json", "xml", "csv"]

# How many frame numbers an error message lists before saying "and N more".
_LIST_AT_MOST = 5

# An XML attribute name that every parser accepts: metric names become
# attribute names of <frame>, as in vmaf's XML.
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class FrameRecord:
    """The features of one frame: ``metrics`` in output order
    (``saliency_mean``, ``saliency_var``)."""

    frame_num: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class PooledStats:
    """vmaf's four pooling methods over one metric's per-frame values."""

    min: float
    max: float
    mean: float
    harmonic_mean: float


@dataclass(frozen=True)
class RunInfo:
    """What the output says about the run besides the per-frame features.

    ``fps`` is a processing speed, as in vmaf's output: vmaf writes
    ``pic_cnt / seconds``, where ``pic_cnt`` counts every picture read
    (including the ones ``--subsample`` skips) and the seconds run from the first
    to the last feature score collected, measured with C ``clock()``, i.e.
    process CPU time. It is not the video's frame rate. Callers here pass the
    frames decoded divided by the wall-clock seconds of the extraction: CPU time
    would count every ONNX Runtime thread and understate the speed.

    ``infer_size`` and ``frame_size`` are (width, height); ``infer_size`` is
    ``None`` where the model ran at the frame's native size.
    """

    version: str
    fps: float
    model_id: str | None
    model_sha256: str
    infer_size: tuple[int, int] | None
    frame_size: tuple[int, int]
    map_note: str | None
    subsample: int
    source: str


# -------------------------------------------------------------------------- pooling


def pool(values: Sequence[float]) -> PooledStats:
    """min, max, mean and vmaf's harmonic mean ``n / sum(1/(x+1)) - 1``.

    The +1 shift is vmaf's: it keeps the harmonic mean defined for scores of 0
    (motion, a black frame's saliency). A NaN among the values makes every
    pooled value NaN (written as ``null``), rather than pooling a subset.
    """
    if len(values) == 0:
        raise OutputError("cannot pool an empty series: no frame has this metric")
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        nan = float("nan")
        return PooledStats(min=nan, max=nan, mean=nan, harmonic_mean=nan)
    # math.fsum keeps the sums exact to the last bit, so the result does not
    # depend on the order or the length of the series.
    n = len(x)
    return PooledStats(
        min=float(x.min()),
        max=float(x.max()),
        mean=math.fsum(x.tolist()) / n,
        harmonic_mean=n / math.fsum((1.0 / (x + 1.0)).tolist()) - 1.0,
    )


def pool_metrics(frames: Sequence[FrameRecord]) -> dict[str, PooledStats]:
    """Pool every metric over the frames that carry it, in first-seen order."""
    series: dict[str, list[float]] = {}
    for frame in frames:
        for name, value in frame.metrics.items():
            series.setdefault(name, []).append(float(value))
    return {name: pool(values) for name, values in series.items()}


# ----------------------------------------------------------------------- formatting


def _fixed(value: float, digits: int = 6) -> str | None:
    """vmaf's ``%.6f`` (``%.2f`` for fps); ``None`` for NaN/inf (JSON ``null``)."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return f"{value:.{digits}f}"


def _fixed_text(value: float, digits: int = 6) -> str:
    """``%.6f`` as vmaf prints it into XML and CSV, where NaN stays ``nan``."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


class _Number:
    """A JSON number whose exact text is fixed in advance (``"0.123457"``)."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text: str | None) -> None:
        self.text = "null" if text is None else text


class _ParsedFloat(float):
    """A float read from a JSON file that remembers its text, so a merge writes
    every number it did not change exactly as it found it."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> _ParsedFloat:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def _num(value: float, digits: int = 6) -> _Number:
    return _Number(_fixed(value, digits))


def _dump(obj: Any, level: int = 0) -> str:
    """JSON text with two-space indentation, like vmaf's, and numbers as given.

    ``json.dumps`` cannot print ``1.000000``: it would write ``1.0``. vmaf's files
    carry six decimals, and diffing ours against theirs should show values only.
    """
    pad = "  " * (level + 1)
    end = "  " * level
    if isinstance(obj, _Number):
        return obj.text
    if isinstance(obj, _ParsedFloat):
        return obj.text
    if isinstance(obj, Mapping):
        if not obj:
            return "{}"
        items = [
            f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_dump(v, level + 1)}"
            for k, v in obj.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(obj, list | tuple):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join(pad + _dump(v, level + 1) for v in obj) + "\n" + end + "]"
    if isinstance(obj, float) and not math.isfinite(obj):
        return "null"
    return json.dumps(obj, ensure_ascii=False)


def _size_text(size: tuple[int, int] | None) -> str:
    return "native" if size is None else f"{size[0]}x{size[1]}"


def _check_frames(frames: Sequence[FrameRecord]) -> None:
    """Frame numbers are non-negative, unique and increasing, as vmaf writes them."""
    previous = -1
    for frame in frames:
        n = frame.frame_num
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise OutputError(f"frame number {n!r} is not a non-negative integer")
        if n <= previous:
            raise OutputError(
                f"frame numbers must increase: {n} comes after {previous} "
                "(duplicate or out-of-order frames)"
            )
        previous = int(n)


def _metric_names(frames: Sequence[FrameRecord]) -> list[str]:
    names: dict[str, None] = {}
    for frame in frames:
        for name in frame.metrics:
            names.setdefault(name, None)
    return list(names)


# ------------------------------------------------------------------------ renderers


def _model_block(run: RunInfo) -> dict[str, Any]:
    return {
        "id": run.model_id,
        "sha256": run.model_sha256,
        "infer_size": _size_text(run.infer_size),
        "map_note": run.map_note,
    }


def render_json(frames: Sequence[FrameRecord], run: RunInfo) -> str:
    """vmaf's JSON, plus ``params`` and ``model`` blocks at the top level."""
    _check_frames(frames)
    doc: dict[str, Any] = {
        "version": run.version,
        "fps": _num(run.fps, 2),
        # Ours, not vmaf's: vmaf's JSON carries no parameters at all.
        "params": {
            "qualityWidth": run.frame_size[0],
            "qualityHeight": run.frame_size[1],
            "subsample": run.subsample,
            "source": run.source,
        },
        "model": _model_block(run),
        "frames": [
            {
                "frameNum": int(f.frame_num),
                "metrics": {name: _num(v) for name, v in f.metrics.items()},
            }
            for f in frames
        ],
        "pooled_metrics": {
            name: {
                "min": _num(p.min),
                "max": _num(p.max),
                "mean": _num(p.mean),
                "harmonic_mean": _num(p.harmonic_mean),
            }
            for name, p in pool_metrics(frames).items()
        },
        "aggregate_metrics": {},
    }
    return _dump(doc) + "\n"


def render_xml(frames: Sequence[FrameRecord], run: RunInfo) -> str:
    """vmaf's XML; ``<params>`` gains ``subsample`` and ``source``, and a
    ``<model>`` element follows ``<fyi>``."""
    _check_frames(frames)
    for name in _metric_names(frames):
        if not _XML_NAME.match(name):
            raise OutputError(f"metric name {name!r} cannot be an XML attribute name")
    root = ET.Element("VMAF", {"version": run.version})
    ET.SubElement(
        root,
        "params",
        {
            "qualityWidth": str(run.frame_size[0]),
            "qualityHeight": str(run.frame_size[1]),
            "subsample": str(run.subsample),
            "source": run.source,
        },
    )
    ET.SubElement(root, "fyi", {"fps": _fixed_text(run.fps, 2)})
    model = {k: str(v) for k, v in _model_block(run).items() if v is not None}
    ET.SubElement(root, "model", model)
    frames_el = ET.SubElement(root, "frames")
    for f in frames:
        attrs = {"frameNum": str(int(f.frame_num))}
        attrs.update({name: _fixed_text(v) for name, v in f.metrics.items()})
        ET.SubElement(frames_el, "frame", attrs)
    pooled_el = ET.SubElement(root, "pooled_metrics")
    for name, p in pool_metrics(frames).items():
        ET.SubElement(
            pooled_el,
            "metric",
            {
                "name": name,
                "min": _fixed_text(p.min),
                "max": _fixed_text(p.max),
                "mean": _fixed_text(p.mean),
                "harmonic_mean": _fixed_text(p.harmonic_mean),
            },
        )
    ET.SubElement(root, "aggregate_metrics")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def render_csv(frames: Sequence[FrameRecord], run: RunInfo) -> str:
    """vmaf's CSV: ``Frame,<names>,`` then ``<n>,<values>,`` per frame.

    vmaf's CSV has no room for the run's details; ``run`` is accepted so the
    three renderers share one signature. Every frame must carry the same
    metrics in the same order, since a CSV row cannot name its columns.
    """
    del run  # nothing of it fits vmaf's CSV
    _check_frames(frames)
    names = _metric_names(frames)
    for f in frames:
        if list(f.metrics) != names:
            raise OutputError(
                f"frame {f.frame_num} has metrics {list(f.metrics)}, the others "
                f"{names}: a CSV needs the same columns on every row"
            )
    lines = ["Frame," + "".join(f"{name}," for name in names)]
    for f in frames:
        values = "".join(f"{_fixed_text(v)}," for v in f.metrics.values())
        lines.append(f"{int(f.frame_num)},{values}")
    return "\n".join(lines) + "\n"


_RENDERERS = {"json": render_json, "xml": render_xml, "csv": render_csv}


def write_output(
    frames: Sequence[FrameRecord],
    run: RunInfo,
    *,
    path: Path | Literal["-"],
    fmt: OutputFormat,
    force: bool = False,
) -> None:
    """Render ``frames`` as ``fmt`` and write it to ``path`` (``"-"``: stdout).

    A file is written to a temporary file beside it and renamed into place, so
    a failure leaves no partial output; an existing file is kept unless
    ``force``.
    """
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise OutputError(f"unknown output format {fmt!r}: use one of json, xml, csv")
    if isinstance(path, str) and path == "-":
        text = renderer(frames, run)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    # Refuse before rendering: a long run should not end in an overwrite refusal
    # only after all the work, and the message then names the file first.
    _util.check_can_write(target, force=force)
    text = renderer(frames, run)
    try:
        _util.atomic_write_text(target, text, force=force)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------------------- merge


def _read_vmaf_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: no such file (the vmaf JSON to merge into)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read it as UTF-8 text: {exc}") from exc
    try:
        doc = json.loads(text, parse_float=_ParsedFloat)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
            "pass the file vmaf wrote with --json"
        ) from exc
    not_vmaf = f"{path} is not a vmaf JSON (as the vmaf tool writes with --json)"
    if not isinstance(doc, dict):
        raise InputFileError(f"{not_vmaf}: the top level is not an object")
    for key, kind in (("frames", list), ("pooled_metrics", dict)):
        if not isinstance(doc.get(key), kind):
            raise InputFileError(f"{not_vmaf}: it has no {key!r} {kind.__name__}")
    seen: set[int] = set()
    for i, frame in enumerate(doc["frames"]):
        if not isinstance(frame, dict):
            raise InputFileError(f"{not_vmaf}: frames[{i}] is not an object")
        num = frame.get("frameNum")
        if isinstance(num, bool) or not isinstance(num, int):
            raise InputFileError(f"{not_vmaf}: frames[{i}] has no integer 'frameNum'")
        if num in seen:
            raise InputFileError(f"{not_vmaf}: frame {num} appears twice")
        seen.add(num)
        metrics = frame.get("metrics")
        if not isinstance(metrics, dict):
            raise InputFileError(f"{not_vmaf}: frame {num} has no 'metrics' object")
        for name, value in metrics.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise InputFileError(
                    f"{not_vmaf}: frame {num} metric {name!r} is {value!r}, not a number"
                )
    return doc


def _listed(numbers: Iterable[int]) -> str:
    ordered = sorted(numbers)
    shown = ", ".join(str(n) for n in ordered[:_LIST_AT_MOST])
    more = len(ordered) - _LIST_AT_MOST
    return f"{shown} and {more} more" if more > 0 else shown


def _check_same_frames(path: Path, file_nums: set[int], ours: set[int]) -> None:
    if file_nums == ours:
        return
    parts = [
        f"{path}: frame numbers do not match: the vmaf file has {len(file_nums)} frames, "
        f"the saliency features {len(ours)}"
    ]
    if ours - file_nums:
        parts.append(f"missing from the vmaf file: {_listed(ours - file_nums)}")
    if file_nums - ours:
        parts.append(f"missing from the saliency features: {_listed(file_nums - ours)}")
    shift = min(ours) - min(file_nums) if ours and file_nums else 0
    if shift > 0 and {n + shift for n in file_nums} == ours:
        # vmaf numbers from 0 after --frame_skip_ref; --frames keeps the source's numbers.
        parts.append(
            f"the features are the vmaf file's frames shifted by {shift}: was vmaf run with "
            f"--frame_skip_ref {shift}? vmaf then numbers from 0, while extract --frames "
            "keeps the video's own frame numbers; run vmaf without skipping, or on the "
            "same cut of the video as extract"
        )
    else:
        parts.append("run both tools on the same video with the same --subsample")
    raise OutputError("; ".join(parts))


def merge_into(
    vmaf_json: Path,
    frames: Sequence[FrameRecord],
    *,
    out: Path | None = None,
    force: bool = False,
) -> Path:
    """Add the saliency features to an existing vmaf JSON and return the path written.

    Each of ``frames`` goes into the ``metrics`` of the vmaf frame with the same
    ``frameNum``; the two sets of frame numbers must be equal (with
    ``--subsample N`` vmaf writes frames 0, N, 2N, ..., and so do we with the
    same N). A metric name the file already has is refused unless ``force``.

    ``pooled_metrics`` gains our metrics, pooled with vmaf's formulas over the
    same frames vmaf pools. vmaf's own entries are left exactly as written:
    vmaf pooled its unrounded scores, and pooling again from the six-decimal
    values in the file could only move its last digit (a mean 3.296707 would
    become 3.296706). Every number of vmaf's keeps its exact text.

    ``out`` defaults to ``vmaf_json`` itself, which needs ``force`` (the file is
    the user's); the write is atomic either way.
    """
    vmaf_json = Path(vmaf_json)
    target = vmaf_json if out is None else Path(out)
    # Input first: a missing or foreign file is the error to report, not the
    # output question.
    doc = _read_vmaf_json(vmaf_json)
    if target.resolve() == vmaf_json.resolve() and not force:
        raise OutputExistsError(
            f"merging into {vmaf_json} in place would rewrite it: pass --force, "
            "or name another output file"
        )
    _util.check_can_write(target, force=force)
    _check_frames(frames)

    by_num = {int(f["frameNum"]): f for f in doc["frames"]}
    _check_same_frames(vmaf_json, set(by_num), {int(f.frame_num) for f in frames})

    ours = _metric_names(frames)
    existing = {name for f in doc["frames"] for name in f["metrics"]} | set(doc["pooled_metrics"])
    clash = [name for name in ours if name in existing]
    if clash and not force:
        raise OutputError(
            f"{vmaf_json} already has the metric(s) {', '.join(clash)}: "
            "pass --force to replace them"
        )

    for f in frames:
        metrics = by_num[int(f.frame_num)]["metrics"]
        for name, value in f.metrics.items():
            metrics[name] = _num(value)

    # Our metrics, over the frames in the file's order, from their unrounded
    # values, as render_json pools them (and vmaf its own).
    ours_by_num = {int(f.frame_num): f.metrics for f in frames}
    series: dict[str, list[float]] = {name: [] for name in ours}
    for frame in doc["frames"]:
        mine = ours_by_num[int(frame["frameNum"])]
        for name in ours:
            series[name].append(float(mine[name]))
    pooled: dict[str, Any] = {}
    for name in [*doc["pooled_metrics"], *(n for n in ours if n not in doc["pooled_metrics"])]:
        old = doc["pooled_metrics"].get(name)
        if name not in series:
            pooled[name] = old  # vmaf's: exactly as vmaf wrote it
            continue
        p = pool(series[name])
        entry = dict(old) if isinstance(old, dict) else {}
        entry.update(
            {
                "min": _num(p.min),
                "max": _num(p.max),
                "mean": _num(p.mean),
                "harmonic_mean": _num(p.harmonic_mean),
            }
        )
        pooled[name] = entry
    doc["pooled_metrics"] = pooled

    try:
        _util.atomic_write_text(target, _dump(doc) + "\n", force=force)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


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
    _util.require("matplotlib", purpose="--plot")
    figure_mod = _util.require("matplotlib.figure", purpose="--plot")
    agg = _util.require("matplotlib.backends.backend_agg", purpose="--plot")

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
