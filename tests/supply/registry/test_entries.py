"""The records: a sidecar's round trip, and its refusals naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._trust import sidecar_doc, write_json
from vmafx_saliency.errors import SidecarError
from vmafx_saliency.supply import registry as reg


def test_sidecar_native_size_and_round_trip(tmp_path: Path) -> None:
    doc = sidecar_doc("m")
    doc["preprocessing"]["inference_size"] = "native"
    doc["notes"] = "why"
    loaded = reg.Sidecar.load(write_json(tmp_path / "s.json", doc))
    assert loaded.preprocessing.inference_size is None
    assert loaded.notes == "why"
    again = reg.Sidecar.load(write_json(tmp_path / "t.json", loaded.to_json()))
    assert again == loaded


def test_sidecar_errors_name_file_and_field(tmp_path: Path) -> None:
    doc = sidecar_doc("m")
    doc["preprocessing"]["std"] = [0.2, 0.0, 0.2]
    path = write_json(tmp_path / "s.json", doc)
    with pytest.raises(SidecarError, match=r"s\.json.*preprocessing\.std\[1\]"):
        reg.Sidecar.load(path)


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("std", "[0.2, 1e-300, 0.2]", r"preprocessing\.std\[1\]"),  # 0 in float32: NaN maps
        ("std", "[0.2, 1e400, 0.2]", r"preprocessing\.std\[1\]"),  # read as inf: a flat input
        ("mean", "[1e39, 0.4, 0.4]", r"preprocessing\.mean\[0\]"),  # inf in float32
        ("inference_size", "[1000000, 1000000]", r"preprocessing\.inference_size: "),
        ("inference_size", "[16, 320]", r"preprocessing\.inference_size: .*32\.\.4096 each"),
    ],
)
def test_sidecar_values_that_break_float32_or_memory_are_refused(
    tmp_path: Path, field: str, value: str, where: str
) -> None:
    doc = sidecar_doc("m")
    doc["preprocessing"][field] = "VALUE"
    path = tmp_path / "s.json"
    # The number as it would be typed: json reads 1e400 as inf (it refuses "Infinity").
    path.write_text(json.dumps(doc).replace('"VALUE"', value))
    with pytest.raises(SidecarError, match=rf"s\.json.*{where}"):
        reg.Sidecar.load(path)
