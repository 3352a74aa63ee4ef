"""Planning: which rows need a clip computed, and which distinct clips those are.

Rows that already hold both values are skipped (unless asked to overwrite);
rows without a usable path or with bad raw-YUV geometry are settled at once
with a status. Every other row names a :class:`Clip` (the normalised path and,
for raw YUV, the canonical geometry); rows that name the same clip share it,
so each distinct clip is computed once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vmafx_saliency.downstream.materialize.records import (
    MEAN_COLUMN,
    VAR_COLUMN,
    Clip,
    ClipResult,
    Geometry,
    Options,
)
from vmafx_saliency.downstream.materialize.tables import _Table
from vmafx_saliency.errors import UsageError

# Raw YUV rows read their geometry from these columns when the table has them.
WIDTH_COLUMN = "width"
HEIGHT_COLUMN = "height"
PIXEL_FORMAT_COLUMN = "pixel_format"


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _a_value(value: object) -> bool:
    """A saliency figure already there: a finite number (text or a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: object, *, name: str, row: int) -> int | None:
    if not _present(value):
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):  # a bool is no frame size
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.strip().isdigit()
    ):
        number = int(value)
    if number is not None and number > 0:
        return number
    raise ValueError(f"row {row + 1}: {name} {value!r} is not a positive whole number")


def _row_geometry(
    path: Path,
    row: int,
    defaults: Geometry,
    widths: Sequence[object],
    heights: Sequence[object],
    formats: Sequence[object],
) -> Geometry:
    from vmafx_saliency.video.frames import RAW_SUFFIXES, get_pixel_format

    if path.suffix.lower() not in RAW_SUFFIXES:
        # Containers carry their own geometry; a table's width/height may mean something else.
        return Geometry()
    width = _whole(widths[row], name=WIDTH_COLUMN, row=row)
    height = _whole(heights[row], name=HEIGHT_COLUMN, row=row)
    fmt = formats[row]
    if fmt is not None and not isinstance(fmt, str):
        raise ValueError(f"row {row + 1}: {PIXEL_FORMAT_COLUMN} {fmt!r} is not a pixel format name")
    try:
        # Canonical names ("gray" is yuv400p; yuv420p when unsaid, as open_video assumes),
        # so spellings of one format are one clip.
        canonical = get_pixel_format(fmt or defaults.pixel_format or "yuv420p").name
    except UsageError as exc:
        raise ValueError(f"row {row + 1}: {exc}") from exc
    return Geometry(
        width=width if width is not None else defaults.width,
        height=height if height is not None else defaults.height,
        pixel_format=canonical,
    )


@dataclass(frozen=True)
class _Plan:
    clips: dict[Clip, list[int]]  # distinct clips -> the rows they fill, first-seen order
    settled: dict[int, ClipResult]  # rows decided without a clip (no path, bad geometry)
    skipped: list[int]


def _plan(table: _Table, options: Options, root: Path) -> _Plan:
    paths = table.column(options.path_column)
    means = table.column(MEAN_COLUMN)
    variances = table.column(VAR_COLUMN)
    widths = table.column(WIDTH_COLUMN)
    heights = table.column(HEIGHT_COLUMN)
    formats = table.column(PIXEL_FORMAT_COLUMN)
    clips: dict[Clip, list[int]] = {}
    settled: dict[int, ClipResult] = {}
    skipped: list[int] = []
    for row, value in enumerate(paths):
        if not options.overwrite and _a_value(means[row]) and _a_value(variances[row]):
            skipped.append(row)
            continue
        if not isinstance(value, str) or not value.strip():
            settled[row] = ClipResult(
                source=repr(value),
                status="missing-source",
                message=f"row {row + 1}: {options.path_column} is {value!r}, not a path",
            )
            continue
        # normpath, not resolve(): the same name is the same clip; resolving would
        # ask the driver's file system, which a cluster's workers may not share.
        path = Path(os.path.normpath(root / Path(value).expanduser()))
        try:
            geometry = _row_geometry(path, row, options.defaults, widths, heights, formats)
        except ValueError as exc:
            settled[row] = ClipResult(
                source=str(path), status="decode-failed", message=f"{path}: {exc}"
            )
            continue
        clips.setdefault(Clip(path=path, geometry=geometry), []).append(row)
    return _Plan(clips=clips, settled=settled, skipped=skipped)
