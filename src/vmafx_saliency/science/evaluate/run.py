"""``eval``: the models over a labelled dataset under one protocol, scored, reported.

Pre-processing and scoring run in ``--jobs`` worker threads, inference in the
calling one; results are consumed in image order through bounded windows, so
memory stays flat and the figures are the same whatever ``--jobs`` is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency._util import check_inputs_spared, require_extra, sha256_bytes
from vmafx_saliency.errors import (
    ExtractionError,
    InputFileError,
    OutputError,
    UsageError,
)
from vmafx_saliency.science.evaluate.dataset import (
    LoadedPair,
    Pair,
    check_sizes,
    load_pair,
    pair_dataset,
)
from vmafx_saliency.science.evaluate.helpers import _finite_or_none, _Progress
from vmafx_saliency.science.evaluate.metrics import (
    CONVENTIONS,
    GT_THRESHOLD,
    DatasetMetrics,
    ImageScores,
    distribution,
    score_image,
)
from vmafx_saliency.science.evaluate.models import (
    EvalModel,
    ModelSpec,
    _threads,
    count_cost,
    load_models,
    spec_inputs,
)
from vmafx_saliency.science.evaluate.protocols import _INPUTS, _OUTPUTS, PROTOCOLS, Protocol
from vmafx_saliency.science.evaluate.report import (
    EVAL_MARKER,
    _Sample,
    _write_eval_report,
    check_report_folder,
)
from vmafx_saliency.science.evaluate.summary import (
    DatasetInfo,
    EvalSummary,
    ModelResult,
    _versions,
    validate_summary,
)
from vmafx_saliency.supply.runs import run_map


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    dataset: Path
    models: tuple[ModelSpec, ...]
    protocol: Protocol
    report: Path
    limit: int | None = None
    force: bool = False
    jobs: int = 1
    threads: int | None = None
    gt_threshold: int = GT_THRESHOLD
    grid: int = 4
    signed: bool = False
    provider: str = "cpu"  # ONNX Runtime's execution provider, by short name
    progress: bool = False
    command: str = ""


@dataclass(frozen=True)
class EvalResult:
    summary: EvalSummary
    report: Path
    seconds: float


def run_eval(options: EvalOptions) -> EvalResult:
    """Evaluate the models on the dataset and write the report folder."""
    _check_options(options)
    # Refuse before any work: an existing report, a broken dataset, missing packages.
    all_pairs = _checked_dataset(options)
    pairs = all_pairs[: options.limit] if options.limit is not None else all_pairs
    check_sizes(pairs)
    models = load_models(
        options.models,
        threads=_threads(options.threads),
        signed=options.signed,
        provider=options.provider,
    )
    _check_protocol_fits(models, options.protocol)

    start = time.perf_counter()
    outcome = _evaluate(pairs, models, options)
    seconds = time.perf_counter() - start

    results = tuple(
        _model_result(m, outcome.metrics[i], outcome.ms[i]) for i, m in enumerate(models)
    )
    summary = _summarise(options, outcome, results, count=len(pairs), pairs=len(all_pairs))
    problems = validate_summary(summary.to_json())
    if problems:  # a bug here, not the user's: keep the report from being written
        raise OutputError(f"the summary breaks its own schema: {'; '.join(problems[:3])}")
    _write_eval_report(
        options.report,
        force=options.force,
        summary=summary,
        rows=outcome.rows,
        saliency=[[s.mean_saliency for s in m.scores] for m in outcome.metrics],
        samples=outcome.samples,
    )
    return EvalResult(summary=summary, report=options.report, seconds=seconds)


def _check_options(options: EvalOptions) -> None:
    if options.protocol not in PROTOCOLS:
        raise UsageError(f"--protocol {options.protocol!r}: give upstream or deployment")
    if options.jobs < 1:
        raise UsageError(f"--jobs {options.jobs}: give 1 or more worker threads")
    if not 0 <= options.gt_threshold <= 254:
        raise UsageError(f"--gt-threshold {options.gt_threshold}: give 0..254 (mask > N)")
    if options.grid < 0:
        raise UsageError(f"--grid {options.grid}: give 0 (no grid) or more images")
    if not options.models:
        raise UsageError("--models is empty: name at least one model")


def _checked_dataset(options: EvalOptions) -> tuple[Pair, ...]:
    """Every pair of the dataset, once the report folder, ``--limit`` and the packages
    eval needs are known to be fine."""
    reads = [("--dataset", options.dataset), *spec_inputs(options.models)]
    check_report_folder(options.report, marker=EVAL_MARKER, force=options.force, reads=reads)
    if options.limit is not None and options.limit < 1:
        raise UsageError(f"--limit {options.limit}: give a positive number of pairs")
    all_pairs = pair_dataset(options.dataset)
    # Each file, resolved: a dataset's folders may be links into an earlier report.
    files = [("a --dataset image", p.image) for p in all_pairs]
    files += [("a --dataset mask", p.mask) for p in all_pairs]
    check_inputs_spared(files, folders=[("--report", options.report)])
    require_extra(
        "eval",
        {
            "PIL.Image": "eval (image loading)",
            "py_sod_metrics": "eval (metrics)",
            "matplotlib": "eval plots",
        },
    )
    return all_pairs


def _check_protocol_fits(models: Sequence[EvalModel], protocol: Protocol) -> None:
    """The deployment protocol feeds luma: a model that wants colour is refused."""
    if protocol == "deployment":
        for m in models:
            if m.pre.colour_mode != "luma_tile":
                raise UsageError(
                    f"{m.id}: its sidecar declares colour mode {m.pre.colour_mode!r}; the "
                    "deployment protocol feeds luma (luma_tile): use --protocol upstream"
                )


def _model_result(m: EvalModel, scored: DatasetMetrics, ms: Sequence[float]) -> ModelResult:
    """One model's figures, costs and notes; its file must not have changed meanwhile."""
    metrics, curves = scored.get_results()
    data = m.loaded.path.read_bytes()
    notes: list[str] = []
    if sha256_bytes(data) != m.loaded.sha256:
        raise InputFileError(
            f"{m.loaded.path} changed while it was evaluated: re-run the evaluation"
        )
    size = m.pre.inference_size
    # A native-size model's MACs depend on each image: count params only.
    cost = count_cost(data, size or (320, 320))
    if cost.note:
        notes.append(cost.note)
    if size is None:
        notes.append("native inference size: MACs depend on each image's size")
    metrics_all: dict[str, float | None] = dict(metrics)
    metrics_all["params"] = None if cost.params is None else float(cost.params)
    metrics_all["macs"] = None if cost.macs is None or size is None else float(cost.macs)
    metrics_all["ms_per_image"] = float(np.median(ms))
    return ModelResult(
        id=m.id,
        source=m.source,
        path=str(m.loaded.path),
        sha256=m.loaded.sha256,
        inference_size=size,
        metrics={k: _finite_or_none(v) for k, v in metrics_all.items()},
        mean_saliency=distribution([s.mean_saliency for s in scored.scores]),
        curves=curves,
        notes=tuple(notes),
    )


def _summarise(
    options: EvalOptions,
    outcome: _Outcome,
    results: tuple[ModelResult, ...],
    *,
    count: int,
    pairs: int,
) -> EvalSummary:
    """The summary of a run: ``count`` pairs evaluated of the dataset's ``pairs``."""
    return EvalSummary(
        tool=_versions()["vmafx-saliency"],
        command=options.command,
        dataset=DatasetInfo(
            path=str(Path(options.dataset).resolve()),
            name=Path(options.dataset).resolve().name,
            count=count,
            pairs=pairs,
            limit=options.limit,
            grey_masks=outcome.grey_masks,
            empty_masks=outcome.empty_masks,
            pixels_at_threshold_plus_one=outcome.pixels_at_edge,
        ),
        protocol=options.protocol,
        gt_threshold=options.gt_threshold,
        conventions={
            k: v.replace("{gt_threshold}", str(options.gt_threshold))
            for k, v in CONVENTIONS.items()
        },
        versions=_versions(),
        models=results,
    )


# --- the scoring loop ----------------------------------------------------------------------------


@dataclass
class _Outcome:
    metrics: list[DatasetMetrics]
    ms: list[list[float]]
    rows: list[dict[str, Any]]
    samples: list[_Sample]
    grey_masks: int = 0
    empty_masks: int = 0
    pixels_at_edge: int = 0

    def count_mask(self, mask: np.ndarray, gt_threshold: int) -> None:
        """The dataset's oddities the report names: grey masks, empty masks, and pixels
        whose class depends on the threshold convention (> 127 vs > 128)."""
        values = np.unique(mask)
        self.grey_masks += int(not np.all(np.isin(values, (0, 255))))
        self.empty_masks += int(not np.any(mask > gt_threshold))
        self.pixels_at_edge += int(np.count_nonzero(mask == gt_threshold + 1))

    def sample(self, pair: LoadedPair) -> _Sample:
        """The grid sample of this image, made on first use."""
        sample = next((s for s in self.samples if s.stem == pair.stem), None)
        if sample is None:
            sample = _Sample(pair.stem, pair.image, pair.mask)
            self.samples.append(sample)
        return sample


@dataclass(frozen=True)
class _Prepared:
    pair: LoadedPair
    tensors: tuple[np.ndarray, ...]


class _Inline(Executor):
    """``--jobs 1``: run submitted work at once in the calling thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed over through the future
            future.set_exception(exc)
        return future


def _evaluate(pairs: Sequence[Pair], models: Sequence[EvalModel], options: EvalOptions) -> _Outcome:
    """Pre-processing and scoring in ``--jobs`` worker threads, inference in this one.

    ONNX Runtime, numpy's resizes, PIL's decoder and most of py_sod_metrics release
    the GIL, so the workers overlap with inference. Results are consumed in image
    order through bounded windows, so memory stays flat and the output is the same
    whatever ``--jobs`` is.
    """
    make_input = _INPUTS[options.protocol]
    make_map = _OUTPUTS[options.protocol]
    gt_threshold = options.gt_threshold
    outcome = _Outcome(
        metrics=[DatasetMetrics(gt_threshold=gt_threshold) for _ in models],
        ms=[[] for _ in models],
        rows=[],
        samples=[],
    )

    def prepare(pair: Pair) -> _Prepared:
        loaded = load_pair(pair)
        return _Prepared(loaded, tuple(make_input(loaded.image, m.pre) for m in models))

    def post(saliency: np.ndarray, pair: LoadedPair) -> tuple[np.ndarray, ImageScores]:
        map8 = make_map(saliency, (pair.mask.shape[0], pair.mask.shape[1]))
        return map8, score_image(map8, pair.mask, gt_threshold=gt_threshold)

    window = 2 * options.jobs + 2
    executor: Executor = ThreadPoolExecutor(options.jobs) if options.jobs > 1 else _Inline()
    progress = _Progress(total=len(pairs), unit="images", enabled=options.progress)
    scoring = _Scoring(
        models, outcome, picks=_grid_picks(len(pairs), options.grid), progress=progress
    )
    try:
        for index, prepared in _prepared_in_order(pairs, prepare, executor, window):
            pair = prepared.pair
            outcome.count_mask(pair.mask, gt_threshold)
            for model_index, (model, tensor) in enumerate(
                zip(models, prepared.tensors, strict=True)
            ):
                saliency, ms = _infer(model, tensor, pair.stem)
                scoring.submit(index, pair, model_index, ms, executor.submit(post, saliency, pair))
            scoring.drain(window * len(models))
        scoring.drain(0)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        progress.close()
    return outcome


def _grid_picks(count: int, grid: int) -> set[int]:
    """The indices of ``grid`` images spread evenly over the ``count`` evaluated."""
    if not grid:
        return set()
    return set(np.unique(np.linspace(0, count - 1, min(grid, count)).round().astype(int)).tolist())


def _prepared_in_order(
    pairs: Sequence[Pair],
    prepare: Callable[[Pair], _Prepared],
    executor: Executor,
    window: int,
) -> Iterator[tuple[int, _Prepared]]:
    """Each pair loaded and pre-processed by the workers, up to ``window`` pairs ahead of
    the one handed out, in image order."""
    ahead: deque[tuple[int, Future[_Prepared]]] = deque()
    feed = iter(enumerate(pairs))

    def refill() -> None:
        while len(ahead) < window:
            item = next(feed, None)
            if item is None:
                return
            ahead.append((item[0], executor.submit(prepare, item[1])))

    refill()
    while ahead:
        index, future = ahead.popleft()
        prepared = future.result()
        refill()
        yield index, prepared


def _infer(model: EvalModel, tensor: np.ndarray, stem: str) -> tuple[np.ndarray, float]:
    """One model on one input: its checked map and the milliseconds session.run took."""
    t0 = time.perf_counter()
    saliency = run_map(
        model.loaded.session,
        tensor,
        what=f"{model.id} on image {stem!r}",
        advice="the model cannot run this image; leave it out (--models; models= in Python)",
    )
    ms = (time.perf_counter() - t0) * 1000.0
    sal = saliency[0, 0]
    _check_map(sal, model.id, stem)
    return sal, ms


class _Scoring:
    """The maps the workers post-process and score, taken back in image order.

    Each image's pair is held until its last model's scores are in; the progress bar
    counts an image then.
    """

    def __init__(
        self,
        models: Sequence[EvalModel],
        outcome: _Outcome,
        *,
        picks: set[int],
        progress: _Progress,
    ) -> None:
        self.models = models
        self.outcome = outcome
        self.picks = picks
        self.progress = progress
        self.pending: deque[tuple[int, int, float, Future[tuple[np.ndarray, ImageScores]]]] = (
            deque()
        )
        self.pairs: dict[int, LoadedPair] = {}

    def submit(
        self,
        index: int,
        pair: LoadedPair,
        model_index: int,
        ms: float,
        future: Future[tuple[np.ndarray, ImageScores]],
    ) -> None:
        self.pairs[index] = pair
        self.pending.append((index, model_index, ms, future))

    def drain(self, keep: int) -> None:
        """Take back the oldest results until at most ``keep`` are pending."""
        outcome = self.outcome
        while len(self.pending) > keep:
            index, model_index, ms, future = self.pending.popleft()
            map8, scores = future.result()
            model = self.models[model_index]
            outcome.metrics[model_index].add(scores)
            outcome.ms[model_index].append(ms)
            pair = self.pairs[index]
            outcome.rows.append(
                {
                    "model": model.id,
                    "stem": pair.stem,
                    "height": pair.mask.shape[0],
                    "width": pair.mask.shape[1],
                    **scores.row(),
                    "ms": ms,
                }
            )
            if index in self.picks:
                outcome.sample(pair).maps[model.id] = map8
            if model_index == len(self.models) - 1:
                self.pairs.pop(index, None)
                self.progress.update()


def _check_map(saliency: np.ndarray, model_id: str, stem: str) -> None:
    if not np.all(np.isfinite(saliency)):
        raise ExtractionError(
            f"{model_id} on image {stem!r}: the map holds NaN or infinite values: the model "
            "is broken for this input"
        )
    lo, hi = float(saliency.min()), float(saliency.max())
    if lo < -1e-5 or hi > 1.0 + 1e-5:
        raise ExtractionError(
            f"{model_id} on image {stem!r}: map values in [{lo:.4g}, {hi:.4g}] are outside "
            "[0, 1]: the model breaks the deployment contract"
        )
