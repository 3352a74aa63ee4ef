"""Merging the saliency features into a JSON file the ``vmaf`` tool wrote.

:func:`merge_into` reads the file (checked to be vmaf's shape, every number
keeping its exact text), adds our metrics to the frames with the same
``frameNum``, pools them into ``pooled_metrics`` with vmaf's formulas and writes
the result atomically. vmaf's own values are never rewritten. The JSON is
written with the helpers of :mod:`vmafx_saliency.video.output`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vmafx_saliency import _util
from vmafx_saliency._json import json_loads
from vmafx_saliency.errors import InputFileError, OutputError, OutputExistsError
from vmafx_saliency.video.output import (
    FrameRecord,
    ParsedFloat,
    check_frames,
    dump_json,
    json_number,
    metric_names,
    pool,
    pooled_numbers,
)

__all__ = ["merge_into"]

# How many frame numbers an error message lists before saying "and N more".
_LIST_AT_MOST = 5


def _read_vmaf_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: no such file (the vmaf JSON to merge into)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read it as UTF-8 text: {exc}") from exc
    try:
        doc = json_loads(text, parse_float=ParsedFloat)
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
    check_frames(frames)

    by_num = {int(f["frameNum"]): f for f in doc["frames"]}
    _check_same_frames(vmaf_json, set(by_num), {int(f.frame_num) for f in frames})

    ours = metric_names(frames)
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
            metrics[name] = json_number(value)
    doc["pooled_metrics"] = _pooled_with_ours(doc, frames, ours)

    try:
        _util.atomic_write_text(target, dump_json(doc) + "\n", force=force)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def _pooled_with_ours(
    doc: dict[str, Any], frames: Sequence[FrameRecord], ours: list[str]
) -> dict[str, Any]:
    """The file's ``pooled_metrics`` with ours pooled in: vmaf's entries untouched,
    in the file's order, then our metrics the file did not have."""
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
        entry = dict(old) if isinstance(old, dict) else {}
        entry.update(pooled_numbers(pool(series[name])))
        pooled[name] = entry
    return pooled
