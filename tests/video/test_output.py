"""The vmaf-tool output formats, pooling, merging into a vmaf JSON, PNG maps and plots."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._video import POOL_KEYS, VMAF_METRICS, vmaf_doc, vmaf_file
from vmafx_saliency.errors import (
    InputFileError,
    MissingDependencyError,
    OutputError,
    OutputExistsError,
)
from vmafx_saliency.video import output
from vmafx_saliency.video.output import (
    FrameRecord,
    RunInfo,
    merge_into,
    plot_series,
    pool,
    pool_metrics,
    render_csv,
    render_json,
    render_xml,
    save_map,
    write_output,
    write_png_gray,
)

# The top-level keys libvmaf's vmaf_write_output_json writes, in its order.
VMAF_JSON_KEYS = ["version", "fps", "frames", "pooled_metrics", "aggregate_metrics"]
SHA = "0123456789abcdef" * 4

# A value printed with %.6f is within half a unit of the sixth decimal.
PRINTED = 5e-7 + 1e-12


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


def _frames(values: list[tuple[float, float]], *, step: int = 1) -> list[FrameRecord]:
    return [
        FrameRecord(i * step, {"saliency_mean": m, "saliency_var": v})
        for i, (m, v) in enumerate(values)
    ]


# Awkward values on purpose: a repeating fraction, one that rounds up to
# 1.000000, one below the printed precision, and an exact zero.
AWKWARD = [(1 / 3, 0.0000004), (0.9999996, 2 / 7), (0.0, 0.125), (0.5, 0.0012345678)]


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


# Real vmaf output: three of the metrics in a 48-frame JSON written by the vmaf
# tool (libvmaf, version "0677637f", testdata/scores_cpu_576.json of the
# Netflix/vmaf tree), as printed there with %.6f, with its pooled block.
REAL_VMAF = {
    "vmaf": [
        97.428043, 97.428043, 97.428043, 100.0, 100.0, 100.0, 100.0, 93.297156,
        93.297029, 93.129023, 93.353280, 93.411694, 93.461135, 93.489400, 93.375617,
        93.413759, 93.541789, 93.520326, 93.730405, 93.490448, 93.494036, 93.707218,
        93.557213, 93.797764, 93.440078, 93.554527, 93.660620, 93.644349, 93.408295,
        93.587685, 93.994964, 93.686070, 93.540831, 93.584258, 93.466789, 93.631166,
        93.614716, 93.548853, 93.537820, 93.764782, 93.567849, 93.687889, 93.776222,
        93.749126, 93.412494, 93.442175, 93.356981, 93.494516,
    ],
    "integer_motion2": [
        0.0, 0.0, 0.0, 20.447048, 45.471954, 44.605442, 44.605442, 0.000132, 0.000132,
        0.061155, 0.061155, 0.083048, 0.061237, 0.061237, 0.087438, 0.087438, 0.081849,
        0.081849, 0.099452, 0.042641, 0.042641, 0.080048, 0.080048, 0.103425, 0.019551,
        0.019551, 0.107806, 0.050060, 0.035792, 0.035792, 0.248749, 0.067295, 0.067295,
        0.173798, 0.028675, 0.028675, 0.134328, 0.174694, 0.070587, 0.047916, 0.047916,
        0.049428, 0.086115, 0.110967, 0.123509, 0.115957, 0.076322, 0.076322,
    ],
    "integer_vif_scale0": [
        1.0, 1.0, 1.0, 0.955685, 0.901099, 0.845639, 0.815226, 0.805365, 0.805367,
        0.805152, 0.805264, 0.805973, 0.806254, 0.807323, 0.806266, 0.808296, 0.808053,
        0.807189, 0.808827, 0.808144, 0.807582, 0.808825, 0.807913, 0.810295, 0.809431,
        0.809572, 0.809038, 0.809120, 0.808209, 0.809295, 0.808953, 0.810351, 0.809701,
        0.809273, 0.809135, 0.809741, 0.808440, 0.808788, 0.809961, 0.810897, 0.810709,
        0.810703, 0.811127, 0.809839, 0.807320, 0.807870, 0.807210, 0.806729,
    ],
}  # fmt: skip
REAL_POOLED = {
    "vmaf": (93.129023, 100.0, 94.323010, 94.284562),
    "integer_motion2": (0.0, 45.471954, 3.296707, 0.162508),
    "integer_vif_scale0": (0.805152, 1.0, 0.826274, 0.824934),
}


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
    assert doc["model"] == {"id": None, "sha256": SHA, "infer_size": "native", "map_note": None}
    model = root.find("model")
    assert model is not None
    assert dict(model.attrib) == {"sha256": SHA, "infer_size": "native"}


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
    # The rename is the commit point: make it fail and nothing may be left.
    def refuse(self: Path, target: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", refuse)
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


# ---------------------------------------------------------------------- merge_into


def _vmaf_file(tmp_path: Path, nums: list[int] | None = None) -> Path:
    return vmaf_file(tmp_path / "vmaf.json", nums)


def test_merge_adds_saliency_and_pools_only_ours(tmp_path: Path) -> None:
    src = _vmaf_file(tmp_path)
    out = tmp_path / "merged.json"
    frames = _frames(AWKWARD)
    assert merge_into(src, frames, out=out) == out
    text = out.read_text(encoding="utf-8")
    doc = json.loads(text)
    original = json.loads(src.read_text(encoding="utf-8"))

    assert list(doc) == VMAF_JSON_KEYS  # nothing of ours at the top level
    assert doc["fps"] == pytest.approx(444.26)
    for i, frame in enumerate(doc["frames"]):
        assert list(frame["metrics"]) == [*VMAF_METRICS, "saliency_mean", "saliency_var"]
        for name, values in VMAF_METRICS.items():
            assert frame["metrics"][name] == pytest.approx(values[i], abs=PRINTED)
        for name, value in frames[i].metrics.items():
            assert frame["metrics"][name] == pytest.approx(value, abs=PRINTED)

    assert list(doc["pooled_metrics"]) == [*VMAF_METRICS, "saliency_mean", "saliency_var"]
    # vmaf's pooled block is vmaf's: the same entries, in the same text.
    vmaf_pooled = {name: original["pooled_metrics"][name] for name in VMAF_METRICS}
    assert {name: doc["pooled_metrics"][name] for name in VMAF_METRICS} == vmaf_pooled
    for name, stats in pool_metrics(frames).items():
        for key in POOL_KEYS:
            assert doc["pooled_metrics"][name][key] == pytest.approx(
                getattr(stats, key), abs=PRINTED
            )
    # vmaf's numbers keep their exact text.
    assert '"integer_adm2": 1.000000,' in text
    assert '"fps": 444.26,' in text
    assert src.read_text(encoding="utf-8") == vmaf_doc(VMAF_METRICS, [0, 1, 2, 3])


def test_merge_keeps_vmafs_pooled_text_on_real_output(tmp_path: Path) -> None:
    # A real vmaf file's pooled block: pooling again from the six-decimal frames
    # would move motion2's mean (3.296707 -> 3.296706); the merge must not touch it.
    n = len(REAL_VMAF["vmaf"])
    src = tmp_path / "real.json"
    pooled_text = {
        k: "{"
        + ", ".join(f'"{key}": {v:.6f}' for key, v in zip(POOL_KEYS, vals, strict=True))
        + "}"
        for k, vals in REAL_POOLED.items()
    }
    metrics_text = [", ".join(f'"{k}": {v[i]:.6f}' for k, v in REAL_VMAF.items()) for i in range(n)]
    frames_text = ", ".join(
        f'{{"frameNum": {i}, "metrics": {{{metrics_text[i]}}}}}' for i in range(n)
    )
    src.write_text(
        '{"version": "0677637f", "fps": 444.26, "frames": [' + frames_text + "], "
        '"pooled_metrics": {' + ", ".join(f'"{k}": {t}' for k, t in pooled_text.items()) + "}, "
        '"aggregate_metrics": {}}'
    )
    frames = [FrameRecord(i, {"saliency_mean": 0.25, "saliency_var": 0.01}) for i in range(n)]
    text = merge_into(src, frames, out=tmp_path / "m.json").read_text()
    merged = json.loads(text)
    for name, values in REAL_POOLED.items():
        for key, value in zip(POOL_KEYS, values, strict=True):
            assert f'"{key}": {value:.6f}' in text  # the exact text vmaf printed
            assert merged["pooled_metrics"][name][key] == pytest.approx(value, abs=1e-12)
    assert merged["pooled_metrics"]["saliency_mean"]["mean"] == pytest.approx(0.25)


def test_merge_leaves_vmafs_pooled_block_alone_even_when_it_disagrees(tmp_path: Path) -> None:
    # vmaf's mean zeroed by hand: not ours to mend. The merge adds features and
    # edits nothing else, and it adds no pooled entry vmaf did not write.
    doc = json.loads(vmaf_doc(VMAF_METRICS, [0, 1, 2, 3]))
    doc["pooled_metrics"]["vmaf"]["mean"] = 0.0
    del doc["pooled_metrics"]["integer_adm2"]
    src = tmp_path / "stale.json"
    src.write_text(json.dumps(doc))
    merged = json.loads(merge_into(src, _frames(AWKWARD), out=tmp_path / "m.json").read_text())
    assert merged["pooled_metrics"]["vmaf"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert "integer_adm2" not in merged["pooled_metrics"]
    assert list(merged["pooled_metrics"])[-2:] == ["saliency_mean", "saliency_var"]


def test_merge_with_subsampled_frame_numbers(tmp_path: Path) -> None:
    src = _vmaf_file(tmp_path, nums=[0, 2, 4, 6])
    merged = json.loads(
        merge_into(src, _frames(AWKWARD, step=2), out=tmp_path / "m.json").read_text()
    )
    assert [f["frameNum"] for f in merged["frames"]] == [0, 2, 4, 6]
    assert merged["frames"][3]["metrics"]["saliency_mean"] == pytest.approx(0.5)


def test_merge_refuses_mismatched_frame_numbers(tmp_path: Path) -> None:
    src = _vmaf_file(tmp_path)
    before = src.read_bytes()
    # Ours: 0, 2, 4, 6; the file's: 0, 1, 2, 3.
    with pytest.raises(OutputError) as info:
        merge_into(src, _frames(AWKWARD, step=2), out=tmp_path / "m.json")
    message = str(info.value)
    assert "vmaf file has 4 frames, the saliency features 4" in message
    assert "missing from the vmaf file: 4, 6" in message
    assert "missing from the saliency features: 1, 3" in message
    assert src.read_bytes() == before
    assert not (tmp_path / "m.json").exists()


def test_merge_of_frames_shifted_by_a_skip_names_frame_skip_ref(tmp_path: Path) -> None:
    """vmaf --frame_skip_ref 10 numbers 0..3; extract --frames 10:14 numbers 10..13."""
    src = _vmaf_file(tmp_path)
    shifted = [FrameRecord(10 + r.frame_num, r.metrics) for r in _frames(AWKWARD)]
    with pytest.raises(
        OutputError,
        match=r"the features are the vmaf file's frames shifted by 10: was vmaf run with "
        r"--frame_skip_ref 10\?",
    ):
        merge_into(src, shifted, out=tmp_path / "m.json")
    # Frames that are not a shift get the usual advice.
    with pytest.raises(OutputError, match=r"run both tools on the same video with the same"):
        merge_into(src, _frames(AWKWARD, step=2), out=tmp_path / "m.json")


def test_merge_lists_at_most_five_missing_frames(tmp_path: Path) -> None:
    src = _vmaf_file(tmp_path)
    frames = [FrameRecord(i, {"saliency_mean": 0.1}) for i in range(20)]
    with pytest.raises(OutputError, match=r"missing from the vmaf file: 4, 5, 6, 7, 8 and 11 more"):
        merge_into(src, frames, out=tmp_path / "m.json")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a vmaf JSON"),
        ('{"frames": [], "score": 3}', "not a vmaf JSON.*'pooled_metrics'"),
        ('{"frames": [{"metrics": {}}], "pooled_metrics": {}}', "frameNum"),
        ('{"frames": [{"frameNum": 0, "metrics": {"a": "x"}}], "pooled_metrics": {}}', "number"),
    ],
)
def test_merge_refuses_what_is_not_a_vmaf_json(tmp_path: Path, content: str, why: str) -> None:
    src = tmp_path / "other.json"
    src.write_text(content)
    with pytest.raises(InputFileError, match=why) as info:
        merge_into(src, _frames(AWKWARD[:1]), out=tmp_path / "m.json")
    assert str(src) in str(info.value)
    assert src.read_text() == content


def test_merge_in_place_needs_force(tmp_path: Path) -> None:
    src = _vmaf_file(tmp_path)
    before = src.read_bytes()
    with pytest.raises(OutputExistsError, match=r"in place.*--force"):
        merge_into(src, _frames(AWKWARD))
    assert src.read_bytes() == before
    # Naming the input as the output is the same thing.
    with pytest.raises(OutputExistsError):
        merge_into(src, _frames(AWKWARD), out=tmp_path / "." / "vmaf.json")
    assert merge_into(src, _frames(AWKWARD), force=True) == src
    assert "saliency_mean" in json.loads(src.read_text())["pooled_metrics"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vmaf.json"]  # no temp left


def test_merge_refuses_an_existing_output_without_force(tmp_path: Path) -> None:
    src = _vmaf_file(tmp_path)
    out = tmp_path / "m.json"
    out.write_text("keep")
    with pytest.raises(OutputExistsError):
        merge_into(src, _frames(AWKWARD), out=out)
    assert out.read_text() == "keep"


def test_merge_refuses_a_metric_the_file_has_unless_forced(tmp_path: Path) -> None:
    src = _vmaf_file(tmp_path)
    once = merge_into(src, _frames(AWKWARD), out=tmp_path / "once.json")
    before = once.read_bytes()
    again = [FrameRecord(i, {"saliency_mean": 0.75, "saliency_var": 0.5}) for i in range(4)]
    with pytest.raises(OutputError, match=r"already has the metric.*saliency_mean.*--force"):
        merge_into(once, again, out=tmp_path / "twice.json")
    assert once.read_bytes() == before
    merged = json.loads(
        merge_into(once, again, out=tmp_path / "twice.json", force=True).read_text()
    )
    assert merged["frames"][0]["metrics"]["saliency_mean"] == pytest.approx(0.75)
    assert merged["pooled_metrics"]["saliency_var"]["max"] == pytest.approx(0.5)
    # Replaced in place, not appended a second time.
    assert list(merged["frames"][0]["metrics"]).count("saliency_mean") == 1


def test_merge_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        merge_into(tmp_path / "nope.json", _frames(AWKWARD), out=tmp_path / "m.json")


# ---------------------------------------------------------------------- PNG maps


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 31), (64, 7)])
def test_png_round_trip_through_pil(tmp_path: Path, shape: tuple[int, int]) -> None:
    # PIL is a second, independent PNG decoder: it must read back every pixel.
    from PIL import Image

    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / "m.png"
    write_png_gray(path, image)
    with Image.open(path) as decoded:
        assert decoded.mode == "L"
        assert decoded.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(decoded), image)


def test_png_refuses_what_is_not_gray_uint8(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="uint8"):
        write_png_gray(tmp_path / "m.png", np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(OutputError, match="uint8"):
        write_png_gray(tmp_path / "m.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(OutputError, match="empty"):
        write_png_gray(tmp_path / "m.png", np.zeros((0, 4), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_save_map_rounds_x_times_255(tmp_path: Path) -> None:
    from PIL import Image

    # 0.4/255 -> 0.4 -> 0; 0.6/255 -> 0.6 -> 1; 0.5 -> 127.5 -> 128 (half to
    # even, like round()); a hair over 1 is float noise and clips to 255.
    m = np.array([[0.0, 0.4 / 255, 0.6 / 255], [0.5, 1.0, 1.0 + 1e-9]], dtype=np.float32)
    path = save_map(tmp_path / "maps", 123, m)
    assert path == tmp_path / "maps" / "frame_000123.png"
    with Image.open(path) as decoded:
        assert np.asarray(decoded).tolist() == [[0, 0, 1], [128, 255, 255]]


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_save_map_refuses_values_outside_0_1(tmp_path: Path, bad: float) -> None:
    with pytest.raises(OutputError, match=r"frame 7: .*\[0, 1\]"):
        save_map(tmp_path, 7, np.array([[0.5, bad]]))
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------- plot


def test_plot_series_writes_a_png(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "plot.png"
    plot_series(path, _frames(AWKWARD), title="foreman")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 100 and image.size[1] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_plot_series_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, target: Any) -> Path:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OutputError, match="Permission denied"):
        plot_series(tmp_path / "plot.png", _frames(AWKWARD))
    assert list(tmp_path.iterdir()) == []


def test_plot_series_unknown_metric(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no frame has the metric 'vmaf'"):
        plot_series(tmp_path / "p.png", _frames(AWKWARD), metric="vmaf")
    assert list(tmp_path.iterdir()) == []


def test_plot_series_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import matplotlib` raise ImportError,
    # as on an install without the eval extra.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'vmafx-saliency\[eval\]'"):
        plot_series(tmp_path / "p.png", _frames(AWKWARD))
    assert list(tmp_path.iterdir()) == []


def test_module_imports_no_optional_dependency() -> None:
    # The runtime needs only the standard library and numpy for the formats.
    source = Path(output.__file__).read_text(encoding="utf-8")
    header = source.split("\ndef ", 1)[0]
    assert "import matplotlib" not in header and "PIL" not in header
