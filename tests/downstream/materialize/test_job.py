"""The materializer over real clips: statuses, deduplication, idempotence, refusals, the CLI."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._materialize import _options, _read_jsonl, _write_jsonl
from tests._onnx_models import conv_sigmoid_model
from vmafx_saliency.downstream import materialize as mz
from vmafx_saliency.errors import InputFileError, MaterializeError, OutputExistsError, UsageError
from vmafx_saliency.video.job import ModelChoice

NEW_COLUMNS = ["saliency_mean", "saliency_var", "saliency_status", "saliency_model"]


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


class _NaNSession:
    """Stands in for ONNX Runtime: a map full of NaN, as a broken model gives."""

    def run(
        self, names: Any, feeds: dict[str, np.ndarray], run_options: Any = None
    ) -> list[np.ndarray]:
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


def test_rows_kept_from_another_model_are_named(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _write_jsonl(tmp_path / "t.jsonl", [{"src": "akiyo_cif.mp4"}])
    mz.materialize(first, tmp_path / "a.jsonl", _options(tiny, videos_dir))
    (ours,) = _read_jsonl(tmp_path / "a.jsonl")
    kept = {"saliency_mean": 0.3, "saliency_var": 0.1}
    rows = [
        ours,
        {"src": "foreman_cif.mp4", **kept, "saliency_model": "other_v1"},
        {"src": "carphone_pristine.mp4", **kept},  # values from who knows where
    ]
    table = _write_jsonl(tmp_path / "mixed.jsonl", rows)
    with caplog.at_level("WARNING"):
        mz.materialize(table, tmp_path / "b.jsonl", _options(tiny, videos_dir))
    label = ours["saliency_model"]

    def kept_warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "kept row" in r.getMessage()]

    assert kept_warnings() == [
        f"2 kept row(s) hold values of another model (an unnamed model, other_v1), not {label}: "
        "pass "
        f"--overwrite to compute every row with {label}"
    ]
    caplog.clear()
    with caplog.at_level("WARNING"):  # every kept row is this model's: nothing to say
        mz.materialize(table, tmp_path / "c.jsonl", _options(tiny, videos_dir, overwrite=True))
        mz.materialize(tmp_path / "c.jsonl", tmp_path / "d.jsonl", _options(tiny, videos_dir))
    assert kept_warnings() == []


def test_raw_yuv_whose_geometry_leaves_bytes_over_fails_its_row(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path
) -> None:
    """829,440 bytes are 5.45 frames of 352x288: not an "ok" row of meaningless numbers."""
    cisco = "CiscoVT2people_320x192_12fps.yuv"
    rows = [
        {"src": cisco, "width": 352, "height": 288},
        {"src": cisco, "width": 320, "height": 192},
    ]
    table = _write_jsonl(tmp_path / "g.jsonl", rows)
    summary = mz.materialize(table, tmp_path / "o.jsonl", _options(tiny, videos_dir))
    wrong, right = _read_jsonl(tmp_path / "o.jsonl")
    assert (wrong["saliency_status"], wrong["saliency_mean"]) == ("decode-failed", None)
    assert right["saliency_status"] == "ok"
    (failure,) = summary.failures
    assert failure.message is not None
    assert failure.message.endswith(
        f"{cisco}: 829440 bytes are not a whole number of 352x288 yuv420p frames: check the "
        "row's width, height and pixel_format"
    )


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


def test_output_onto_a_clip_or_the_model_is_refused_even_with_force(
    tmp_path: Path, tiny: ModelChoice, videos_dir: Path
) -> None:
    """Only the --input table may be rewritten in place: never a clip it lists, nor the model."""
    clip = tmp_path / "clip.jsonl"  # a video under a table's name
    clip.write_bytes((videos_dir / "akiyo_cif.mp4").read_bytes())
    table = _write_jsonl(tmp_path / "t.jsonl", [{"src": str(clip)}])
    before = clip.read_bytes()
    with pytest.raises(UsageError, match=r"--output .*clip\.jsonl is a clip of the table .*clip"):
        mz.materialize(table, clip, _options(tiny, videos_dir, force=True))
    assert clip.read_bytes() == before
    assert tiny.model_path is not None
    model = tmp_path / "model.jsonl"
    model.write_bytes(tiny.model_path.read_bytes())
    sidecar = tiny.model_path.with_name("tiny_conv_v1.sidecar.json")
    choice = ModelChoice(model_path=model, sidecar=sidecar)
    table = _write_jsonl(tmp_path / "t2.jsonl", [{"src": "akiyo_cif.mp4"}])
    with pytest.raises(UsageError, match=r"--output .*model\.jsonl is --model-path .*model\.jsonl"):
        mz.materialize(table, model, _options(choice, videos_dir, force=True))
    assert model.read_bytes() == tiny.model_path.read_bytes()


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
    assert "2 rows, 2 distinct clips" in capsys.readouterr().out
    # --quiet: the table, and no summary.
    assert main([*argv, str(tiny.model_path), "--max-frames", "2", "--force", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert len(_read_jsonl(table.with_name("g.jsonl"))) == 2


def test_a_root_that_does_not_exist_is_refused_before_any_work(
    table: Path, tiny: ModelChoice, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    options = mz.Options(path_column="src", model=tiny, root=tmp_path / "nowhere")
    with pytest.raises(InputFileError, match=r"--root .*nowhere: no such folder"):
        mz.materialize(table, out, options)
    assert not out.exists()
