"""Merging the features into a vmaf JSON: frames, pooling, refusals, exact text kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._video import (
    AWKWARD,
    POOL_KEYS,
    PRINTED,
    REAL_POOLED,
    REAL_VMAF,
    VMAF_JSON_KEYS,
    VMAF_METRICS,
    vmaf_doc,
    vmaf_file,
)
from tests._video import frame_records as _frames
from vmafx_saliency.errors import InputFileError, OutputError, OutputExistsError
from vmafx_saliency.video.merge import merge_into
from vmafx_saliency.video.output import FrameRecord, pool_metrics

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
