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

Standard library and numpy only. Merging into a file the ``vmaf`` tool wrote
is :mod:`vmafx_saliency.video.merge`; saliency maps and the plot are
:mod:`vmafx_saliency.video.maps`. Both write their JSON with the helpers here
(:func:`dump_json`, :func:`json_number`).
"""

from __future__ import annotations

import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vmafx_saliency import _util
from vmafx_saliency.errors import OutputError

__all__ = [
    "FrameRecord",
    "PooledStats",
    "RunInfo",
    "pool",
    "pool_metrics",
    "render_csv",
    "render_json",
    "render_xml",
    "write_output",
]

OutputFormat = Literal["json", "xml", "csv"]

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
    rotation: int = 0  # degrees the frames were turned by the container's tag
    provider: str = "cpu"  # the ONNX Runtime execution provider that ran the model


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


class ParsedFloat(float):
    """A float read from a JSON file that remembers its text, so a merge writes
    every number it did not change exactly as it found it."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> ParsedFloat:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def json_number(value: float, digits: int = 6) -> _Number:
    return _Number(_fixed(value, digits))


def pooled_numbers(p: PooledStats) -> dict[str, _Number]:
    """One metric's entry of ``pooled_metrics``, in vmaf's order and ``%.6f``."""
    return {
        "min": json_number(p.min),
        "max": json_number(p.max),
        "mean": json_number(p.mean),
        "harmonic_mean": json_number(p.harmonic_mean),
    }


def dump_json(obj: Any, level: int = 0) -> str:
    """JSON text with two-space indentation, like vmaf's, and numbers as given.

    ``json.dumps`` cannot print ``1.000000``: it would write ``1.0``. vmaf's files
    carry six decimals, and diffing ours against theirs should show values only.
    """
    pad = "  " * (level + 1)
    end = "  " * level
    if isinstance(obj, _Number):
        return obj.text
    if isinstance(obj, ParsedFloat):
        return obj.text
    if isinstance(obj, Mapping):
        if not obj:
            return "{}"
        items = [
            f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {dump_json(v, level + 1)}"
            for k, v in obj.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(obj, list | tuple):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join(pad + dump_json(v, level + 1) for v in obj) + "\n" + end + "]"
    if isinstance(obj, float) and not math.isfinite(obj):
        return "null"
    return json.dumps(obj, ensure_ascii=False)


def _size_text(size: tuple[int, int] | None) -> str:
    return "native" if size is None else f"{size[0]}x{size[1]}"


def check_frames(frames: Sequence[FrameRecord]) -> None:
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


def metric_names(frames: Sequence[FrameRecord]) -> list[str]:
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
        "provider": run.provider,
    }


def _params(run: RunInfo) -> dict[str, Any]:
    params: dict[str, Any] = {
        "qualityWidth": run.frame_size[0],
        "qualityHeight": run.frame_size[1],
        "subsample": run.subsample,
        "source": run.source,
    }
    if run.rotation:  # only where the container's rotation tag was applied
        params["rotation"] = run.rotation
    return params


def render_json(frames: Sequence[FrameRecord], run: RunInfo) -> str:
    """vmaf's JSON, plus ``params`` and ``model`` blocks at the top level."""
    check_frames(frames)
    doc: dict[str, Any] = {
        "version": run.version,
        "fps": json_number(run.fps, 2),
        # Ours, not vmaf's: vmaf's JSON carries no parameters at all.
        "params": _params(run),
        "model": _model_block(run),
        "frames": [
            {
                "frameNum": int(f.frame_num),
                "metrics": {name: json_number(v) for name, v in f.metrics.items()},
            }
            for f in frames
        ],
        "pooled_metrics": {name: pooled_numbers(p) for name, p in pool_metrics(frames).items()},
        "aggregate_metrics": {},
    }
    return dump_json(doc) + "\n"


def render_xml(frames: Sequence[FrameRecord], run: RunInfo) -> str:
    """vmaf's XML; ``<params>`` gains ``subsample`` and ``source``, and a
    ``<model>`` element follows ``<fyi>``."""
    check_frames(frames)
    for name in metric_names(frames):
        if not _XML_NAME.match(name):
            raise OutputError(f"metric name {name!r} cannot be an XML attribute name")
    root = ET.Element("VMAF", {"version": run.version})
    ET.SubElement(root, "params", {k: str(v) for k, v in _params(run).items()})
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
    check_frames(frames)
    names = metric_names(frames)
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
