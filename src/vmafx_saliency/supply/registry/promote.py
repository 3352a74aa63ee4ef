"""Promotion: making a model its extractor's default, only on a report's evidence.

:func:`promote` makes a model the default only when a comparison report shows
it strictly better than the default it replaces (ties do not promote). It edits
the overlay unless a registry file is named; the committed registry is a
tracked file, edited only when its path is passed. The edited file is checked
before an atomic write, so a refusal leaves it untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

from vmafx_saliency._util import atomic_write_text
from vmafx_saliency.errors import PromotionRefusedError
from vmafx_saliency.supply.registry.compare import Comparison, read_comparison_report
from vmafx_saliency.supply.registry.documents import (
    _dump_registry,
    _load_document,
    _parse_document,
    _raw_models,
    _refuse_on_errors,
)
from vmafx_saliency.supply.registry.entries import ModelEntry
from vmafx_saliency.supply.registry.locations import (
    _same_file,
    committed_registry_path,
    overlay_registry_path,
)
from vmafx_saliency.supply.registry.lock import writing
from vmafx_saliency.supply.registry.validate import _check_entry
from vmafx_saliency.supply.registry.view import Registry


def _require_improvement(comparison: Comparison, report: Path) -> None:
    if comparison.improves:
        return
    direction = "higher" if comparison.higher_is_better else "lower"
    raise PromotionRefusedError(
        f"not promoting {comparison.candidate!r}: on {comparison.metric} ({direction} is "
        f"better) it scores {comparison.candidate_value:.6g} against "
        f"{comparison.baseline_value:.6g} for the default {comparison.baseline!r} in {report}; "
        "promotion needs a strictly better figure: improve the model or compare on the metric "
        "that shows its benefit"
    )


def _compare_with(
    entry: ModelEntry, baseline: ModelEntry | None, *, report: Path, metric: str
) -> Comparison:
    """The report's figures for ``entry`` against ``baseline``, refused unless strictly better.

    Both models are pinned to their registered sha256, so the report must be
    about the registered files.
    """
    pins = {entry.id: entry.sha256}
    if baseline is not None:
        pins[baseline.id] = baseline.sha256
    comparison = read_comparison_report(
        report,
        candidate=entry.id,
        baseline=baseline.id if baseline else None,
        metric=metric,
        pins=pins,
        whole=True,
    )
    _require_improvement(comparison, report)
    return comparison


def _restore_committed_default(
    view: Registry, entry: ModelEntry, *, report: Path, metric: str
) -> Comparison:
    """Make the committed default ``entry`` the effective one again, in the overlay.

    The overlay's default for the extractor becomes an alternative, once the
    report shows ``entry`` strictly better than it on ``metric``.
    """
    overlay_path = overlay_registry_path()
    baseline = view.default_or_none(entry.extractor)
    if baseline is None or baseline.id == entry.id:
        raise PromotionRefusedError(
            f"model {entry.id!r} is already the default for {entry.extractor!r} (the "
            f"committed registry's, not overridden in {overlay_path}): nothing to promote"
        )
    comparison = _compare_with(entry, baseline, report=report, metric=metric)
    with writing(overlay_path):  # read and written by one writer at a time
        _check_same_default(entry, baseline, Registry.load().default_or_none(entry.extractor))
        models = _raw_models(overlay_path, committed=False)
        for raw in models:
            if raw["id"] == baseline.id:
                raw["default"], raw["status"] = False, "alternative"
        text = _dump_registry(models)
        parsed = _parse_document(overlay_path, json.loads(text), committed=False)
        _refuse_on_errors(parsed.findings, f"cannot promote {entry.id!r} in {overlay_path}")
        atomic_write_text(overlay_path, text)
    return comparison


def promote(
    model_id: str, *, report: Path, metric: str, registry: Path | None = None
) -> Comparison:
    """Make ``model_id`` the default of its extractor in the file that defines it.

    ``registry`` ``None`` edits the overlay, and refuses a model of the committed
    registry: that is a tracked file, edited only when its path is passed. The
    baseline is the default the promotion replaces, as users of that file see
    it: for the overlay, the effective default (the overlay's, else the
    committed one); for any other file, that file's own default. The candidate
    must be strictly better than the baseline on ``metric``; with no default
    yet, the report must only show the candidate's figure. On success the
    model becomes ``default: true, status: production`` and the file's previous
    default for the extractor becomes ``alternative``. The edited file is checked
    (structure, and the promoted model's files, scan and contract) before the
    atomic write, so a refusal leaves it untouched.
    """
    committed_path = committed_registry_path()
    overlay_path = overlay_registry_path()
    if registry is None:
        view = Registry.load()
        entry = view.get(model_id)
        if _same_file(entry.registry, committed_path):
            if entry.default:
                # The committed default, overridden in the overlay: promoting it back
                # means the overlay stops overriding, and no tracked file changes.
                return _restore_committed_default(view, entry, report=report, metric=metric)
            raise PromotionRefusedError(
                f"model {model_id!r} is in the committed registry {committed_path}, a tracked "
                f"file: pass its path explicitly (--registry {committed_path}) to edit it"
            )
        target = overlay_path
    else:
        target = registry
        view = _view_for(target, committed_path=committed_path, overlay_path=overlay_path)
        entry = view.get(model_id)
        if not _same_file(entry.registry, target):
            raise PromotionRefusedError(
                f"model {model_id!r} is defined in {entry.registry}, not in {target}: pass "
                f"--registry {entry.registry}, or leave it out for the overlay"
            )

    baseline = _baseline_in(
        view, entry, target, committed_path=committed_path, overlay_path=overlay_path
    )
    if baseline is not None and baseline.id == model_id:
        raise PromotionRefusedError(
            f"model {model_id!r} is already the default for {entry.extractor!r} in "
            f"{entry.registry}: nothing to promote"
        )
    comparison = _compare_with(entry, baseline, report=report, metric=metric)
    with writing(target):  # read, checked and written by one writer at a time
        # Judged against the default found before the lock: another promotion may have
        # landed since, and this report says nothing of its model.
        view = _view_for(target, committed_path=committed_path, overlay_path=overlay_path)
        now = _baseline_in(
            view, entry, target, committed_path=committed_path, overlay_path=overlay_path
        )
        _check_same_default(entry, baseline, now)
        _write_promotion(target, entry, committed=_same_file(target, committed_path))
    return comparison


def _view_for(target: Path, *, committed_path: Path, overlay_path: Path) -> Registry:
    """The registry view a promotion in ``target`` is judged in."""
    if _same_file(target, committed_path) or _same_file(target, overlay_path):
        return Registry.load()
    # Any other file is promoted within itself, as if it were the only one.
    doc = _load_document(target, committed=False)
    return Registry(
        committed=target, overlay=target, committed_entries=doc.entries, overlay_entries=()
    )


def _baseline_in(
    view: Registry, entry: ModelEntry, target: Path, *, committed_path: Path, overlay_path: Path
) -> ModelEntry | None:
    """The default the promotion replaces, as users of ``target`` see it.

    For the overlay, the effective default (the overlay's, else the committed
    one); for any other file, that file's own default.
    """
    if _same_file(target, overlay_path) and not _same_file(target, committed_path):
        return view.default_or_none(entry.extractor)
    return next(
        (
            e
            for e in view.entries()
            if _same_file(e.registry, target) and e.extractor == entry.extractor and e.default
        ),
        None,
    )


def _check_same_default(
    entry: ModelEntry, judged: ModelEntry | None, now: ModelEntry | None
) -> None:
    """Refuse when the default the report was judged against is no longer the default."""
    if (judged.id if judged else None) != (now.id if now else None):
        raise PromotionRefusedError(
            f"the default for {entry.extractor!r} changed to {now.id if now else 'none'!r} "
            f"while {entry.id!r} was checked against "
            f"{judged.id if judged else 'no default'!r}: run the promotion again, with a "
            "report that holds the new default"
        )


def _write_promotion(target: Path, entry: ModelEntry, *, committed: bool) -> None:
    """``entry`` becomes the default in ``target``, checked before the atomic write."""
    models = _raw_models(target, committed=committed)
    for raw in models:
        if raw["id"] == entry.id:
            raw["default"], raw["status"] = True, "production"
        elif raw["extractor"] == entry.extractor and raw["default"]:
            # The previous default stays available by id, as an alternative.
            raw["default"], raw["status"] = False, "alternative"
    text = _dump_registry(models)
    parsed = _parse_document(target, json.loads(text), committed=committed)
    findings = list(parsed.findings)
    for candidate in parsed.entries:
        if candidate.id == entry.id:
            findings.extend(_check_entry(candidate, check_models=True))
    _refuse_on_errors(findings, f"cannot promote {entry.id!r} in {target}")
    atomic_write_text(target, text)
