"""The registry commands through cli.main: add, list, show, validate, promote."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import (
    COMMITTED,
    report_doc,
    write_json,
    write_model,
)
from tests.cli._commands import Capture, one_line_error, run
from vmafx_saliency.cli.main import main
from vmafx_saliency.supply import registry as reg

pytestmark = pytest.mark.usefixtures("isolated")


def add_args(folder: Path, model_id: str, *extra: str | Path) -> list[str | Path]:
    inputs = folder / model_id
    return [
        "registry",
        "add",
        inputs / "model.onnx",
        "--id",
        model_id,
        "--sidecar",
        inputs / "sidecar.json",
        "--license",
        "BSD-3-Clause",
        "--license-file",
        inputs / "LICENSE.txt",
        *extra,
    ]


def test_registry_add_list_show_validate_promote(
    tmp_path: Path, isolated: Path, signed_model: tuple[Path, Path], capsys: Capture
) -> None:
    model, public_key = signed_model
    folder = tmp_path / "in"
    code, out, _ = run(
        capsys,
        *add_args(folder, "tiny", "--bundle", f"{model}.sigstore.json", "--public-key", public_key),
    )
    assert code == 0
    assert out.strip() == f"registered tiny (alternative) in {isolated}"

    code, out, _ = run(capsys, "registry", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["id", "extractor", "status", "default", "source", "file"]
    assert row.split() == [
        "tiny",
        "mobilesal",
        "alternative",
        "fork-trained",
        str(isolated.parent.resolve() / "models" / "tiny" / "model.onnx"),
    ]

    code, out, _ = run(capsys, "registry", "show", "tiny")
    assert code == 0
    shown = dict(line.split(None, 1) for line in out.splitlines())
    assert shown["id"] == "tiny"
    assert shown["status"] == "alternative"
    assert re.fullmatch(r"[0-9a-f]{64}", shown["sha256"])
    assert shown["source"] == '{"type": "fork-trained", "repo": null, "commit": null, ' + (
        '"checkpoint_sha256": null}'
    )
    assert "PosixPath" not in out
    assert shown["verification"].startswith('{"public_key": "/')

    code, out, _ = run(capsys, "registry", "validate", isolated)
    assert code == 0
    assert out.splitlines()[0] == f"{isolated}: OK (1 model, 0 errors, 0 warnings)"

    # No default yet: promotion needs only the candidate's figure.
    report = write_json(tmp_path / "r1.json", report_doc({"tiny": {"s_measure": 0.7}}))
    code, out, _ = run(
        capsys, "registry", "promote", "tiny", "--report", report, "--metric", "s_measure"
    )
    assert code == 0
    assert out.strip() == (
        "promoted tiny to default: s_measure (higher is better): tiny 0.7; "
        "no current default to compare with"
    )

    write_model(folder, "next")
    assert run(capsys, *add_args(folder, "next"))[0] == 0
    worse = write_json(
        tmp_path / "worse.json",
        report_doc({"tiny": {"s_measure": 0.7}, "next": {"s_measure": 0.6}}),
    )
    code, out, err = run(
        capsys, "registry", "promote", "next", "--report", worse, "--metric", "s_measure"
    )
    assert (code, out) == (2, "")
    assert one_line_error(err, "registry promote").startswith(
        "not promoting 'next': on s_measure (higher is better) it scores 0.6 against 0.7"
    )
    better = write_json(
        tmp_path / "better.json",
        report_doc({"tiny": {"s_measure": 0.7}, "next": {"s_measure": 0.8}}),
    )
    code, out, _ = run(
        capsys, "registry", "promote", "next", "--report", better, "--metric", "s_measure"
    )
    assert code == 0
    assert out.strip() == (
        "promoted next to default: s_measure (higher is better): next 0.8 vs tiny 0.7"
    )
    rows = {
        line.split()[0]: line.split()
        for line in run(capsys, "registry", "list")[1].splitlines()[1:]
    }
    assert rows["next"][2:4] == ["production", "yes"]
    assert rows["tiny"][2:4] == ["alternative", "fork-trained"]


def test_registry_show_unknown_id(capsys: Capture) -> None:
    code, out, err = run(capsys, "registry", "show", "nope")
    assert (code, out) == (2, "")
    assert "no model 'nope'" in one_line_error(err, "registry show")


def test_registry_list_empty_and_no_action(capsys: Capture) -> None:
    assert run(capsys, "registry", "list")[:2] == (0, "no models registered\n")
    code, out, _ = run(capsys, "registry")
    assert code == 2
    assert "list, show, validate, add and promote" in out


def test_registry_add_takes_no_trust_root_flags(tmp_path: Path, capsys: Capture) -> None:
    write_model(tmp_path / "in", "tiny")
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in add_args(tmp_path / "in", "tiny", "--staging")])
    assert exc.value.code == 2
    assert "unrecognized arguments: --staging" in capsys.readouterr().err


def test_registry_add_oidc_issuer_alone_is_refused(tmp_path: Path, capsys: Capture) -> None:
    write_model(tmp_path / "in", "tiny")
    code, _, err = run(capsys, *add_args(tmp_path / "in", "tiny", "--oidc-issuer", "https://i"))
    assert code == 2
    assert "verification for 'tiny': give exactly one of" in one_line_error(err, "registry add")
    assert not reg.overlay_registry_path().exists()


def test_registry_add_reads_the_id_from_the_manifest(tmp_path: Path, capsys: Capture) -> None:
    write_model(tmp_path / "in", "tiny")
    inputs = tmp_path / "in" / "tiny"
    args = [a for a in add_args(tmp_path / "in", "tiny") if a not in ("--id", "tiny")]
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, *args, "--manifest", bad)
    assert code == 2
    assert one_line_error(err, "registry add").startswith(
        f"{bad}: cannot read the model id from the export manifest"
    )
    code, _, err = run(capsys, *args)
    assert code == 2
    assert one_line_error(err, "registry add") == (
        "give --id, or --manifest (or --quantization-manifest) to take the model id from it"
    )
    assert (inputs / "model.onnx").is_file()
    assert not reg.overlay_registry_path().exists()


def test_registry_add_refuses_a_manifest_that_is_a_pipe(tmp_path: Path, capsys: Capture) -> None:
    # A pipe with no writer: an ordinary read of the manifest would block for ever.
    write_model(tmp_path / "in", "tiny")
    args = [a for a in add_args(tmp_path / "in", "tiny") if a not in ("--id", "tiny")]
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    code, _, err = run(capsys, *args, "--manifest", fifo)
    assert code == 2
    assert one_line_error(err, "registry add") == (
        f"export manifest {fifo}: a named pipe, not a regular file: "
        "pass the export manifest file itself"
    )
    assert not reg.overlay_registry_path().exists()


def test_registry_validate_the_committed_file(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.delenv(reg.ENV_COMMITTED)
    code, out, _ = run(capsys, "registry", "validate", COMMITTED)
    assert code == 0, out
    assert out.splitlines()[0].startswith(f"{COMMITTED}: OK (")
    # With no path it validates the committed registry, too.
    assert run(capsys, "registry", "validate")[0] == 0


def test_registry_validate_an_invalid_file_exits_1(tmp_path: Path, capsys: Capture) -> None:
    bad = write_json(tmp_path / "bad.json", {"schema": "nope", "models": []})
    code, out, _ = run(capsys, "registry", "validate", bad)
    assert code == 1
    assert out.splitlines()[0].startswith(f"{bad}: INVALID (")
