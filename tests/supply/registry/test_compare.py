"""Comparison reports and the direction of each metric."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._trust import write_json
from vmafx_saliency.errors import ComparisonReportError
from vmafx_saliency.supply import registry as reg


def test_higher_is_better_table() -> None:
    for name in ("mae", "mae_vs_mirror", "ms_per_image", "macs", "params"):
        assert not reg.higher_is_better(name)
    for name in ("s_measure", "max_f", "e_measure", "pearson"):
        assert reg.higher_is_better(name)


def test_report_with_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", {"schema": "other/v9", "models": []})
    with pytest.raises(ComparisonReportError, match=r"has schema 'other/v9'"):
        reg.read_comparison_report(path, candidate="a", baseline="b", metric="mae")
