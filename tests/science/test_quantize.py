"""INT8 models with a measured budget: calibration sets, the budget's verdicts, the command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._video import write_y4m
from tests.cli._commands import Capture, one_line_error, run
from vmafx_saliency._util import sha256_bytes
from vmafx_saliency.errors import QuantizeError, UsageError
from vmafx_saliency.science import quantize as q
from vmafx_saliency.supply import scan
from vmafx_saliency.supply.registry import Registry

MSRA = Path(__file__).resolve().parents[3] / "shared" / "data" / "msra-b" / "images"


@pytest.fixture
def calibration(tmp_path: Path) -> Path:
    if not MSRA.is_dir():
        pytest.skip(f"MSRA-B not found at {MSRA}: put ../shared beside the project")
    folder = tmp_path / "cal"
    folder.mkdir()
    for image in sorted(MSRA.iterdir())[:6]:
        shutil.copy(image, folder / image.name)
    return folder


def test_the_calibration_digest_is_of_names_and_bytes(calibration: Path) -> None:
    first = q.CalibrationSet.from_folder(calibration, count=4)
    assert len(first.files) == 4
    assert q.CalibrationSet.from_folder(calibration, count=4).digest == first.digest
    lines = "".join(f"{p.name}\0{sha256_bytes(p.read_bytes())}\n" for p in first.files)
    assert first.digest == sha256_bytes(lines.encode())
    (calibration / first.files[0].name).write_bytes(first.files[1].read_bytes())
    assert q.CalibrationSet.from_folder(calibration, count=4).digest != first.digest


def test_calibrating_on_the_evaluation_set_is_refused(tmp_path: Path, calibration: Path) -> None:
    evaluation = tmp_path / "eval"
    (evaluation / "images").mkdir(parents=True)
    shutil.copy(next(calibration.iterdir()), evaluation / "images" / "x.jpg")
    with pytest.raises(QuantizeError, match=r"shares 1 file\(s\) with the evaluation set"):
        q.CalibrationSet.from_folder(calibration, count=6, exclude=evaluation)
    with pytest.raises(QuantizeError, match=r"lies in the evaluation set"):
        q.CalibrationSet.from_folder(evaluation / "images", count=6, exclude=evaluation)
    with pytest.raises(QuantizeError, match=r"no images .* or clips"):
        q.CalibrationSet.from_folder(_empty(tmp_path), count=6)


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_clips_calibrate_on_their_own_luma(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    write_y4m(folder / "a.y4m", None, 64, 48, 10)
    pre = Registry.load().get("saliency_student_v2").load_sidecar().preprocessing
    tensors = list(
        q.calibration_tensors(q.CalibrationSet.from_folder(folder, count=1), pre, frames_per_clip=5)
    )
    assert len(tensors) == 5
    assert all(t.shape == (1, 3, 320, 320) and t.dtype == np.float32 for t in tensors)


def test_the_budget_names_each_figure_past_it() -> None:
    images = q.ImageFigures(
        "pascal-s", 10, {"max_f": 0.75, "s_measure": 0.74}, {"max_f": 0.73, "s_measure": 0.735}
    )
    video = q.VideoFigures("clip.mp4", 100, 0.99, 0.003)
    report = q.AccuracyReport(images, (video,), q.AccuracyBudget())
    problems = report.problems()
    # max F fell 0.02 (> 0.01), S 0.005 (within), Pearson 0.99 < 0.995.
    assert len(problems) == 2
    assert problems[0].startswith("max_f 0.7300 against 0.7500 (a drop of 0.0200 > 0.01)")
    assert problems[1] == "clip.mp4: per-frame saliency_mean Pearson 0.9900 < 0.995"
    assert report.to_json()["within_budget"] is False
    kept = q.AccuracyReport(images, (), q.AccuracyBudget(max_f=0.05))
    assert kept.problems() == [] and kept.to_json()["within_budget"] is True


def test_quantize_the_student_within_its_budget_and_refuse_beyond(
    tmp_path: Path, calibration: Path, pascal_s_dir: Path, videos_dir: Path, capsys: Capture
) -> None:
    out = tmp_path / "out" / "student_int8.onnx"
    common: list[str | Path] = [
        "quantize", "--model", "saliency_student_v2", "--calibration", calibration,
        "--dataset", pascal_s_dir, "--limit", "8",
        "--clip", videos_dir / "foreman_cif.mp4", "--clip-frames", "30", "--output", out,
    ]  # fmt: skip
    # A budget no int8 model meets (a perfect correlation): refused, with its figures,
    # and nothing written.
    code, printed, err = run(capsys, *common, "--min-pearson", "1.0")
    assert code == 2
    assert "is beyond its accuracy budget: foreman_cif.mp4: per-frame saliency_mean Pearson" in (
        one_line_error(err, "quantize")
    )
    # The figures come first, on standard output: how far off, not only that it is.
    assert "max_f      fp32 " in printed and "foreman_cif.mp4: saliency_mean Pearson" in printed
    assert not out.parent.exists() or not any(out.parent.iterdir())

    code, printed, _ = run(capsys, *common)
    assert code == 0, printed
    assert "max_f      fp32 " in printed and "(8 pairs of pascal-s, deployment protocol)" in printed
    data = out.read_bytes()
    assert scan.scan_bytes(data).allowed
    manifest = json.loads(out.with_name("student_int8.onnx.manifest.json").read_text())
    parent = Registry.load().get("saliency_student_v2")
    assert manifest["parent"] == {"id": "saliency_student_v2", "sha256": parent.sha256}
    assert manifest["output"]["sha256"] == sha256_bytes(data)
    assert manifest["calibration"]["files"] == 6
    assert manifest["accuracy"]["images"]["pairs"] == 8
    assert manifest["accuracy"]["within_budget"] is True
    sidecar = json.loads(out.with_name("student_int8.sidecar.json").read_text())
    assert sidecar["model_id"] == "student_int8"
    assert sidecar["preprocessing"] == parent.load_sidecar().to_json()["preprocessing"]
    # Written once: a second run without --force refuses and keeps the files.
    code, _, err = run(capsys, *common)
    assert code == 2 and "--force" in one_line_error(err, "quantize")
    assert out.read_bytes() == data


def test_a_flat_candidate_does_not_pass_for_a_perfect_correlation() -> None:
    varying = np.array([0.1, 0.2, 0.3, 0.25])
    flat = np.full(4, 0.2)
    assert q._pearson(varying, flat) == 0.0  # undefined r: the flat series fails
    assert q._pearson(flat, flat.copy()) == 1.0
    assert q._pearson(flat, flat + 0.1) == 0.0
    assert q._pearson(varying, 2 * varying + 1) == pytest.approx(1.0)
    noisy = varying + np.array([0.01, -0.02, 0.0, 0.015])
    assert q._pearson(varying, noisy) == pytest.approx(np.corrcoef(varying, noisy)[0, 1])


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("max_f", -0.1, r"max F drop -0\.1: give a number from 0\.0 to 1\.0"),
        ("s_measure", float("nan"), r"S-measure drop nan: give a number"),
        ("min_pearson", 1.5, r"minimum Pearson 1\.5: give a number from -1\.0 to 1\.0"),
    ],
)
def test_a_budget_out_of_range_is_refused(field: str, value: float, why: str) -> None:
    from vmafx_saliency.errors import UsageError

    with pytest.raises(UsageError, match=why):
        q.AccuracyBudget(**{field: value})


def test_refusals_come_before_any_work(tmp_path: Path, calibration: Path, capsys: Capture) -> None:
    import os

    from tests._jobs import write_tiny

    model, sidecar = write_tiny(tmp_path / "m", beside=True)
    base: list[str | Path] = ["quantize", "--model-path", model, "--calibration", calibration]
    clip: list[str | Path] = ["--clip", tmp_path / "none.mp4"]
    # The float model's own files are never outputs, even with --force.
    code, _, err = run(capsys, *base, *clip, "--output", model, "--force")
    assert code == 2 and "would overwrite the float model's tiny.onnx" in one_line_error(
        err, "quantize"
    )
    for odd in ("-", "/dev/null", str(tmp_path / "x.json")):
        code, _, err = run(capsys, *base, *clip, "--output", odd)
        assert code == 2 and "name an .onnx file" in one_line_error(err, "quantize")
    # No clip: the Pearson budget would be recorded unmeasured.
    code, _, err = run(capsys, *base, "--no-dataset", "--output", tmp_path / "o.onnx")
    assert code == 2 and "give at least one --clip" in one_line_error(err, "quantize")
    # --percentile with another method would be ignored: refused.
    code, _, err = run(capsys, *base, *clip, "--output", tmp_path / "o.onnx", "--percentile", "99")
    refused = "--percentile 99.0 sets --method percentile's cut, and the method is minmax"
    assert code == 2 and refused in one_line_error(err, "quantize")
    # Both ways of naming the parent: which one was meant is not guessed.
    code, _, err = run(capsys, *base, *clip, "--output", tmp_path / "o.onnx", "--model", "x")
    assert code == 2 and "--model ID or --model-path, not both" in one_line_error(err, "quantize")
    # A registered model's files are never outputs, even with --force.
    import vmafx_saliency

    shipped = Path(vmafx_saliency.__file__).parent / "models" / "saliency_student_v2_int8.onnx"
    pinned = shipped.read_bytes()
    code, _, err = run(capsys, *base, *clip, "--output", shipped, "--force")
    assert code == 2 and (
        "saliency_student_v2_int8.onnx of the registered model saliency_student_v2_int8, even "
        "with --force"
    ) in one_line_error(err, "quantize")
    assert shipped.read_bytes() == pinned
    # The extractor's cap on threads holds here too.
    code, _, err = run(capsys, *base, *clip, "--output", tmp_path / "o.onnx", "--threads", "257")
    assert code == 2 and "--threads 257: give at most 256" in one_line_error(err, "quantize")
    # A pipe among the calibration files is refused, not waited on.
    os.mkfifo(calibration / "zz.jpg")
    code, _, err = run(capsys, *base, *clip, "--output", tmp_path / "o.onnx")
    assert code == 2 and "zz.jpg" in one_line_error(err, "quantize")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal", "m"]
    assert sidecar.exists()


def test_installed_there_is_no_default_dataset_and_no_missing_extra_goes_unnamed(
    tmp_path: Path, calibration: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from tests._jobs import write_tiny
    from vmafx_saliency.cli import quantize as cli_quantize

    model, _ = write_tiny(tmp_path / "m", beside=True)
    argv: list[str | Path] = ["quantize", "--model-path", model, "--calibration", calibration]
    argv += ["--clip", tmp_path / "none.mp4", "--output", tmp_path / "o.onnx"]
    # Installed, no ../shared beside the package: --dataset is asked for, not invented.
    monkeypatch.setattr(cli_quantize, "DEFAULT_DATASET", None)
    code, _, err = run(capsys, *argv)
    assert code == 2 and "so --dataset has no default: give --dataset DIR" in one_line_error(
        err, "quantize"
    )
    # A missing package of the extra is named with the extra, before any file is read.
    monkeypatch.setitem(sys.modules, "py_sod_metrics", None)  # import raises ImportError
    code, _, err = run(capsys, *argv, "--no-dataset")
    assert code == 2
    assert (
        "needs the Python package 'py_sod_metrics' (pysodmetrics on PyPI), which is not "
        "installed: run pip install 'vmafx-saliency[quantize]'"
    ) in one_line_error(err, "quantize")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal", "m"]


def test_a_model_path_needs_no_readable_overlay_registry(
    tmp_path: Path, calibration: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As extract --model-path: the user's broken overlay is no reason to refuse.
    from tests._jobs import write_tiny

    broken = tmp_path / "overlay.json"
    broken.write_text("{")
    monkeypatch.setenv("VMAFX_SALIENCY_REGISTRY", str(broken))
    model, _ = write_tiny(tmp_path / "m", beside=True)
    argv: list[str | Path] = ["quantize", "--model-path", model, "--calibration", calibration]
    code, _, err = run(capsys, *argv, "--no-dataset", "--output", tmp_path / "o.onnx")
    assert code == 2 and "give at least one --clip" in one_line_error(err, "quantize")
    # --model reads the registry, the overlay too: there it is reported.
    argv[1:3] = ["--model", "x"]
    code, _, err = run(capsys, *argv, "--no-dataset", "--output", tmp_path / "o.onnx")
    assert code == 2 and "overlay.json is not valid JSON" in one_line_error(err, "quantize")


def test_a_parent_replaced_after_the_gate_is_not_quantised(
    tmp_path: Path, calibration: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --model-path: the bytes quantised are the bytes the loader passed, or nothing.
    from tests._jobs import write_tiny
    from vmafx_saliency.supply import loader

    model, _ = write_tiny(tmp_path / "m", beside=True)
    gate = loader.load_ad_hoc
    swapped: list[Path] = []

    def gate_then_swap(path: Path, **kwargs: Any) -> loader.LoadedModel:
        passed = gate(path, **kwargs)
        with passed.path.open("ab") as f:  # what another writer could do now
            f.write(b"\0")
        swapped.append(passed.path)
        return passed

    monkeypatch.setattr(loader, "load_ad_hoc", gate_then_swap)
    code, _, err = run(
        capsys, "quantize", "--model-path", model, "--calibration", calibration, "--no-dataset",
        "--clip", tmp_path / "none.mp4", "--output", tmp_path / "o.onnx",
    )  # fmt: skip
    assert swapped == [model]
    assert code == 2
    assert "changed after the loader checked it: run the command again" in one_line_error(
        err, "quantize"
    )
    assert not (tmp_path / "o.onnx").exists()


def test_a_model_id_or_clip_that_cannot_be_used_is_refused_before_any_work(
    tmp_path: Path, calibration: Path, videos_dir: Path, capsys: Capture
) -> None:
    import os

    from tests._jobs import write_tiny

    model, _ = write_tiny(tmp_path / "m", beside=True)
    base: list[str | Path] = ["quantize", "--model-path", model, "--calibration", calibration]
    base += ["--no-dataset", "--output"]
    for output, ident in (
        (tmp_path / "My Model.onnx", []),
        (tmp_path / "o.onnx", ["--id", "../x"]),
    ):
        code, _, err = run(capsys, *base, output, *ident, "--clip", videos_dir / "foreman_cif.mp4")
        assert code == 2 and "(--id, or --output's file name): use lowercase letters" in (
            one_line_error(err, "quantize")
        )
    # A clip that is also a calibration file would flatter the budget.
    shutil.copy(videos_dir / "carphone_distorted.mp4", calibration / "c.mp4")
    code, out, err = run(capsys, *base, tmp_path / "o.onnx", "--clip", calibration / "c.mp4")
    assert code == 2 and "is also in the calibration folder" in one_line_error(err, "quantize")
    assert out == ""  # no figures to show: not even an empty line
    # Raw YUV says nothing of its size, and quantize takes none.
    code, _, err = run(capsys, *base, tmp_path / "o.onnx", "--clip", videos_dir / "x.yuv")
    assert code == 2 and "x.yuv: give a clip that says its own size" in one_line_error(
        err, "quantize"
    )
    # A clip that is a pipe is refused, not waited on; a missing one at once too.
    os.mkfifo(tmp_path / "pipe.mp4")
    for clip in (tmp_path / "pipe.mp4", tmp_path / "none.mp4"):
        code, _, err = run(capsys, *base, tmp_path / "o.onnx", "--clip", clip)
        assert code == 2 and clip.name in one_line_error(err, "quantize")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal", "m", "pipe.mp4"]


def test_a_set_that_cannot_be_written_whole_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import errno
    from collections.abc import Iterator

    from vmafx_saliency import _util
    from vmafx_saliency.errors import OutputError
    from vmafx_saliency.supply.registry import Sidecar

    sidecar = Sidecar.load(Registry.load().get("saliency_student_v2").sidecar)
    quantized = q.Quantized(b"onnx", {"parent": {"id": "p"}}, None)  # type: ignore[arg-type]
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.onnx").symlink_to("/proc/vmafx-saliency-test.onnx")  # the model cannot land
    with pytest.raises(OutputError, match=r"cannot write /proc/\S+\.onnx"):
        q.write_quantized(quantized, output=out / "m.onnx", model_id="m", sidecar=sidecar,
                          force=True)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["m.onnx"]  # the link only: no sidecar
    # An earlier set, then a rewrite (--force) whose model cannot land: the earlier set
    # stays whole, sidecar and manifest included.
    (out / "m.onnx").unlink()
    q.write_quantized(quantized, output=out / "m.onnx", model_id="m", sidecar=sidecar,
                      force=False)  # fmt: skip
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["m.onnx", "m.onnx.manifest.json", "m.sidecar.json"]
    real = _util.atomic_writer

    @contextlib.contextmanager
    def disk_full_at_the_sidecar(path: Path, *, force: bool) -> Iterator[Any]:
        with real(path, force=force) as fh:
            if path.name.endswith(".sidecar.json"):  # the last written: the others wait
                raise OSError(errno.ENOSPC, "No space left on device")
            yield fh

    monkeypatch.setattr(_util, "atomic_writer", disk_full_at_the_sidecar)
    changed = q.Quantized(b"new onnx", {"parent": {"id": "p"}}, None)  # type: ignore[arg-type]
    with pytest.raises(OutputError, match=r"beside \S+m\.onnx: No space left on device"):
        q.write_quantized(changed, output=out / "m.onnx", model_id="m", sidecar=sidecar,
                          force=True)  # fmt: skip
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(UsageError, match=r"model id 'M M': use lowercase"):
        q.write_quantized(quantized, output=out / "n.onnx", model_id="M M", sidecar=sidecar,
                          force=True)  # fmt: skip


def test_write_quantized_spares_registered_and_parent_files_even_with_force(
    tmp_path: Path,
) -> None:
    """The library call keeps the command's rule: a pinned model overwritten stops loading."""
    import vmafx_saliency
    from vmafx_saliency.supply.registry import Sidecar

    sidecar = Sidecar.load(Registry.load().get("saliency_student_v2").sidecar)
    quantized = q.Quantized(b"onnx", {"parent": {"id": "p"}}, None)  # type: ignore[arg-type]
    models = Path(vmafx_saliency.__file__).parent / "models"
    shipped = models / "saliency_student_v2_int8.onnx"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    # Its sidecar too: the output named beside it writes "<stem>.sidecar.json".
    for output in (shipped, tmp_path / "elsewhere" / "x.onnx"):
        parent = [tmp_path / "elsewhere" / "x.sidecar.json"]
        with pytest.raises(UsageError, match=r"would overwrite \S+ of the registered model "
                           r"saliency_student_v2_int8, even with --force|the float model's "
                           r"x\.sidecar\.json"):  # fmt: skip
            q.write_quantized(quantized, output=output, model_id="m", sidecar=sidecar,
                              force=True, parent_files=parent)  # fmt: skip
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before
    assert not (tmp_path / "elsewhere").exists()
