"""Every JSON the product reads may be hostile: nesting deep enough to exhaust the
parser ends in one line of the product's error, exit 2, and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests._jobs import write_tiny
from tests._video import write_raw

# Past the parser's recursion limit: before the cap, a RecursionError traceback.
DEEP = "[" * 100_000 + "]" * 100_000


def _cli(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmafx_saliency", *(str(a) for a in argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess[str], command: str) -> str:
    assert done.returncode == 2, done.stderr
    # An ad-hoc model's warning may come first; the error is one line.
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"vmafx-saliency {command}: error: "), lines[0]
    return lines[0]


def test_a_deep_overlay_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overlay = tmp_path / "overlay.json"
    overlay.write_text(DEEP)
    monkeypatch.setenv("VMAFX_SALIENCY_REGISTRY", str(overlay))
    line = _one_line(_cli("registry", "list", cwd=tmp_path), "registry")
    assert "is not valid JSON" in line and "nested deeper than 64 levels" in line


def test_a_deep_sidecar_and_a_deep_vmaf_file(tmp_path: Path) -> None:
    model, sidecar = write_tiny(tmp_path / "m")
    video = tmp_path / "v.yuv"
    write_raw(video, "yuv420p", 64, 48, 2)
    geometry = ["--width", "64", "--height", "48"]
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    line = _one_line(
        _cli("extract", video, *geometry, "--model-path", model, "--sidecar", deep, cwd=tmp_path),
        "extract",
    )
    assert "nested deeper than 64 levels" in line
    out = tmp_path / "merged.json"
    run = _cli(
        "extract", video, *geometry, "--model-path", model, "--sidecar", sidecar,
        "--merge-into", deep, "--merge-output", out, cwd=tmp_path,
    )  # fmt: skip
    assert "nested deeper than 64 levels" in _one_line(run, "extract")
    assert not out.exists()


def test_a_deep_jsonl_row(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    table.write_text('{"src": "a.mp4"}\n' + DEEP + "\n")
    out = tmp_path / "out.jsonl"
    run = _cli(
        "materialize", "--input", table, "--output", out, "--path-column", "src", cwd=tmp_path
    )
    assert "line 2 is not valid JSON (nested deeper than 64 levels)" in _one_line(
        run, "materialize"
    )
    assert not out.exists()


def test_a_deep_release_description_and_a_deep_bundle(tmp_path: Path) -> None:
    pytest.importorskip("model_signing")
    release = tmp_path / "release"
    release.mkdir()
    (release / "release.json").write_text(DEEP)
    (release / "SHA256SUMS").write_text("")
    line = _one_line(_cli("release", "verify", release, cwd=tmp_path), "release")
    assert "release.json is not UTF-8 JSON" in line and "nested deeper than 64" in line
    model, _ = write_tiny(tmp_path / "m")
    bundle = tmp_path / "b.sigstore.json"
    bundle.write_text(DEEP)
    key = tmp_path / "k.pem"
    assert _cli("keygen", "--private-key", key, cwd=tmp_path).returncode == 0
    run = _cli("verify", model, "--bundle", bundle, "--public-key", f"{key}.pub", cwd=tmp_path)
    assert "nested deeper than 64 levels" in _one_line(run, "verify")
