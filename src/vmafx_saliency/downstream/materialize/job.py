"""The job: check the options and the paths, plan, compute, fill, write, summarise.

:func:`materialize` refuses everything it can before any clip is computed (bad
options, unknown suffixes, an existing output, a missing path column, a model
the loader gate refuses) and writes nothing then. It plans the distinct clips,
loads the model here first (a refused model fails the run once, clearly),
computes the clips with the chosen executor, fills the four columns of every
row and writes the output atomically; per-clip failures become row statuses.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmafx_saliency._util import check_can_write, check_inputs_spared, require
from vmafx_saliency.downstream.materialize.executors import _run_local, _run_ray
from vmafx_saliency.downstream.materialize.plan import _Plan, _plan
from vmafx_saliency.downstream.materialize.records import (
    AGGREGATORS,
    DEFAULT_EMA_ALPHA,
    EXECUTORS,
    MEAN_COLUMN,
    MODEL_COLUMN,
    STATUS_COLUMN,
    STATUSES,
    VAR_COLUMN,
    Aggregator,
    Clip,
    ClipResult,
    Executor,
    Options,
    Settings,
    Status,
    Summary,
)
from vmafx_saliency.downstream.materialize.tables import (
    _parquet,
    _Table,
    check_parquet_columns,
    read_table,
    table_format,
    write_table,
)
from vmafx_saliency.downstream.materialize.work import ClipWorker
from vmafx_saliency.errors import InputFileError, MaterializeError
from vmafx_saliency.video.extract import default_threads
from vmafx_saliency.video.job import ModelChoice

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel

# What the loader gate reads from the environment: shipped to workers that lack it.
GATE_ENVIRONMENT = (
    "VMAFX_SALIENCY_REGISTRY",
    "VMAFX_SALIENCY_COMMITTED_REGISTRY",
    "VMAFX_SALIENCY_MODEL_DIR",
    "XDG_DATA_HOME",
)


logger = logging.getLogger(__name__)


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


def _check_inputs_spared(output: Path, clips: list[Clip], model: ModelChoice) -> None:
    """--output may be the --input table (the documented rewrite in place), never a clip
    of it nor the model's files, --force or not."""
    from vmafx_saliency.video.job import model_inputs

    reads = [("a clip of the table", c.path) for c in clips if _a_file(c.path)]
    check_inputs_spared([*reads, *model_inputs(model)], files=[("--output", output)])


def _a_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # unreadable here (a name too long, no permission): the worker says so
        return False


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


def _warn_of_kept_rows(table: _Table, kept: list[int], model_id: str) -> None:
    """Kept rows keep their values: say so where another model computed them, or the
    table would mix two models' numbers without a word."""
    models = table.column(MODEL_COLUMN)
    others = sorted(
        {"an unnamed model" if models[row] is None else str(models[row]) for row in kept}
        - {model_id}
    )
    if others:
        count = sum(models[row] != model_id for row in kept)
        logger.warning(
            "%d kept row(s) hold values of another model (%s), not %s: pass --overwrite "
            "to compute every row with %s",
            count,
            ", ".join(others[:3]),
            model_id,
            model_id,
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
    ray = require("ray", purpose="--executor ray", extra="ray") if executor == "ray" else None
    table = _read_input(input, output, options)
    plan = _plan(table, options, _root(input, options))
    clips = list(plan.clips)
    _check_inputs_spared(output, clips, options.model)

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
    _warn_of_kept_rows(table, plan.skipped, model_id)
    expected_sha = here.model_sha256()

    computed: list[ClipResult] = []
    if clips and executor == "ray":
        computed, workers = _run_ray(clips, settings, options, ray)
    elif clips:
        computed = _run_local(clips, settings, workers, here if in_process else None)
    results = _by_clip(computed, expected_sha)
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


def _read_input(input: Path, output: Path, options: Options) -> _Table:
    """The input table; refused without rows, without the path column, or unfit for Parquet."""
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
    return table


def _root(input: Path, options: Options) -> Path:
    """Where relative paths start: --root, checked to be a folder, else the table's folder."""
    if options.root is not None and not options.root.is_dir():
        what = "not a folder" if options.root.exists() else "no such folder"
        raise InputFileError(
            f"--root {options.root}: {what}: give the folder the table's relative paths start from"
        )
    return (options.root if options.root is not None else input.parent).absolute()


def _by_clip(computed: Iterable[ClipResult], expected_sha: str) -> dict[Clip, ClipResult]:
    """The workers' results by clip, each checked to come from the model this process loaded."""
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
    return results


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
