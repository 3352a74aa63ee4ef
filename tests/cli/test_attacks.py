"""Issue 37's attacks, each built here as a tiny hostile file and run through the CLI.

Every attack is a real ``vmafx-saliency`` process (``tests/cli/_attack.py``):
each test asserts the product's own error text, the exit code, a bound on the
wall-clock time and on the peak memory of the process tree, and that the
folders the run could write to hold exactly what they held before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._onnx_models import endless_loop_model
from tests._trust import (
    BSD_TEXT,
    card_folder,
    isolate_registry,
    register_tiny,
    sidecar_doc,
    write_json,
)
from tests._video import write_raw, write_y4m
from tests.cli._attack import attack, files_under
from tests.supply.test_probe import _slow_to_scan_model, _upsample_then_pool_model
from tests.supply.test_scan import _hidden_initializer_model
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply import release

# Bounds far above what a refusal costs (a second or two, 200-300 MiB for the
# interpreter with onnxruntime and PyAV) and far below what the attacks cost
# unbounded (tens of seconds, gigabytes).
SECONDS = 30
MIB = 700


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, an empty committed registry and no overlay, a short clip."""
    isolate_registry(tmp_path, monkeypatch)
    folder = tmp_path / "work"
    folder.mkdir()
    write_y4m(folder / "clip.y4m", None, 64, 48, 3)
    return folder


def _within(outcome_seconds: float, outcome_mib: float, *, mib: float = MIB) -> None:
    assert outcome_seconds < SECONDS, outcome_seconds
    assert outcome_mib < mib, outcome_mib


# --- 1. the sidecar is inside the chain ----------------------------------------------


@pytest.mark.parametrize("repinned", [False, True], ids=["edited", "edited-and-repinned"])
def test_an_edited_sidecar_of_a_signed_model_is_refused(
    tmp_path: Path, work: Path, repinned: bool
) -> None:
    register_tiny(tmp_path)
    overlay = reg.overlay_registry_path()
    entry = reg.Registry.load().get("tiny")
    doc = json.loads(entry.sidecar.read_text())
    doc["preprocessing"]["inference_size"] = [4096, 4096]  # the review's edit
    edited = json.dumps(doc).encode()
    entry.sidecar.write_bytes(edited)
    if repinned:  # the attacker rewrites the overlay's pin as well
        registry_doc = json.loads(overlay.read_text())
        registry_doc["models"][0]["sidecar_sha256"] = hashlib.sha256(edited).hexdigest()
        overlay.write_text(json.dumps(registry_doc))
    before = files_under(work, overlay.parent)
    run = attack("extract", "clip.y4m", "--model", "tiny", "--signed", "-o", "out.json", cwd=work)
    assert run.code == 2
    line = run.error("extract")
    # The signature is checked first: it covers the sidecar, pinned again or not.
    assert "at the signature check" in line
    assert "the sidecar's sha256 differs from the digest the bundle signs" in line
    _within(run.seconds, run.peak_mib)
    assert files_under(work, overlay.parent) == before


# --- 2. what protobuf merges ---------------------------------------------------------


def test_a_hidden_initializer_in_a_second_graph_is_refused(work: Path) -> None:
    (work / "hidden.onnx").write_bytes(_hidden_initializer_model())
    write_json(work / "hidden.sidecar.json", sidecar_doc("hidden"))
    before = files_under(work)
    scanned = attack("scan", "hidden.onnx", cwd=work)
    assert scanned.code == 1
    assert "REJECTED: [repeated-field] ModelProto.graph at byte" in scanned.out
    run = attack("extract", "clip.y4m", "--model-path", "hidden.onnx", "-o", "o.json", cwd=work)
    assert run.code == 2
    assert "at the content check" in run.error("extract")
    assert "appears a second time" in run.error("extract")
    for outcome in (scanned, run):
        _within(outcome.seconds, outcome.peak_mib)
    assert files_under(work) == before


# --- 3. files within the cap that exhaust memory and CPU -------------------------------


def test_a_file_of_millions_of_fields_costs_the_scan_budget_only(work: Path) -> None:
    (work / "slow.onnx").write_bytes(_slow_to_scan_model(nodes=4000))
    before = files_under(work)
    run = attack("scan", "slow.onnx", cwd=work, env={"VMAFX_SALIENCY_SCAN_SECONDS": "2"})
    assert run.code == 1
    assert "REJECTED: [over-budget] scanning went over its budget" in run.out
    assert "raise $VMAFX_SALIENCY_SCAN_SECONDS" in run.out
    _within(run.seconds, run.peak_mib)
    assert files_under(work) == before


def test_a_model_too_big_for_one_frame_costs_the_probe_budget_only(work: Path) -> None:
    (work / "pool.onnx").write_bytes(_upsample_then_pool_model())
    sidecar = json.loads(
        (Path(reg.packaged_models()) / "u2netp_mirror_v1.sidecar.json").read_text()
    )
    sidecar["model_id"] = "pool"
    sidecar["preprocessing"]["inference_size"] = [320, 320]
    (work / "pool.json").write_text(json.dumps(sidecar))
    before = files_under(work)
    limits = {"VMAFX_SALIENCY_PROBE_MEMORY_MIB": "1500", "VMAFX_SALIENCY_FRAME_MEMORY_MIB": "400"}
    args = ("extract", "clip.y4m", "--model-path", "pool.onnx", "--sidecar", "pool.json")
    run = attack(*args, "-o", "o.json", cwd=work, env=limits)
    assert run.code == 2
    line = run.error("extract")
    assert "at the contract check" in line
    assert "refused; an operator who trusts the model can raise $VMAFX_SALIENCY_" in line
    _within(run.seconds, run.peak_mib, mib=1500 + 300)  # the child's budget, then this process
    assert files_under(work) == before


def test_an_endless_model_is_stopped_at_the_probe_deadline(work: Path) -> None:
    (work / "endless.onnx").write_bytes(endless_loop_model())
    run = attack("contract", "endless.onnx", cwd=work, env={"VMAFX_SALIENCY_PROBE_SECONDS": "3"})
    assert run.code == 2
    assert run.error("contract").startswith(
        "endless.onnx: probing the model did not end within 3 s"
    )
    _within(run.seconds, run.peak_mib)
    assert run.seconds < 15


# --- 4. one line, never a traceback ---------------------------------------------------


def test_a_raw_stream_of_absurd_geometry_is_refused_before_allocating(work: Path) -> None:
    write_raw(work / "in.yuv", "yuv420p", 64, 48, 1)
    before = files_under(work)
    run = attack(
        "extract", "in.yuv", "--width", "100000", "--height", "100000", "-o", "o.json", cwd=work
    )
    assert run.code == 2
    assert "100000x100000" in run.error("extract")
    _within(run.seconds, run.peak_mib)
    assert files_under(work) == before


# --- 5. release verify trusts nothing unsigned -----------------------------------------


def _staged_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    register_tiny(tmp_path)
    card_folder(tmp_path, monkeypatch, "tiny")
    out = tmp_path / "dist" / "tiny"
    signer = release.ReleaseSigner(private_key=tmp_path / "keys" / "tiny" / "signing.pem")
    release.stage("tiny", out=out, signer=signer)
    return out


def _resum(folder: Path) -> None:
    """What an attacker redoes after a change: SHA256SUMS over the folder."""
    names = sorted(p.name for p in folder.iterdir() if p.name not in release.folder.RESERVED)
    names.append(release.RELEASE_JSON)
    (folder / release.SUMS).write_text(
        "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )


def _mit_licence(folder: Path) -> str:
    doc = json.loads((folder / release.RELEASE_JSON).read_text())
    doc["license"] = "MIT"
    (folder / release.RELEASE_JSON).write_text(json.dumps(doc, indent=2))
    (folder / "LICENSE.txt").write_text("MIT License\n" + BSD_TEXT)
    return "LICENSE.txt, SHA256SUMS, release.json"


def _renamed_onnx(folder: Path) -> str:
    (folder / "model.onnx").rename(folder / "other.onnx")
    doc = json.loads((folder / release.RELEASE_JSON).read_text())
    doc["onnx"] = "other.onnx"
    (folder / release.RELEASE_JSON).write_text(json.dumps(doc, indent=2))
    return "unsigned: other.onnx"


def _edited_card(folder: Path) -> str:
    (folder / "tiny.md").write_text("# tiny\n\nNow for medical imaging.\n")
    return "tiny.md"


@pytest.mark.parametrize("change", [_mit_licence, _renamed_onnx, _edited_card])
def test_a_changed_release_is_not_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, work: Path, change: object
) -> None:
    folder = _staged_release(tmp_path, monkeypatch)
    assert callable(change)
    named = change(folder)
    _resum(folder)
    before = files_under(folder)
    run = attack("release", "verify", folder, cwd=work)
    assert run.code == 1, run.out
    failed = [line for line in run.out.splitlines() if line.startswith("FAIL")]
    assert any(
        line.startswith("FAIL  release.sigstore.json (signature): ") and named in line
        for line in failed
    ), failed
    assert run.out.splitlines()[-1] == f"{folder}: release NOT verified"
    _within(run.seconds, run.peak_mib)
    assert files_under(folder) == before


# --- the review of this issue's own changes ------------------------------------------


def test_a_vmafx_saliency_folder_in_the_working_folder_cannot_stand_in_for_the_scanner(
    work: Path,
) -> None:
    fake = work / "vmafx_saliency" / "supply"
    fake.mkdir(parents=True)
    (work / "vmafx_saliency" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    # A child that would call anything ALLOWED.
    (fake / "probe.py").write_text(
        'print(\'{"ok": true, "report": {"path": "g.onnx", "size": 1, "ops": {}, '
        '"violations": [], "omitted_violations": 0}}\')\n'
    )
    (work / "g.onnx").write_bytes(bytes(range(256)) * 4)
    run = attack("scan", "g.onnx", cwd=work, env={"VMAFX_SALIENCY_SCAN_SECONDS": "5"})
    assert run.code == 1
    assert "REJECTED: [not-onnx]" in run.out
    _within(run.seconds, run.peak_mib)


def test_a_release_padded_with_large_files_is_refused_before_reading_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, work: Path
) -> None:
    folder = _staged_release(tmp_path, monkeypatch)
    for i in range(40):  # 640 MB of sparse files, 16 MB each: under the per-file cap
        with (folder / f"pad{i:02}.bin").open("wb") as fh:
            fh.truncate(16_000_000)
    run = attack("release", "verify", folder, cwd=work)
    assert run.code == 1
    assert "FAIL  release.sigstore.json (signature): the signature does not cover the folder: " in (
        run.out
    )
    _within(run.seconds, run.peak_mib, mib=400)
