"""The materializer's records: statuses, column names, and the values passed around.

:class:`Options` is what the command takes; :class:`Settings` is what every
worker needs to turn a clip into two numbers (picklable, shipped to process-pool
workers and Ray actors); :class:`Clip` is one distinct source and
:class:`ClipResult` what became of it; :class:`Summary` is what the command
prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from vmafx_saliency.video.job import ModelChoice

Status = Literal["ok", "skipped-existing", "missing-source", "decode-failed", "model-failed"]
Aggregator = Literal["mean", "ema", "max"]
Executor = Literal["local", "ray"]

STATUSES: tuple[Status, ...] = get_args(Status)
AGGREGATORS: tuple[Aggregator, ...] = get_args(Aggregator)
EXECUTORS: tuple[Executor, ...] = get_args(Executor)

MEAN_COLUMN = "saliency_mean"
VAR_COLUMN = "saliency_var"
STATUS_COLUMN = "saliency_status"
MODEL_COLUMN = "saliency_model"
OUR_COLUMNS = (MEAN_COLUMN, VAR_COLUMN, STATUS_COLUMN, MODEL_COLUMN)

DEFAULT_EMA_ALPHA = 0.25
# How many failures per status the summary names; the counts are always complete.
EXAMPLES_PER_STATUS = 5


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
