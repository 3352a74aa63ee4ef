"""Tables: Parquet kept through the process pool, pyarrow missing, columns Parquet cannot hold."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests._materialize import _options, _read_jsonl, _refused_writing_nothing, _write_jsonl
from vmafx_saliency.downstream import materialize as mz
from vmafx_saliency.errors import MissingDependencyError
from vmafx_saliency.video.job import ModelChoice


def test_parquet_schema_and_values_kept_with_process_pool(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path, corrupt_mp4: Path
) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (the table extra)")
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow")
    srcs = [
        "carphone_pristine.mp4",
        "CiscoVT2people_160x96_6fps.yuv",
        str(tmp_path / "missing.mp4"),
        str(corrupt_mp4),
        "carphone_pristine.mp4",
        "foreman_cif.mp4",
    ]
    n = len(srcs)
    schema = pa.schema(
        [
            pa.field("id", pa.int32()),
            pa.field("src", pa.string()),
            pa.field("saliency_mean", pa.float32()),
            pa.field("label", pa.dictionary(pa.int8(), pa.string())),
            pa.field("score", pa.float32(), metadata={b"unit": b"mos"}),
            pa.field("ts", pa.timestamp("ms")),
            pa.field("tags", pa.list_(pa.int64())),
            pa.field("width", pa.int16()),
            pa.field("height", pa.int16()),
            pa.field("saliency_var", pa.float32()),
        ],
        metadata={b"origin": b"test"},
    )
    arrays = [
        pa.array(range(n), pa.int32()),
        pa.array(srcs),
        pa.array([None, None, None, None, None, 0.5], pa.float32()),
        pa.array(["a", "b", "a", "c", "b", "a"]).dictionary_encode().cast(schema.field(3).type),
        pa.array([1.5, 2.5, None, 3.5, 4.5, 5.5], pa.float32()),
        pa.array([1_700_000_000_000 + i for i in range(n)], pa.timestamp("ms")),
        pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int64())),
        pa.array([None, 160, None, None, None, None], pa.int16()),
        pa.array([None, 96, None, None, None, None], pa.int16()),
        pa.array([None, None, None, None, None, 0.25], pa.float32()),
    ]
    source = pa.Table.from_arrays(arrays, schema=schema)
    table = tmp_path / "clips.parquet"
    pq.write_table(source, table)

    out = tmp_path / "out.parquet"
    summary = mz.materialize(table, out, _options(tiny, videos_dir, jobs=2))
    assert summary.workers == 2
    result = pq.read_table(out)
    assert result.schema.metadata == schema.metadata
    kept = [f for f in schema if not f.name.startswith("saliency_")]
    for f in kept:
        assert result.schema.field(f.name) == f
        assert result.schema.field(f.name).metadata == f.metadata
        assert result.column(f.name).equals(source.column(f.name))
    # Our columns: in place where they were, appended where not, with proper types.
    assert result.column_names == [*schema.names, "saliency_status", "saliency_model"]
    assert result.schema.field("saliency_mean").type == pa.float64()
    assert result.schema.field("saliency_var").type == pa.float64()
    assert result.schema.field("saliency_status").type == pa.string()
    assert result.schema.field("saliency_model").type == pa.string()
    statuses = result.column("saliency_status").to_pylist()
    assert statuses == ["ok", "ok", "missing-source", "decode-failed", "ok", "skipped-existing"]
    means = result.column("saliency_mean").to_pylist()
    assert means[0] == means[4] and means[5] == 0.5

    # The process pool gives the numbers the in-process path gives.
    jsonl = _write_jsonl(tmp_path / "same.jsonl", [{"src": s} for s in srcs[:2]])
    defaults = mz.Geometry(width=160, height=96)
    mz.materialize(
        jsonl, tmp_path / "same.out.jsonl", _options(tiny, videos_dir, defaults=defaults)
    )
    here = _read_jsonl(tmp_path / "same.out.jsonl")
    assert here[0]["saliency_mean"] == means[0]
    assert here[1]["saliency_var"] == result.column("saliency_var")[1].as_py()

    # Parquet -> JSONL -> Parquet: values survive; timestamps become ISO text in JSON.
    back = tmp_path / "back.jsonl"
    mz.materialize(out, back, _options(tiny, videos_dir))
    rows = _read_jsonl(back)
    assert rows[0]["ts"].startswith("2023-11-14T") and rows[0]["tags"] == [0, 1]
    assert [r["saliency_status"] for r in rows][:2] == ["skipped-existing"] * 2


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, table: Path, tiny: ModelChoice, videos_dir: Path, monkeypatch: Any
) -> None:
    # None in sys.modules makes the import fail, as if pyarrow were not installed.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'vmafx-saliency\[table\]'"):
        mz.materialize(table, tmp_path / "out.parquet", _options(tiny, videos_dir))


def test_a_column_parquet_cannot_hold_is_named_before_any_clip(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path
) -> None:
    pytest.importorskip("pyarrow")
    table = tmp_path / "t.jsonl"
    table.write_text(
        '{"src": "foreman_cif.mp4", "take": 1}\n{"src": "akiyo_cif.mp4", "take": "b"}\n'
    )
    out = tmp_path / "out.parquet"
    options = mz.Options(path_column="src", model=tiny, root=videos_dir, max_frames=2, jobs=1)
    _refused_writing_nothing(
        table,
        out,
        options,
        r"t\.jsonl: column 'take' cannot become a Parquet column \(.*\): give it one type "
        r"in every row, or write a \.jsonl output",
    )
