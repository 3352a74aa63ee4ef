"""Whole extractor jobs: the model chosen and loaded, the real clips, outputs and refusals.

Most tests use the tiny contract-meeting model from ``tests/_onnx_models.py``
at a small inference size, so they run on the real clips in
``../shared/data/videos`` (and on synthetic raw YUV / Y4M written here) in a
fraction of a second each. One test runs the real u2netp mirror on a few
frames to show that real content gives sensible saliency.

Tolerances, stated once:

* ``SAME``: the same luma through two containers or two bit depths gives the
  same model input bit for bit (limited-range 10-bit maps to the same float32
  values: (4v - 64) / 876 and (v - 16) / 219 are the same correctly rounded
  quotient), so the features agree to float64 round-off; 1e-6 is the stated
  bound, 0.0 is what is observed.
* ``PRINTED``: a value printed with ``%.6f`` is within half a sixth decimal.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import statistics
import tempfile
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._jobs import (
    TINY_SIZE,
    assert_nothing_written,
    broken_foreman,
    white_on_frame_3,
    write_tiny,
)
from tests._onnx_models import nan_on_bright_model
from tests._trust import MIRROR_SIDECAR
from tests._video import CANONICAL, Y4M_TAG_FOR, vmaf_file, write_raw, write_y4m
from vmafx_saliency.errors import (
    ExtractionError,
    OutputError,
    OutputExistsError,
    UsageError,
    VideoError,
)
from vmafx_saliency.supply.registry import Registry
from vmafx_saliency.video import extract
from vmafx_saliency.video.extract import ExtractionResult
from vmafx_saliency.video.frames import PIXEL_FORMATS
from vmafx_saliency.video.job import (
    MODEL_PATH_ENV,
    InferencePlan,
    JobResult,
    ModelChoice,
    Outputs,
    VideoInput,
    load_for_video,
    load_model,
    run_inputs,
    run_job,
)

SAME = 1e-6
PRINTED = 5e-7 + 1e-12
CLIPS = {  # name: (frames, width, height)
    "foreman_cif.mp4": (300, 352, 288),
    "akiyo_cif.mp4": (300, 352, 288),
    "carphone_pristine.mp4": (120, 176, 144),
    "carphone_distorted.mp4": (120, 176, 144),
}
CISCO = {  # raw I420: name -> (width, height, frames)
    "CiscoVT2people_320x192_12fps.yuv": (320, 192, 9),
    "CiscoVT2people_160x96_6fps.yuv": (160, 96, 5),
}


@pytest.fixture
def tiny(tmp_path: Path) -> ModelChoice:
    model, sidecar = write_tiny(tmp_path / "model")
    return ModelChoice(model_path=model, sidecar=sidecar)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty folder for outputs: after a failure it must still be empty."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def means(job: JobResult | ExtractionResult) -> dict[int, float]:
    if isinstance(job, JobResult):
        return {r.frame_num: float(r.metrics["saliency_mean"]) for r in job.records}
    return {f.frame_num: f.saliency_mean for f in job.features}


def max_diff(a: dict[int, float], b: dict[int, float]) -> float:
    assert list(a) == list(b)
    return max(abs(a[k] - b[k]) for k in a)


def quiet_job(video: VideoInput, model: ModelChoice, **kwargs: Any) -> JobResult:
    """run_job writing nothing (output=None) unless told otherwise."""
    outputs = kwargs.pop("outputs", Outputs(output=None))
    return run_job(video, model, outputs, threads=1, **kwargs)


def test_a_small_model_runs_frames_side_by_side_a_large_one_uses_intra_op_threads() -> None:
    assert InferencePlan.for_model(736_882, 4) == InferencePlan(frames=4, threads_per_frame=1)
    assert InferencePlan.for_model(4_654_809, 4) == InferencePlan(frames=1, threads_per_frame=4)
    assert InferencePlan.for_model(736_882, 256).frames == 256
    with pytest.raises(UsageError, match=r"^--threads 257: give at most 256 \(this machine lets"):
        InferencePlan.for_model(736_882, 257)
    assert InferencePlan.for_model(4_654_809, 1) == InferencePlan(frames=1, threads_per_frame=1)
    with pytest.raises(UsageError, match="--threads 0: give a whole number >= 1"):
        InferencePlan.for_model(736_882, 0)


def test_load_for_video_plans_by_the_model_file(tiny: ModelChoice) -> None:
    loaded, _pre, plan = load_for_video(tiny, threads=3)
    assert plan == InferencePlan(frames=3, threads_per_frame=1)  # the tiny model is small
    assert loaded.session.get_session_options().intra_op_num_threads == 1


def test_the_default_on_a_machine_of_many_cores_is_the_cap(
    tiny: ModelChoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --threads on 384 cores: 256 frames at once, not a refusal of a flag never given."""
    monkeypatch.setattr(extract, "default_threads", lambda: 384)
    _loaded, _pre, plan = load_for_video(tiny, threads=None)
    assert plan == InferencePlan(frames=256, threads_per_frame=1)
    monkeypatch.setattr(extract, "default_threads", lambda: 3)
    assert load_for_video(tiny, threads=None)[2] == InferencePlan(frames=3, threads_per_frame=1)


# --- whole jobs on the real clips -----------------------------------------------------------


@pytest.mark.parametrize("name", list(CLIPS))
def test_every_frame_of_the_real_clips(videos_dir: Path, tiny: ModelChoice, name: str) -> None:
    count, width, height = CLIPS[name]
    job = quiet_job(VideoInput(path=videos_dir / name), tiny)
    assert [r.frame_num for r in job.records] == list(range(count))
    assert job.run.frame_size == (width, height)
    assert job.run.infer_size == (TINY_SIZE[1], TINY_SIZE[0])
    assert job.run.map_note == (
        f"saliency_map computed at {TINY_SIZE[1]}x{TINY_SIZE[0]}, frame is {width}x{height}"
    )
    values = list(means(job).values())
    assert all(0.0 < v < 1.0 for v in values)
    assert statistics.pstdev(values) > 1e-6  # the content changes, so does the feature


def test_two_threads_give_the_same_features_as_one(videos_dir: Path, tiny: ModelChoice) -> None:
    video = VideoInput(path=videos_dir / "foreman_cif.mp4", end=40)
    one = run_job(video, tiny, Outputs(output=None), threads=1)
    two = run_job(video, tiny, Outputs(output=None), threads=2)
    assert [r.frame_num for r in two.records] == list(range(40))
    for a, b in zip(one.records, two.records, strict=True):
        for name in ("saliency_mean", "saliency_var"):
            assert b.metrics[name] == pytest.approx(a.metrics[name], abs=1e-9)


@pytest.mark.parametrize("name", list(CISCO))
def test_real_raw_i420_files(videos_dir: Path, tiny: ModelChoice, name: str) -> None:
    width, height, count = CISCO[name]
    job = quiet_job(VideoInput(path=videos_dir / name, width=width, height=height), tiny)
    assert [r.frame_num for r in job.records] == list(range(count))
    assert job.run.frame_size == (width, height)
    assert job.run.source == str(videos_dir / name)


@pytest.mark.parametrize(
    ("start", "end", "subsample", "want"),
    [
        (0, None, 1, list(range(9))),
        (0, None, 4, [0, 4, 8]),
        (2, 8, 3, [2, 5]),  # counted from the start of the range; END is excluded
        (1, 9, 2, [1, 3, 5, 7]),
        (7, None, 1, [7, 8]),
        (0, 1, 5, [0]),
        (3, 100, 10, [3]),  # an END past the last frame just reads to the end
    ],
)
def test_range_and_subsample_follow_vmaf(
    videos_dir: Path,
    tiny: ModelChoice,
    start: int,
    end: int | None,
    subsample: int,
    want: list[int],
) -> None:
    path = videos_dir / "CiscoVT2people_320x192_12fps.yuv"
    full = means(quiet_job(VideoInput(path=path, width=320, height=192), tiny))
    video = VideoInput(path=path, width=320, height=192, start=start, end=end, subsample=subsample)
    job = quiet_job(video, tiny)
    assert [r.frame_num for r in job.records] == want
    assert job.run.subsample == subsample
    # The frames keep their numbers and their values: the same frame, the same feature.
    for num, value in means(job).items():
        assert value == pytest.approx(full[num], abs=SAME)


def test_range_and_subsample_on_a_container(videos_dir: Path, tiny: ModelChoice) -> None:
    video = VideoInput(path=videos_dir / "foreman_cif.mp4", start=2, end=10, subsample=3)
    assert [r.frame_num for r in quiet_job(video, tiny).records] == [2, 5, 8]
    every_7th = quiet_job(VideoInput(path=videos_dir / "foreman_cif.mp4", subsample=7), tiny)
    assert [r.frame_num for r in every_7th.records] == list(range(0, 300, 7))


# --- the same frames from every container, pixel format and bit depth -----------------------

N_FOREMAN = 8


@pytest.fixture(scope="module")
def foreman_lumas(videos_dir: Path) -> list[np.ndarray]:
    from vmafx_saliency.video.frames import open_video, select_frames

    with open_video(videos_dir / "foreman_cif.mp4") as src:
        return [f.luma for f in select_frames(src, end=N_FOREMAN)]


@pytest.fixture(scope="module")
def foreman_means(
    videos_dir: Path, foreman_lumas: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, float]:
    model, sidecar = write_tiny(tmp_path_factory.mktemp("model"))
    video = VideoInput(path=videos_dir / "foreman_cif.mp4", end=N_FOREMAN)
    return means(quiet_job(video, ModelChoice(model_path=model, sidecar=sidecar)))


def _as_format(lumas: list[np.ndarray], fmt_name: str) -> list[np.ndarray]:
    """8-bit luma as the pixel format stores it: 10-bit is the value shifted left by two."""
    if PIXEL_FORMATS[fmt_name].bit_depth == 10:
        return [luma.astype(np.uint16) << 2 for luma in lumas]
    return lumas


@pytest.mark.parametrize("container", ["raw", "y4m"])
@pytest.mark.parametrize("fmt_name", CANONICAL)
def test_same_frames_give_the_same_saliency_in_every_format(
    tmp_path: Path,
    tiny: ModelChoice,
    foreman_lumas: list[np.ndarray],
    foreman_means: dict[int, float],
    fmt_name: str,
    container: str,
) -> None:
    """mp4-decoded foreman frames 0..7, written here as raw YUV and as Y4M in every
    supported pixel format (10-bit: value << 2), give the mp4's saliency_mean."""
    lumas = _as_format(foreman_lumas, fmt_name)
    if container == "raw":
        path = tmp_path / f"foreman_{fmt_name}.yuv"
        write_raw(path, fmt_name, 352, 288, N_FOREMAN, lumas=lumas)
        video = VideoInput(path=path, width=352, height=288, pixel_format=fmt_name)
    else:
        path = tmp_path / f"foreman_{fmt_name}.y4m"
        write_y4m(path, Y4M_TAG_FOR[fmt_name], 352, 288, N_FOREMAN, extra=" F25:1", lumas=lumas)
        video = VideoInput(path=path)  # no XCOLORRANGE: unknown, taken as limited
    job = quiet_job(video, tiny)
    assert job.run.frame_size == (352, 288)
    diff = max_diff(means(job), foreman_means)
    assert diff <= SAME, f"{container} {fmt_name}: max |difference| {diff:.3g}"


def test_colour_range_changes_the_values_and_is_honoured(
    tmp_path: Path,
    tiny: ModelChoice,
    foreman_lumas: list[np.ndarray],
    foreman_means: dict[int, float],
) -> None:
    limited = tmp_path / "limited.y4m"
    write_y4m(
        limited, "420jpeg", 352, 288, N_FOREMAN, extra=" XCOLORRANGE=LIMITED", lumas=foreman_lumas
    )
    assert max_diff(means(quiet_job(VideoInput(path=limited), tiny)), foreman_means) <= SAME
    full = tmp_path / "full.y4m"
    write_y4m(full, "420jpeg", 352, 288, N_FOREMAN, extra=" XCOLORRANGE=FULL", lumas=foreman_lumas)
    from_y4m = means(quiet_job(VideoInput(path=full), tiny))
    assert max_diff(from_y4m, foreman_means) > 1e-4  # full range is a different input
    # --color-range full on raw YUV (no flag of its own) gives the Y4M's full-range values.
    raw = tmp_path / "foreman.yuv"
    write_raw(raw, "yuv420p", 352, 288, N_FOREMAN, lumas=foreman_lumas)
    video = VideoInput(path=raw, width=352, height=288, color_range="full")
    assert max_diff(means(quiet_job(video, tiny)), from_y4m) <= SAME
    # ... and 10-bit full range (x / 1023) scales away under divide_by_max.
    raw10 = tmp_path / "foreman10.yuv"
    write_raw(
        raw10, "yuv420p10le", 352, 288, N_FOREMAN, lumas=_as_format(foreman_lumas, "yuv420p10le")
    )
    video10 = VideoInput(
        path=raw10, width=352, height=288, pixel_format="yuv420p10le", color_range="full"
    )
    assert max_diff(means(quiet_job(video10, tiny)), from_y4m) <= SAME  # observed 3.6e-8


# --- pooled values and the three output formats ----------------------------------------------


def _cisco(videos_dir: Path, **changes: Any) -> VideoInput:
    fields: dict[str, Any] = {
        "path": videos_dir / "CiscoVT2people_320x192_12fps.yuv",
        "width": 320,
        "height": 192,
    }
    fields.update(changes)
    return VideoInput(**fields)


def test_pooled_values_match_an_independent_computation(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    job = run_job(_cisco(videos_dir), tiny, Outputs(output=out / "cisco.json"), threads=1)
    doc = json.loads((out / "cisco.json").read_text())
    assert list(doc["pooled_metrics"]) == ["saliency_mean", "saliency_var"]
    for name in ("saliency_mean", "saliency_var"):
        xs = [float(r.metrics[name]) for r in job.records]
        assert len(xs) == 9
        expected = {
            "min": min(xs),
            "max": max(xs),
            "mean": statistics.fmean(xs),
            # vmaf: n / sum(1 / (x + 1)) - 1, the harmonic mean of x + 1, less 1.
            "harmonic_mean": statistics.harmonic_mean([x + 1 for x in xs]) - 1,
        }
        array = np.asarray(xs)
        assert expected["harmonic_mean"] == pytest.approx(
            len(xs) / float(np.sum(1.0 / (array + 1.0))) - 1.0, abs=1e-12
        )
        assert expected["mean"] == pytest.approx(float(np.mean(array)), abs=1e-12)
        for key, value in expected.items():
            assert doc["pooled_metrics"][name][key] == pytest.approx(value, abs=PRINTED), key
        # The per-frame values printed are the records', to six decimals.
        printed = [f["metrics"][name] for f in doc["frames"]]
        np.testing.assert_allclose(printed, xs, rtol=0, atol=PRINTED)


def test_json_xml_and_csv_outputs_parse_and_agree(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    video = _cisco(videos_dir, subsample=2)
    jobs = {
        fmt: run_job(video, tiny, Outputs(output=out / f"cisco.{fmt}", fmt=fmt), threads=1)
        for fmt in ("json", "xml", "csv")
    }
    doc = json.loads((out / "cisco.json").read_text())
    root = ET.fromstring((out / "cisco.xml").read_text())
    rows = [line.split(",") for line in (out / "cisco.csv").read_text().splitlines()]
    records = jobs["json"].records

    nums = [0, 2, 4, 6, 8]
    assert [f["frameNum"] for f in doc["frames"]] == nums
    xml_frames = root.findall("./frames/frame")
    assert [int(f.get("frameNum", "-1")) for f in xml_frames] == nums
    assert rows[0] == ["Frame", "saliency_mean", "saliency_var", ""]
    assert [int(r[0]) for r in rows[1:]] == nums
    for i, record in enumerate(records):
        for j, name in enumerate(("saliency_mean", "saliency_var")):
            from_json = doc["frames"][i]["metrics"][name]
            assert float(xml_frames[i].get(name, "nan")) == pytest.approx(from_json, abs=1e-12)
            assert float(rows[i + 1][j + 1]) == pytest.approx(from_json, abs=1e-12)
            assert from_json == pytest.approx(float(record.metrics[name]), abs=PRINTED)
    # The three runs computed the same values.
    for fmt in ("xml", "csv"):
        for a, b in zip(jobs[fmt].records, records, strict=True):
            assert a.frame_num == b.frame_num
            assert a.metrics == pytest.approx(b.metrics, abs=SAME)
    pooled_xml = {m.get("name"): m for m in root.findall("./pooled_metrics/metric")}
    for name, stats in doc["pooled_metrics"].items():
        for key, value in stats.items():
            assert float(pooled_xml[name].get(key, "nan")) == pytest.approx(value, abs=1e-12)
    # What the run says about itself.
    assert doc["params"] == {
        "qualityWidth": 320,
        "qualityHeight": 192,
        "subsample": 2,
        "source": str(video.path),
    }
    assert doc["model"]["id"] is None  # ad hoc
    assert doc["model"]["sha256"] == jobs["json"].run.model_sha256
    assert doc["model"]["infer_size"] == "64x48"
    params = root.find("params")
    assert params is not None and params.get("subsample") == "2"


def test_fps_counts_every_frame_read(videos_dir: Path, tiny: ModelChoice) -> None:
    """vmaf's fps is pictures read per second, the subsampled ones included."""
    job = quiet_job(_cisco(videos_dir, subsample=4), tiny)
    assert len(job.records) == 3
    assert job.run.fps == pytest.approx(9 / job.extraction.seconds, rel=1e-9)


# --- the real mirror on a few frames ----------------------------------------------------------


def test_real_mirror_gives_sensible_saliency_on_foreman(
    mirror_onnx: Path, videos_dir: Path
) -> None:
    model = ModelChoice(model_path=mirror_onnx, sidecar=MIRROR_SIDECAR)
    video = VideoInput(path=videos_dir / "foreman_cif.mp4", end=181, subsample=60)
    job = run_job(video, model, Outputs(output=None), infer_size=(128, 160), threads=2)
    assert [r.frame_num for r in job.records] == [0, 60, 120, 180]
    assert job.run.infer_size == (160, 128)
    values = means(job)
    assert all(0.0 < v < 1.0 for v in values.values()), values
    assert max(values.values()) - min(values.values()) > 0.05, values  # not constant
    # Frame 0 is a face against a wall: a salient object, so a bimodal map.
    first = job.records[0].metrics
    assert 0.1 < first["saliency_mean"] < 0.9
    assert first["saliency_var"] > 0.03


# --- streaming: memory does not grow with the number of frames ------------------------------


def test_memory_does_not_grow_with_the_number_of_frames(
    tmp_path: Path, tiny: ModelChoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python-side peak (tracemalloc) of run_job from the model's load to the written
    output, for 40 and for 200 frames of 640x360: the frames stream.

    The peak is reset once the model is loaded: the loader's one-off read of the
    model file is not per frame, and would hide what is.
    """
    from vmafx_saliency.video import job as job_module

    load = job_module.load_for_video

    def load_then_reset(*args: Any, **kwargs: Any) -> Any:
        loaded = load(*args, **kwargs)
        tracemalloc.reset_peak()
        return loaded

    monkeypatch.setattr(job_module, "load_for_video", load_then_reset)
    width, height = 640, 360
    fmt = PIXEL_FORMATS["yuv420p"]
    frame = np.random.default_rng(9).integers(16, 236, fmt.frame_bytes(width, height), np.uint8)
    peaks = {}
    for count in (40, 200):
        path = tmp_path / f"long{count}.yuv"
        path.write_bytes(frame.tobytes() * count)
        video = VideoInput(path=path, width=width, height=height)
        outputs = Outputs(output=tmp_path / f"long{count}.json")
        tracemalloc.start()
        try:
            job = run_job(video, tiny, outputs, threads=1)
            _, peaks[count] = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(job.records) == count
        path.unlink()
    luma_bytes = width * height
    # 160 more frames cost their records and output text (well under 1 KB each), not
    # their frames (230 KB of luma each, 37 MB for 160): five times the frames, the
    # same peak, give or take a frame more in flight when the machine is busy (how
    # far the decoding thread gets ahead depends on timing).
    assert peaks[200] - peaks[40] < 2 * luma_bytes, peaks
    # A few frames in flight (and their float32 pre-processing), never the whole file.
    assert peaks[200] < 30 * luma_bytes < 200 * fmt.frame_bytes(width, height), peaks


# --- bad inputs: a message, and nothing left behind -----------------------------------------


def test_missing_video(tmp_path: Path, tiny: ModelChoice, out: Path) -> None:
    target, maps = out / "x.json", out / "maps"
    with pytest.raises(VideoError, match=r"gone\.mp4: no such file"):
        run_job(
            VideoInput(path=tmp_path / "gone.mp4"),
            tiny,
            Outputs(output=target, save_maps=maps),
        )
    assert_nothing_written(out, target, maps)


def test_raw_size_not_a_whole_number_of_frames(
    videos_dir: Path, tmp_path: Path, tiny: ModelChoice, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cut.yuv"
    path.write_bytes((videos_dir / "CiscoVT2people_160x96_6fps.yuv").read_bytes() + bytes(1000))
    size = 5 * 23040 + 1000
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"):
        job = quiet_job(VideoInput(path=path, width=160, height=96), tiny)
    assert f"file size {size} bytes is not a whole number of frames" in caplog.text
    assert "160 x 96 yuv420p (23040 bytes each)" in caplog.text
    assert "reading 5 whole frames and ignoring the 1000 leftover bytes" in caplog.text
    assert [r.frame_num for r in job.records] == [0, 1, 2, 3, 4]


def test_unknown_pixel_format_lists_the_known_ones(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    video = VideoInput(
        path=videos_dir / "CiscoVT2people_160x96_6fps.yuv",
        width=160,
        height=96,
        pixel_format="nv12",
    )
    with pytest.raises(UsageError, match="unknown pixel format 'nv12'") as err:
        run_job(video, tiny, Outputs(output=out / "x.json"))
    for name in CANONICAL:
        assert name in str(err.value)
    assert_nothing_written(out)


def test_corrupt_container_fails_mid_stream_and_writes_nothing(
    videos_dir: Path, tmp_path: Path, tiny: ModelChoice, out: Path
) -> None:
    path = broken_foreman(videos_dir, tmp_path)
    target, maps = out / "broken.json", out / "maps"
    with pytest.raises(VideoError) as err:
        # Maps are being written for ~160 frames when decoding fails: all must go.
        run_job(VideoInput(path=path), tiny, Outputs(output=target, save_maps=maps))
    message = str(err.value)
    assert str(path) in message
    frame = int(message.split("decoding failed at frame ")[1].split()[0])
    assert 100 < frame < 300, message
    assert f"({frame} frames decoded before it)" in message
    assert_nothing_written(out, target, maps)


def test_a_maps_folder_that_cannot_be_made_is_one_output_error(
    videos_dir: Path, tiny: ModelChoice, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(**_: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    maps = out / "new" / "maps"
    with pytest.raises(OutputError, match=r"cannot write maps into .*new/maps: No space left on "):
        run_job(_cisco(videos_dir, end=2), tiny, Outputs(output=None, save_maps=maps))
    assert_nothing_written(out)  # and the folder made for it is gone again


def test_a_failed_run_removes_the_folders_it_made_for_its_maps(
    videos_dir: Path, tmp_path: Path, tiny: ModelChoice, out: Path
) -> None:
    path = broken_foreman(videos_dir, tmp_path)
    (out / "kept").mkdir()
    maps = out / "kept" / "new" / "deeper" / "maps"
    with pytest.raises(VideoError, match="decoding failed at frame"):
        run_job(VideoInput(path=path), tiny, Outputs(output=None, save_maps=maps))
    # The two folders this run made are gone; the one that was there stays, empty.
    assert_nothing_written(out, keep=["kept"])
    assert list((out / "kept").iterdir()) == []


def test_unreadable_container(tmp_path: Path, tiny: ModelChoice, out: Path) -> None:
    path = tmp_path / "text.mp4"
    path.write_bytes(b"this is not a video\n" * 20)
    with pytest.raises(VideoError, match=rf"cannot open {path}.*is it a video file\?") as err:
        run_job(VideoInput(path=path), tiny, Outputs(output=out / "x.json"))
    assert "Errno" not in str(err.value)  # FFmpeg's words, not PyAV's errno number
    assert_nothing_written(out)


def test_an_mp4_cut_short_before_its_index_says_so(
    videos_dir: Path, tmp_path: Path, tiny: ModelChoice, out: Path
) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes((videos_dir / "foreman_cif.mp4").read_bytes()[:200_000])
    message = f"cannot open {path}: Invalid data found when processing input: is it a video file?"
    with pytest.raises(VideoError, match=re.escape(message) + r" \(one cut short cannot be"):
        run_job(VideoInput(path=path), tiny, Outputs(output=out / "x.json"))
    assert_nothing_written(out)


def test_a_range_past_the_end_selects_no_frames(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    video = VideoInput(path=videos_dir / "carphone_distorted.mp4", start=400, end=500)
    target, maps = out / "x.json", out / "maps"
    # carphone_distorted.mp4 has 120 frames: the message says so.
    with pytest.raises(ExtractionError, match="no frames were selected of its 120: check"):
        run_job(video, tiny, Outputs(output=target, save_maps=maps))
    assert_nothing_written(out, target, maps)


def test_nan_map_from_a_real_model_names_the_frame(tmp_path: Path, out: Path) -> None:
    """The model passes the loader's contract probe, then puts NaN into frame 3's map."""
    model, sidecar = write_tiny(
        tmp_path / "model", data=nan_on_bright_model(), inference_size="native"
    )
    path = tmp_path / "clip.yuv"
    white_on_frame_3(path)
    target, maps = out / "x.json", out / "maps"
    with pytest.raises(ExtractionError, match="frame 3: the model produced NaN or infinite"):
        run_job(
            VideoInput(path=path, width=64, height=48),
            ModelChoice(model_path=model, sidecar=sidecar),
            Outputs(output=target, save_maps=maps),
        )
    assert_nothing_written(out, target, maps)
    # Frames 0..2 alone are fine: it is frame 3 that breaks it.
    job = quiet_job(
        VideoInput(path=path, width=64, height=48, end=3),
        ModelChoice(model_path=model, sidecar=sidecar),
    )
    assert len(job.records) == 3


def test_existing_output_is_refused_before_any_work(tmp_path: Path, tiny: ModelChoice) -> None:
    target = tmp_path / "x.json"
    target.write_text("mine\n")
    # The video does not even exist: the output is checked first, so a refusal is free.
    with pytest.raises(OutputExistsError, match=r"x\.json already exists: pass --force"):
        run_job(VideoInput(path=tmp_path / "absent.mp4"), tiny, Outputs(output=target))
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "x.json"]


def test_existing_plot_is_refused(tmp_path: Path, tiny: ModelChoice) -> None:
    existing = tmp_path / "plot.png"
    existing.write_bytes(b"png")
    with pytest.raises(OutputExistsError, match="already exists: pass --force"):
        run_job(VideoInput(path=tmp_path / "absent.mp4"), tiny, Outputs(output=None, plot=existing))
    assert existing.read_bytes() == b"png"


def test_a_maps_folder_holding_maps_is_refused_before_any_work(
    tmp_path: Path, tiny: ModelChoice
) -> None:
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "frame_000003.png").write_bytes(b"old map")
    with pytest.raises(
        OutputExistsError,
        match=r"maps already holds saliency maps \(frame_000003\.png, \.\.\.\): pass --force "
        r"to replace them \(other files there are kept\)",
    ):
        run_job(VideoInput(path=tmp_path / "absent.mp4"), tiny, Outputs(save_maps=maps))
    assert (maps / "frame_000003.png").read_bytes() == b"old map"


def test_a_maps_path_that_is_a_file_is_refused_even_with_force(
    tmp_path: Path, tiny: ModelChoice
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    with pytest.raises(UsageError, match=r"--save-maps .*notes\.txt: not a folder"):
        run_job(
            VideoInput(path=tmp_path / "absent.mp4"),
            tiny,
            Outputs(output=None, save_maps=notes, force=True),
        )
    assert notes.read_text() == "mine\n"


def test_maps_go_into_an_existing_folder_beside_what_is_there(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    """An existing folder without maps needs no --force, and its files stay."""
    (out / "notes.txt").write_text("mine\n")
    run_job(_cisco(videos_dir, end=2), tiny, Outputs(output=None, save_maps=out), threads=1)
    names = ["frame_000000.png", "frame_000001.png", "notes.txt"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert (out / "notes.txt").read_text() == "mine\n"


def test_outputs_inside_a_new_maps_folder_are_kept(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    """-o and --plot create the maps folder first; committing the maps must not drop them."""
    run_dir = out / "run1"
    target, plot = run_dir / "x.json", run_dir / "plot.png"
    job = run_job(
        _cisco(videos_dir, end=2),
        tiny,
        Outputs(output=target, plot=plot, save_maps=run_dir),
        threads=1,
    )
    names = ["frame_000000.png", "frame_000001.png", "plot.png", "x.json"]
    assert sorted(p.name for p in run_dir.iterdir()) == names
    assert json.loads(target.read_text())["frames"][1]["frameNum"] == 1
    assert job.written == (target, plot, run_dir)


def test_maps_into_the_working_folder_keep_its_files(
    videos_dir: Path, tiny: ModelChoice, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (out / "notes.txt").write_text("mine\n")
    (out / "frame_000009.png").write_bytes(b"an earlier run's map")
    monkeypatch.chdir(out)
    video = _cisco(videos_dir, end=1)
    run_job(video, tiny, Outputs(output=None, save_maps=Path(), force=True), threads=1)
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png", "notes.txt"]


def test_no_output_replaces_a_file_the_run_reads_even_with_force(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    clip = out / "clip.mp4"
    shutil.copyfile(videos_dir / "carphone_distorted.mp4", clip)
    original = clip.read_bytes()
    for outputs in (
        Outputs(output=clip, force=True),
        Outputs(output=out / "x.json", plot=clip, force=True),
        Outputs(output=None, save_maps=clip, force=True),
        Outputs(output=None, merge_into=out / "vmaf.json", merge_output=clip, force=True),
    ):
        with pytest.raises(
            UsageError, match=r" (is|holds) the input video .*: give the outputs paths apart"
        ):
            run_job(VideoInput(path=clip), tiny, outputs)
    assert tiny.model_path is not None and tiny.sidecar is not None
    for kept, what in ((tiny.model_path, "--model-path"), (tiny.sidecar, "--sidecar")):
        before = kept.read_bytes()
        with pytest.raises(UsageError, match=rf"--output .* is {what} "):
            run_job(VideoInput(path=clip), tiny, Outputs(output=kept, force=True))
        assert kept.read_bytes() == before
    assert clip.read_bytes() == original
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]
    # A maps folder keeps other files, so one that holds the clip is fine; an input named
    # as a map is not, since --force replaces the maps there.
    assert tiny.model_path is not None
    run_job(VideoInput(path=clip, end=1), tiny, Outputs(output=None, save_maps=out), threads=1)
    assert clip.read_bytes() == original
    frame = out / "frame_000000.png"
    with pytest.raises(UsageError, match=rf"--save-maps {frame} is --model-path {frame}: give"):
        run_job(VideoInput(path=clip), ModelChoice(model_path=frame, sidecar=tiny.sidecar),
                Outputs(output=None, save_maps=out, force=True))  # fmt: skip


def test_the_model_files_found_for_a_run_are_inputs_too(
    tmp_path: Path, tiny: ModelChoice, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tiny.model_path is not None and tiny.sidecar is not None
    model = out / "m.onnx"
    model.write_bytes(tiny.model_path.read_bytes())
    beside = out / "m.sidecar.json"
    beside.write_bytes(tiny.sidecar.read_bytes())
    video = VideoInput(path=tmp_path / "absent.mp4")  # refused before the video is opened
    with pytest.raises(UsageError, match=r"--output \S+ is the sidecar beside the model "):
        run_job(video, ModelChoice(model_path=model), Outputs(output=beside, force=True))
    monkeypatch.setenv(MODEL_PATH_ENV, str(model))
    with pytest.raises(UsageError, match=rf"--output \S+ is \${MODEL_PATH_ENV} {model}: give"):
        run_job(video, ModelChoice(), Outputs(output=model, force=True))
    assert model.read_bytes() == tiny.model_path.read_bytes()
    assert beside.read_bytes() == tiny.sidecar.read_bytes()
    # A registered model: its entry's files, not written here, only listed.
    monkeypatch.delenv(MODEL_PATH_ENV)
    entry = Registry.load().get("saliency_student_v2_int8")
    listed = dict(run_inputs(video, ModelChoice(model_id="saliency_student_v2_int8")))
    assert listed["model saliency_student_v2_int8"] == entry.onnx
    assert listed["the sidecar of saliency_student_v2_int8"] == entry.sidecar
    assert listed["the registry"] == entry.registry


def test_an_option_without_its_partner_is_refused(tmp_path: Path, tiny: ModelChoice) -> None:
    video = VideoInput(path=tmp_path / "absent.mp4")  # refused before the video is opened
    with pytest.raises(UsageError, match=r"--merge-output \S+ is where the merged vmaf JSON"):
        run_job(video, tiny, Outputs(output=None, merge_output=tmp_path / "m.json"))
    with pytest.raises(UsageError, match=r"--maps-every 3 thins the maps .*add --save-maps DIR"):
        run_job(video, tiny, Outputs(output=None, maps_every=3))
    assert not (tmp_path / "m.json").exists()


def test_force_overwrites(videos_dir: Path, tiny: ModelChoice, out: Path) -> None:
    target, maps = out / "x.json", out / "maps"
    target.write_text("old\n")
    maps.mkdir()
    (maps / "frame_000007.png").write_bytes(b"an earlier run's map")
    (maps / "stale.png").write_bytes(b"the user's")
    video = _cisco(videos_dir, end=2)
    job = run_job(video, tiny, Outputs(output=target, save_maps=maps, force=True), threads=1)
    assert json.loads(target.read_text())["frames"][1]["frameNum"] == 1
    # Every map of the earlier run goes (frame 7 is not one of this run's); other files stay.
    names = ["frame_000000.png", "frame_000001.png", "stale.png"]
    assert sorted(p.name for p in maps.iterdir()) == names
    assert (maps / "stale.png").read_bytes() == b"the user's"
    assert job.written == (target, maps)
    assert sorted(p.name for p in out.iterdir()) == ["maps", "x.json"]


def test_bad_plot_suffix_is_refused_before_any_work(tmp_path: Path, tiny: ModelChoice) -> None:
    with pytest.raises(UsageError, match=r"matplotlib cannot write 'xyz' files"):
        run_job(
            VideoInput(path=tmp_path / "absent.mp4"),
            tiny,
            Outputs(output=None, plot=tmp_path / "plot.xyz"),
        )


def test_a_failed_write_takes_back_the_outputs_already_written(
    videos_dir: Path, tiny: ModelChoice, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmafx_saliency.video import maps as maps_module

    def broken_plot(*args: Any, **kwargs: Any) -> None:
        raise OutputError("cannot write the plot: disk full")

    monkeypatch.setattr(maps_module, "plot_series", broken_plot)
    target, plot, maps = out / "x.json", out / "plot.png", out / "maps"
    with pytest.raises(OutputError, match="disk full"):
        run_job(
            _cisco(videos_dir, end=3),
            tiny,
            Outputs(output=target, plot=plot, save_maps=maps),
            threads=1,
        )
    assert_nothing_written(out, target, plot, maps)


def test_maps_every_must_be_positive(tmp_path: Path, tiny: ModelChoice) -> None:
    with pytest.raises(UsageError, match="--maps-every 0"):
        run_job(
            VideoInput(path=tmp_path / "absent.mp4"),
            tiny,
            Outputs(output=None, save_maps=tmp_path / "maps", maps_every=0),
        )


# --- --merge-into ----------------------------------------------------------------------------


def test_merge_into_adds_the_features(videos_dir: Path, tiny: ModelChoice, out: Path) -> None:
    vmaf = vmaf_file(out / "vmaf.json", [0, 1, 2, 3])
    before = vmaf.read_bytes()
    merged = out / "merged.json"
    job = run_job(
        _cisco(videos_dir, end=4),
        tiny,
        Outputs(output=None, merge_into=vmaf, merge_output=merged),
        threads=1,
    )
    assert job.written == (merged,)
    assert vmaf.read_bytes() == before  # the user's file is untouched
    doc = json.loads(merged.read_text())
    for frame, record in zip(doc["frames"], job.records, strict=True):
        assert frame["frameNum"] == record.frame_num
        assert frame["metrics"]["vmaf"] > 90  # vmaf's own metrics stay
        assert frame["metrics"]["saliency_mean"] == pytest.approx(
            record.metrics["saliency_mean"], abs=PRINTED
        )
    assert "saliency_mean" in doc["pooled_metrics"]


def test_merge_into_with_other_frame_numbers_is_refused(
    videos_dir: Path, tiny: ModelChoice, out: Path
) -> None:
    vmaf = vmaf_file(out / "vmaf.json", [0, 1, 2, 3])
    before = vmaf.read_bytes()
    merged, target, maps = out / "merged.json", out / "x.json", out / "maps"
    with pytest.raises(
        OutputError, match=r"frame numbers do not match.*missing from the vmaf file: 4"
    ):
        run_job(
            _cisco(videos_dir),  # 9 frames, the vmaf file has 4
            tiny,
            Outputs(output=target, merge_into=vmaf, merge_output=merged, save_maps=maps),
            threads=1,
        )
    assert vmaf.read_bytes() == before
    assert_nothing_written(out, merged, target, maps, keep=["vmaf.json"])


def test_merge_into_in_place_needs_force(videos_dir: Path, tiny: ModelChoice, out: Path) -> None:
    vmaf = vmaf_file(out / "vmaf.json", [0, 1, 2, 3])
    before = vmaf.read_bytes()
    with pytest.raises(UsageError, match=r"would modify that file in place.*--force"):
        run_job(_cisco(videos_dir, end=4), tiny, Outputs(output=None, merge_into=vmaf))
    assert vmaf.read_bytes() == before
    assert_nothing_written(out, keep=["vmaf.json"])
    job = run_job(
        _cisco(videos_dir, end=4), tiny, Outputs(output=None, merge_into=vmaf, force=True)
    )
    assert job.written == (vmaf,)
    assert "saliency_mean" in json.loads(vmaf.read_text())["frames"][3]["metrics"]


def test_merge_into_a_missing_file_or_a_folder(tmp_path: Path, tiny: ModelChoice) -> None:
    cases = [(tmp_path / "vmaf.json", "no such file"), (tmp_path, "a folder")]
    for merge_into, what in cases:
        with pytest.raises(UsageError, match=rf"--merge-into .*: {what}: give the JSON file vmaf"):
            run_job(
                VideoInput(path=tmp_path / "absent.mp4"),
                tiny,
                Outputs(output=None, merge_into=merge_into),
            )


# --- model choice -----------------------------------------------------------------------------


def test_model_choice_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, sidecar = write_tiny(tmp_path)
    with pytest.raises(UsageError, match="give --model or --model-path, not both"):
        load_model(ModelChoice(model_id="tiny", model_path=model, sidecar=sidecar), threads=1)
    with pytest.raises(
        UsageError,
        match=r"no sidecar JSON.*pass --sidecar FILE \(sidecar= in Python\) or put "
        r"tiny\.sidecar\.json beside it",
    ):
        load_model(ModelChoice(model_path=model), threads=1)
    with pytest.raises(UsageError, match=r"--sidecar .* goes with --model-path"):
        load_model(ModelChoice(model_id="tiny", sidecar=sidecar), threads=1)
    with pytest.raises(
        UsageError, match=r"--signed \(signed=True in Python\) needs a registered model"
    ):
        load_model(ModelChoice(model_path=model, sidecar=sidecar, signed=True), threads=1)
    # The environment variable names an ad-hoc model when no --model is given.
    monkeypatch.setenv("VMAF_MOBILESAL_MODEL_PATH", str(model))
    loaded, pre = load_model(ModelChoice(sidecar=sidecar), threads=1)
    assert loaded.path == model.resolve()
    assert pre.inference_size == TINY_SIZE


def test_maps_removed_by_another_run_meanwhile_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two --save-maps --force runs into one folder: the second to commit finds an old map
    already gone (the first removed it); it says so instead of a FileNotFoundError."""
    from vmafx_saliency.video import job, maps

    target = tmp_path / "maps"
    target.mkdir()
    maps.save_map(target, 39, np.zeros((4, 4), np.float32))
    writer = job._MapWriter(target, 1, force=True)
    writer(0, np.ones((4, 4), np.float32))
    listed = maps.saved_maps(target)
    (target / "frame_000039.png").unlink()  # the other run's commit, between list and unlink
    monkeypatch.setattr(maps, "saved_maps", lambda folder: listed)
    with pytest.raises(OutputError, match=r"maps: frame_000039\.png went while this run replaced"):
        writer.commit()
    writer.discard()
