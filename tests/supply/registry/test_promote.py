"""Promotion: only on a report that shows the candidate strictly better."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._trust import write_json, write_model, write_registry
from tests.supply.registry._raw import entries_of
from vmafx_saliency.errors import ComparisonReportError, PromotionRefusedError
from vmafx_saliency.supply import registry as reg


def report_file(tmp_path: Path, rows: dict[str, dict[str, float]]) -> Path:
    return write_json(
        tmp_path / "report.json",
        {
            "schema": "vmafx-saliency/comparison/v1",
            "models": [{"id": mid, "metrics": m} for mid, m in rows.items()],
        },
    )


@pytest.fixture
def overlay_pair() -> Path:
    """The overlay holds 'old' (default) and 'new' (alternative)."""
    overlay = reg.overlay_registry_path()
    folder = overlay.parent
    write_registry(
        overlay,
        [
            write_model(folder, "old"),
            write_model(folder, "new", default=False, status="alternative"),
        ],
    )
    return overlay


def test_promote_better_flips_the_default(tmp_path: Path, overlay_pair: Path) -> None:
    report = report_file(tmp_path, {"old": {"s_measure": 0.70}, "new": {"s_measure": 0.75}})
    result = reg.promote("new", report=report, metric="s_measure")
    assert (result.candidate, result.baseline) == ("new", "old")
    assert (result.candidate_value, result.baseline_value) == (0.75, 0.70)
    assert result.improves and result.higher_is_better
    rows = {e["id"]: (e["default"], e["status"]) for e in entries_of(overlay_pair)}
    assert rows == {"old": (False, "alternative"), "new": (True, "production")}
    assert reg.Registry.load().default_for("mobilesal").id == "new"
    assert reg.validate_registry(overlay_pair).ok


@pytest.mark.parametrize("value", [0.65, 0.70], ids=["worse", "equal"])
def test_promote_refuses_no_benefit(tmp_path: Path, overlay_pair: Path, value: float) -> None:
    report = report_file(tmp_path, {"old": {"s_measure": 0.70}, "new": {"s_measure": value}})
    _promotion_refused(
        overlay_pair,
        report,
        PromotionRefusedError,
        rf"not promoting 'new': on s_measure \(higher is better\) it scores {value:g} "
        r"against 0\.7 for the default 'old'",
    )


def _promotion_refused(overlay: Path, report: Path, error: type[Exception], match: str) -> None:
    """Promoting 'new' on s_measure is refused with ``match``; the overlay is untouched."""
    before = overlay.read_bytes()
    with pytest.raises(error, match=match):
        reg.promote("new", report=report, metric="s_measure")
    assert overlay.read_bytes() == before


@pytest.mark.parametrize("who", ["new", "old"])
def test_promote_refuses_a_report_that_measured_another_file(
    tmp_path: Path, overlay_pair: Path, who: str
) -> None:
    """eval names an ad-hoc new.onnx 'new' too: its figures are not the registered model's."""
    pins = {e.id: e.sha256 for e in reg.Registry.load().entries()}
    rows = {"old": 0.70, "new": 0.75}
    report = write_json(
        tmp_path / "summary.json",
        {
            "schema": "vmafx-saliency/eval-summary/v1",
            "models": [
                {
                    "id": mid,
                    "sha256": "e" * 64 if mid == who else pins[mid],
                    "metrics": {"s_measure": value},
                }
                for mid, value in rows.items()
            ],
        },
    )
    _promotion_refused(
        overlay_pair,
        report,
        ComparisonReportError,
        rf"measured '{who}' with sha256 e{{64}}, but the registry pins {pins[who]}: the "
        rf"report is about another file .*evaluate the registered model, --models {who}",
    )
    # The same report with the pinned digests promotes.
    doc = json.loads(report.read_text())
    for row in doc["models"]:
        row["sha256"] = pins[row["id"]]
    write_json(report, doc)
    assert reg.promote("new", report=report, metric="s_measure").improves


def test_promote_lower_is_better(tmp_path: Path, overlay_pair: Path) -> None:
    worse = report_file(tmp_path, {"old": {"mae": 0.05}, "new": {"mae": 0.08}})
    with pytest.raises(PromotionRefusedError, match=r"lower is better.*0\.08 against 0\.05"):
        reg.promote("new", report=worse, metric="mae")
    better = report_file(tmp_path, {"old": {"mae": 0.08}, "new": {"mae": 0.05}})
    assert not reg.promote("new", report=better, metric="mae").higher_is_better
    assert reg.Registry.load().default_for("mobilesal").id == "new"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"new": {"s_measure": 0.9}}, r"has no baseline model 'old' \(it has: new\)"),
        ({"old": {"s_measure": 0.5}}, r"has no candidate model 'new'"),
        (
            {"old": {"s_measure": 0.5}, "new": {"max_f": 0.9}},
            r"no metric 's_measure' for the candidate 'new' \(it has: max_f\)",
        ),
    ],
    ids=["no-baseline", "no-candidate", "no-metric"],
)
def test_promote_refuses_an_incomplete_report(
    tmp_path: Path, overlay_pair: Path, rows: dict[str, dict[str, float]], message: str
) -> None:
    before = overlay_pair.read_bytes()
    with pytest.raises(ComparisonReportError, match=message):
        reg.promote("new", report=report_file(tmp_path, rows), metric="s_measure")
    assert overlay_pair.read_bytes() == before


def test_promote_without_a_default_needs_only_the_candidate(tmp_path: Path) -> None:
    overlay = reg.overlay_registry_path()
    write_registry(
        overlay, [write_model(overlay.parent, "new", default=False, status="alternative")]
    )
    result = reg.promote(
        "new", report=report_file(tmp_path, {"new": {"s_measure": 0.5}}), metric="s_measure"
    )
    assert result.baseline is None and result.baseline_value is None
    assert reg.Registry.load().default_for("mobilesal").id == "new"


def test_promote_in_the_committed_registry_needs_its_path(tmp_path: Path) -> None:
    committed = reg.committed_registry_path()
    folder = committed.parent
    write_registry(
        committed,
        [
            write_model(folder, "old"),
            write_model(folder, "new", default=False, status="alternative"),
        ],
    )
    report = report_file(tmp_path, {"old": {"mae": 0.2}, "new": {"mae": 0.1}})
    with pytest.raises(PromotionRefusedError, match=r"tracked file: pass its path explicitly"):
        reg.promote("new", report=report, metric="mae")
    reg.promote("new", report=report, metric="mae", registry=committed)
    rows = {e["id"]: (e["default"], e["status"]) for e in entries_of(committed)}
    assert rows == {"old": (False, "alternative"), "new": (True, "production")}
    assert reg.validate_registry(committed).ok


def test_promoting_the_committed_default_back_clears_the_overlays_override(
    tmp_path: Path,
) -> None:
    """Try the mirror as default in the overlay, then return to the shipped one: no edits
    to the tracked file, and the same evidence rule as any promotion."""
    committed = reg.committed_registry_path()
    write_registry(committed, [write_model(committed.parent, "shipped")])
    before = committed.read_bytes()
    overlay = reg.overlay_registry_path()
    write_registry(overlay, [write_model(overlay.parent, "trial", default=False)])
    tried = report_file(tmp_path, {"shipped": {"mae": 0.2}, "trial": {"mae": 0.1}})
    reg.promote("trial", report=tried, metric="mae")
    assert reg.Registry.load().default_for("mobilesal").id == "trial"

    worse = report_file(tmp_path, {"shipped": {"mae": 0.3}, "trial": {"mae": 0.1}})
    with pytest.raises(PromotionRefusedError, match=r"not promoting 'shipped': on mae"):
        reg.promote("shipped", report=worse, metric="mae")
    better = report_file(tmp_path, {"shipped": {"mae": 0.05}, "trial": {"mae": 0.1}})
    result = reg.promote("shipped", report=better, metric="mae")
    assert (result.candidate, result.baseline) == ("shipped", "trial")
    assert reg.Registry.load().default_for("mobilesal").id == "shipped"
    assert {e["id"]: (e["default"], e["status"]) for e in entries_of(overlay)} == {
        "trial": (False, "alternative")
    }
    assert committed.read_bytes() == before
    with pytest.raises(PromotionRefusedError, match=r"'shipped' is already the default"):
        reg.promote("shipped", report=better, metric="mae")


def test_promote_refuses_the_current_default(tmp_path: Path, overlay_pair: Path) -> None:
    report = report_file(tmp_path, {"old": {"mae": 0.2}})
    with pytest.raises(PromotionRefusedError, match=r"already the default"):
        reg.promote("old", report=report, metric="mae")


def test_a_promotion_that_lands_while_another_is_checked_is_not_overruled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two promotions at once: the slower one was judged against the old default, and
    would have replaced a better model its report says nothing of."""
    import importlib

    # The module, not the function of the same name that the package exports.
    promote_module = importlib.import_module("vmafx_saliency.supply.registry.promote")

    overlay = reg.overlay_registry_path()
    folder = overlay.parent
    write_registry(
        overlay,
        [
            write_model(folder, "old"),
            write_model(folder, "a", default=False, status="alternative"),
            write_model(folder, "b", default=False, status="alternative"),
        ],
    )
    (tmp_path / "ra").mkdir()
    (tmp_path / "rb").mkdir()
    for_a = report_file(tmp_path / "ra", {"old": {"s_measure": 0.70}, "a": {"s_measure": 0.90}})
    for_b = report_file(tmp_path / "rb", {"old": {"s_measure": 0.70}, "b": {"s_measure": 0.75}})
    compare = promote_module._compare_with
    landed: list[str] = []

    def meanwhile(entry: reg.ModelEntry, *args: object, **kwargs: object) -> object:
        judged = compare(entry, *args, **kwargs)
        if entry.id == "b" and not landed:  # 'a' lands while 'b' is checked
            landed.append("a")
            reg.promote("a", report=for_a, metric="s_measure")
        return judged

    monkeypatch.setattr(promote_module, "_compare_with", meanwhile)
    with pytest.raises(
        PromotionRefusedError,
        match=r"the default for 'mobilesal' changed to 'a' while 'b' was checked against 'old'",
    ):
        reg.promote("b", report=for_b, metric="s_measure")
    assert reg.Registry.load().default_for("mobilesal").id == "a"
