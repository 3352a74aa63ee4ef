"""Planning rows: raw YUV geometry per row, values already there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests._materialize import _options, _read_jsonl, _write_jsonl
from vmafx_saliency.downstream import materialize as mz
from vmafx_saliency.video.job import ModelChoice


def test_raw_geometry_defaults_and_bad_geometry(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path
) -> None:
    raw = "CiscoVT2people_160x96_6fps.yuv"
    rows: list[dict[str, Any]] = [
        {"src": raw},  # the command line's defaults
        {"src": raw, "width": 160, "height": 96, "pixel_format": "yuv420p"},
        {"src": raw, "width": "wide", "height": 96},  # not a number: that row fails alone
        {"src": "CiscoVT2people_320x192_12fps.yuv", "width": 320.0, "height": "192"},
    ]
    table = _write_jsonl(tmp_path / "raw.jsonl", rows)
    out = tmp_path / "raw.out.jsonl"
    defaults = mz.Geometry(width=160, height=96)
    summary = mz.materialize(table, out, _options(tiny, videos_dir, defaults=defaults))
    after = _read_jsonl(out)
    assert [r["saliency_status"] for r in after] == ["ok", "ok", "decode-failed", "ok"]
    assert after[0]["saliency_mean"] == after[1]["saliency_mean"]
    assert summary.clips == 2  # the same file and geometry, spelled two ways, is one clip
    # Counted from 1, as the lines of the JSONL file: the third line is row 3.
    assert "row 3: width 'wide' is not a positive whole number" in summary.render()


def test_text_in_our_columns_is_not_a_value_and_is_recomputed(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path
) -> None:
    """ "0.3" (text) or true is no saliency figure: computed, not kept as skipped-existing."""
    table = tmp_path / "t.jsonl"
    rows = [
        {"src": "foreman_cif.mp4", "saliency_mean": "0.3", "saliency_var": "0.1"},
        {"src": "akiyo_cif.mp4", "saliency_mean": True, "saliency_var": 0.1},
        {"src": "carphone_pristine.mp4", "saliency_mean": 2, "saliency_var": 0.5},
    ]
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    options = mz.Options(path_column="src", model=tiny, root=videos_dir, max_frames=2, jobs=1)
    summary = mz.materialize(table, out, options)
    got = _read_jsonl(out)
    assert [r["saliency_status"] for r in got] == ["ok", "ok", "skipped-existing"]
    assert all(isinstance(r["saliency_mean"], float) for r in got[:2])
    assert got[2]["saliency_mean"] == 2  # a number the table had is kept as it was
    assert summary.failed_rows == 0
