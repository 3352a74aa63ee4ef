"""The vmaf-tool output formats and pooling: renderers, write_output."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests._video import AWKWARD, POOL_KEYS, PRINTED, REAL_POOLED, REAL_VMAF, VMAF_JSON_KEYS
from tests._video import frame_records as _frames
from vmafx_saliency.errors import OutputError, OutputExistsError
from vmafx_saliency.video import output
from vmafx_saliency.video.output import (
    FrameRecord,
    RunInfo,
    pool,
    pool_metrics,
    render_csv,
    render_json,
    render_xml,
    write_output,
)

SHA = "0123456789abcdef" * 4


def _run(**changes: Any) -> RunInfo:
    fields: dict[str, Any] = {
        "version": "vmafx-saliency 0.1.0",
        "fps": 123.456,
        "model_id": "u2netp_mirror_v1",
        "model_sha256": SHA,
        "infer_size": (320, 320),
        "frame_size": (352, 288),
        "map_note": "saliency_map computed at 320x320, frame is 352x288",
        "subsample": 1,
        "source": "foreman_cif.mp4",
    }
    fields.update(changes)
    return RunInfo(**fields)


# ---------------------------------------------------------------------- pooling


def test_pool_hand_computed() -> None:
    # [0.1, 0.2, 0.6]: min 0.1, max 0.6, mean 0.9 / 3 = 0.3.
    # Harmonic mean as vmaf: 1/1.1 + 1/1.2 + 1/1.6 = 10/11 + 5/6 + 5/8
    #   = (240 + 220 + 165) / 264 = 625/264, so 3 / (625/264) - 1
    #   = 792/625 - 1 = 0.2672 exactly.
    p = pool([0.1, 0.2, 0.6])
    assert p.min == pytest.approx(0.1)
    assert p.max == pytest.approx(0.6)
    assert p.mean == pytest.approx(0.3)
    assert p.harmonic_mean == pytest.approx(0.2672, abs=1e-12)


def test_pool_single_value_is_that_value_four_times() -> None:
    # One value x: n / (1/(x+1)) - 1 = x, so all four agree.
    p = pool([0.42])
    for value in (p.min, p.max, p.mean, p.harmonic_mean):
        assert value == pytest.approx(0.42, abs=1e-12)


def test_pool_of_nothing_is_refused() -> None:
    with pytest.raises(OutputError, match="empty"):
        pool([])


def test_pool_with_nan_is_nan_and_written_as_null() -> None:
    p = pool([0.1, float("nan")])
    assert all(math.isnan(v) for v in (p.min, p.max, p.mean, p.harmonic_mean))
    frames = [FrameRecord(0, {"saliency_mean": float("nan")})]
    doc = json.loads(render_json(frames, _run()))
    assert doc["frames"][0]["metrics"]["saliency_mean"] is None
    assert doc["pooled_metrics"]["saliency_mean"] == dict.fromkeys(POOL_KEYS)
    # vmaf's XML and CSV print %.6f of NaN as it comes: "nan".
    assert 'saliency_mean="nan"' in render_xml(frames, _run())


def test_pool_metrics_first_seen_order() -> None:
    frames = [FrameRecord(0, {"b": 1.0}), FrameRecord(1, {"a": 2.0, "b": 3.0})]
    pooled = pool_metrics(frames)
    assert list(pooled) == ["b", "a"]
    assert pooled["b"].mean == pytest.approx(2.0)
    assert pooled["a"].max == pytest.approx(2.0)


def test_pool_reproduces_vmafs_pooled_values_on_real_output() -> None:
    # vmaf pooled the unrounded scores; we only have them to six decimals, so
    # agreement is to ~1e-6, not exact (motion2's mean comes out 3.296706x).
    for name, values in REAL_VMAF.items():
        p = pool(values)
        got = (p.min, p.max, p.mean, p.harmonic_mean)
        assert got == pytest.approx(REAL_POOLED[name], abs=1e-6), name


# --------------------------------------------------------------------- renderers


def _parse_all(frames: list[FrameRecord], run: RunInfo) -> tuple[Any, ET.Element, list[list[str]]]:
    doc = json.loads(render_json(frames, run))
    root = ET.fromstring(render_xml(frames, run))
    rows = list(csv.reader(io.StringIO(render_csv(frames, run))))
    return doc, root, rows


def test_json_xml_csv_agree_with_each_other_and_the_values() -> None:
    frames = _frames(AWKWARD, step=3)
    doc, root, rows = _parse_all(frames, _run())

    xml_frames = root.findall("./frames/frame")
    assert [f["frameNum"] for f in doc["frames"]] == [0, 3, 6, 9]
    assert [int(f.get("frameNum", "-1")) for f in xml_frames] == [0, 3, 6, 9]
    assert [int(r[0]) for r in rows[1:]] == [0, 3, 6, 9]

    for i, frame in enumerate(frames):
        for j, (name, value) in enumerate(frame.metrics.items()):
            from_json = doc["frames"][i]["metrics"][name]
            from_xml = float(xml_frames[i].get(name, "nan"))
            from_csv = float(rows[i + 1][j + 1])
            # The same %.6f text in all three, within half a sixth decimal of the value.
            assert from_xml == pytest.approx(from_json, abs=1e-12)
            assert from_csv == pytest.approx(from_json, abs=1e-12)
            assert from_json == pytest.approx(value, abs=PRINTED)

    pooled = pool_metrics(frames)
    xml_pooled = {m.get("name"): m for m in root.findall("./pooled_metrics/metric")}
    assert list(doc["pooled_metrics"]) == list(xml_pooled) == ["saliency_mean", "saliency_var"]
    for name, stats in pooled.items():
        assert list(doc["pooled_metrics"][name]) == POOL_KEYS
        for key in POOL_KEYS:
            assert doc["pooled_metrics"][name][key] == pytest.approx(
                getattr(stats, key), abs=PRINTED
            )
            assert float(xml_pooled[name].get(key, "nan")) == pytest.approx(
                doc["pooled_metrics"][name][key], abs=1e-12
            )


def test_json_has_vmafs_keys_plus_params_and_model() -> None:
    text = render_json(_frames(AWKWARD), _run())
    doc = json.loads(text)
    assert [k for k in doc if k in VMAF_JSON_KEYS] == VMAF_JSON_KEYS
    assert set(doc) - set(VMAF_JSON_KEYS) == {"params", "model"}
    assert doc["version"] == "vmafx-saliency 0.1.0"
    assert doc["fps"] == pytest.approx(123.46)  # %.2f, as vmaf
    assert doc["aggregate_metrics"] == {}
    assert list(doc["frames"][0]) == ["frameNum", "metrics"]
    assert doc["model"] == {
        "id": "u2netp_mirror_v1",
        "sha256": SHA,
        "infer_size": "320x320",
        "map_note": "saliency_map computed at 320x320, frame is 352x288",
        "provider": "cpu",  # the ONNX Runtime execution provider that ran (issue 38)
    }
    assert doc["params"] == {
        "qualityWidth": 352,
        "qualityHeight": 288,
        "subsample": 1,
        "source": "foreman_cif.mp4",
    }
    # Numbers, not strings, printed as vmaf prints them: %.6f.
    assert '"saliency_mean": 0.333333,' in text
    assert '"saliency_mean": 1.000000,' in text  # 0.9999996 rounds up
    assert '"saliency_var": 0.000000\n' in text
    assert '"fps": 123.46,' in text


def test_xml_shape_and_model_attributes() -> None:
    root = ET.fromstring(render_xml(_frames(AWKWARD), _run()))
    assert root.tag == "VMAF"
    assert root.get("version") == "vmafx-saliency 0.1.0"
    assert [child.tag for child in root] == [
        "params",
        "fyi",
        "model",
        "frames",
        "pooled_metrics",
        "aggregate_metrics",
    ]
    params = root.find("params")
    assert params is not None
    assert (params.get("qualityWidth"), params.get("qualityHeight")) == ("352", "288")
    fyi = root.find("fyi")
    assert fyi is not None and fyi.get("fps") == "123.46"
    model = root.find("model")
    assert model is not None
    assert model.get("id") == "u2netp_mirror_v1"
    assert model.get("sha256") == SHA
    assert model.get("infer_size") == "320x320"
    assert model.get("map_note") == "saliency_map computed at 320x320, frame is 352x288"
    first = root.find("./frames/frame")
    assert first is not None
    assert list(first.attrib) == ["frameNum", "saliency_mean", "saliency_var"]
    assert first.get("saliency_mean") == "0.333333"


def test_native_size_and_no_model_id() -> None:
    run = _run(infer_size=None, map_note=None, model_id=None)
    doc, root, _ = _parse_all(_frames(AWKWARD), run)
    assert doc["model"] == {
        "id": None,
        "sha256": SHA,
        "infer_size": "native",
        "map_note": None,
        "provider": "cpu",
    }
    model = root.find("model")
    assert model is not None
    assert dict(model.attrib) == {"sha256": SHA, "infer_size": "native", "provider": "cpu"}


def test_text_is_escaped_in_json_and_xml() -> None:
    source = 'clip "a&b" <1>\u00e9.mp4'
    doc, root, _ = _parse_all(_frames(AWKWARD), _run(source=source, version="v<1>&"))
    assert doc["params"]["source"] == source
    params = root.find("params")
    assert params is not None and params.get("source") == source
    assert root.get("version") == "v<1>&"


def test_csv_is_vmafs_with_trailing_commas() -> None:
    text = render_csv(_frames(AWKWARD[:2]), _run())
    assert text == (
        "Frame,saliency_mean,saliency_var,\n0,0.333333,0.000000,\n1,1.000000,0.285714,\n"
    )
    rows = list(csv.reader(io.StringIO(text)))
    # The trailing comma reads as one empty last field on every line.
    assert all(row[-1] == "" for row in rows)


def test_csv_refuses_frames_with_different_metrics() -> None:
    frames = [FrameRecord(0, {"a": 1.0, "b": 2.0}), FrameRecord(1, {"a": 1.0})]
    with pytest.raises(OutputError, match="frame 1 has metrics"):
        render_csv(frames, _run())


@pytest.mark.parametrize("nums", [[0, 0], [2, 1], [-1]])
def test_frame_numbers_must_increase(nums: list[int]) -> None:
    frames = [FrameRecord(n, {"a": 0.5}) for n in nums]
    with pytest.raises(OutputError, match="frame number"):
        render_json(frames, _run())


def test_empty_run_renders_empty_frames() -> None:
    doc, root, rows = _parse_all([], _run())
    assert doc["frames"] == [] and doc["pooled_metrics"] == {}
    assert root.findall("./frames/frame") == []
    assert rows == [["Frame", ""]]


# ------------------------------------------------------------------ write_output


@pytest.mark.parametrize("fmt", ["json", "xml", "csv"])
def test_write_output_writes_the_rendered_text(tmp_path: Path, fmt: str) -> None:
    frames, run = _frames(AWKWARD), _run()
    path = tmp_path / "sub" / f"out.{fmt}"
    write_output(frames, run, path=path, fmt=fmt, force=False)  # type: ignore[arg-type]
    expected = {"json": render_json, "xml": render_xml, "csv": render_csv}[fmt](frames, run)
    assert path.read_text(encoding="utf-8") == expected


def test_write_output_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        write_output(_frames(AWKWARD), _run(), path=path, fmt="json")
    assert path.read_text() == "mine"
    write_output(_frames(AWKWARD), _run(), path=path, fmt="json", force=True)
    assert json.loads(path.read_text())["version"] == "vmafx-saliency 0.1.0"


def test_write_output_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The rename (or, without --force, the link) is the commit point: make it
    # fail and nothing may be left.
    def refuse(self: Path, target: Any) -> Path:
        raise OSError(28, "No space left on device")

    def refuse_link(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", refuse)
    monkeypatch.setattr(os, "link", refuse_link)
    with pytest.raises(OutputError, match="No space left"):
        write_output(_frames(AWKWARD), _run(), path=tmp_path / "out.csv", fmt="csv")
    assert list(tmp_path.iterdir()) == []


def test_write_output_dash_is_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_output(_frames(AWKWARD), _run(), path="-", fmt="csv")
    assert capsys.readouterr().out == render_csv(_frames(AWKWARD), _run())
    assert list(tmp_path.iterdir()) == []


def test_write_output_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="unknown output format 'yaml'"):
        write_output([], _run(), path=tmp_path / "x", fmt="yaml")  # type: ignore[arg-type]


def test_module_imports_no_optional_dependency() -> None:
    # The runtime needs only the standard library and numpy for the formats.
    source = Path(output.__file__).read_text(encoding="utf-8")
    header = source.split("\ndef ", 1)[0]
    assert "import matplotlib" not in header and "PIL" not in header
