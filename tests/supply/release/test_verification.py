"""Release verification: one verdict per asset, tampering, a tiny model's verdicts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import (
    ROOT,
    custom_domain_model,
    flip_byte,
)
from tests.supply.release.conftest import (
    MIRROR,
    MIRROR_FILES,
    Mirror,
    fails,
    lines_of,
    tiny_signer,
)
from vmafx_saliency.errors import ReleaseError
from vmafx_saliency.supply import contract, release
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply.signing import Verifier, generate_key_pair, sign_model

# --- the mirror round trip -------------------------------------------------------------


def test_verify_gives_one_ok_verdict_per_asset(staged: Path, mirror: Mirror) -> None:
    for verifier in (None, Verifier.from_public_key(mirror.public_key)):
        result = release.verify(staged, verifier=verifier)
        assert result.ok, result.render()
        lines = lines_of(result)
        assert lines[-1] == f"{staged}: release verified"
        verdicts = lines[:-1]
        assert all(line.startswith("OK  ") for line in verdicts), verdicts
        expected = [
            *(
                f"{name} (sum)"
                for name in MIRROR_FILES
                if name not in (release.SUMS, release.RELEASE_BUNDLE)
            ),
            f"{MIRROR}.onnx (signature)",
            "release.sigstore.json (signature)",
            f"{MIRROR}.onnx (pin)",
            "release.json (registry)",
            f"{MIRROR}.onnx.manifest.json (manifest)",
            f"{MIRROR}.onnx (scan)",
            f"{MIRROR}.onnx (contract)",
            "Apache-2.0-u2netp.txt (licence)",
        ]
        assert [v.asset for v in result.verdicts] == expected
    text = result.render()
    assert "Sigstore bundle verifies with its sidecar (public-key" in text
    assert "release.sigstore.json (signature): signs all 8 other files (public-key" in text
    assert "Apache-2.0 text and attribution block present" in text


# --- tampering --------------------------------------------------------------------------


def test_a_release_stating_another_licence_or_source_fails(staged: Path) -> None:
    # The review: release.json was not signed; replacing the licence by MIT passed. Now the
    # release signature fails, and the registry's entry says so on its own.
    doc = json.loads((staged / "release.json").read_text())
    doc["license"] = "MIT"
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    (staged / "release.json").write_text(text)
    sums = (staged / release.SUMS).read_text().splitlines()
    new_sum = hashlib.sha256(text.encode()).hexdigest()
    (staged / release.SUMS).write_text(
        "".join(
            f"{new_sum}  release.json\n" if line.endswith(" release.json") else line + "\n"
            for line in sums
        )
    )
    failed = fails(release.verify(staged))
    assert failed[0].startswith("FAIL  release.sigstore.json (signature): ")
    assert failed[0].endswith(
        "SHA256SUMS, release.json: the bytes differ from the signed digest: the folder was "
        "changed after signing; do not use it"
    )
    assert failed[1:] == [
        "FAIL  release.json (registry): states licence 'MIT' and source 'upstream-mirror', but "
        f"this registry's entry for '{MIRROR}' says 'Apache-2.0' and 'upstream-mirror': the "
        "release was changed; do not use it"
    ]


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
    onnx.write_bytes(
        (ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx").read_bytes()
    )
    pair = generate_key_pair(tmp_path / "other_keys" / "signing.pem")
    sign_model(
        onnx, private_key=pair.private_key, sidecar=staged / f"{MIRROR}.sidecar.json", force=True
    )
    names = sorted(p.name for p in staged.iterdir() if p.name not in release.folder.RESERVED)
    names.append(release.RELEASE_JSON)
    (staged / release.SUMS).write_text(
        "".join(f"{hashlib.sha256((staged / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )
    result = release.verify(staged, verifier=Verifier.from_public_key(pair.public_key))
    failed = fails(result)
    # The release itself was signed by the mirror's key, not the swapper's.
    assert failed[0].startswith("FAIL  release.sigstore.json (signature): ")
    assert "signed by another key" in failed[0]
    failed = failed[1:]
    # This registry pins the mirror: the swapped binary is not it.
    assert re.fullmatch(
        rf"FAIL  {MIRROR}\.onnx \(pin\): has sha256 [0-9a-f]{{64}}, but this registry pins "
        rf"'{MIRROR}' at [0-9a-f]{{64}}: the release holds another binary than the registered one",
        failed[0],
    ), failed
    # On a machine where it is not registered, the manifest still gives it away.
    monkeypatch.setenv(reg.ENV_OVERLAY, str(tmp_path / "elsewhere" / "registry.json"))
    failed = fails(release.verify(staged, verifier=Verifier.from_public_key(pair.public_key)))
    assert len(failed) == 2, failed
    assert failed[0].startswith("FAIL  release.sigstore.json (signature): ")
    failed = failed[1:]
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
    # The sums, the signature, the registered licence and the attribution all say so.
    assert len(failed) == 4, failed
    assert failed[0].startswith("FAIL  Apache-2.0-u2netp.txt (sum): sha256")
    assert failed[1].startswith("FAIL  release.sigstore.json (signature): ") and failed[1].endswith(
        "Apache-2.0-u2netp.txt: the bytes differ from the signed digest: the folder was "
        "changed after signing; do not use it"
    )
    failed = failed[1:]
    assert failed[1].startswith(
        "FAIL  release.json (registry): the licence file Apache-2.0-u2netp.txt differs from "
        f"the one registered with '{MIRROR}'"
    )
    assert failed[2] == (
        "FAIL  Apache-2.0-u2netp.txt (licence): the licence file lacks the attribution block"
    )


def test_a_file_listed_in_the_sums_but_not_named_in_release_json_fails(staged: Path) -> None:
    """Whoever adds a file can list it in SHA256SUMS too: release.json and the signature
    both say it does not belong."""
    extra = staged / "extra.bin"
    extra.write_bytes(b"something else")
    with (staged / release.SUMS).open("a") as fh:
        fh.write(f"{hashlib.sha256(b'something else').hexdigest()}  extra.bin\n")
    failed = fails(release.verify(staged))
    assert failed[0] == "FAIL  extra.bin (sum): not named in release.json: an unexpected file"
    assert failed[1].startswith("FAIL  release.sigstore.json (signature): ")
    assert "unsigned: extra.bin" in failed[1]
    assert len(failed) == 2


def test_unexpected_file_fails(staged: Path) -> None:
    (staged / "notes.txt").write_text("not part of the release\n")
    failed = fails(release.verify(staged))
    assert failed[0] == "FAIL  notes.txt (sum): not listed in SHA256SUMS: an unexpected file"
    assert failed[1].endswith(
        "the signature does not cover the folder: unsigned: notes.txt: do not use this "
        "folder, or stage and sign it again"
    )
    assert len(failed) == 2


def test_missing_listed_file_fails(staged: Path) -> None:
    (staged / "u2netp_mirror.md").unlink()
    failed = fails(release.verify(staged))
    assert failed[0] == "FAIL  u2netp_mirror.md (sum): listed in SHA256SUMS but missing"
    assert "signed but absent: u2netp_mirror.md" in failed[1]
    assert len(failed) == 2


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


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_pipe_or_device_in_place_of_the_model_fails_without_blocking(
    staged: Path, kind: str
) -> None:
    # A pipe with no writer blocks an ordinary open; /dev/zero never ends a read.
    onnx = staged / f"{MIRROR}.onnx"
    onnx.unlink()
    if kind == "fifo":
        os.mkfifo(onnx)
    else:
        onnx.symlink_to("/dev/zero")

    def stuck(signum: int, frame: object) -> None:
        raise AssertionError("release verify blocked on the model")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(30)
    try:
        result = release.verify(staged)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    failed = fails(result)
    assert any(f.startswith(f"FAIL  {MIRROR}.onnx (sum): not a regular file") for f in failed)
    assert any(f.startswith(f"FAIL  {MIRROR}.onnx (pin): cannot read") for f in failed), failed
    assert any(f.startswith(f"FAIL  {MIRROR}.onnx (scan): ") for f in failed), failed
    assert lines_of(result)[-1] == f"{staged}: release NOT verified"


def test_symlink_in_the_release_fails(tmp_path: Path, staged: Path) -> None:
    card = staged / "u2netp_mirror.md"
    elsewhere = tmp_path / "card.md"
    card.replace(elsewhere)
    card.symlink_to(elsewhere)
    failed = fails(release.verify(staged))
    assert failed[0] == (
        "FAIL  u2netp_mirror.md (sum): not a regular file (a symlink or a folder): a release "
        "holds plain files only"
    )
    assert failed[1].startswith("FAIL  release.sigstore.json (signature): u2netp_mirror.md ")
    assert "a symlink, not a regular file" in failed[1]
    assert len(failed) == 2


# --- small models: refusals and edge cases -------------------------------------------------


def test_verify_with_another_key_fails_the_signature(tmp_path: Path, tiny: Path) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    other = generate_key_pair(tmp_path / "other.pem")
    result = release.verify(tiny, verifier=Verifier.from_public_key(other.public_key))
    failed = fails(result)
    assert len(failed) == 2
    assert failed[0].startswith("FAIL  model.onnx (signature):")
    assert "signature does not verify with" in failed[0]
    assert failed[1].startswith("FAIL  release.sigstore.json (signature):")
    assert "signature does not verify with" in failed[1]


def test_verify_of_a_release_not_registered_here_says_how_to_name_the_key(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    # Another machine: an empty overlay, so 'tiny' is known only from the release.
    monkeypatch.setenv(reg.ENV_OVERLAY, str(tmp_path / "elsewhere" / "registry.json"))
    failed = fails(release.verify(tiny))
    assert len(failed) == 2, failed
    assert failed[0].startswith("FAIL  model.onnx (signature): ")
    assert failed[1].startswith("FAIL  release.sigstore.json (signature): ")
    for line in failed:
        assert line.endswith(
            "or, for a release not registered here, name the signer's key: --public-key PEM, "
            "--certificate-chain PEM or --identity ID"
        ), line


def test_verify_with_a_key_needs_no_usable_registry(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken overlay (or none at all) leaves the pin out, not the whole verification."""
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    key = next((tmp_path / "keys").rglob("*.pub"))
    broken = tmp_path / "broken" / "registry.json"
    broken.parent.mkdir()
    broken.write_text("{broken")
    monkeypatch.setenv(reg.ENV_OVERLAY, str(broken))
    result = release.verify(tiny, verifier=Verifier.from_public_key(key))
    assert result.ok, result.render()
    assert not [v for v in result.verdicts if v.asset.endswith("(pin)")]


def test_file_named_but_not_listed_fails(tmp_path: Path, tiny: Path) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    sums = tiny / release.SUMS
    kept = [line for line in sums.read_text().splitlines(True) if "tiny.md" not in line]
    sums.write_text("".join(kept))
    failed = fails(release.verify(tiny))
    assert failed[0] == "FAIL  tiny.md (sum): named in release.json but not listed in SHA256SUMS"
    assert failed[1].endswith(
        "SHA256SUMS: the bytes differ from the signed digest: the folder was changed after "
        "signing; do not use it"
    )
    assert len(failed) == 2


def test_contract_is_not_run_on_a_model_the_scan_refused(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
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


def test_release_json_and_the_sums_are_read_once(
    staged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmafx_saliency.supply.release import verification
    from vmafx_saliency.supply.release.folder import read_small as original

    reads: list[str] = []

    def counting(path: Path, **kwargs: object) -> bytes:
        reads.append(path.name)
        return original(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(verification, "read_small", counting)
    assert release.verify(staged).ok
    assert reads.count("release.json") == 1 and reads.count("SHA256SUMS") == 1, reads
