"""The release commands through cli.main: stage and verify."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import (
    BSD_TEXT,
    card_folder,
    register_tiny,
)
from tests.cli._commands import Capture, one_line_error, run
from vmafx_saliency.supply import registry as reg

pytestmark = pytest.mark.usefixtures("isolated")


def test_release_stage_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    registered = register_tiny(tmp_path)
    card_folder(tmp_path, monkeypatch, "tiny")
    out_dir = tmp_path / "dist" / "tiny"
    key = tmp_path / "keys" / "tiny" / "signing.pem"
    code, out, _ = run(capsys, "release", "stage", "tiny", "--out", out_dir, "--private-key", key)
    assert code == 0
    assert out.splitlines() == [
        f"tiny: staged 8 files in {out_dir}",
        "  LICENSE.txt",
        "  SHA256SUMS",
        "  model.onnx",
        "  model.onnx.sigstore.json",
        "  model.sidecar.json",
        "  release.json",
        "  release.sigstore.json",
        "  tiny.md",
    ]
    assert (out_dir / "LICENSE.txt").read_text() == BSD_TEXT

    for flags in ([], ["--public-key", str(registered.public_key)]):
        code, out, _ = run(capsys, "release", "verify", out_dir, *flags)
        assert code == 0, out
        lines = out.splitlines()
        # 6 sums, two signatures, the registry's pins, its licence and source, scan,
        # contract, licence, verdict
        assert len(lines) == 14
        assert any(line.startswith("OK    model.onnx (pin): ") for line in lines)
        assert any(line.startswith("OK    release.json (registry): ") for line in lines)
        assert all(line.startswith("OK  ") for line in lines[:-1])
        assert lines[-1] == f"{out_dir}: release verified"

    code, _, err = run(capsys, "release", "verify", out_dir, "--oidc-issuer", "https://i")
    assert code == 2
    assert one_line_error(err, "release verify").startswith(
        "keyless verification takes exactly one of --identity ID and --identity-regexp"
    )

    (out_dir / "extra.txt").write_text("x\n")
    code, out, _ = run(capsys, "release", "verify", out_dir)
    assert code == 1
    assert "FAIL  extra.txt (sum): not listed in SHA256SUMS: an unexpected file" in out
    assert out.splitlines()[-1] == f"{out_dir}: release NOT verified"

    # Staged without a key: it says so, and verify fails the release signature.
    unsigned = tmp_path / "dist" / "unsigned"
    code, out, _ = run(capsys, "release", "stage", "tiny", "--out", unsigned)
    assert code == 0
    assert out.splitlines()[-1].startswith(f"note: {unsigned} is not signed")
    code, out, _ = run(capsys, "release", "verify", unsigned)
    assert code == 1
    assert (
        "FAIL  release.sigstore.json (signature): absent: release.json, SHA256SUMS, the card "
        "and the licence are unsigned" in out
    )
    code, out, err = run(capsys, "release", "stage", "tiny", "--out", tmp_path / "in")
    assert (code, out) == (2, "")
    assert one_line_error(err, "release stage").endswith(
        "exists and is not a staged release: choose an empty or new folder"
    )


def test_release_stage_with_the_binary_absent(tmp_path: Path, capsys: Capture) -> None:
    register_tiny(tmp_path)
    onnx = reg.Registry.load().get("tiny").onnx
    onnx.unlink()
    out_dir = tmp_path / "dist" / "tiny"
    code, out, err = run(capsys, "release", "stage", "tiny", "--out", out_dir)
    assert (code, err) == (0, "")
    assert out.strip() == (
        f"tiny: binary {onnx} is absent: nothing staged (export or fetch it first)"
    )
    assert not (tmp_path / "dist").exists()


def test_release_verify_of_a_plain_folder(tmp_path: Path, capsys: Capture) -> None:
    code, _, err = run(capsys, "release", "verify", tmp_path)
    assert code == 2
    assert "not a staged release" in one_line_error(err, "release verify")
