"""Fixtures of the ROI tests: a tiny model with its sidecar, built in tmp."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._onnx_models import conv_sigmoid_model
from tests._trust import sidecar_doc, write_json


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    model = tmp_path / "tiny.onnx"
    model.write_bytes(conv_sigmoid_model())
    doc = sidecar_doc("tiny")
    doc["preprocessing"]["inference_size"] = [72, 88]
    write_json(tmp_path / "tiny.sidecar.json", doc)
    return model
