"""Fixtures of the release tests: the mirror and a tiny model, registered, signed, staged."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._trust import (
    MIRROR_LICENCE,
    MIRROR_SIDECAR,
    card_folder,
    isolate_registry,
    key_and_bundle,
    register_tiny,
)
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply import release

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
        f"{MIRROR}.sidecar.json",
        release.RELEASE_BUNDLE,
    ]
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_registry(tmp_path, monkeypatch)


@dataclass(frozen=True)
class Mirror:
    entry: reg.ModelEntry
    public_key: Path
    signer: release.ReleaseSigner


@pytest.fixture
def mirror(tmp_path: Path, mirror_onnx: Path) -> Mirror:
    """The exported mirror, signed and registered as a release asset in the overlay."""
    inputs = tmp_path / "export"
    inputs.mkdir()
    onnx = Path(shutil.copy(mirror_onnx, inputs / f"{MIRROR}.onnx"))
    manifest = Path(
        shutil.copy(f"{mirror_onnx}.manifest.json", inputs / f"{MIRROR}.onnx.manifest.json")
    )
    pair, bundle = key_and_bundle(onnx, tmp_path / "keys", sidecar=MIRROR_SIDECAR)
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
    return Mirror(entry, pair.public_key, release.ReleaseSigner(private_key=pair.private_key))


@pytest.fixture
def staged(tmp_path: Path, mirror: Mirror) -> Path:
    out = tmp_path / "dist" / MIRROR
    release.stage(MIRROR, out=out, signer=mirror.signer)
    return out


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """'tiny' registered and signed, with a card; returns the out folder to stage into."""
    register_tiny(tmp_path)
    card_folder(tmp_path, monkeypatch, "tiny")
    return tmp_path / "dist" / "tiny"


def tiny_signer(tmp_path: Path) -> release.ReleaseSigner:
    """The key register_tiny made for 'tiny', as a release signer."""
    return release.ReleaseSigner(private_key=tmp_path / "keys" / "tiny" / "signing.pem")


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def lines_of(result: release.VerifyResult) -> list[str]:
    return result.render().splitlines()


def fails(result: release.VerifyResult) -> list[str]:
    return [line for line in lines_of(result) if line.startswith("FAIL")]
