"""Fixtures of the materializer tests: a tiny model, a corrupt mp4, a table of every case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._materialize import _write_jsonl, _write_model
from tests._onnx_models import conv_sigmoid_model
from vmafx_saliency.video.job import ModelChoice


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ModelChoice:
    path = _write_model(tmp_path_factory.mktemp("model"), "tiny_conv_v1", conv_sigmoid_model())
    return ModelChoice(model_path=path)


@pytest.fixture(scope="module")
def corrupt_mp4(tmp_path_factory: pytest.TempPathFactory, videos_dir: Path) -> Path:
    """A real mp4's first 3000 bytes (cut mid-box) followed by garbage."""
    path = tmp_path_factory.mktemp("bad") / "corrupt.mp4"
    head = (videos_dir / "carphone_pristine.mp4").read_bytes()[:3000]
    path.write_bytes(head + b"\x00garbage" * 64)
    return path


def _rows(tmp: Path, videos: Path, corrupt: Path) -> list[dict[str, Any]]:
    """Relative names resolve against --root (the videos); tmp files are absolute."""
    return [
        {"id": 0, "src": "carphone_pristine.mp4", "label": "ref", "score": 4.5, "tags": ["a"]},
        {"id": 1, "src": "akiyo_cif.mp4", "meta": {"k": [1, 2]}, "flag": True, "score": 3},
        {"id": 2, "src": "CiscoVT2people_160x96_6fps.yuv", "width": 160, "height": 96},
        {"id": 3, "src": str(videos / "carphone_pristine.mp4"), "label": "same clip"},
        {"id": 4, "src": str(tmp / "missing.mp4")},
        {"id": 5, "src": str(corrupt)},
        {
            "id": 6,
            "src": "foreman_cif.mp4",
            "saliency_mean": 0.25,
            "saliency_var": 0.125,
            "saliency_model": "older_model",
            "after": "kept",
        },
        {"id": 7, "src": None},
        {"id": 8, "src": "carphone_distorted.mp4"},
        {"id": 9, "src": "akiyo_cif.mp4", "label": "dup"},
        {"id": 10, "src": "CiscoVT2people_320x192_12fps.yuv"},  # raw, no geometry
    ]


@pytest.fixture
def table(tmp_path: Path, videos_dir: Path, corrupt_mp4: Path) -> Path:
    return _write_jsonl(tmp_path / "clips.jsonl", _rows(tmp_path, videos_dir, corrupt_mp4))
