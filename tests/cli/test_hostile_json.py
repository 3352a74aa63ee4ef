"""Every JSON the product reads may be hostile: nesting deep enough to exhaust the
parser ends in one line of the product's error, exit 2, and writes nothing, in
a bounded time and memory (each run is measured, ``tests/cli/_attack.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._jobs import write_tiny
from tests._video import write_raw
from tests.cli._attack import Outcome, attack, files_under

# Past the parser's recursion limit: before the cap, a RecursionError traceback.
DEEP = "[" * 100_000 + "]" * 100_000


def _cli(*argv: str | Path, cwd: Path) -> Outcome:
    """The CLI as a measured process: every refusal here is quick and small."""
    before = files_under(cwd)
    outcome = attack(*argv, cwd=cwd)
    if outcome.code != 0:
        assert outcome.seconds < 30 and outcome.peak_mib < 700, outcome
        assert files_under(cwd) == before  # nothing written, no temporary left
    return outcome


def _one_line(done: Outcome, command: str) -> str:
    assert done.code == 2, done.err
    return f"vmafx-saliency {command}: error: {done.error(command)}"


def test_a_deep_overlay_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overlay = tmp_path / "overlay.json"
    overlay.write_text(DEEP)
    monkeypatch.setenv("VMAFX_SALIENCY_REGISTRY", str(overlay))
    line = _one_line(_cli("registry", "list", cwd=tmp_path), "registry list")
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
    line = _one_line(_cli("release", "verify", release, cwd=tmp_path), "release verify")
    assert "release.json is not UTF-8 JSON" in line and "nested deeper than 64" in line
    model, _ = write_tiny(tmp_path / "m")
    bundle = tmp_path / "b.sigstore.json"
    bundle.write_text(DEEP)
    key = tmp_path / "k.pem"
    assert _cli("keygen", "--private-key", key, cwd=tmp_path).code == 0
    run = _cli("verify", model, "--bundle", bundle, "--public-key", f"{key}.pub", cwd=tmp_path)
    assert "nested deeper than 64 levels" in _one_line(run, "verify")
