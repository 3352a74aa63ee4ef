"""Release staging: the mirror's release files, idempotence, refusals of a tiny model's staging."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import (
    MIRROR_CARD,
    MIRROR_LICENCE,
    MIRROR_SIDECAR,
    card_folder,
    flip_byte,
    register_tiny,
)
from tests.supply.release.conftest import (
    MIRROR,
    MIRROR_FILES,
    Mirror,
    contents,
    tiny_signer,
)
from vmafx_saliency.errors import OutputExistsError, ReleaseError, UsageError
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply import release
from vmafx_saliency.supply.release import staging

# --- the mirror round trip -------------------------------------------------------------


def test_stage_collects_the_release_files(tmp_path: Path, mirror: Mirror) -> None:
    out = tmp_path / "dist" / MIRROR
    result = release.stage(MIRROR, out=out, signer=mirror.signer)
    assert result.out == out
    assert list(result.files) == MIRROR_FILES
    assert sorted(p.name for p in out.iterdir()) == MIRROR_FILES
    assert result.render().splitlines()[0] == f"{MIRROR}: staged 9 files in {out}"
    assert (out / f"{MIRROR}.sidecar.json").read_bytes() == MIRROR_SIDECAR.read_bytes()
    assert (out / f"{MIRROR}.onnx").read_bytes() == mirror.entry.onnx.read_bytes()
    assert (out / "Apache-2.0-u2netp.txt").read_bytes() == MIRROR_LICENCE.read_bytes()
    assert (out / "u2netp_mirror.md").read_bytes() == MIRROR_CARD.read_bytes()
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)
    doc = json.loads((out / release.RELEASE_JSON).read_text())
    assert doc == {
        "schema": release.RELEASE_SCHEMA,
        "model_id": MIRROR,
        "onnx": f"{MIRROR}.onnx",
        "sidecar": f"{MIRROR}.sidecar.json",
        "sigstore_bundle": f"{MIRROR}.onnx.sigstore.json",
        "license_file": "Apache-2.0-u2netp.txt",
        "license": "Apache-2.0",
        "card": "u2netp_mirror.md",
        "manifest": f"{MIRROR}.onnx.manifest.json",
        "source": "upstream-mirror",
    }
    # Nothing left beside it: no temporary or previous folders.
    assert sorted(p.name for p in out.parent.iterdir()) == [MIRROR]


def test_sums_are_in_sha256sum_format(staged: Path) -> None:
    lines = (staged / release.SUMS).read_text().splitlines()
    listed = {}
    for line in lines:
        match = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        assert match, line
        listed[match.group(2)] = match.group(1)
    # The release signature signs the sums: it is the one file they do not list.
    assert sorted(listed) == [
        n for n in MIRROR_FILES if n not in (release.SUMS, release.RELEASE_BUNDLE)
    ]
    for name, digest in listed.items():
        assert hashlib.sha256((staged / name).read_bytes()).hexdigest() == digest
    tool = shutil.which("sha256sum")
    if tool is not None:
        check = subprocess.run(
            [tool, "--check", "--strict", release.SUMS],
            cwd=staged,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_staging_again_is_idempotent(staged: Path, mirror: Mirror) -> None:
    before = contents(staged)
    result = release.stage(MIRROR, out=staged, signer=mirror.signer, force=True)
    assert list(result.files) == MIRROR_FILES
    after = contents(staged)
    # The same bytes but the release signature: ECDSA signatures are randomised.
    signature = release.RELEASE_BUNDLE
    assert {k: v for k, v in after.items() if k != signature} == {
        k: v for k, v in before.items() if k != signature
    }
    assert after[signature] != before[signature]
    assert release.verify(staged).ok
    assert sorted(p.name for p in staged.parent.iterdir()) == [MIRROR]


# --- small models: refusals and edge cases -------------------------------------------------


def test_tiny_round_trip(tmp_path: Path, tiny: Path) -> None:
    result = release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    assert list(result.files) == [
        "LICENSE.txt",
        "SHA256SUMS",
        "model.onnx",
        "model.onnx.sigstore.json",
        "model.sidecar.json",
        "release.json",
        "release.sigstore.json",
        "tiny.md",
    ]
    verified = release.verify(tiny)
    assert verified.ok, verified.render()
    assert "BSD-3-Clause licence text present" in verified.render()


def test_absent_binary_is_a_no_op(tmp_path: Path, tiny: Path) -> None:
    entry = reg.Registry.load().get("tiny")
    entry.onnx.unlink()
    result = release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    assert (result.out, result.files) == (None, ())
    assert result.render() == (
        f"tiny: binary {entry.onnx} is absent: nothing staged (export or fetch it first)"
    )
    assert not tiny.exists()
    assert not tiny.parent.exists()


def test_non_empty_folder_that_is_not_a_release_is_refused(tmp_path: Path, tiny: Path) -> None:
    tiny.mkdir(parents=True)
    (tiny / "keep.txt").write_text("mine\n")
    with pytest.raises(ReleaseError, match=r"tiny exists and is not a staged release: choose"):
        release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    assert sorted(p.name for p in tiny.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny"]

    afile = tiny.parent / "afile"
    afile.write_text("x")
    with pytest.raises(ReleaseError, match=r"afile exists and is not a folder"):
        release.stage("tiny", out=afile)


def test_release_of_another_model_is_not_replaced(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    register_tiny(tmp_path, "other")
    card_folder(tmp_path, monkeypatch, "other")
    with pytest.raises(ReleaseError, match=r"holds the staged release of 'tiny', not 'other'"):
        release.stage("other", out=tiny)
    assert json.loads((tiny / release.RELEASE_JSON).read_text())["model_id"] == "tiny"


def test_failed_restage_keeps_the_previous_staging(tmp_path: Path, tiny: Path) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    before = contents(tiny)
    flip_byte(reg.Registry.load().get("tiny").onnx)  # the binary no longer matches its pin
    with pytest.raises(ReleaseError, match=r"tiny: .*model\.onnx has sha256 .*the registry pins"):
        release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path), force=True)
    assert contents(tiny) == before
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny"]


def test_staging_again_needs_force_and_keeps_what_it_did_not_stage(
    tmp_path: Path, tiny: Path
) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    before = contents(tiny)
    with pytest.raises(OutputExistsError, match=r"already holds the staged release of 'tiny': "
                       r"pass --force to stage it again"):  # fmt: skip
        release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    assert contents(tiny) == before
    (tiny / "notes.txt").write_text("mine\n")
    beside = r"holds notes\.txt beside its staged release, which a new staging would delete"
    with pytest.raises(ReleaseError, match=beside + r" with the folder: move them out first"):
        release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path), force=True)
    assert contents(tiny) == before | {"notes.txt": b"mine\n"}
    (tiny / "notes.txt").unlink()
    assert release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path), force=True).out == tiny


def test_what_lands_in_the_folder_while_staging_runs_is_kept(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is checked again before the swap: a file put there meanwhile (or another
    run's staging) would have gone with the folder it replaced."""
    from vmafx_saliency import _util
    from vmafx_saliency.supply.release import staging

    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    digest = _util.sha256_file

    def meanwhile(path: Path) -> str:
        (tiny / "notes.txt").write_text("mine\n")  # while the copies are checked
        return digest(path)

    monkeypatch.setattr(staging, "sha256_file", meanwhile)
    with pytest.raises(ReleaseError, match=r"holds notes\.txt beside its staged release"):
        release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path), force=True)
    assert (tiny / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny"]  # no staging left


def test_a_killed_stagings_leftovers_are_swept_by_the_next(tmp_path: Path, tiny: Path) -> None:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()  # a pid that is gone: the run SIGKILL ended
    tiny.parent.mkdir(parents=True)
    left = tiny.parent / f".{tiny.name}.{child.pid}.abcd1234.staging"
    left.mkdir()
    (left / "model.onnx").write_bytes(b"half")
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny"]


def test_a_damaged_staging_is_repaired_by_staging_again_with_force(
    tmp_path: Path, tiny: Path
) -> None:
    """Without its sums the files release.json names still count as the staging's own."""
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    (tiny / release.SUMS).unlink()
    with pytest.raises(ReleaseError, match=r"not a staged release \(no release.json or SHA256"):
        release.verify(tiny)
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path), force=True)
    assert release.verify(tiny).ok


def test_stage_needs_a_bundle_and_a_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register_tiny(tmp_path, "unsigned", signed=False)
    card_folder(tmp_path, monkeypatch, "unsigned")
    with pytest.raises(ReleaseError, match=r"unsigned: no Sigstore bundle to release"):
        release.stage("unsigned", out=tmp_path / "dist")
    register_tiny(tmp_path, "nocard")
    with pytest.raises(ReleaseError, match=r"nocard: no model card under .*cards"):
        release.stage("nocard", out=tmp_path / "dist")
    # Installed, not a checkout: no docs/models/ at all; staging is a checkout's job.
    monkeypatch.setattr(staging, "CARDS", None)
    with pytest.raises(
        ReleaseError, match=r"nocard: no model card \(vmafx-saliency runs installed here.*\): "
        r"write docs/models/nocard\.md in a checkout"
    ):  # fmt: skip
        release.stage("nocard", out=tmp_path / "dist")
    # The card is asked for before the bundle: signing first would lead nowhere there.
    with pytest.raises(ReleaseError, match=r"unsigned: no model card \(vmafx-saliency runs"):
        release.stage("unsigned", out=tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_a_sidecar_that_differs_from_its_pin_is_not_staged(tmp_path: Path, tiny: Path) -> None:
    entry = reg.Registry.load().get("tiny")
    entry.sidecar.write_text(entry.sidecar.read_text().replace("{", '{"notes": "edited", ', 1))
    with pytest.raises(ReleaseError, match=r"tiny: the sidecar .* the registry pins [0-9a-f]{64}"):
        release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    assert not tiny.exists()


def test_a_staging_that_holds_its_signing_key_is_refused(tmp_path: Path, tiny: Path) -> None:
    # Restaging replaces the earlier set whole: a key kept in it would be lost.
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    key = tiny / "signing.pem"
    key.write_bytes(tiny_signer(tmp_path).private_key.read_bytes())
    before = contents(tiny)
    with pytest.raises(UsageError, match=rf"--out {tiny} holds --private-key {key}: give"):
        release.stage("tiny", out=tiny, signer=release.ReleaseSigner(private_key=key))
    assert contents(tiny) == before


def test_a_models_card_is_found_by_its_id_its_version_or_its_float_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging, "CARDS", tmp_path)
    for name in ("saliency_student_v2", "u2netp_mirror"):
        (tmp_path / f"{name}.md").write_text("# card\n")
    assert staging.card_for("saliency_student_v2") == tmp_path / "saliency_student_v2.md"
    assert staging.card_for("saliency_student_v2_int8") == tmp_path / "saliency_student_v2.md"
    assert staging.card_for("u2netp_mirror_v1") == tmp_path / "u2netp_mirror.md"
    assert staging.card_for("other_v1") is None
