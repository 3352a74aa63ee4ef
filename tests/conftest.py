"""Shared test fixtures: the real data in ../shared, skipped cleanly when absent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CHECKPOINT = SHARED / "fixtures" / "u2netp" / "u2netp_bnfold_fp16.pth"
IMAGES = SHARED / "data" / "images"
VIDEOS = SHARED / "data" / "videos"
PASCAL_S = SHARED / "data" / "pascal-s"


@pytest.fixture(autouse=True)
def _isolated_user_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test away from the user's overlay registry, keys and jail setting."""
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("VMAFX_SALIENCY_REGISTRY", str(home / "overlay" / "registry.json"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.delenv("VMAFX_SALIENCY_MODEL_DIR", raising=False)
    monkeypatch.delenv("VMAFX_SALIENCY_COMMITTED_REGISTRY", raising=False)


@pytest.fixture(autouse=True)
def _extractor_json_meets_its_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every extractor JSON a test renders is checked against the shipped schema."""
    from vmafx_saliency import schemas
    from vmafx_saliency.video import output

    render = output.render_json

    def checked(frames: Any, run: Any) -> str:
        text = render(frames, run)
        problems = schemas.problems("features", json.loads(text))
        assert not problems, f"the extractor's JSON breaks features.schema.json: {problems}"
        return text

    monkeypatch.setattr(output, "render_json", checked)
    monkeypatch.setitem(output._RENDERERS, "json", checked)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}: put ../shared beside the project")
    return path


@pytest.fixture(scope="session")
def checkpoint_path() -> Path:
    return _need(CHECKPOINT, "the u2netp checkpoint fixture")


@pytest.fixture(scope="session")
def images_dir() -> Path:
    return _need(IMAGES, "the upstream demo images")


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    return _need(VIDEOS, "the shared videos")


@pytest.fixture(scope="session")
def pascal_s_dir() -> Path:
    return _need(PASCAL_S, "the PASCAL-S dataset")


@pytest.fixture(scope="session")
def mirror_onnx(tmp_path_factory: pytest.TempPathFactory, checkpoint_path: Path) -> Path:
    """The u2netp mirror exported once per test session from the real fixture."""
    from vmafx_saliency.supply.export import export_mirror

    out = tmp_path_factory.mktemp("mirror") / "u2netp_mirror_v1.onnx"
    export_mirror(
        checkpoint=checkpoint_path, output=out, images_dir=IMAGES if IMAGES.exists() else None
    )
    return out
