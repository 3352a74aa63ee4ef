"""The materializer over real clips: statuses, deduplication, idempotence, formats, Ray."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests._onnx_models import conv_sigmoid_model
from tests._trust import MIRROR_SIDECAR
from vmafx_saliency.downstream import materialize as mz
from vmafx_saliency.errors import (
    InputFileError,
    MaterializeError,
    MissingDependencyError,
    OutputExistsError,
    UsageError,
)
from vmafx_saliency.video.job import ModelChoice

MAX_FRAMES = 4
NEW_COLUMNS = ["saliency_mean", "saliency_var", "saliency_status", "saliency_model"]


# --- models and tables ---------------------------------------------------------------


def _write_model(folder: Path, name: str, data: bytes) -> Path:
    """The model plus ``<stem>.sidecar.json`` beside it (native size keeps tests fast)."""
    doc = json.loads(MIRROR_SIDECAR.read_text())
    doc["model_id"] = name
    doc["preprocessing"]["inference_size"] = "native"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sidecar.json").write_text(json.dumps(doc))
    path = folder / f"{name}.onnx"
    path.write_bytes(data)
    return path


def _nan_on_bright_model() -> bytes:
    """Passes the loader's probe (N(0, 1) noise) but gives NaN on bright, smooth frames.

    s = the sum over a 3x3x3 window: about 60 in a bright area of a real frame
    (divided by its max, ImageNet-normalised), below 40 for the probe's noise.
    Relu(1e30 (s - 40)) times 1e10 overflows to inf where s > 40, and
    inf + (-inf) is NaN; elsewhere the map is Sigmoid(0) = 0.5.
    """
    f = TensorProto.FLOAT
    weights = {
        "w1": np.full((1, 3, 3, 3), 1e30, np.float32),
        "b1": np.array([-40e30], np.float32),
        "w2": np.full((1, 1, 1, 1), 1e10, np.float32),
        "w3": np.full((1, 1, 1, 1), -1.0, np.float32),
        "b0": np.zeros(1, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["s"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b0"], ["big"]),
        helper.make_node("Conv", ["big", "w3", "b0"], ["neg"]),
        helper.make_node("Add", ["big", "neg"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["saliency_map"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nan_on_bright",
        [helper.make_tensor_value_info("input", f, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("saliency_map", f, [1, 1, "h", "w"])],
        initializer=[numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ModelChoice:
    path = _write_model(tmp_path_factory.mktemp("model"), "tiny_conv_v1", conv_sigmoid_model())
    return ModelChoice(model_path=path)


@pytest.fixture(scope="module")
def corrupt_mp4(tmp_path_factory: pytest.TempPathFactory, videos_dir: Path) -> Path:
    """A real mp4's first 3000 bytes (cut mid-box) followed by garbage."""
    path = tmp_path_factory.mktemp("bad") / "corrupt.mp4"
    head = (videos_dir / "carphone_pristine.mp4").read_bytes()[:3000]
    path.write_bytes(head + b"\x00garbage" * 64)
    return path


def _rows(tmp: Path, videos: Path, corrupt: Path) -> list[dict[str, Any]]:
    """Relative names resolve against --root (the videos); tmp files are absolute."""
    return [
        {"id": 0, "src": "carphone_pristine.mp4", "label": "ref", "score": 4.5, "tags": ["a"]},
        {"id": 1, "src": "akiyo_cif.mp4", "meta": {"k": [1, 2]}, "flag": True, "score": 3},
        {"id": 2, "src": "CiscoVT2people_160x96_6fps.yuv", "width": 160, "height": 96},
        {"id": 3, "src": str(videos / "carphone_pristine.mp4"), "label": "same clip"},
        {"id": 4, "src": str(tmp / "missing.mp4")},
        {"id": 5, "src": str(corrupt)},
        {
            "id": 6,
            "src": "foreman_cif.mp4",
            "saliency_mean": 0.25,
            "saliency_var": 0.125,
            "saliency_model": "older_model",
            "after": "kept",
        },
        {"id": 7, "src": None},
        {"id": 8, "src": "carphone_distorted.mp4"},
        {"id": 9, "src": "akiyo_cif.mp4", "label": "dup"},
        {"id": 10, "src": "CiscoVT2people_320x192_12fps.yuv"},  # raw, no geometry
    ]


EXPECTED = {
    0: "ok",
    1: "ok",
    2: "ok",
    3: "ok",
    4: "missing-source",
    5: "decode-failed",
    6: "skipped-existing",
    7: "missing-source",
    8: "model-failed",
    9: "ok",
    10: "decode-failed",
}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class _NaNSession:
    """Stands in for ONNX Runtime: a map full of NaN, as a broken model gives."""

    def run(self, names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        _, _, height, width = feeds["input"].shape
        return [np.full((1, 1, height, width), np.nan, np.float32)]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count computed clips by path; carphone_distorted's inference goes NaN."""
    from vmafx_saliency.video import extract as ex

    counter: Counter[str] = Counter()
    current: list[str] = []
    compute = mz.ClipWorker.compute
    extract = ex.extract

    def counting(self: mz.ClipWorker, clip: mz.Clip) -> mz.ClipResult:
        counter[clip.path.name] += 1
        current.append(clip.path.name)
        return compute(self, clip)

    def breaking(frames: Any, model: Any, **kwargs: Any) -> Any:
        if current[-1] == "carphone_distorted.mp4":
            model = replace(model, session=_NaNSession())
        return extract(frames, model, **kwargs)

    monkeypatch.setattr(mz.ClipWorker, "compute", counting)
    monkeypatch.setattr(ex, "extract", breaking)
    return counter


def _options(model: ModelChoice, videos: Path, **kwargs: Any) -> mz.Options:
    base: dict[str, Any] = {
        "path_column": "src",
        "root": videos,
        "model": model,
        "max_frames": MAX_FRAMES,
        "jobs": 1,
    }
    return mz.Options(**(base | kwargs))


@pytest.fixture
def table(tmp_path: Path, videos_dir: Path, corrupt_mp4: Path) -> Path:
    return _write_jsonl(tmp_path / "clips.jsonl", _rows(tmp_path, videos_dir, corrupt_mp4))


# --- JSONL: statuses, dedup, preservation ------------------------------------------------


def test_jsonl_every_status_each_clip_once_rows_kept(
    table: Path, tiny: ModelChoice, videos_dir: Path, calls: Counter[str]
) -> None:
    before = _read_jsonl(table)
    out = table.with_name("out.jsonl")
    summary = mz.materialize(table, out, _options(tiny, videos_dir))
    after = _read_jsonl(out)

    assert [r["saliency_status"] for r in after] == [EXPECTED[i] for i in range(len(before))]
    assert dict(summary.counts) == dict(Counter(EXPECTED.values()))
    assert summary.rows == len(before) and summary.clips == 7
    # Each distinct clip once, whatever its spelling; the row with values is never opened.
    assert set(calls.values()) == {1} and "foreman_cif.mp4" not in calls
    assert len(calls) == 7
    # No row lost or reordered; every input key keeps its value and place, ours go last.
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        assert list(new)[: len(old)] == list(old)
        assert {k: new[k] for k in old if k not in NEW_COLUMNS} == {
            k: v for k, v in old.items() if k not in NEW_COLUMNS
        }
        assert set(new) == set(old) | set(NEW_COLUMNS)
    assert after[1]["score"] == 3 and isinstance(after[1]["score"], int)
    assert after[1]["meta"] == {"k": [1, 2]} and after[1]["flag"] is True
    # Duplicates share the result; ok values are real numbers in range.
    assert after[0]["saliency_mean"] == after[3]["saliency_mean"]
    assert after[1]["saliency_var"] == after[9]["saliency_var"]
    for row in after:
        if row["saliency_status"] == "ok":
            assert 0.0 < row["saliency_mean"] < 1.0 and row["saliency_var"] >= 0.0
            assert row["saliency_model"].startswith("adhoc:tiny_conv_v1@sha256:")
        elif row["saliency_status"] != "skipped-existing":
            assert row["saliency_mean"] is None and row["saliency_var"] is None
    # The skipped row keeps its values and the model that made them.
    assert after[6]["saliency_mean"] == 0.25 and after[6]["saliency_model"] == "older_model"
    text = summary.render()
    assert "model-failed: " in text and "NaN" in text and "missing.mp4: no such file" in text
    assert "CiscoVT2people_320x192_12fps.yuv is raw YUV" in text


def test_values_are_the_extractor_pooled(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path
) -> None:
    """mean / ema / max of the extractor's per-frame features over the first N frames."""
    from vmafx_saliency.video.extract import extract
    from vmafx_saliency.video.frames import open_video, select_frames
    from vmafx_saliency.video.job import load_model

    loaded, pre = load_model(tiny, threads=1)
    with open_video(videos_dir / "carphone_pristine.mp4") as source:
        direct = extract(
            select_frames(source, end=MAX_FRAMES),
            loaded,
            pre=pre,
            color_range=source.info.color_range,
        ).features
    means = [f.saliency_mean for f in direct]
    assert len(means) == MAX_FRAMES
    table = _write_jsonl(tmp_path / "one.jsonl", [{"src": "carphone_pristine.mp4"}])
    alpha = 0.5
    expected = {
        "mean": math.fsum(means) / len(means),
        "max": max(means),
        "ema": means[0],
    }
    for value in means[1:]:
        expected["ema"] = alpha * value + (1 - alpha) * expected["ema"]
    for how, want in expected.items():
        out = tmp_path / f"{how}.jsonl"
        extra = {"ema_alpha": alpha} if how == "ema" else {}
        mz.materialize(table, out, _options(tiny, videos_dir, aggregator=how, **extra))
        assert _read_jsonl(out)[0]["saliency_mean"] == pytest.approx(want, abs=1e-12)
    assert len(set(expected.values())) == 3  # the three aggregators really differ here


def test_rerun_is_idempotent_and_overwrite_recomputes(
    table: Path, tiny: ModelChoice, videos_dir: Path, calls: Counter[str]
) -> None:
    first = table.with_name("first.jsonl")
    mz.materialize(table, first, _options(tiny, videos_dir))
    calls.clear()
    second = table.with_name("second.jsonl")
    summary = mz.materialize(first, second, _options(tiny, videos_dir))
    a, b = _read_jsonl(first), _read_jsonl(second)
    computed = [i for i, r in enumerate(a) if r["saliency_status"] == "ok"]
    for i, (old, new) in enumerate(zip(a, b, strict=True)):
        if i in computed or i == 6:
            assert new["saliency_status"] == "skipped-existing"
            assert (new["saliency_mean"], new["saliency_var"], new["saliency_model"]) == (
                old["saliency_mean"],
                old["saliency_var"],
                old["saliency_model"],
            )
        else:  # failures are retried, and fail the same way
            assert new["saliency_status"] == old["saliency_status"]
    assert summary.count("skipped-existing") == len(computed) + 1
    # Only the failed clips were opened again.
    assert set(calls) == {
        "missing.mp4",
        "corrupt.mp4",
        "carphone_distorted.mp4",
        "CiscoVT2people_320x192_12fps.yuv",
    }

    # --overwrite recomputes every row (the old foreman values too) and gives the same numbers;
    # input == output is allowed with --force.
    calls.clear()
    mz.materialize(second, second, _options(tiny, videos_dir, overwrite=True, force=True))
    c = _read_jsonl(second)
    assert "skipped-existing" not in {r["saliency_status"] for r in c}
    assert c[6]["saliency_status"] == "ok" and c[6]["saliency_mean"] != 0.25
    assert c[6]["saliency_model"] == a[0]["saliency_model"]
    for i in computed:
        assert c[i]["saliency_mean"] == a[i]["saliency_mean"]
    assert calls["foreman_cif.mp4"] == 1


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


def test_nan_model_gives_model_failed(tmp_path: Path, videos_dir: Path) -> None:
    """A model that passes the loader's probe but goes NaN on real, bright frames."""
    model = ModelChoice(model_path=_write_model(tmp_path, "nan_v1", _nan_on_bright_model()))
    black = tmp_path / "black_32x32.yuv"  # a black frame stays black: no NaN there
    black.write_bytes(bytes([16] * 32 * 32 + [128] * 2 * 16 * 16) * 2)
    rows: list[dict[str, Any]] = [
        {"src": "carphone_pristine.mp4"},
        {"src": str(black), "width": 32, "height": 32},
        {"src": "akiyo_cif.mp4"},
    ]
    table = _write_jsonl(tmp_path / "t.jsonl", rows)
    summary = mz.materialize(table, tmp_path / "o.jsonl", _options(model, videos_dir))
    after = _read_jsonl(tmp_path / "o.jsonl")
    assert [r["saliency_status"] for r in after] == ["model-failed", "ok", "model-failed"]
    assert after[1]["saliency_mean"] == pytest.approx(0.5)
    assert "the model produced NaN or infinite values" in summary.render()


def test_registry_model_by_id_and_default(
    tmp_path: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--model ID and the mobilesal default go through the registry (pinned), as extract does."""
    from tests._trust import isolate_registry, write_model, write_registry

    committed, _ = isolate_registry(tmp_path, monkeypatch)
    write_registry(committed, [write_model(committed.parent, "tiny_reg_v1")])
    table = _write_jsonl(tmp_path / "t.jsonl", [{"src": "carphone_pristine.mp4"}])
    for n, choice in enumerate((ModelChoice(model_id="tiny_reg_v1"), ModelChoice())):
        out = tmp_path / f"o{n}.jsonl"
        summary = mz.materialize(table, out, _options(choice, videos_dir))
        (row,) = _read_jsonl(out)
        assert summary.model_id == row["saliency_model"] == "tiny_reg_v1"
        assert row["saliency_status"] == "ok"


# --- Parquet -------------------------------------------------------------------------


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


# --- errors --------------------------------------------------------------------------


def test_refusals(tmp_path: Path, table: Path, tiny: ModelChoice, videos_dir: Path) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(MaterializeError, match=r"no column 'path'.*pass --path-column"):
        mz.materialize(table, out, _options(tiny, videos_dir, path_column="path"))
    csv = tmp_path / "clips.csv"
    csv.write_text("src\n")
    with pytest.raises(MaterializeError, match=r"--input .*clips.csv: unknown table suffix"):
        mz.materialize(csv, out, _options(tiny, videos_dir))
    with pytest.raises(MaterializeError, match=r"--output .*out.txt: unknown table suffix"):
        mz.materialize(table, tmp_path / "out.txt", _options(tiny, videos_dir))
    out.write_text("{}\n")
    with pytest.raises(OutputExistsError, match=r"out.jsonl already exists: pass --force"):
        mz.materialize(table, out, _options(tiny, videos_dir))
    with pytest.raises(MaterializeError, match=r"is the input table: .*--force"):
        mz.materialize(table, table, _options(tiny, videos_dir))
    with pytest.raises(MaterializeError, match=r"unknown executor 'dask': .*local or ray"):
        mz.materialize(table, tmp_path / "o2.jsonl", _options(tiny, videos_dir, executor="dask"))
    with pytest.raises(MaterializeError, match="--ema-alpha applies to --aggregator ema"):
        mz.materialize(table, tmp_path / "o2.jsonl", _options(tiny, videos_dir, ema_alpha=0.3))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"src": "a.mp4"}\n[1, 2]\n')
    with pytest.raises(MaterializeError, match="line 2 is a JSON list, not an object"):
        mz.materialize(bad, tmp_path / "o3.jsonl", _options(tiny, videos_dir))
    assert not (tmp_path / "o2.jsonl").exists() and not (tmp_path / "o3.jsonl").exists()
    assert out.read_text() == "{}\n"  # refused: untouched


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, table: Path, tiny: ModelChoice, videos_dir: Path, monkeypatch: Any
) -> None:
    # None in sys.modules makes the import fail, as if pyarrow were not installed.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'vmafx-saliency\[table\]'"):
        mz.materialize(table, tmp_path / "out.parquet", _options(tiny, videos_dir))


def test_model_refusal_is_a_usage_error(table: Path, tmp_path: Path, videos_dir: Path) -> None:
    missing_sidecar = tmp_path / "lonely.onnx"
    missing_sidecar.write_bytes(conv_sigmoid_model())
    with pytest.raises(UsageError, match="no sidecar JSON"):
        mz.materialize(
            table,
            tmp_path / "o.jsonl",
            _options(ModelChoice(model_path=missing_sidecar), videos_dir),
        )
    assert not (tmp_path / "o.jsonl").exists()


def test_aggregate() -> None:
    assert mz.aggregate([1.0, 2.0, 4.0], "mean", alpha=0.5) == pytest.approx(7 / 3)
    assert mz.aggregate([1.0, 2.0, 4.0], "max", alpha=0.5) == 4.0
    assert mz.aggregate([1.0, 2.0, 4.0], "ema", alpha=0.5) == 2.75  # ((1+2)/2 + 4) / 2
    assert mz.aggregate([3.0], "ema", alpha=0.1) == 3.0


def test_cli(table: Path, tiny: ModelChoice, videos_dir: Path, capsys: Any) -> None:
    from vmafx_saliency.cli.main import main

    out = table.with_name("cli.jsonl")
    assert tiny.model_path is not None
    code = main(
        [
            "materialize",
            "--input",
            str(table),
            "--output",
            str(out),
            "--path-column",
            "src",
            "--root",
            str(videos_dir),
            "--model-path",
            str(tiny.model_path),
            "--max-frames",
            "2",
            "--aggregator",
            "max",
            "--jobs",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1  # the table is written, but some rows failed: scripts can tell
    assert "11 rows, 7 distinct clips computed with adhoc:tiny_conv_v1" in printed
    assert "  ok                6" in printed and "  decode-failed     2" in printed
    assert len(_read_jsonl(out)) == 11
    assert (
        main(["materialize", "--input", str(table), "--output", str(out), "--path-column", "src"])
        == 2
    )
    assert "already exists: pass --force" in capsys.readouterr().err
    # Only the rows that worked: a complete table exits 0.
    good = table.with_name("good.jsonl")
    good.write_text('{"src": "foreman_cif.mp4"}\n{"src": "akiyo_cif.mp4"}\n')
    argv = ["materialize", "--input", str(good), "--output", str(table.with_name("g.jsonl"))]
    argv += ["--path-column", "src", "--root", str(videos_dir), "--model-path"]
    assert main([*argv, str(tiny.model_path), "--max-frames", "2", "--jobs", "1"]) == 0


def test_a_root_that_does_not_exist_is_refused_before_any_work(
    table: Path, tiny: ModelChoice, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    options = mz.Options(path_column="src", model=tiny, root=tmp_path / "nowhere")
    with pytest.raises(InputFileError, match=r"--root .*nowhere: no such folder"):
        mz.materialize(table, out, options)
    assert not out.exists()


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


def _refused_writing_nothing(table: Path, out: Path, options: mz.Options, match: str) -> None:
    with pytest.raises(MaterializeError, match=match):
        mz.materialize(table, out, options)
    assert not out.exists()


# --- Ray --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """One local Ray instance (2 CPUs) for the module: start-up is the slow part."""
    ray = pytest.importorskip("ray", reason="the Ray executor needs ray (the ray extra)")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        object_store_memory=96 * 1024 * 1024,
    )
    yield ray
    ray.shutdown()


def test_ray_executor_matches_local(
    ray_local: Any, tmp_path: Path, tiny: ModelChoice, videos_dir: Path, corrupt_mp4: Path
) -> None:
    rows = [
        {"id": 0, "src": "carphone_pristine.mp4"},
        {"id": 1, "src": "CiscoVT2people_160x96_6fps.yuv", "width": 160, "height": 96},
        {"id": 2, "src": str(tmp_path / "missing.mp4")},
        {"id": 3, "src": str(corrupt_mp4)},
        {"id": 4, "src": "akiyo_cif.mp4"},
        {"id": 5, "src": "carphone_pristine.mp4"},
    ]
    table = _write_jsonl(tmp_path / "t.jsonl", rows)
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    mz.materialize(table, local, _options(tiny, videos_dir, jobs=1))
    summary = mz.materialize(table, remote, _options(tiny, videos_dir, executor="ray", jobs=2))
    assert summary.executor == "ray" and summary.workers == 2
    assert ray_local.is_initialized()  # a running instance is used, not shut down
    a, b = _read_jsonl(local), _read_jsonl(remote)
    assert [r["saliency_status"] for r in b] == [
        "ok",
        "ok",
        "missing-source",
        "decode-failed",
        "ok",
        "ok",
    ]
    for x, y in zip(a, b, strict=True):
        assert x["saliency_status"] == y["saliency_status"]
        assert x["saliency_model"] == y["saliency_model"]
        for name in ("saliency_mean", "saliency_var"):
            if x[name] is None:
                assert y[name] is None
            else:
                assert abs(x[name] - y[name]) <= 1e-9


def test_a_ray_address_nobody_answers_is_one_clear_error(
    table: Path, tiny: ModelChoice, videos_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Ray raises ConnectionError when no cluster is at --address: say how to get one."""

    class NoCluster:
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**kwargs: Any) -> None:
            raise ConnectionError(f"Could not find any running Ray instance at {kwargs['address']}")

    monkeypatch.setattr(mz, "require", lambda module, *, purpose: NoCluster())
    out = tmp_path / "out.jsonl"
    options = _options(tiny, videos_dir, executor="ray", address="auto")  # Ray's own lookup
    _refused_writing_nothing(
        table,
        out,
        options,
        r"--address auto: no Ray cluster answers there \(.*\): start one "
        r"\(ray start --head\) or leave out --address",
    )


def test_a_ray_address_with_no_listener_is_refused_before_ray_starts(
    table: Path, tiny: ModelChoice, videos_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Ray itself retries an address nobody listens on for minutes: refuse in seconds."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class NotToBeStarted:
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**kwargs: Any) -> None:
            raise AssertionError("ray.init must not be reached")

    monkeypatch.setattr(mz, "require", lambda module, *, purpose: NotToBeStarted())
    out = tmp_path / "out.jsonl"
    options = _options(tiny, videos_dir, executor="ray", address=f"127.0.0.1:{port}")
    _refused_writing_nothing(
        table, out, options, rf"--address 127\.0\.0\.1:{port}: no Ray cluster answers there"
    )
