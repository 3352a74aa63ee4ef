from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from pathlib import Path

import pytest

from vmafx_saliency.cli.main import main
from vmafx_saliency.errors import (
    InputFileError,
    StaleCardError,
    UsageError,
)
from vmafx_saliency.supply.card import (
    BEGIN,
    END,
    EVAL_BEGIN,
    EVAL_END,
    render_evaluation,
    update_card,
    update_evaluation,
)

ROOT = Path(__file__).resolve().parents[2]
MIRROR_CARD = ROOT / "docs" / "models" / "u2netp_mirror.md"


def _manifest(mirror_onnx: Path) -> Path:
    return Path(f"{mirror_onnx}.manifest.json")


def test_update_then_check_round_trip(tmp_path: Path, mirror_onnx: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"# title\n\n{BEGIN}\nold figures\n{END}\n\ntail\n")
    assert update_card(manifest=_manifest(mirror_onnx), card=card).changed
    text = card.read_text()
    assert text.startswith("# title\n") and text.endswith("\ntail\n")
    assert "old figures" not in text
    assert "| parameters | 1,131,181 |" in text
    # A second run changes nothing, and check mode agrees.
    assert not update_card(manifest=_manifest(mirror_onnx), card=card).changed
    update_card(manifest=_manifest(mirror_onnx), card=card, check=True)


def test_check_mode_refuses_a_stale_card(tmp_path: Path, mirror_onnx: Path) -> None:
    card = tmp_path / "card.md"
    original = f"{BEGIN}\nparameters: 42\n{END}\n"
    card.write_text(original)
    with pytest.raises(StaleCardError, match=r"figures differ .*run 'vmafx-saliency card"):
        update_card(manifest=_manifest(mirror_onnx), card=card, check=True)
    assert card.read_text() == original


def test_a_pipe_for_a_manifest_or_a_card_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # no writer: an ordinary read would block for ever
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    with pytest.raises(InputFileError, match=r"manifest .*pipe\.json: a named pipe, not a"):
        update_card(manifest=fifo, card=card)
    with pytest.raises(InputFileError, match=r"model card .*pipe\.json: a named pipe, not a"):
        update_evaluation(report=REPORT, card=fifo)


def test_card_errors(tmp_path: Path, mirror_onnx: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text("no block here\n")
    with pytest.raises(InputFileError, match=r"no figures block"):
        update_card(manifest=_manifest(mirror_onnx), card=card)
    with pytest.raises(
        InputFileError, match=r"manifest .*absent\.json: no such file: run 'vmafx-saliency export'"
    ):
        update_card(manifest=tmp_path / "absent.json", card=card)
    not_manifest = tmp_path / "x.json"
    not_manifest.write_text("[1, 2]")
    with pytest.raises(InputFileError, match=r"not an export manifest"):
        update_card(manifest=not_manifest, card=card)
    with pytest.raises(InputFileError, match=r"model card .*: no such file"):
        update_card(manifest=_manifest(mirror_onnx), card=tmp_path / "absent.md")


def test_committed_mirror_card_matches_a_fresh_export(mirror_onnx: Path) -> None:
    """The card's figures are the export's, not typed: sha256s, parameters, op table."""
    manifest = json.loads(_manifest(mirror_onnx).read_text())
    card = MIRROR_CARD.read_text()
    assert f"| parameters | {manifest['params']:,} |" in card
    assert f"`{manifest['upstream']['checkpoint']['sha256']}`" in card
    assert f"| ONNX sha256 | `{manifest['output']['sha256']}` |" in card
    card_ops = dict(re.findall(r"^\| ([A-Z]\w+) \| (\d+) \|$", card, flags=re.MULTILINE))
    assert {op: int(n) for op, n in card_ops.items()} == manifest["op_types"]


def test_cli_card(tmp_path: Path, mirror_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    manifest = str(_manifest(mirror_onnx))
    assert main(["card", "--manifest", manifest, "--card", str(card), "--check"]) == 2
    assert "figures differ" in capsys.readouterr().err
    assert main(["card", "--manifest", manifest, "--card", str(card)]) == 0
    assert main(["card", "--manifest", manifest, "--card", str(card), "--check"]) == 0


# --- the evaluation block (eval summary) ---------------------------------------------

STUDENT_CARD = ROOT / "docs" / "models" / "saliency_student_v2.md"
REPORT = ROOT / "docs" / "models" / "reports" / "pascal-s-deployment.summary.json"
STUDENT_MANIFEST = (
    ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx.manifest.json"
)


def _block(text: str, begin: str, end: str) -> str:
    return text[text.index(begin) : text.index(end) + len(end)]


def test_committed_student_card_matches_the_committed_report() -> None:
    """The evaluation table is the report's, and the check passes on the real files."""
    assert not update_evaluation(report=REPORT, card=STUDENT_CARD, check=True).changed
    # The figures block is the committed manifest's (train wrote it).
    assert not update_card(manifest=STUDENT_MANIFEST, card=STUDENT_CARD, check=True).changed


def test_student_card_numbers_are_the_reports(tmp_path: Path) -> None:
    """Hand-checked against the JSON: the student's max F and its ratio to the mirror."""
    doc = json.loads(REPORT.read_text())
    mirror, student = (m["metrics"] for m in doc["models"])
    assert [m["id"] for m in doc["models"]] == ["u2netp_mirror_v1", "saliency_student_v2"]
    assert round(student["max_f"], 4) == 0.7394 and round(mirror["max_f"], 4) == 0.8185
    assert round(student["max_f"] / mirror["max_f"], 3) == 0.903
    block = _block(STUDENT_CARD.read_text(), EVAL_BEGIN, EVAL_END)
    max_f_row = "| max F (i: P and R averaged over images, then F; the paper's) ↑ |"
    assert f"{max_f_row} 0.8185 | 0.7394 | 0.903 |" in block
    assert "| S-measure ↑ | 0.8115 | 0.7437 | 0.916 |" in block
    assert "| MAE (grey mask) ↓ | 0.1000 | 0.1473 | 1.474 |" in block
    assert "850 of 850 pairs" in block and "Protocol `deployment`" in block
    assert f"Produced by `{doc['command']}`" in block
    # The report measured the committed file, not another of that name.
    onnx = ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx"
    assert doc["models"][1]["sha256"] == hashlib.sha256(onnx.read_bytes()).hexdigest()


def test_evaluation_check_refuses_a_stale_block_and_rewrite_fixes_it(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    original = f"# title\n\n{EVAL_BEGIN}\n| max F | 0.99 |\n{EVAL_END}\n\ntail\n"
    card.write_text(original)
    with pytest.raises(
        StaleCardError,
        match=r"^.*card\.md: evaluation differs from .*: run 'vmafx-saliency card "
        r"--report .* --card .*card\.md'$",
    ):
        update_evaluation(report=REPORT, card=card, check=True)
    assert card.read_text() == original
    assert update_evaluation(report=REPORT, card=card).changed
    text = card.read_text()
    assert text.startswith("# title\n") and text.endswith("\ntail\n")
    assert "0.99" not in text and "| S-measure ↑ | 0.8115 | 0.7437 | 0.916 |" in text
    assert not update_evaluation(report=REPORT, card=card).changed
    update_evaluation(report=REPORT, card=card, check=True)


def test_evaluation_block_leaves_the_figures_block_alone(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    original = f"{BEGIN}\nfigures stay\n{END}\n{EVAL_BEGIN}\n{EVAL_END}\n"
    card.write_text(original)
    update_evaluation(report=REPORT, card=card)
    assert card.read_text().startswith(f"{BEGIN}\nfigures stay\n{END}\n{EVAL_BEGIN}\n")


def test_evaluation_errors(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text("no block here\n")
    with pytest.raises(InputFileError, match=r"no evaluation block: add the lines"):
        update_evaluation(report=REPORT, card=card)
    with pytest.raises(
        InputFileError,
        match=r"evaluation summary .*absent\.json: no such file: write it with "
        r"'vmafx-saliency eval --report DIR'",
    ):
        update_evaluation(report=tmp_path / "absent.json", card=card)
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": ')
    with pytest.raises(InputFileError, match=r"broken\.json: not valid JSON .*vmafx-saliency eval"):
        update_evaluation(report=broken, card=card)
    nan = tmp_path / "nan.json"
    nan.write_text('{"schema": NaN}')
    with pytest.raises(InputFileError, match=r"nan\.json: not valid JSON \(NaN is not a number"):
        update_evaluation(report=nan, card=card)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(STUDENT_MANIFEST.read_text())
    with pytest.raises(InputFileError, match=r"not a vmafx-saliency/eval-summary/v1 document"):
        update_evaluation(report=manifest, card=card)
    doc = json.loads(REPORT.read_text())
    del doc["models"][1]["metrics"]["max_f"]
    doc["models"][0]["sha256"] = "not hex"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputFileError, match=r"breaks its schema \(.*models/\d.*\): write it with"):
        update_evaluation(report=bad, card=card)
    with pytest.raises(InputFileError, match=r"model card .*: no such file"):
        update_evaluation(report=REPORT, card=tmp_path / "absent.md")


def test_evaluation_renders_missing_figures_and_one_model() -> None:
    doc = json.loads(REPORT.read_text())
    doc["models"] = doc["models"][1:]
    doc["models"][0]["metrics"]["weighted_f"] = None
    doc["command"] = ""
    block = render_evaluation(doc, summary_link="s.json")
    assert "| metric | `saliency_student_v2` |" in block
    assert "| weighted F ↑ | n/a |" in block
    assert "Produced by `a library call (no command line recorded)`" in block


def test_cli_card_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"{EVAL_BEGIN}\n{EVAL_END}\n")
    report = str(REPORT)
    assert main(["card", "--report", report, "--card", str(card), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "evaluation differs" in err and "--report" in err
    assert main(["card", "--report", report, "--card", str(card)]) == 0
    assert capsys.readouterr().out == f"{card}: evaluation updated\n"
    assert main(["card", "--report", report, "--card", str(card), "--check"]) == 0
    assert capsys.readouterr().out == f"{card}: evaluation up to date\n"
    assert main(["card", "--report", str(tmp_path / "x.json"), "--card", str(card)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_card_wants_exactly_one_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = str(tmp_path / "card.md")
    with pytest.raises(SystemExit) as exc:
        main(["card", "--card", card])
    assert exc.value.code == 2
    assert "one of the arguments --manifest --report is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["card", "--manifest", "m.json", "--report", "r.json", "--card", card])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# --- hostile manifests and summaries, markers, the recorded command --------------


def _student_manifest(tmp_path: Path, **changes: object) -> Path:
    doc = json.loads(STUDENT_MANIFEST.read_text())
    doc.update(changes)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    return path


def _parity_size(size: list[int]) -> list[dict[str, object]]:
    doc = json.loads(STUDENT_MANIFEST.read_text())
    return [{**doc["parity"][0], "size": size}]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"params": "205,009"}, r"breaks its schema \(params: '205,009' is not of type 'integer'"),
        (
            {"parity": _parity_size([320])},
            r"breaks its schema \(parity/0/size: \[320\] is too short",
        ),
        ({"output": {}}, r"breaks its schema \(output: 'bytes' is a required property"),
        ({"model_id": "x\n<!-- figures:end -->"}, r"breaks its schema \(model_id: 'x\\n<!--"),
        ({"params": float("nan")}, r"not valid JSON \(NaN is not a number JSON allows"),
    ],
)
def test_a_malformed_manifest_is_refused_naming_it(
    tmp_path: Path, changes: dict[str, object], match: str
) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    with pytest.raises(InputFileError, match=r"^manifest .*m\.json: " + match):
        update_card(manifest=_student_manifest(tmp_path, **changes), card=card)
    assert card.read_text() == f"{BEGIN}\n{END}\n"


def test_cli_card_a_manifest_without_figures_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    bad = tmp_path / "bad.json"
    bad.write_text('{"op_types": {}, "output": {}}')  # was a KeyError: 'model_id'
    assert main(["card", "--manifest", str(bad), "--card", str(card)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json: not an export manifest" in err
    assert "Traceback" not in err


INJECTED = "x\n<!-- figures:end -->\n# PWNED"


def test_a_manifest_value_cannot_write_markers_into_the_card(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    doc = json.loads(STUDENT_MANIFEST.read_text())
    for name, value in (("image", INJECTED), ("image", "a`b"), ("image", "<b>x</b>")):
        doc["parity"][0][name] = value
        _student_manifest(tmp_path, parity=doc["parity"])
        with pytest.raises(
            InputFileError, match=r"^manifest .*m\.json: parity/0/image '.*' holds a line break"
        ):
            update_card(manifest=tmp_path / "m.json", card=card)
    versions = {"torch": "2.13.0 | pwned"}
    _student_manifest(tmp_path, export={**doc["export"], "versions": versions})
    with pytest.raises(InputFileError, match=r"export/versions/torch '2\.13\.0 \| pwned' holds"):
        update_card(manifest=tmp_path / "m.json", card=card)
    assert card.read_text() == f"{BEGIN}\n{END}\n"


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("command", "vmafx-saliency eval\n<!-- evaluation:end -->\n# PWNED", "command"),
        ("command", "eval <script>alert(1)</script>", "command"),
        ("protocol", {"name": "deployment", "description": "<img src=x>"}, "protocol/description"),
        ("tool", "0.1`", "tool"),
    ],
)
def test_a_summary_value_cannot_write_markers_or_html_into_the_card(
    tmp_path: Path, field: str, value: object, where: str
) -> None:
    doc = json.loads(REPORT.read_text())
    doc[field] = value
    report = tmp_path / "s.json"
    report.write_text(json.dumps(doc))
    card = tmp_path / "card.md"
    card.write_text(f"{EVAL_BEGIN}\n{EVAL_END}\n")
    with pytest.raises(
        InputFileError,
        match=rf"^evaluation summary .*s\.json: {where} '.*' holds a line break.*: write it with",
    ):
        update_evaluation(report=report, card=card)
    assert card.read_text() == f"{EVAL_BEGIN}\n{EVAL_END}\n"


@pytest.mark.parametrize(
    "body",
    [
        f"{BEGIN}\nx\n{END}\n# PWNED\n{END}\n",  # what the injected manifest left behind
        f"{BEGIN}\n{BEGIN}\n{END}\n",
        f"{END}\n{BEGIN}\n",
        f"{BEGIN}\nno end\n",
    ],
)
def test_check_refuses_duplicated_or_misordered_markers(tmp_path: Path, body: str) -> None:
    card = tmp_path / "card.md"
    card.write_text(body)
    for check in (True, False):
        with pytest.raises(InputFileError, match=r"^model card .*card\.md: \d '<!-- figures:begin"):
            update_card(manifest=STUDENT_MANIFEST, card=card, check=check)
    assert card.read_text() == body


def test_cli_check_fails_on_a_card_with_a_stray_end_marker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    manifest = ["--manifest", str(STUDENT_MANIFEST), "--card", str(card)]
    assert main(["card", *manifest]) == 0
    card.write_text(card.read_text() + f"# PWNED\n{END}\n")
    capsys.readouterr()
    assert main(["card", *manifest, "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 '<!-- figures:end -->' lines" in err


def test_a_marker_mentioned_in_prose_is_not_a_marker(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"Add `{BEGIN}` and `{END}` lines.\n\n{BEGIN}\n{END}\n")
    assert update_card(manifest=STUDENT_MANIFEST, card=card).changed
    assert card.read_text().startswith(f"Add `{BEGIN}` and `{END}` lines.\n\n{BEGIN}\nGenerated")


def _recorded_command(card: Path, begin: str) -> list[str]:
    block = card.read_text().split(begin, 1)[1]
    line = re.search(r"`(vmafx-saliency card [^`]+)` \(run from the repository root\)", block)
    assert line, block[:300]
    return shlex.split(line.group(1))[1:]


def test_the_recorded_command_runs_from_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "models").mkdir()
    (tmp_path / "docs").mkdir()
    manifest = tmp_path / "models" / "student.onnx.manifest.json"
    manifest.write_bytes(STUDENT_MANIFEST.read_bytes())
    card = tmp_path / "docs" / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    update_card(manifest=manifest, card=card)
    args = _recorded_command(card, BEGIN)
    manifest_arg = ["--manifest", "models/student.onnx.manifest.json"]
    assert args == ["card", *manifest_arg, "--card", "docs/card.md"]
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--check"]) == 0


def test_the_committed_cards_commands_run_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for begin in (BEGIN, EVAL_BEGIN):
        assert main([*_recorded_command(STUDENT_CARD, begin), "--check"]) == 0
    mirror = _recorded_command(MIRROR_CARD, BEGIN)
    assert mirror[:3] == ["card", "--manifest", "models/u2netp_mirror_v1.onnx.manifest.json"]


def test_a_card_outside_a_repository_names_its_folder(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    update_card(manifest=STUDENT_MANIFEST, card=card)
    assert "--card card.md` (run from its folder)" in card.read_text()


def test_a_path_a_card_cannot_show_is_a_usage_error(tmp_path: Path) -> None:
    manifest = tmp_path / "a|b.json"
    manifest.write_bytes(STUDENT_MANIFEST.read_bytes())
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    with pytest.raises(UsageError, match=r"a path holds a line break, .*rename or move"):
        update_card(manifest=manifest, card=card)
