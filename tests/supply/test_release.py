"""Release staging and verification: the mirror round trip, tampering, refusals."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import (
    MIRROR_CARD,
    MIRROR_LICENCE,
    MIRROR_SIDECAR,
    ROOT,
    card_folder,
    custom_domain_model,
    flip_byte,
    isolate_registry,
    key_and_bundle,
    register_tiny,
)
from vmafx_saliency.errors import ReleaseError
from vmafx_saliency.supply import contract, release
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply.signing import Verifier, generate_key_pair, sign_model

MIRROR = "u2netp_mirror_v1"
MIRROR_FILES = sorted(
    [
        "Apache-2.0-u2netp.txt",
        release.RELEASE_JSON,
        release.SUMS,
        "u2netp_mirror.md",
        f"{MIRROR}.onnx",
        f"{MIRROR}.onnx.manifest.json",
        f"{MIRROR}.onnx.sigstore.json",
    ]
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_registry(tmp_path, monkeypatch)


@dataclass(frozen=True)
class Mirror:
    entry: reg.ModelEntry
    public_key: Path


@pytest.fixture
def mirror(tmp_path: Path, mirror_onnx: Path) -> Mirror:
    """The exported mirror, signed and registered as a release asset in the overlay."""
    inputs = tmp_path / "export"
    inputs.mkdir()
    onnx = Path(shutil.copy(mirror_onnx, inputs / f"{MIRROR}.onnx"))
    manifest = Path(
        shutil.copy(f"{mirror_onnx}.manifest.json", inputs / f"{MIRROR}.onnx.manifest.json")
    )
    pair, bundle = key_and_bundle(onnx, tmp_path / "keys")
    entry = reg.add_model(
        onnx=onnx,
        model_id=MIRROR,
        sidecar=MIRROR_SIDECAR,
        license="Apache-2.0",
        license_file=MIRROR_LICENCE,
        source=reg.source_from_manifest(manifest),
        sigstore_bundle=bundle,
        verification=reg.Verification(public_key=pair.public_key),
        release_asset=True,
        manifest=manifest,
    )
    return Mirror(entry, pair.public_key)


@pytest.fixture
def staged(tmp_path: Path, mirror: Mirror) -> Path:
    out = tmp_path / "dist" / MIRROR
    release.stage(MIRROR, out=out)
    return out


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def lines_of(result: release.VerifyResult) -> list[str]:
    return result.render().splitlines()


def fails(result: release.VerifyResult) -> list[str]:
    return [line for line in lines_of(result) if line.startswith("FAIL")]


# --- the mirror round trip -------------------------------------------------------------


def test_stage_collects_the_release_files(tmp_path: Path, mirror: Mirror) -> None:
    out = tmp_path / "dist" / MIRROR
    result = release.stage(MIRROR, out=out)
    assert result.out == out
    assert list(result.files) == MIRROR_FILES
    assert sorted(p.name for p in out.iterdir()) == MIRROR_FILES
    assert result.render().splitlines()[0] == f"{MIRROR}: staged 7 files in {out}"
    assert (out / f"{MIRROR}.onnx").read_bytes() == mirror.entry.onnx.read_bytes()
    assert (out / "Apache-2.0-u2netp.txt").read_bytes() == MIRROR_LICENCE.read_bytes()
    assert (out / "u2netp_mirror.md").read_bytes() == MIRROR_CARD.read_bytes()
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)
    doc = json.loads((out / release.RELEASE_JSON).read_text())
    assert doc == {
        "schema": release.RELEASE_SCHEMA,
        "model_id": MIRROR,
        "onnx": f"{MIRROR}.onnx",
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
    assert sorted(listed) == [n for n in MIRROR_FILES if n != release.SUMS]
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


def test_staging_again_is_idempotent(staged: Path) -> None:
    before = contents(staged)
    result = release.stage(MIRROR, out=staged)
    assert list(result.files) == MIRROR_FILES
    assert contents(staged) == before
    assert sorted(p.name for p in staged.parent.iterdir()) == [MIRROR]


def test_verify_gives_one_ok_verdict_per_asset(staged: Path, mirror: Mirror) -> None:
    for verifier in (None, Verifier.from_public_key(mirror.public_key)):
        result = release.verify(staged, verifier=verifier)
        assert result.ok, result.render()
        lines = lines_of(result)
        assert lines[-1] == f"{staged}: release verified"
        verdicts = lines[:-1]
        assert all(line.startswith("OK  ") for line in verdicts), verdicts
        expected = [
            *(f"{name} (sum)" for name in MIRROR_FILES if name != release.SUMS),
            f"{MIRROR}.onnx (signature)",
            f"{MIRROR}.onnx (pin)",
            f"{MIRROR}.onnx.manifest.json (manifest)",
            f"{MIRROR}.onnx (scan)",
            f"{MIRROR}.onnx (contract)",
            "Apache-2.0-u2netp.txt (licence)",
        ]
        assert [v.asset for v in result.verdicts] == expected
    text = result.render()
    assert "Sigstore bundle verifies (public-key" in text
    assert "Apache-2.0 text and attribution block present" in text


# --- tampering --------------------------------------------------------------------------


def test_flipped_byte_fails_sum_and_signature(staged: Path) -> None:
    flip_byte(staged / f"{MIRROR}.onnx")
    result = release.verify(staged)
    assert not result.ok
    failed = fails(result)
    assert any(
        re.match(rf"FAIL  {MIRROR}\.onnx \(sum\): sha256 [0-9a-f]{{64}} differs from SHA256SUMS", f)
        for f in failed
    ), failed
    assert any(
        f.startswith(f"FAIL  {MIRROR}.onnx (signature):")
        and "differs from the digest the bundle signs" in f
        for f in failed
    ), failed
    assert lines_of(result)[-1] == f"{staged}: release NOT verified"


def test_a_swapped_model_resigned_and_resummed_fails_the_pin_and_the_manifest(
    tmp_path: Path, staged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sums and a signature can be redone by whoever swaps the model; the manifest's
    digest of the export cannot, unless it is rewritten too."""
    onnx = staged / f"{MIRROR}.onnx"
    onnx.write_bytes((ROOT / "models" / "saliency_student_v2.onnx").read_bytes())
    pair = generate_key_pair(tmp_path / "other_keys" / "signing.pem")
    sign_model(onnx, private_key=pair.private_key, force=True)
    names = sorted(p.name for p in staged.iterdir() if p.name != release.SUMS)
    (staged / release.SUMS).write_text(
        "".join(f"{hashlib.sha256((staged / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )
    result = release.verify(staged, verifier=Verifier.from_public_key(pair.public_key))
    failed = fails(result)
    # This registry pins the mirror: the swapped binary is not it.
    assert re.fullmatch(
        rf"FAIL  {MIRROR}\.onnx \(pin\): has sha256 [0-9a-f]{{64}}, but this registry pins "
        rf"'{MIRROR}' at [0-9a-f]{{64}}: the release holds another binary than the registered one",
        failed[0],
    ), failed
    # On a machine where it is not registered, the manifest still gives it away.
    monkeypatch.setenv(reg.ENV_OVERLAY, str(tmp_path / "elsewhere" / "registry.json"))
    failed = fails(release.verify(staged, verifier=Verifier.from_public_key(pair.public_key)))
    assert len(failed) == 1, failed
    assert re.fullmatch(
        rf"FAIL  {MIRROR}\.onnx\.manifest\.json \(manifest\): describes an ONNX with sha256 "
        rf"[0-9a-f]{{64}}, but {MIRROR}\.onnx has [0-9a-f]{{64}}: the manifest belongs to "
        r"another export; do not use this release",
        failed[0],
    ), failed


def test_licence_without_attribution_fails(staged: Path) -> None:
    licence = staged / "Apache-2.0-u2netp.txt"
    text = licence.read_text()
    # The attribution block is everything above the rule before the licence text.
    licence.write_text(text[text.index("-" * 20) :].split("\n", 1)[1])
    assert "Attribution" not in licence.read_text()
    failed = fails(release.verify(staged))
    assert len(failed) == 2, failed
    assert failed[0].startswith("FAIL  Apache-2.0-u2netp.txt (sum): sha256")
    assert failed[1] == (
        "FAIL  Apache-2.0-u2netp.txt (licence): the licence file lacks the attribution block"
    )


def test_a_file_listed_in_the_sums_but_not_named_in_release_json_fails(staged: Path) -> None:
    """SHA256SUMS is not signed: whoever adds a file can list it there too."""
    extra = staged / "extra.bin"
    extra.write_bytes(b"something else")
    with (staged / release.SUMS).open("a") as fh:
        fh.write(f"{hashlib.sha256(b'something else').hexdigest()}  extra.bin\n")
    assert fails(release.verify(staged)) == [
        "FAIL  extra.bin (sum): not named in release.json: an unexpected file"
    ]


def test_unexpected_file_fails(staged: Path) -> None:
    (staged / "notes.txt").write_text("not part of the release\n")
    result = release.verify(staged)
    assert fails(result) == ["FAIL  notes.txt (sum): not listed in SHA256SUMS: an unexpected file"]


def test_missing_listed_file_fails(staged: Path) -> None:
    (staged / "u2netp_mirror.md").unlink()
    result = release.verify(staged)
    assert fails(result) == ["FAIL  u2netp_mirror.md (sum): listed in SHA256SUMS but missing"]


def test_a_missing_model_fails_every_model_verdict_without_a_traceback(staged: Path) -> None:
    (staged / f"{MIRROR}.onnx").unlink()
    result = release.verify(staged)
    failed = fails(result)
    assert f"FAIL  {MIRROR}.onnx (sum): listed in SHA256SUMS but missing" in failed
    assert any(
        f.startswith(f"FAIL  {MIRROR}.onnx.manifest.json (manifest): cannot read {MIRROR}.onnx")
        for f in failed
    ), failed
    assert any(f.startswith(f"FAIL  {MIRROR}.onnx (pin): cannot read") for f in failed), failed
    assert lines_of(result)[-1] == f"{staged}: release NOT verified"


def test_symlink_in_the_release_fails(tmp_path: Path, staged: Path) -> None:
    card = staged / "u2netp_mirror.md"
    elsewhere = tmp_path / "card.md"
    card.replace(elsewhere)
    card.symlink_to(elsewhere)
    assert fails(release.verify(staged)) == [
        "FAIL  u2netp_mirror.md (sum): not a regular file (a symlink or a folder): a release "
        "holds plain files only"
    ]


# --- small models: refusals and edge cases -------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """'tiny' registered and signed, with a card; returns the out folder to stage into."""
    register_tiny(tmp_path)
    card_folder(tmp_path, monkeypatch, "tiny")
    return tmp_path / "dist" / "tiny"


def test_tiny_round_trip(tiny: Path) -> None:
    result = release.stage("tiny", out=tiny)
    assert list(result.files) == [
        "LICENSE.txt",
        "SHA256SUMS",
        "model.onnx",
        "model.onnx.sigstore.json",
        "release.json",
        "tiny.md",
    ]
    verified = release.verify(tiny)
    assert verified.ok, verified.render()
    assert "BSD-3-Clause licence text present" in verified.render()


def test_absent_binary_is_a_no_op(tiny: Path) -> None:
    entry = reg.Registry.load().get("tiny")
    entry.onnx.unlink()
    result = release.stage("tiny", out=tiny)
    assert (result.out, result.files) == (None, ())
    assert result.render() == (
        f"tiny: binary {entry.onnx} is absent: nothing staged (export or fetch it first)"
    )
    assert not tiny.exists()
    assert not tiny.parent.exists()


def test_non_empty_folder_that_is_not_a_release_is_refused(tiny: Path) -> None:
    tiny.mkdir(parents=True)
    (tiny / "keep.txt").write_text("mine\n")
    with pytest.raises(ReleaseError, match=r"tiny exists and is not a staged release: choose"):
        release.stage("tiny", out=tiny)
    assert sorted(p.name for p in tiny.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny"]

    afile = tiny.parent / "afile"
    afile.write_text("x")
    with pytest.raises(ReleaseError, match=r"afile exists and is not a folder"):
        release.stage("tiny", out=afile)


def test_release_of_another_model_is_not_replaced(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release.stage("tiny", out=tiny)
    register_tiny(tmp_path, "other")
    card_folder(tmp_path, monkeypatch, "other")
    with pytest.raises(ReleaseError, match=r"holds the staged release of 'tiny', not 'other'"):
        release.stage("other", out=tiny)
    assert json.loads((tiny / release.RELEASE_JSON).read_text())["model_id"] == "tiny"


def test_failed_restage_keeps_the_previous_staging(tiny: Path) -> None:
    release.stage("tiny", out=tiny)
    before = contents(tiny)
    flip_byte(reg.Registry.load().get("tiny").onnx)  # the binary no longer matches its pin
    with pytest.raises(ReleaseError, match=r"tiny: .*model\.onnx has sha256 .*the registry pins"):
        release.stage("tiny", out=tiny)
    assert contents(tiny) == before
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny"]


def test_stage_needs_a_bundle_and_a_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register_tiny(tmp_path, "unsigned", signed=False)
    card_folder(tmp_path, monkeypatch, "unsigned")
    with pytest.raises(ReleaseError, match=r"unsigned: no Sigstore bundle to release"):
        release.stage("unsigned", out=tmp_path / "dist")
    register_tiny(tmp_path, "nocard")
    with pytest.raises(ReleaseError, match=r"nocard: no model card under .*cards"):
        release.stage("nocard", out=tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_verify_with_another_key_fails_the_signature(tmp_path: Path, tiny: Path) -> None:
    release.stage("tiny", out=tiny)
    other = generate_key_pair(tmp_path / "other.pem")
    result = release.verify(tiny, verifier=Verifier.from_public_key(other.public_key))
    failed = fails(result)
    assert len(failed) == 1
    assert failed[0].startswith("FAIL  model.onnx (signature):")
    assert "signature does not verify with" in failed[0]


def test_verify_of_a_release_not_registered_here_says_how_to_name_the_key(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release.stage("tiny", out=tiny)
    # Another machine: an empty overlay, so 'tiny' is known only from the release.
    monkeypatch.setenv(reg.ENV_OVERLAY, str(tmp_path / "elsewhere" / "registry.json"))
    failed = fails(release.verify(tiny))
    assert len(failed) == 1, failed
    assert failed[0].startswith("FAIL  model.onnx (signature): ")
    assert failed[0].endswith(
        "or, for a release not registered here, name the signer's key: --public-key PEM, "
        "--certificate-chain PEM or --identity ID"
    ), failed[0]


def test_verify_with_a_key_needs_no_usable_registry(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken overlay (or none at all) leaves the pin out, not the whole verification."""
    release.stage("tiny", out=tiny)
    key = next((tmp_path / "keys").rglob("*.pub"))
    broken = tmp_path / "broken" / "registry.json"
    broken.parent.mkdir()
    broken.write_text("{broken")
    monkeypatch.setenv(reg.ENV_OVERLAY, str(broken))
    result = release.verify(tiny, verifier=Verifier.from_public_key(key))
    assert result.ok, result.render()
    assert not [v for v in result.verdicts if v.asset.endswith("(pin)")]


def test_release_json_cannot_name_files_outside(tiny: Path) -> None:
    release.stage("tiny", out=tiny)
    doc = json.loads((tiny / release.RELEASE_JSON).read_text())
    doc["license_file"] = "../../secret.txt"
    (tiny / release.RELEASE_JSON).write_text(json.dumps(doc))
    with pytest.raises(
        ReleaseError, match=r"release\.json is malformed: license_file '\.\./\.\./secret\.txt' "
    ):
        release.verify(tiny)


def test_malformed_sums_are_refused(tiny: Path) -> None:
    release.stage("tiny", out=tiny)
    sums = tiny / release.SUMS
    original = sums.read_text()
    last = len(original.splitlines()) + 1
    for text, message in [
        (original + "0" * 64 + "  ..\n", rf"SHA256SUMS:{last}: not a sha256sum line"),
        (
            original + original.splitlines()[0] + "\n",
            rf"SHA256SUMS:{last}: lists 'LICENSE\.txt' twice",
        ),
    ]:
        sums.write_text(text)
        with pytest.raises(ReleaseError, match=message):
            release.verify(tiny)


def test_file_named_but_not_listed_fails(tiny: Path) -> None:
    release.stage("tiny", out=tiny)
    sums = tiny / release.SUMS
    kept = [line for line in sums.read_text().splitlines(True) if "tiny.md" not in line]
    sums.write_text("".join(kept))
    assert fails(release.verify(tiny)) == [
        "FAIL  tiny.md (sum): named in release.json but not listed in SHA256SUMS"
    ]


def test_contract_is_not_run_on_a_model_the_scan_refused(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release.stage("tiny", out=tiny)
    (tiny / "model.onnx").write_bytes(custom_domain_model())
    ran: list[bytes] = []
    monkeypatch.setattr(contract, "check_contract_bytes", lambda data, **_: ran.append(data))
    failed = fails(release.verify(tiny))
    assert "FAIL  model.onnx (contract): not run: the model did not pass the scan" in failed
    assert any(f.startswith("FAIL  model.onnx (scan):") for f in failed)
    assert ran == []


def test_verify_refuses_a_folder_that_is_not_a_release(tmp_path: Path) -> None:
    with pytest.raises(
        ReleaseError, match=r"not a staged release \(no release\.json or SHA256SUMS"
    ):
        release.verify(tmp_path)
