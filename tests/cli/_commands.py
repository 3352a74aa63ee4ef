"""Running the CLI in-process, for the command tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmafx_saliency.cli.main import main

Capture = pytest.CaptureFixture[str]


def run(capsys: Capture, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, command: str) -> str:
    """The single stderr line of a refused command, without its prefix."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    prefix = f"vmafx-saliency {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]
