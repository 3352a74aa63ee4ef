"""evaluate.summary: the schema round trip, and registry promote reads the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmafx_saliency.errors import ComparisonReportError
from vmafx_saliency.science import evaluate as ev
from vmafx_saliency.supply import registry as reg

# --- the summary: schema round trip, promote reads it ---------------------------------------------


def _summary(
    ids: tuple[str, ...] = ("a",), *, values: tuple[float, ...] = (0.5,)
) -> ev.EvalSummary:
    curves = ev.Curves(*(tuple(float(i) / 255 for i in range(256)) for _ in range(5)))
    models = []
    for model_id, value in zip(ids, values, strict=True):
        scores = (*ev.UNIT_METRICS, *ev.ENHANCED_METRICS)
        metrics: dict[str, float | None] = {name: value for name in scores}
        metrics.update({"params": 28.0, "macs": None, "ms_per_image": 1.5})
        models.append(
            ev.ModelResult(
                id=model_id,
                source="ad-hoc",
                path=f"/m/{model_id}.onnx",
                sha256="0" * 64,
                inference_size=(320, 320),
                metrics=metrics,
                mean_saliency=ev.distribution([0.1, 0.2]),
                curves=curves,
                notes=("a note",),
            )
        )
    return ev.EvalSummary(
        tool="0.1.0",
        command="vmafx-saliency eval ...",
        dataset=ev.DatasetInfo("/d", "d", 2, 3, 2, 1, 0, 5),
        protocol="upstream",
        gt_threshold=127,
        conventions=dict(ev.CONVENTIONS),
        versions={"numpy": "2"},
        models=tuple(models),
    )


def test_summary_round_trips_through_its_schema() -> None:
    summary = _summary(("a", "b"), values=(0.25, 0.75))
    doc = json.loads(summary.dumps())
    assert doc["schema"] == ev.SUMMARY_SCHEMA == "vmafx-saliency/eval-summary/v1"
    assert ev.validate_summary(doc) == []
    assert ev.EvalSummary.from_json(doc) == summary


def test_summary_schema_refuses_bad_documents() -> None:
    doc = json.loads(_summary().dumps())
    doc["models"][0]["metrics"]["max_f"] = 1.5
    doc["models"][0]["sha256"] = "xyz"
    del doc["dataset"]["count"]
    problems = " | ".join(ev.validate_summary(doc))
    assert "1.5 is greater than the maximum of 1" in problems
    assert "'xyz' does not match" in problems
    assert "'count' is a required property" in problems


def test_registry_reads_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(_summary(("old", "new"), values=(0.6, 0.7)).dumps())
    assert "vmafx-saliency/eval-summary/v1" in reg.COMPARISON_SCHEMAS
    cmp = reg.read_comparison_report(path, candidate="new", baseline="old", metric="max_f")
    assert (cmp.candidate_value, cmp.baseline_value, cmp.improves) == (0.7, 0.6, True)
    cmp = reg.read_comparison_report(path, candidate="new", baseline="old", metric="mae")
    assert not cmp.improves  # lower is better for mae
    with pytest.raises(ComparisonReportError, match=r"'macs' of 'new' is None|no metric"):
        reg.read_comparison_report(path, candidate="new", baseline="old", metric="macs")
