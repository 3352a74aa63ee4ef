"""evaluate.report: report folders are atomic and --force only replaces an earlier report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vmafx_saliency.errors import OutputExistsError, UsageError
from vmafx_saliency.science import evaluate as ev


def test_report_folder_is_atomic_and_needs_force(tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.mkdir()
    (target / "summary.json").write_text("{}")  # an earlier report
    (target / "grid.png").write_text("old")
    with pytest.raises(OutputExistsError, match=r"report already exists: pass --force"):
        ev._ReportDir(target, marker="summary.json", force=False)
    out = ev._ReportDir(target, marker="summary.json", force=True)
    out.path("report.md").write_text("new")
    assert (target / "grid.png").exists()  # nothing changes before the commit
    out.commit()
    assert sorted(p.name for p in target.iterdir()) == ["report.md"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_new_or_empty_report_folder_needs_no_force(tmp_path: Path) -> None:
    ev.check_report_folder(tmp_path / "new", marker="summary.json", force=False)
    (tmp_path / "empty").mkdir()
    out = ev._ReportDir(tmp_path / "empty", marker="summary.json", force=False)
    out.path("summary.json").write_text("{}")
    out.commit()
    assert [p.name for p in (tmp_path / "empty").iterdir()] == ["summary.json"]


@pytest.mark.parametrize("marker", ["summary.json", "compare.json"])
def test_force_never_replaces_a_folder_that_is_not_a_report(tmp_path: Path, marker: str) -> None:
    """`--report dataset --force` must not swap a dataset (or notes) for a report."""
    data = tmp_path / "pascal-s"
    (data / "images").mkdir(parents=True)
    (data / "images" / "1.jpg").write_bytes(b"jpeg")
    with pytest.raises(
        OutputExistsError,
        match=rf"pascal-s exists and is not an earlier report \(it has no {marker}\), so even "
        r"--force will not replace it: give a new or empty folder",
    ):
        ev.check_report_folder(data, marker=marker, force=True)
    assert (data / "images" / "1.jpg").read_bytes() == b"jpeg"


def test_a_report_path_that_is_a_file_or_the_working_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(UsageError, match=r"--report .*notes\.txt: exists and is not a folder"):
        ev.check_report_folder(notes, marker="summary.json", force=True)
    assert notes.read_text() == "mine"
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.json").write_text("{}")
    monkeypatch.chdir(report)
    for here in (Path(), Path(".."), report):
        with pytest.raises(UsageError, match=r"that is the folder you are in \(or holds it\)"):
            ev.check_report_folder(here, marker="summary.json", force=True)


def test_a_report_that_holds_or_lies_in_an_input_is_refused_even_with_force(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.json").write_text("{}")  # an earlier report ...
    model = report / "student.onnx"  # ... that a model was copied into
    model.write_bytes(b"onnx")
    reads = [("--dataset", tmp_path / "ds"), ("--models", model), ("the sidecar", None)]
    with pytest.raises(UsageError, match=rf"--report {report} holds --models {model}: give"):
        ev.check_report_folder(report, marker="summary.json", force=True, reads=reads)
    with pytest.raises(UsageError, match=r"--report \S+ is in --dataset \S+ds: give"):
        ev.check_report_folder(tmp_path / "ds" / "rep", marker="summary.json", force=False,
                               reads=reads)  # fmt: skip
    assert model.read_bytes() == b"onnx"
    # Not read by this run, the model is still no report's file: kept, refused.
    with pytest.raises(OutputExistsError, match=r"holds student\.onnx, which no report writes"):
        ev.check_report_folder(report, marker="summary.json", force=True, reads=reads[:1])
    # Without it, the earlier report is replaced as before.
    model.unlink()
    ev.check_report_folder(report, marker="summary.json", force=True, reads=reads[:1])


@pytest.mark.parametrize(
    ("marker", "theirs"),
    [("summary.json", "compare.md"), ("compare.json", "thesis.tex"), ("summary.json", "plots")],
)
def test_force_never_replaces_a_report_folder_that_holds_files_no_report_writes(
    tmp_path: Path, marker: str, theirs: str
) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / marker).write_text("{}")
    (report / "notes.md").write_text("mine")
    if theirs == "plots":
        (report / theirs).mkdir()
    else:
        (report / theirs).write_text("mine")
    first = min(theirs, "notes.md")
    with pytest.raises(
        OutputExistsError,
        match=rf"report holds {first} \(and 1 more\), which no report writes, so even --force "
        r"will not replace it: move it out",
    ):
        ev.check_report_folder(report, marker=marker, force=True)
    assert (report / "notes.md").read_text() == "mine"


def test_the_folder_is_checked_again_when_the_report_is_swapped_in(tmp_path: Path) -> None:
    """Eval works for minutes: what lands in the folder meanwhile is not replaced unasked."""
    target = tmp_path / "report"
    first = ev._ReportDir(target, marker="summary.json", force=False)
    second = ev._ReportDir(target, marker="summary.json", force=False)
    second.path("summary.json").write_text("{}")
    second.commit()  # another run, into the same new folder, finished first
    first.path("summary.json").write_text("{}")
    with pytest.raises(OutputExistsError, match=r"report already exists: pass --force"):
        first.commit()
    first.discard()
    assert [p.name for p in target.iterdir()] == ["summary.json"]
    # With --force, a file of someone's put there meanwhile is still refused.
    third = ev._ReportDir(target, marker="summary.json", force=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"holds notes\.txt, which no report writes"):
        third.commit()
    third.discard()
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_killed_reports_hidden_folder_is_swept_by_the_next(tmp_path: Path) -> None:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()  # a pid that is gone: the run SIGKILL ended
    left = tmp_path / f".report.{child.pid}.abcd1234"
    left.mkdir()
    (left / "summary.json").write_text("{}")
    out = ev._ReportDir(tmp_path / "report", marker="summary.json", force=False)
    assert out.tmp.name.startswith(f".report.{os.getpid()}.")
    out.path("summary.json").write_text("{}")
    out.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
