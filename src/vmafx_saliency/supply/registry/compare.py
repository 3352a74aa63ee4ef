"""Comparison reports: which of two models a report shows better on one metric.

A report (the eval command's ``summary.json``, or any file with the core
``{"models": [{"id", "metrics"}]}`` of ``schemas/comparison.schema.json``) is
read strictly; a model measured with another sha256 than the registry pins is
refused, since the figures are then about another file. :func:`higher_is_better`
holds the direction of every metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmafx_saliency.errors import ComparisonReportError
from vmafx_saliency.supply.registry.schemas import _field_name, _read_json, _schema_problems

# Report schemas whose core ({"models": [{"id", "metrics"}]}) promote can read;
# the eval command's summary.json (evaluate.SUMMARY_SCHEMA) is one.
COMPARISON_SCHEMAS = frozenset({"vmafx-saliency/comparison/v1", "vmafx-saliency/eval-summary/v1"})

# Metric direction. Lower is better for errors and costs; every other metric
# (F-measure, S-measure, E-measure, correlation, agreement) is higher-is-better.
#   mae*            mean absolute error (mae, mae_vs_mirror, ...)
#   ms_per_image    latency
#   macs            multiply-accumulates per image
#   params          parameter count
LOWER_IS_BETTER_PREFIXES: tuple[str, ...] = ("mae",)
LOWER_IS_BETTER_NAMES: frozenset[str] = frozenset({"ms_per_image", "macs", "params"})

# A report is larger than a registry (one row per model, many metrics), still
# far below this; checked with stat before reading.
_MAX_REPORT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Comparison:
    """A candidate against the baseline on one metric, as a report states it.

    ``baseline`` is ``None`` when the extractor has no default yet: then the
    report only has to show the candidate was measured.
    """

    candidate: str
    baseline: str | None
    metric: str
    candidate_value: float
    baseline_value: float | None
    higher_is_better: bool

    @property
    def improves(self) -> bool:
        """True when the candidate is strictly better (ties do not promote)."""
        if self.baseline_value is None:
            return True
        if self.higher_is_better:
            return self.candidate_value > self.baseline_value
        return self.candidate_value < self.baseline_value

    def render(self) -> str:
        direction = "higher" if self.higher_is_better else "lower"
        if self.baseline is None:
            return (
                f"{self.metric} ({direction} is better): {self.candidate} "
                f"{self.candidate_value:.6g}; no current default to compare with"
            )
        return (
            f"{self.metric} ({direction} is better): {self.candidate} {self.candidate_value:.6g} "
            f"vs {self.baseline} {self.baseline_value:.6g}"
        )


def higher_is_better(metric: str) -> bool:
    """Direction of a metric; see LOWER_IS_BETTER_* for the lower-is-better table."""
    name = metric.lower()
    return not (name in LOWER_IS_BETTER_NAMES or name.startswith(LOWER_IS_BETTER_PREFIXES))


def read_comparison_report(
    path: Path,
    *,
    candidate: str,
    baseline: str | None,
    metric: str,
    pins: Mapping[str, str] | None = None,
    whole: bool = False,
) -> Comparison:
    """The two models' values of ``metric`` in a comparison report.

    ``whole``: refuse a report that scored a ``--limit`` slice of its dataset
    (promotion changes a default on the whole labelled set, never on a slice).
    ``baseline`` ``None``: there is no default to compare with, and only the
    candidate must be in the report. ``pins`` (model id to registry sha256):
    a model the report names with another ``sha256`` was not the registered
    file (an ad-hoc path of the same name), and the report is refused.
    """
    doc = _read_report(path)
    if whole:
        _refuse_a_slice(path, doc.get("dataset"))
    by_id = _metrics_by_id(path, doc, pins or {})
    cand = _metric_value(path, by_id, candidate, "candidate", metric)
    base = (
        _metric_value(path, by_id, baseline, "baseline", metric) if baseline is not None else None
    )
    return Comparison(
        candidate=candidate,
        baseline=baseline,
        metric=metric,
        candidate_value=cand,
        baseline_value=base,
        higher_is_better=higher_is_better(metric),
    )


def _read_report(path: Path) -> Any:
    """The report's document, once it matches the comparison schema and is one promote reads."""
    doc = _read_json(
        path, what="comparison report", cap=_MAX_REPORT_BYTES, error=ComparisonReportError
    )
    problems = [
        f"{_field_name(where) or 'the document'}: {message}"
        for where, message in _schema_problems("comparison", doc)
    ]
    if problems:
        raise ComparisonReportError(
            f"comparison report {path} is malformed: {'; '.join(problems[:5])}: "
            "write it with the eval command"
        )
    if doc["schema"] not in COMPARISON_SCHEMAS:
        raise ComparisonReportError(
            f"comparison report {path} has schema {doc['schema']!r}; promote reads "
            f"{', '.join(sorted(COMPARISON_SCHEMAS))}: write it with the eval command"
        )
    return doc


def _refuse_a_slice(path: Path, dataset: Any) -> None:
    """A default is changed on the whole labelled set, not on a --limit slice of it."""
    if not isinstance(dataset, dict):
        return
    count, pairs = dataset.get("count"), dataset.get("pairs")
    if isinstance(count, int) and isinstance(pairs, int) and count < pairs:
        raise ComparisonReportError(
            f"comparison report {path} scored {count} of its dataset's {pairs} pairs "
            f"(--limit {dataset.get('limit')}): promote on an evaluation of the whole dataset"
        )


def _metrics_by_id(path: Path, doc: Any, pins: Mapping[str, str]) -> dict[str, Mapping[str, Any]]:
    """Each model's metrics: one row per model, measured on the file the registry pins."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for model in doc["models"]:
        if model["id"] in by_id:
            raise ComparisonReportError(
                f"comparison report {path} lists model {model['id']!r} twice: "
                "keep one row per model"
            )
        by_id[model["id"]] = model["metrics"]
        pinned = pins.get(model["id"])
        measured = model.get("sha256")  # the eval command's reports give it
        if pinned is not None and isinstance(measured, str) and measured != pinned:
            raise ComparisonReportError(
                f"comparison report {path} measured {model['id']!r} with sha256 {measured}, "
                f"but the registry pins {pinned}: the report is about another file (an ad-hoc "
                f"path of that name?); evaluate the registered model, --models {model['id']}"
            )
    return by_id


def _metric_value(
    path: Path, by_id: Mapping[str, Mapping[str, Any]], model_id: str, role: str, metric: str
) -> float:
    """``metric`` of ``model_id`` (the ``role`` model) as a finite number."""
    metrics = by_id.get(model_id)
    if metrics is None:
        have = ", ".join(by_id) or "none"
        raise ComparisonReportError(
            f"comparison report {path} has no {role} model {model_id!r} (it has: {have}): "
            f"evaluate {model_id!r} and the other model in one report"
        )
    number = metrics.get(metric)
    if number is None:
        have = ", ".join(sorted(metrics)) or "none"
        raise ComparisonReportError(
            f"comparison report {path} has no metric {metric!r} for the {role} "
            f"{model_id!r} (it has: {have}): pick a metric both models were measured on"
        )
    number = float(number)
    if not math.isfinite(number):
        raise ComparisonReportError(
            f"comparison report {path}: {metric!r} of {model_id!r} is {number}, not a finite "
            "number: re-run the evaluation"
        )
    return number
