"""The eval and compare commands end to end: the mirror on PASCAL-S, tiny models on a clip."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests._onnx_models import conv_sigmoid_model, refused_on_bright_model
from tests._trust import isolate_registry, sidecar_doc, write_json, write_model, write_registry
from tests._video import write_y4m
from vmafx_saliency.cli.main import main
from vmafx_saliency.errors import (
    ComparisonReportError,
    InputFileError,
    OutputExistsError,
    UnknownModelError,
    UsageError,
)
from vmafx_saliency.science import evaluate as ev
from vmafx_saliency.science.evaluate import report as ev_report
from vmafx_saliency.supply import registry as reg

ROOT = Path(__file__).resolve().parents[2]
MIRROR_SIDECAR = ROOT / "src" / "vmafx_saliency" / "models" / "u2netp_mirror_v1.sidecar.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPORT_FILES = {
    "summary.json",
    "per_image.csv",
    "report.md",
    "pr_curves.png",
    "f_threshold.png",
    "mean_saliency_hist.png",
    "grid.png",
}

CISCO = "CiscoVT2people_320x192_12fps.yuv"


def _dataset(root: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(7)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(count):
        img = rng.integers(0, 256, size=(24, 32, 3)).astype(np.uint8)
        mask = np.zeros((24, 32), np.uint8)
        mask[4 + i : 16, 6 : 20 + i] = 255
        img[mask > 0] //= 3  # a darker object: something for a model to find
        Image.fromarray(img).save(root / "images" / f"{i}.jpg")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


def test_eval_mirror_on_a_pascal_s_slice(
    mirror_onnx: Path, pascal_s_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m" / "u2netp_mirror_v1.onnx"
    model.parent.mkdir()
    shutil.copyfile(mirror_onnx, model)
    shutil.copyfile(MIRROR_SIDECAR, model.with_name("u2netp_mirror_v1.sidecar.json"))
    report = tmp_path / "report"
    argv = ["eval", "--dataset", str(pascal_s_dir), "--models", str(model)]
    argv += ["--protocol", "upstream", "--limit", "10", "--jobs", "2", "--report", str(report)]
    assert main([*argv, "--quiet"]) == 0
    assert "u2netp_mirror_v1" in capsys.readouterr().out
    assert {p.name for p in report.iterdir()} == REPORT_FILES
    # What --force may replace is what the writer writes (REPORT_FILES is kept by hand).
    assert ev_report.REPORT_FILES[ev.EVAL_MARKER] == REPORT_FILES

    doc = json.loads((report / "summary.json").read_text())
    assert ev.validate_summary(doc) == []
    summary = ev.EvalSummary.from_json(doc)
    assert (summary.dataset.count, summary.dataset.pairs, summary.protocol) == (10, 850, "upstream")
    (result,) = summary.models
    assert result.id == "u2netp_mirror_v1" and result.inference_size == (320, 320)
    for name in ev.UNIT_METRICS:
        value = result.metrics[name]
        assert value is not None and math.isfinite(value) and 0.0 <= value <= 1.0, name
    for name in ev.ENHANCED_METRICS:  # over 1 only for an empty (or full) mask
        value = result.metrics[name]
        assert value is not None and 0.0 <= value <= 1.0, name
    # A working mirror finds the objects: well above chance on ten images.
    assert result.metrics["max_f"] is not None and result.metrics["max_f"] > 0.6
    macs = result.metrics["macs"]
    assert macs is not None and 19.0e9 < macs < 20.5e9  # DESIGN section 6: about 19.8 GMAC
    assert (result.metrics["ms_per_image"] or 0) > 0
    cmp = reg.read_comparison_report(
        report / "summary.json", candidate="u2netp_mirror_v1", baseline=None, metric="s_measure"
    )
    assert cmp.candidate_value == result.metrics["s_measure"]
    # A slice (--limit 10 of 850) is evidence of nothing for a default: promote refuses it.
    sliced = r"scored 10 of its dataset's 850 pairs \(--limit 10\): promote on .* whole dataset"
    with pytest.raises(ComparisonReportError, match=sliced):
        reg.read_comparison_report(report / "summary.json", candidate="u2netp_mirror_v1",
                                   baseline=None, metric="s_measure", whole=True)  # fmt: skip

    with (report / "per_image.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and {r["model"] for r in rows} == {"u2netp_mirror_v1"}
    assert all(0.0 <= float(r["mae"]) <= 1.0 for r in rows)
    text = (report / "report.md").read_text()
    assert "max F (i: dataset P/R, paper)" in text and "--protocol upstream" in text
    for name in REPORT_FILES - {"summary.json", "per_image.csv", "report.md"}:
        assert (report / name).read_bytes()[:8] == PNG_MAGIC, name


def test_eval_registry_models_and_promote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    isolate_registry(tmp_path, monkeypatch)
    overlay = reg.overlay_registry_path()
    folder = overlay.parent
    # "old" (the default) is a poor model; "new" (the conv the trust tests use) finds the
    # dark objects of _dataset. Both have 28 parameters: a tie, which never promotes.
    write_registry(
        overlay,
        [
            write_model(folder, "old", data=conv_sigmoid_model(seed=3, weight_scale=0.5)),
            write_model(folder, "new", default=False, status="alternative"),
        ],
    )
    dataset = _dataset(tmp_path / "ds")
    report = tmp_path / "report"
    argv = ["eval", "--dataset", str(dataset), "--models", "old,new", "--report", str(report)]
    assert main([*argv, "--quiet", "--grid", "2"]) == 0
    summary = ev.EvalSummary.from_json(json.loads((report / "summary.json").read_text()))
    assert [m.id for m in summary.models] == ["old", "new"]
    assert summary.protocol == "deployment" and summary.models[0].source == "registry"
    text = (report / "report.md").read_text()
    assert "Δ `new` − `old`" in text and "**" in text  # the differences and the best marked

    old, new = (m.metrics for m in summary.models)
    assert (new["max_f"] or 0) > (old["max_f"] or 0) and new["params"] == old["params"] == 28
    capsys.readouterr()
    promote = ["registry", "promote", "new", "--report", str(report / "summary.json")]
    assert main([*promote, "--metric", "params"]) == 2
    assert "not promoting 'new': on params (lower is better)" in capsys.readouterr().err
    assert main([*promote, "--metric", "max_f"]) == 0
    assert reg.Registry.load().default_for("mobilesal").id == "new"

    with pytest.raises(OutputExistsError, match=r"report already exists: pass --force"):
        ev.run_eval(
            ev.EvalOptions(
                dataset=dataset,
                models=ev.parse_models("old"),
                protocol="deployment",
                report=report,
            )
        )


def test_eval_unknown_model_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_registry(tmp_path, monkeypatch)
    options = ev.EvalOptions(
        dataset=_dataset(tmp_path / "ds"),
        models=ev.parse_models("no_such_model"),
        protocol="upstream",
        report=tmp_path / "r",
    )
    with pytest.raises(UnknownModelError, match=r"no_such_model"):
        ev.run_eval(options)
    assert not (tmp_path / "r").exists()


def test_eval_refuses_a_mask_of_another_size_before_loading(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    Image.new("L", (8, 8)).save(dataset / "masks" / "1.png")
    options = ev.EvalOptions(
        dataset=dataset,
        models=ev.parse_models("/nonexistent/model.onnx"),
        protocol="upstream",
        report=tmp_path / "r",
    )
    with pytest.raises(InputFileError, match=r"pair '1': mask .* is 8x8 but its image"):
        ev.run_eval(options)


def test_eval_a_model_onnx_runtime_refuses_is_one_line_naming_model_and_image(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "ds")
    Image.new("RGB", (32, 24), "white").save(dataset / "images" / "1.jpg")  # a bright image
    model = tmp_path / "refused.onnx"
    model.write_bytes(refused_on_bright_model())
    doc = sidecar_doc("refused")
    doc["preprocessing"]["inference_size"] = [72, 88]
    write_json(tmp_path / "refused.sidecar.json", doc)
    report = tmp_path / "r"
    argv = ["eval", "--dataset", str(dataset), "--models", str(model), "--report", str(report)]
    assert main([*argv, "--quiet"]) != 0
    err = capfd.readouterr().err  # the file descriptor: ONNX Runtime logs there, not to sys
    (line,) = [e for e in err.splitlines() if "ad hoc" not in e]  # ours alone; no ORT log
    assert re.fullmatch(
        r"vmafx-saliency eval: error: refused on image '1' failed at 88x72 "
        r"\(.*out of data bounds.*\): the model cannot run this image; "
        r"leave it out \(--models; models= in Python\)",
        line,
    )
    assert not report.exists()


def test_eval_missing_masks_folder_via_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ds" / "images").mkdir(parents=True)
    argv = ["eval", "--dataset", str(tmp_path / "ds"), "--models", "x", "--report", "r"]
    assert main(argv) == 2
    assert "has no masks/ folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--limit", "0", "--limit: '0': give 1 or more"),
        ("--threads", "two", "--threads: 'two' is not a whole number"),
    ],
)
def test_eval_counts_are_whole_numbers_from_one(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r"
    argv = [
        "eval",
        "--dataset",
        str(tmp_path),
        "--models",
        "x",
        "--report",
        str(report),
        flag,
        value,
    ]
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err
    assert not report.exists()


def test_eval_and_compare_threads_meet_the_extractors_cap(
    videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _two_tiny(tmp_path)
    dataset = _dataset(tmp_path / "ds")
    runs = {
        "eval": ["eval", "--dataset", str(dataset), "--models", str(a)],
        "compare": ["compare", str(videos_dir / "foreman_cif.mp4"), "--models", f"{a},{b}"],
    }
    for command, argv in runs.items():
        report = tmp_path / f"r_{command}"
        assert main([*argv, "--report", str(report), "--threads", "257", "--quiet"]) == 2
        assert "--threads 257: give at most 256" in capsys.readouterr().err
        assert not report.exists()


def test_masks_with_no_salient_pixel_score_e_measure_as_its_reference_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All-background masks: at the highest threshold no pixel is predicted salient,
    an exact match, which E-measure's h*w - 1 divisor scores h*w / (h*w - 1)."""
    dataset = _dataset(tmp_path / "ds")
    for mask in (dataset / "masks").iterdir():
        Image.new("L", (32, 24)).save(mask)
    a, _ = _two_tiny(tmp_path)
    report = tmp_path / "r"
    argv = ["eval", "--dataset", str(dataset), "--models", str(a), "--report", str(report)]
    assert main([*argv, "--quiet"]) == 0, capsys.readouterr().err
    (result,) = json.loads((report / "summary.json").read_text())["models"]
    assert result["metrics"]["max_e"] == pytest.approx(768 / 767, rel=1e-9)
    assert result["metrics"]["max_e"] > 1


def test_eval_grid_zero_writes_no_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _two_tiny(tmp_path)
    report = tmp_path / "r"
    argv = ["eval", "--dataset", str(_dataset(tmp_path / "ds")), "--models", str(a)]
    assert main([*argv, "--report", str(report), "--grid", "0", "--quiet"]) == 0
    assert {p.name for p in report.iterdir()} == REPORT_FILES - {"grid.png"}
    assert "grid.png" not in (report / "report.md").read_text()


def test_parse_models() -> None:
    specs = ev.parse_models("mirror, a/b.onnx,c.onnx", sidecars=(Path("s1"), Path("s2")))
    assert [(s.model_id, s.path, s.sidecar) for s in specs] == [
        ("mirror", None, None),
        (None, Path("a/b.onnx"), Path("s1")),
        (None, Path("c.onnx"), Path("s2")),
    ]
    with pytest.raises(UsageError, match=r"1 --sidecar file\(s\) for 2 model path\(s\)"):
        ev.parse_models("a.onnx,b.onnx", sidecars=(Path("s"),))
    with pytest.raises(UsageError, match=r"comma-separated"):
        ev.parse_models("a,,b")


def _tiny(folder: Path, name: str, seed: int) -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(conv_sigmoid_model(seed=seed, weight_scale=0.3))
    doc = sidecar_doc(name)
    doc["preprocessing"]["inference_size"] = [72, 88]
    write_json(folder / f"{name}.sidecar.json", doc)
    return path


def _two_tiny(folder: Path) -> tuple[Path, Path]:
    return _tiny(folder, "tiny_a", 1), _tiny(folder, "tiny_b", 2)


def test_compare_two_tiny_models_on_a_clip(
    videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _two_tiny(tmp_path)
    report = tmp_path / "cmp"
    argv = ["compare", str(videos_dir / "foreman_cif.mp4"), "--models", f"{a},{b}"]
    argv += ["--frames", "0:12", "--subsample", "3", "--report", str(report), "--quiet"]
    assert main(argv) == 0
    assert "tiny_a vs tiny_b over 4 frames" in capsys.readouterr().out
    assert {p.name for p in report.iterdir()} == {"compare.json", "compare.md", "series.png"}
    # What --force may replace is what the writer writes (REPORT_FILES is kept by hand).
    assert {p.name for p in report.iterdir()} == ev_report.REPORT_FILES[ev.COMPARE_MARKER]
    doc = json.loads((report / "compare.json").read_text())
    assert doc["schema"] == ev.COMPARE_SCHEMA and doc["models"] == ["tiny_a", "tiny_b"]
    (clip,) = doc["clips"]
    assert clip["series"]["frame"] == [0, 3, 6, 9]
    assert 0.0 <= clip["ks_statistic"] <= 1.0 and 0.0 <= clip["block_iou"] <= 1.0
    assert clip["mean_abs_diff"] == pytest.approx(
        np.mean(np.abs(np.subtract(clip["series"]["a"], clip["series"]["b"])))
    )
    for key in ("pearson", "spearman"):
        assert clip[key] is None or -1.0 <= clip[key] <= 1.0
    assert doc["overall"]["frames"] == 4
    assert "block IoU 16x16" in (report / "compare.md").read_text()
    assert (report / "series.png").read_bytes()[:8] == PNG_MAGIC

    assert main([*argv[:3], f"{a}", "--report", str(tmp_path / "x"), "--quiet"]) == 2
    assert "compare takes exactly two" in capsys.readouterr().err


def test_compare_mixes_raw_yuv_and_a_container(
    videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--width/--height are the raw clips' geometry: the mp4 keeps its own 352x288."""
    a, b = _two_tiny(tmp_path)
    report = tmp_path / "mixed"
    argv = ["compare", str(videos_dir / "foreman_cif.mp4"), str(videos_dir / CISCO)]
    argv += ["--width", "320", "--height", "192", "--models", f"{a},{b}", "--frames", "0:4"]
    assert main([*argv, "--report", str(report), "--quiet"]) == 0, capsys.readouterr().err
    assert "tiny_a vs tiny_b over 8 frames of 2 clip(s)" in capsys.readouterr().out
    doc = json.loads((report / "compare.json").read_text())
    assert [Path(c["video"]).name for c in doc["clips"]] == ["foreman_cif.mp4", CISCO]
    # A Y4M known by its content, not its name, keeps its own 64x48 too.
    y4m = tmp_path / "clip_without_suffix"
    write_y4m(y4m, "420jpeg", 64, 48, 4)
    argv[1] = str(y4m)
    assert main([*argv, "--report", str(tmp_path / "y4m"), "--quiet"]) == 0, capsys.readouterr().err


def test_compare_warns_once_a_clip_of_a_range_past_its_end(
    videos_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = _two_tiny(tmp_path)
    clip = videos_dir / "carphone_pristine.mp4"
    argv = ["compare", str(clip), "--models", f"{a},{b}", "--frames", "118:200"]
    with caplog.at_level("WARNING"):
        assert main([*argv, "--report", str(tmp_path / "r"), "--quiet"]) == 0
    said = [r.getMessage() for r in caplog.records if "runs past the end" in r.getMessage()]
    once = (
        f"{clip}: --frames 118:200 (frames= in Python) runs past the end: the video has 120 "
        "frames, so 2 were "
    )
    assert said == [once + "computed"]


def test_compare_names_the_clip_a_frame_range_selects_nothing_of(
    videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _two_tiny(tmp_path)
    clips = [str(videos_dir / "foreman_cif.mp4"), str(videos_dir / "carphone_pristine.mp4")]
    argv = ["compare", *clips, "--models", f"{a},{b}", "--frames", "120:122"]
    assert main([*argv, "--report", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "carphone_pristine.mp4: no frames were selected of its 120: check --frames" in err
    assert not (tmp_path / "r").exists()


def test_compare_refuses_a_stream_it_would_read_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "live.y4m"
    os.mkfifo(fifo)
    argv = ["compare", str(fifo), "--models", "a.onnx,b.onnx", "--report", str(tmp_path / "r")]
    assert main([*argv, "--quiet"]) == 2
    assert (
        f"compare reads each clip once per model, and {fifo} is a stream, read once: save it "
        "to a file first"
    ) in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.y4m"]


@pytest.mark.parametrize("command", ["eval", "compare"])
def test_report_onto_the_dataset_with_force_is_refused_and_keeps_it(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A slip of `--report` onto the dataset (or any folder of one's own) loses nothing."""
    dataset = _dataset(tmp_path / "ds")
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    if command == "eval":
        argv = ["eval", "--dataset", str(dataset), "--models", "x.onnx"]
    else:
        argv = ["compare", "--models", "a.onnx,b.onnx", str(tmp_path / "clip.mp4")]
    assert main([*argv, "--report", str(dataset), "--force", "--quiet"]) == 2
    marker = "summary.json" if command == "eval" else "compare.json"
    err = capsys.readouterr().err
    assert f"ds exists and is not an earlier report (it has no {marker})" in err
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before


def test_a_dataset_linked_into_an_earlier_report_is_not_deleted_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "rep"
    real = _dataset(report / "ds")
    (report / "summary.json").write_text("{}")  # an earlier report, which --force replaces
    linked = tmp_path / "ds2"
    linked.mkdir()
    for name in ("images", "masks"):
        (linked / name).symlink_to(real / name)
    before = sorted(p.relative_to(real) for p in real.rglob("*"))
    argv = ["eval", "--dataset", str(linked), "--models", "x.onnx", "--report", str(report)]
    assert main([*argv, "--force", "--quiet"]) == 2
    err = capsys.readouterr().err
    # The link is in a folder no report writes: refused before its files are listed.
    assert f"{report} holds ds, which no report writes, so even --force will not" in err
    assert sorted(p.relative_to(real) for p in real.rglob("*")) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--dataset", "d", "--models", "a,b", "--report", "r", "--limit", "5", "-q"],
        ["compare", "x.mp4", "y.yuv", "--models", "a,b", "--report", "r", "--width", "320"],
    ],
)
def test_the_recorded_command_parses_back_to_the_same_arguments(argv: list[str]) -> None:
    """What a report records is a command the user can run again: nothing internal in it."""
    from vmafx_saliency.cli.evaluate import _command
    from vmafx_saliency.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    positional = args.videos if argv[0] == "compare" else ()
    recorded = _command(argv[0], args, positional)
    assert "<" not in recorded and "parser" not in recorded, recorded
    again = parser.parse_args(shlex.split(recorded)[1:])
    skip = {"handler", "quiet"}
    assert {k: v for k, v in vars(again).items() if k not in skip} == {
        k: v for k, v in vars(args).items() if k not in skip
    }


def test_compare_block_is_bounded_before_any_model_is_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"not read")
    argv = ["compare", str(tmp_path / "clip.mp4"), "--models", "a.onnx,b.onnx"]
    assert main([*argv, "--report", str(tmp_path / "r"), "--block", "1" + "0" * 20]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"--block 1{'0' * 20}: give 1 to 16384 pixels (block= in Python); a block is a square "
            "of frame pixels"
        )
    )
    assert not (tmp_path / "r").exists()
