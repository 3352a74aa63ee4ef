"""The load command through cli.main: a model through the loader gate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import (
    flip_byte,
    register_tiny,
    write_model,
)
from tests.cli._commands import Capture, one_line_error, run
from vmafx_saliency.cli.main import main
from vmafx_saliency.supply import registry as reg

pytestmark = pytest.mark.usefixtures("isolated")


def test_load_a_registered_model(tmp_path: Path, capsys: Capture) -> None:
    register_tiny(tmp_path)
    code, out, _ = run(capsys, "load", "--model", "tiny", "--size", "32")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "tiny: loaded (pinned; passed path, identity, content, contract)"
    assert re.fullmatch(r"  sha256 [0-9a-f]{64}", lines[1])
    assert re.fullmatch(r"  one inference at 32x32: mean saliency 0\.\d{4}", lines[2])

    code, out, _ = run(capsys, "load", "--model", "tiny", "--signed", "--size", "16")
    assert code == 0
    assert out.splitlines()[0] == (
        "tiny: loaded (signed; passed path, identity, signature, content, contract)"
    )


def test_load_refusal_is_one_line(tmp_path: Path, capsys: Capture) -> None:
    register_tiny(tmp_path)
    flip_byte(reg.Registry.load().get("tiny").onnx)
    code, out, err = run(capsys, "load", "--model", "tiny")
    assert (code, out) == (2, "")
    assert re.match(
        r"loader refused .*model\.onnx at the identity check: its sha256",
        one_line_error(err, "load"),
    )


def test_load_the_default(tmp_path: Path, capsys: Capture) -> None:
    code, _, err = run(capsys, "load")
    assert code == 2
    assert "no default model for extractor 'mobilesal'" in one_line_error(err, "load")


def test_load_ad_hoc(tmp_path: Path, capsys: Capture) -> None:
    write_model(tmp_path / "in", "loose")
    path = tmp_path / "in" / "loose" / "model.onnx"
    code, out, _ = run(capsys, "load", "--model-path", path, "--size", "24")
    assert code == 0
    assert out.splitlines()[0] == f"{path}: loaded (ad-hoc; passed path, content, contract)"

    code, out, err = run(capsys, "load", "--model-path", path, "--signed")
    assert (code, out) == (2, "")
    assert one_line_error(err, "load").startswith("--signed needs a registered model")

    assert run(capsys, "load", "--model-path", path, "--size", "0")[0] == 2
    with pytest.raises(SystemExit) as exc:
        main(["load", "--model", "tiny", "--model-path", str(path)])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["0", "4097", "100000"])
def test_load_size_is_bounded_as_the_extractors(tmp_path: Path, capsys: Capture, size: str) -> None:
    code, out, err = run(capsys, "load", "--size", size)
    assert (code, out) == (2, "")
    assert one_line_error(err, "load") == (
        f"--size {size}: give 1 to 4096 pixels a side (the extractor's limit too); a larger "
        "probe fills the memory"
    )
