"""The materializer: saliency columns for feature tables (JSONL or Parquet).

Every row of the table names a video in one column. The materializer adds four
columns to every row and changes nothing else:

- ``saliency_mean`` and ``saliency_var`` (float64): the per-frame features of
  the extractor (:func:`vmafx_saliency.video.extract.extract`) over the clip's first
  N frames, pooled with an aggregator (``mean``, ``ema`` or ``max``), each
  feature on its own;
- ``saliency_status`` (string): ``ok``, ``skipped-existing``,
  ``missing-source``, ``decode-failed`` or ``model-failed``;
- ``saliency_model`` (string): the model that computed the values.

Rows are never dropped or reordered, and every other column keeps its values
and type. Each distinct clip (the same file, and for raw YUV the same
geometry) is computed once; rows that share it share the result. Rows that
already hold both values keep them (``skipped-existing``) unless asked to
overwrite, so a second run over the output recomputes only what failed.

Clips are computed in this process, in a process pool (each worker loads the
model once through the loader gate) or on Ray actors (each holding one ONNX
Runtime session), with the same code and the same numbers on every path.
The output is written atomically once everything is computed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from vmafx_saliency._util import atomic_writer, check_can_write, require
from vmafx_saliency.errors import (
    ExtractionError,
    InputFileError,
    MaterializeError,
    UsageError,
    VideoError,
)
from vmafx_saliency.video.extract import default_threads
from vmafx_saliency.video.job import ModelChoice

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.supply.registry import Preprocessing
    from vmafx_saliency.video.frames import Frame

Status = Literal["ok", "skipped-existing", "missing-source", "decode-failed", "model-failed"]
Aggregator = Literal["mean", "ema", "max"]
Executor = Literal["local", "ray"]
TableFormat = Literal["jsonl", "parquet"]

STATUSES: tuple[Status, ...] = get_args(Status)
AGGREGATORS: tuple[Aggregator, ...] = get_args(Aggregator)
EXECUTORS: tuple[Executor, ...] = get_args(Executor)

MEAN_COLUMN = "saliency_mean"
VAR_COLUMN = "saliency_var"
STATUS_COLUMN = "saliency_status"
MODEL_COLUMN = "saliency_model"
OUR_COLUMNS = (MEAN_COLUMN, VAR_COLUMN, STATUS_COLUMN, MODEL_COLUMN)
# What the loader gate reads from the environment: shipped to workers that lack it.
GATE_ENVIRONMENT = (
    "VMAFX_SALIENCY_REGISTRY",
    "VMAFX_SALIENCY_COMMITTED_REGISTRY",
    "VMAFX_SALIENCY_MODEL_DIR",
    "XDG_DATA_HOME",
)
# Raw YUV rows read their geometry from these columns when the table has them.
WIDTH_COLUMN = "width"
HEIGHT_COLUMN = "height"
PIXEL_FORMAT_COLUMN = "pixel_format"

DEFAULT_EMA_ALPHA = 0.25
SUFFIX_FORMATS: Mapping[str, TableFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# How many failures per status the summary names; the counts are always complete.
EXAMPLES_PER_STATUS = 5


# --- records -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Geometry:
    """Raw YUV geometry: the command line's defaults, or one row's resolved values."""

    width: int | None = None
    height: int | None = None
    pixel_format: str | None = None


@dataclass(frozen=True, kw_only=True)
class Clip:
    """One distinct source: what a worker opens. Equal clips are computed once."""

    path: Path  # absolute
    geometry: Geometry = field(default_factory=Geometry)  # set for raw YUV only


@dataclass(frozen=True, kw_only=True)
class ClipResult:
    """What became of one clip (or of a row that never got as far as a clip)."""

    source: str
    clip: Clip | None = None  # None for rows settled without opening anything
    status: Status
    saliency_mean: float | None = None
    saliency_var: float | None = None
    frames: int = 0
    message: str | None = None
    model_sha256: str | None = None  # the bytes the worker ran; checked against the driver's


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How a clip becomes two numbers; shipped to every worker (picklable)."""

    model: ModelChoice
    max_frames: int | None = None
    aggregator: Aggregator = "mean"
    ema_alpha: float = DEFAULT_EMA_ALPHA
    threads: int = 1  # ONNX Runtime intra-op threads per worker
    # The driver's registry and jail settings, for workers on other machines (see ClipWorker).
    environment: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Options:
    """Everything ``vmafx-saliency materialize`` takes besides input and output."""

    path_column: str
    root: Path | None = None  # relative paths resolve here; default: the table's folder
    model: ModelChoice = field(default_factory=ModelChoice)
    defaults: Geometry = field(default_factory=Geometry)
    max_frames: int | None = None
    aggregator: str = "mean"
    ema_alpha: float | None = None
    overwrite: bool = False
    executor: str = "local"
    address: str | None = None
    jobs: int | None = None
    force: bool = False


@dataclass(frozen=True)
class Summary:
    """Counts per status and what ran; ``render()`` is what the command prints."""

    input: Path
    output: Path
    rows: int
    clips: int  # distinct clips computed in this run
    counts: tuple[tuple[Status, int], ...]
    model_id: str
    executor: str
    workers: int
    seconds: float
    failures: tuple[ClipResult, ...]

    def count(self, status: Status) -> int:
        return dict(self.counts)[status]

    @property
    def failed_rows(self) -> int:
        """Rows left without values: the table is written, but not complete."""
        return sum(n for status, n in self.counts if status not in ("ok", "skipped-existing"))

    def render(self) -> str:
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        lines = [
            f"{self.output}: {self.rows} rows, {self.clips} distinct clips computed with "
            f"{self.model_id} ({self.executor}, {workers}) in {self.seconds:.1f} s"
        ]
        lines += [f"  {status:<17} {count}" for status, count in self.counts]
        for status in STATUSES:
            failed = [f for f in self.failures if f.status == status]
            for result in failed[:EXAMPLES_PER_STATUS]:
                lines.append(f"{status}: {result.message or result.source}")
            if len(failed) > EXAMPLES_PER_STATUS:
                lines.append(f"{status}: ... and {len(failed) - EXAMPLES_PER_STATUS} more clips")
        return "\n".join(lines)


# --- aggregation ---------------------------------------------------------------


def aggregate(values: Sequence[float], aggregator: Aggregator, *, alpha: float) -> float:
    """Pool per-frame values into one: mean, exponential moving average, or max.

    The EMA starts at the first frame and ends at the last
    (``e = alpha * v + (1 - alpha) * e``), so late frames weigh most.
    """
    if not values:
        raise ValueError("aggregate() needs at least one value")
    if aggregator == "mean":
        # fsum: exact summation, so the result cannot depend on how the values arrived.
        return math.fsum(values) / len(values)
    if aggregator == "max":
        return max(values)
    ema = values[0]
    for value in values[1:]:
        ema = alpha * value + (1.0 - alpha) * ema
    return ema


# --- the per-clip work (the same code in every executor) ------------------------


class _GuardedSession:
    """Turns ONNX Runtime's untyped errors into ExtractionError, so they read model-failed.

    Only the model call is guarded: any other exception in the worker is a bug
    and must surface as one, not as a row status.
    """

    def __init__(self, session: Any, source: Path) -> None:
        self._session = session
        self._source = source

    def run(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._session.run(*args, **kwargs)
        except Exception as exc:  # ORT raises its own untyped errors
            raise ExtractionError(
                f"the model {self._source} failed in ONNX Runtime ({exc}): try another model"
            ) from exc


class _Counted:
    """Counts the frames the source handed out, to tell 'no frames' from a model failure."""

    def __init__(self, frames: Iterable[Frame]) -> None:
        self._frames = frames
        self.count = 0

    def __iter__(self) -> Iterator[Frame]:
        for frame in self._frames:
            self.count += 1
            yield frame


def _load(settings: Settings) -> tuple[LoadedModel, Preprocessing]:
    from vmafx_saliency.video.job import load_model

    loaded, pre = load_model(settings.model, threads=settings.threads)
    if pre.colour_mode != "luma_tile":
        source = loaded.model_id or loaded.path
        raise MaterializeError(
            f"{source}: its sidecar declares colour mode {pre.colour_mode!r}; the materializer "
            "feeds luma only (luma_tile): use a model whose sidecar declares luma_tile"
        )
    return loaded, pre


class ClipWorker:
    """Holds one model session (loaded through the loader gate) and computes clips.

    The in-process path, each process-pool worker and each Ray actor hold one.
    """

    def __init__(self, settings: Settings) -> None:
        # A Ray node does not inherit the driver's environment. Fill in what the node
        # lacks, never replace what it has: a node's own jail stays in force.
        for name, value in settings.environment:
            os.environ.setdefault(name, value)
        self.settings = settings
        loaded, self.pre = _load(settings)
        self.loaded = replace(loaded, session=_GuardedSession(loaded.session, loaded.path))

    def compute(self, clip: Clip) -> ClipResult:
        # Looked up on the module at call time, so tests can count or break the calls.
        from vmafx_saliency.video import extract as ex
        from vmafx_saliency.video.frames import open_video, select_frames

        path = clip.path
        sha = self.loaded.sha256

        def result(status: Status, message: str | None = None, **values: Any) -> ClipResult:
            return ClipResult(
                source=str(path),
                clip=clip,
                status=status,
                message=message,
                model_sha256=sha,
                **values,
            )

        if not path.exists():
            return result("missing-source", f"{path}: no such file")
        geometry = clip.geometry
        try:
            source = open_video(
                path,
                width=geometry.width,
                height=geometry.height,
                pixel_format=geometry.pixel_format,
            )
        except (VideoError, UsageError) as exc:
            # UsageError: raw YUV without geometry, or an unknown pixel format in the row.
            return result("decode-failed", str(exc))
        with source:
            frames = _Counted(select_frames(source, end=self.settings.max_frames))
            try:
                extraction = ex.extract(
                    frames, self.loaded, pre=self.pre, color_range=source.info.color_range
                )
            except VideoError as exc:
                return result("decode-failed", str(exc))
            except ExtractionError as exc:
                if frames.count == 0:
                    return result("decode-failed", f"{path}: no frame could be decoded")
                return result("model-failed", f"{path}: {exc}")
        features = extraction.features
        how = self.settings.aggregator
        alpha = self.settings.ema_alpha
        return result(
            "ok",
            saliency_mean=aggregate([f.saliency_mean for f in features], how, alpha=alpha),
            saliency_var=aggregate([f.saliency_var for f in features], how, alpha=alpha),
            frames=len(features),
        )

    def model_sha256(self) -> str:
        return self.loaded.sha256


# Process-pool workers keep their ClipWorker here: the initializer loads the model once.
_POOL_WORKER: ClipWorker | None = None


def _init_pool_worker(settings: Settings) -> None:
    global _POOL_WORKER
    _POOL_WORKER = ClipWorker(settings)


def _compute_in_pool(clip: Clip) -> ClipResult:
    if _POOL_WORKER is None:  # the initializer always runs first; keep mypy honest
        raise RuntimeError("process-pool worker used before its initializer ran")
    return _POOL_WORKER.compute(clip)


# --- tables ----------------------------------------------------------------------


def table_format(path: Path, *, role: str) -> TableFormat:
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(SUFFIX_FORMATS)
        raise MaterializeError(
            f"{role} {path}: unknown table suffix {path.suffix or '(none)'!r}: "
            f"name a JSONL or Parquet file ({known})"
        )
    return fmt


class _Table:
    """A table read from JSONL (a list of dicts) or Parquet (a pyarrow Table)."""

    def __init__(
        self, path: Path, *, rows: list[dict[str, Any]] | None = None, arrow: Any = None
    ) -> None:
        self.path = path
        self.rows = rows
        self.arrow = arrow

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else int(self.arrow.num_rows)

    def has_column(self, name: str) -> bool:
        if self.rows is not None:
            return any(name in row for row in self.rows)
        return name in self.arrow.column_names

    def columns(self) -> list[str]:
        if self.rows is None:
            return list(self.arrow.column_names)
        names: dict[str, None] = {}
        for row in self.rows:
            names.update(dict.fromkeys(row))
        return list(names)

    def column(self, name: str) -> list[Any]:
        """The column's values as Python objects; None where a row lacks it."""
        if self.rows is not None:
            return [row.get(name) for row in self.rows]
        if name not in self.arrow.column_names:
            return [None] * len(self)
        return list(self.arrow.column(name).to_pylist())


def _read_jsonl(path: Path) -> _Table:
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue  # blank lines (a trailing newline) are not rows
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MaterializeError(
                        f"{path}: line {number} is not valid JSON ({exc.msg}): fix the line; "
                        "a JSONL table holds one JSON object per line"
                    ) from exc
                if not isinstance(row, dict):
                    raise MaterializeError(
                        f"{path}: line {number} is a JSON {type(row).__name__}, not an object: "
                        "a JSONL table holds one JSON object per line"
                    )
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise MaterializeError(f"{path}: not UTF-8 text ({exc}): is it a JSONL file?") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return _Table(path, rows=rows)


def _parquet() -> Any:
    return require("pyarrow.parquet", purpose="reading and writing Parquet tables")


def _read_parquet(path: Path) -> _Table:
    pq = _parquet()
    try:
        arrow = pq.read_table(path)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read as Parquet ({exc})") from exc
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise MaterializeError(f"{path}: not a readable Parquet file ({exc})") from exc
    return _Table(path, arrow=arrow)


def read_table(path: Path) -> _Table:
    if not path.is_file():
        raise InputFileError(f"{path}: no such table: check --input")
    if table_format(path, role="--input") == "parquet":
        return _read_parquet(path)
    return _read_jsonl(path)


def _json_default(value: object) -> object:
    """Parquet values JSON has no type for: dates and times as ISO text, decimals as text."""
    import datetime as dt
    import decimal

    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"a {type(value).__name__} value")


def _write_jsonl(rows: Iterable[Mapping[str, Any]], path: Path) -> None:
    with atomic_writer(path) as fh:
        for row in rows:
            try:
                line = json.dumps(row, ensure_ascii=False, default=_json_default)
            except TypeError as exc:
                raise MaterializeError(
                    f"{path}: JSON cannot hold {exc}: write a .parquet output instead"
                ) from exc
            fh.write(line.encode("utf-8") + b"\n")


def _arrow_type(pa: Any, name: str) -> Any:
    return pa.float64() if name in (MEAN_COLUMN, VAR_COLUMN) else pa.string()


def _arrow_column(table: _Table, name: str) -> Any:
    """One column of a JSONL table as an Arrow array, or an error that names the column."""
    pa = require("pyarrow", purpose="writing Parquet tables")
    try:
        return pa.array([row.get(name) for row in table.rows or []])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MaterializeError(
            f"{table.path}: column {name!r} cannot become a Parquet column ({exc}): give it "
            "one type in every row, or write a .jsonl output"
        ) from exc


def check_parquet_columns(table: _Table, output: Path) -> None:
    """Before any clip is computed: the table's own columns must fit a Parquet output."""
    if table.arrow is not None or table_format(output, role="--output") != "parquet":
        return
    for name in table.columns():
        if name not in OUR_COLUMNS:  # ours are written with their own types
            _arrow_column(table, name)


def _write_parquet(table: _Table, new: Mapping[str, list[Any]], path: Path) -> None:
    pa = require("pyarrow", purpose="writing Parquet tables")
    pq = _parquet()
    try:
        if table.arrow is not None:
            arrow = table.arrow
            for name, values in new.items():
                # Replace our columns in place (same position) or append them at the end.
                array = pa.array(values, type=_arrow_type(pa, name))
                index = arrow.schema.get_field_index(name)
                old = arrow.schema.field(index) if index >= 0 else None
                column = pa.field(name, array.type, metadata=old.metadata if old else None)
                if index >= 0:
                    arrow = arrow.set_column(index, column, array)
                else:
                    arrow = arrow.append_column(column, array)
        else:
            names = table.columns() + [n for n in new if not table.has_column(n)]
            data = {}
            for name in names:
                if name in new:
                    data[name] = pa.array(new[name], type=_arrow_type(pa, name))
                else:
                    data[name] = _arrow_column(table, name)
            arrow = pa.table(data)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MaterializeError(
            f"{table.path}: a column cannot become a Parquet column ({exc}): give it one type "
            "in every row, or write a .jsonl output"
        ) from exc
    with atomic_writer(path) as fh:
        pq.write_table(arrow, fh)


def write_table(table: _Table, new: Mapping[str, list[Any]], path: Path) -> None:
    """Write the table with the new columns, in the format the output's suffix names."""
    if table_format(path, role="--output") == "parquet":
        _write_parquet(table, new, path)
        return
    rows = table.rows if table.rows is not None else table.arrow.to_pylist()
    for index, row in enumerate(rows):
        for name, values in new.items():
            row[name] = values[index]  # existing keys keep their place; new ones go last
    _write_jsonl(rows, path)


# --- planning ----------------------------------------------------------------------


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


# --- executors ----------------------------------------------------------------------


def _run_local(
    clips: Sequence[Clip], settings: Settings, workers: int, here: ClipWorker | None
) -> list[ClipResult]:
    if here is not None:
        return [here.compute(clip) for clip in clips]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the driver already holds an ONNX Runtime session and its
    # thread pool, and forking a threaded process can deadlock the child.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_pool_worker,
        initargs=(settings,),
    ) as pool:
        try:
            return list(pool.map(_compute_in_pool, clips))
        except BrokenProcessPool as exc:
            raise MaterializeError(
                f"a worker process died ({exc}): run again with --jobs 1 (Options(jobs=1)) to "
                "see the error in this process; a script that calls materialize() must guard "
                "its entry point with if __name__ == '__main__'"
            ) from exc


def _check_reachable(address: str) -> None:
    """Refuse a ``host:port`` nobody listens on at once: Ray retries it for minutes."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...": Ray's own lookup
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise MaterializeError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}): "
            "start one (ray start --head) or leave out --address for a local Ray"
        ) from exc


def _run_ray(
    clips: Sequence[Clip], settings: Settings, options: Options, ray: Any
) -> tuple[list[ClipResult], int]:
    """Clips on Ray actors, each holding one session; returns the results and the actor count."""
    started = False
    if not ray.is_initialized():
        common: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
        if options.address:
            _check_reachable(options.address)
            try:
                ray.init(address=options.address, **common)
            except ConnectionError as exc:
                raise MaterializeError(
                    f"--address {options.address}: no Ray cluster answers there ({exc}): start "
                    "one (ray start --head) or leave out --address for a local Ray"
                ) from exc
        else:
            ray.init(
                num_cpus=options.jobs or default_threads(),
                # Only small per-clip results travel through the object store.
                object_store_memory=128 * 1024 * 1024,
                **common,
            )
        started = True
    actors: list[Any] = []
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(options.jobs or cpus, len(clips)))
        # One CPU reserved per ORT thread: actors x threads never exceeds the cluster's cores.
        remote = ray.remote(num_cpus=settings.threads)(ClipWorker)
        actors = [remote.remote(settings) for _ in range(count)]
        pool = ray.util.ActorPool(actors)
        try:
            results = list(pool.map(lambda actor, clip: actor.compute.remote(clip), clips))
        except ray.exceptions.RayError as exc:
            raise MaterializeError(
                f"a Ray worker failed ({exc}): if it could not load the model, put the model "
                "at the same path on every node or ship it with the job's working_dir; run with "
                "--executor local to see the error in this process"
            ) from exc
        return results, count
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if started:
            ray.shutdown()


# --- the job ---------------------------------------------------------------------------


def _check_options(options: Options) -> tuple[Executor, Aggregator, float]:
    if options.executor not in EXECUTORS:
        raise MaterializeError(
            f"unknown executor {options.executor!r}: --executor takes {' or '.join(EXECUTORS)}"
        )
    if options.aggregator not in AGGREGATORS:
        raise MaterializeError(
            f"unknown aggregator {options.aggregator!r}: --aggregator takes "
            f"{', '.join(AGGREGATORS)}"
        )
    if options.ema_alpha is not None and options.aggregator != "ema":
        raise MaterializeError(
            f"--ema-alpha applies to --aggregator ema, not {options.aggregator}: drop it"
        )
    alpha = DEFAULT_EMA_ALPHA if options.ema_alpha is None else options.ema_alpha
    if not 0.0 < alpha <= 1.0:
        raise MaterializeError(f"--ema-alpha {alpha}: give a weight in (0, 1]")
    if options.jobs is not None and options.jobs < 1:
        raise MaterializeError(f"--jobs {options.jobs}: give 1 or more workers")
    if options.max_frames is not None and options.max_frames < 1:
        raise MaterializeError(f"--max-frames {options.max_frames}: give 1 or more")
    if options.address is not None and options.executor != "ray":
        raise MaterializeError("--address names a Ray cluster: add --executor ray")
    executor: Executor = "ray" if options.executor == "ray" else "local"
    aggregator: Aggregator = (
        "ema" if options.aggregator == "ema" else "max" if options.aggregator == "max" else "mean"
    )
    return executor, aggregator, alpha


def _check_paths(input: Path, output: Path, *, force: bool) -> None:
    fmt_in = table_format(input, role="--input")
    fmt_out = table_format(output, role="--output")
    if not input.is_file():
        raise InputFileError(f"--input {input}: no such table: check the path")
    if output.exists() and output.resolve() == input.resolve():
        if not force:
            raise MaterializeError(
                f"--output {output} is the input table: give another --output, or pass --force "
                "to rewrite the input in place"
            )
    else:
        check_can_write(output, force=force)
    if "parquet" in (fmt_in, fmt_out):
        _parquet()  # refuse before any work when pyarrow is missing


def _for_workers(choice: ModelChoice) -> ModelChoice:
    """The model choice as workers must see it, without the driver's environment.

    ``$VMAF_MOBILESAL_MODEL_PATH`` is read here, once: a Ray node does not see
    the driver's environment. A relative path stays relative: a worker resolves
    it in its own working directory (the driver's on this machine, the job's
    ``working_dir`` on a cluster), and the sha256 check catches a different file.
    """
    from vmafx_saliency.video.job import MODEL_PATH_ENV

    path = choice.model_path
    if path is None and choice.model_id is None and os.environ.get(MODEL_PATH_ENV):
        path = Path(os.environ[MODEL_PATH_ENV])
    return replace(
        choice,
        model_path=path.expanduser() if path is not None else None,
        sidecar=choice.sidecar.expanduser() if choice.sidecar is not None else None,
    )


def _model_label(loaded: LoadedModel) -> str:
    if loaded.model_id is not None:
        return loaded.model_id
    # Ad hoc: the sidecar's name is only a claim, so the bytes' digest goes with it.
    claimed = loaded.sidecar.model_id if loaded.sidecar is not None else "model"
    return f"adhoc:{claimed}@sha256:{loaded.sha256[:12]}"


def materialize(input: Path, output: Path, options: Options) -> Summary:
    """Add the saliency columns to every row of ``input`` and write ``output``.

    Refusals (bad options, unknown suffixes, an existing output, a missing
    path column, a model the loader gate refuses) happen before any clip is
    computed and write nothing. Per-clip failures become row statuses.
    """
    started = time.perf_counter()
    executor, aggregator, alpha = _check_options(options)
    _check_paths(input, output, force=options.force)
    ray = require("ray", purpose="--executor ray") if executor == "ray" else None
    table = read_table(input)
    if len(table) == 0:
        raise MaterializeError(f"--input {input}: the table has no rows: nothing to materialize")
    if not table.has_column(options.path_column):
        raise MaterializeError(
            f"--input {input}: no column {options.path_column!r} (columns: "
            f"{', '.join(table.columns())}): pass --path-column with the column that holds "
            "the video paths"
        )
    check_parquet_columns(table, output)
    if options.root is not None and not options.root.is_dir():
        what = "not a folder" if options.root.exists() else "no such folder"
        raise InputFileError(
            f"--root {options.root}: {what}: give the folder the table's relative paths start from"
        )
    root = (options.root if options.root is not None else input.parent).absolute()
    plan = _plan(table, options, root)
    clips = list(plan.clips)

    cores = default_threads()
    workers = max(1, min(options.jobs or cores, len(clips)))
    in_process = executor == "local" and workers == 1
    # Split the cores between workers so workers x threads <= cores; Ray actors get one each.
    threads = cores if in_process else 1 if executor == "ray" else max(1, cores // workers)
    settings = Settings(
        model=_for_workers(options.model),
        max_frames=options.max_frames,
        aggregator=aggregator,
        ema_alpha=alpha,
        threads=threads,
        environment=tuple((n, os.environ[n]) for n in GATE_ENVIRONMENT if os.environ.get(n)),
    )
    # The driver runs the gate first: a refused model fails the run once, clearly,
    # before any worker starts; it also names the model for the column.
    here = ClipWorker(replace(settings, threads=threads if in_process else 1))
    model_id = _model_label(here.loaded)
    expected_sha = here.model_sha256()

    computed: list[ClipResult] = []
    if clips and executor == "ray":
        computed, workers = _run_ray(clips, settings, options, ray)
    elif clips:
        computed = _run_local(clips, settings, workers, here if in_process else None)
    results: dict[Clip, ClipResult] = {}
    for result in computed:
        if result.model_sha256 not in (None, expected_sha):
            raise MaterializeError(
                f"a worker ran a model with sha256 {result.model_sha256}, not the "
                f"{expected_sha} this process loaded: the model file differs between "
                "machines; put the same file at the same path on every node"
            )
        if result.clip is not None:
            results[result.clip] = result
    new = _fill(table, plan, results, model_id)
    write_table(table, new, output)

    counts = {status: 0 for status in STATUSES}
    for status in new[STATUS_COLUMN]:
        counts[status] += 1
    failures = [r for r in (*results.values(), *plan.settled.values()) if r.status != "ok"]
    return Summary(
        input=input,
        output=output,
        rows=len(table),
        clips=len(clips),
        counts=tuple((status, counts[status]) for status in STATUSES),
        model_id=model_id,
        executor=executor,
        workers=workers if clips else 0,
        seconds=time.perf_counter() - started,
        failures=tuple(failures),
    )


def _fill(
    table: _Table, plan: _Plan, results: Mapping[Clip, ClipResult], model_id: str
) -> dict[str, list[Any]]:
    means = table.column(MEAN_COLUMN)
    variances = table.column(VAR_COLUMN)
    models = [None if m is None else str(m) for m in table.column(MODEL_COLUMN)]
    statuses: list[Status | None] = [None] * len(table)
    for row in plan.skipped:
        # Existing values came from whatever model is already named there; keep both.
        statuses[row] = "skipped-existing"
    decided = [(row, results[clip]) for clip, rows in plan.clips.items() for row in rows]
    for row, result in (*decided, *plan.settled.items()):
        statuses[row] = result.status
        # A failure clears stale values: a status and values from two runs never mix.
        means[row] = result.saliency_mean
        variances[row] = result.saliency_var
        models[row] = model_id
    # Kept values are written as they were read (a JSONL integer stays an integer).
    return {
        MEAN_COLUMN: means,
        VAR_COLUMN: variances,
        STATUS_COLUMN: statuses,
        MODEL_COLUMN: models,
    }


__all__ = [
    "AGGREGATORS",
    "EXECUTORS",
    "OUR_COLUMNS",
    "STATUSES",
    "Clip",
    "ClipResult",
    "ClipWorker",
    "Geometry",
    "Options",
    "Settings",
    "Summary",
    "aggregate",
    "materialize",
    "read_table",
    "table_format",
]
