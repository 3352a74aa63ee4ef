"""Shared helpers of the materializer tests (tests/downstream/materialize)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests._trust import MIRROR_SIDECAR
from vmafx_saliency.downstream import materialize as mz
from vmafx_saliency.errors import MaterializeError
from vmafx_saliency.video.job import ModelChoice

MAX_FRAMES = 4


def _write_model(folder: Path, name: str, data: bytes) -> Path:
    """The model plus ``<stem>.sidecar.json`` beside it (native size keeps tests fast)."""
    doc = json.loads(MIRROR_SIDECAR.read_text())
    doc["model_id"] = name
    doc["preprocessing"]["inference_size"] = "native"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sidecar.json").write_text(json.dumps(doc))
    path = folder / f"{name}.onnx"
    path.write_bytes(data)
    return path


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _options(model: ModelChoice, videos: Path, **kwargs: Any) -> mz.Options:
    base: dict[str, Any] = {
        "path_column": "src",
        "root": videos,
        "model": model,
        "max_frames": MAX_FRAMES,
        "jobs": 1,
    }
    return mz.Options(**(base | kwargs))


def _refused_writing_nothing(table: Path, out: Path, options: mz.Options, match: str) -> None:
    with pytest.raises(MaterializeError, match=match):
        mz.materialize(table, out, options)
    assert not out.exists()
