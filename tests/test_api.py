"""The Python API: the numbers `extract` writes, the maps streamed, the README's example."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import vmafx_saliency
from tests.conftest import ROOT
from vmafx_saliency import (
    Features,
    RawVideo,
    Registry,
    extract_features,
    load_model,
    saliency_maps,
    scan_file,
)
from vmafx_saliency.cli.main import main
from vmafx_saliency.errors import UnknownModelError, UsageError, VideoError, VmafxSaliencyError

FOREMAN = "foreman_cif.mp4"
CISCO = "CiscoVT2people_320x192_12fps.yuv"
PACKAGED = ROOT / "src" / "vmafx_saliency" / "models"


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    capsys.readouterr()
    assert main(["extract", *argv, "--output", "-", "--quiet"]) == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_extract_features_gives_the_numbers_extract_writes(
    videos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = videos_dir / FOREMAN
    features = extract_features(clip, frames=(3, 40), subsample=4, threads=2)
    doc = _cli_json(capsys, str(clip), "--frames", "3:40", "--subsample", "4")
    frames = doc["frames"]
    assert isinstance(frames, list)
    assert [f.frame_num for f in features.frames] == [f["frameNum"] for f in frames]
    assert [f.frame_num for f in features.frames] == [3, 7, 11, 15, 19, 23, 27, 31, 35, 39]
    for ours, theirs in zip(features.frames, frames, strict=True):
        assert round(ours.saliency_mean, 6) == pytest.approx(theirs["metrics"]["saliency_mean"])
        assert round(ours.saliency_var, 6) == pytest.approx(theirs["metrics"]["saliency_var"])
    pooled = doc["pooled_metrics"]
    assert isinstance(pooled, dict)
    for name, stats in features.pooled.items():
        assert round(stats.harmonic_mean, 6) == pytest.approx(pooled[name]["harmonic_mean"])
        assert round(stats.mean, 6) == pytest.approx(pooled[name]["mean"])
    # The JSON of the result is the CLI's, but for the run's speed.
    mine = json.loads(features.to_json())
    assert mine.pop("fps") >= 0 and doc.pop("fps") is not None
    assert mine == doc
    assert features.to_csv().splitlines()[0] == "Frame,saliency_mean,saliency_var,"
    assert features.to_xml().startswith('<VMAF version="vmafx-saliency ')


def test_a_model_by_id_or_by_file_and_raw_yuv(videos_dir: Path) -> None:
    raw = RawVideo(width=320, height=192)
    default = extract_features(videos_dir / CISCO, raw=raw, threads=1)
    by_id = extract_features(videos_dir / CISCO, raw=raw, model="saliency_student_v2_int8")
    by_file = extract_features(
        str(videos_dir / CISCO), raw=raw, model=PACKAGED / "saliency_student_v2_int8.onnx"
    )
    # The default is the INT8 student since its promotion (issue 38).
    assert default.run.model_id == by_id.run.model_id == "saliency_student_v2_int8"
    assert by_file.run.model_id is None  # an ad-hoc file: same bytes, no registry entry
    assert by_file.run.model_sha256 == default.run.model_sha256
    assert len(default.frames) == 9
    for a, b in zip(default.frames, by_file.frames, strict=True):
        assert a.saliency_mean == pytest.approx(b.saliency_mean, abs=1e-7)


def test_a_model_file_with_its_sidecar_elsewhere(videos_dir: Path, tmp_path: Path) -> None:
    """``sidecar=`` is ``--sidecar``: the same numbers as the model loaded by id."""
    model = tmp_path / "student.onnx"  # no student.sidecar.json beside it
    model.write_bytes((PACKAGED / "saliency_student_v2_int8.onnx").read_bytes())
    sidecar = PACKAGED / "saliency_student_v2_int8.sidecar.json"
    clip, raw = videos_dir / CISCO, RawVideo(width=320, height=192)
    with pytest.raises(UsageError, match=r"student\.onnx: no sidecar JSON declares its pre-proc"):
        extract_features(clip, raw=raw, model=model)
    by_file = extract_features(clip, raw=raw, model=model, sidecar=str(sidecar), frames=(0, 3))
    by_id = extract_features(clip, raw=raw, model="saliency_student_v2_int8", frames=(0, 3))
    for a, b in zip(by_file.frames, by_id.frames, strict=True):
        assert a.saliency_mean == pytest.approx(b.saliency_mean, abs=1e-7)
    (frame_num, saliency), *_ = saliency_maps(clip, raw=raw, model=model, sidecar=sidecar)
    assert frame_num == 0
    assert float(saliency.mean()) == pytest.approx(by_id.frames[0].saliency_mean, abs=1e-6)
    assert load_model(model, sidecar=sidecar).sidecar is not None
    registry_id = r"and model='saliency_student_v2_int8' is a registry id"
    with pytest.raises(
        UsageError, match=r"goes with a model file \(a Path, or a str .*" + registry_id
    ):
        extract_features(clip, raw=raw, model="saliency_student_v2_int8", sidecar=sidecar)
    with pytest.raises(UsageError, match=r"^sidecar=3: give the sidecar JSON's path, or None$"):
        load_model(model, sidecar=3)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^sidecar=.*BytesPath.*: give the sidecar JSON's path"):
        load_model(model, sidecar=BytesPath())  # type: ignore[arg-type]


class BytesPath:
    """A path-like object whose text is bytes, which os.fspath allows."""

    def __fspath__(self) -> bytes:
        return b"/clip.mp4"

    def __repr__(self) -> str:
        return "BytesPath()"


def test_the_environments_model_takes_a_sidecar_as_on_the_command_line(
    videos_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "student.onnx"  # no student.sidecar.json beside it
    model.write_bytes((PACKAGED / "saliency_student_v2_int8.onnx").read_bytes())
    monkeypatch.setenv("VMAF_MOBILESAL_MODEL_PATH", str(model))
    sidecar = PACKAGED / "saliency_student_v2_int8.sidecar.json"
    loaded = load_model(sidecar=sidecar)
    assert loaded.sha256 == load_model("saliency_student_v2_int8").sha256


@pytest.mark.parametrize(
    ("threads", "message"),
    [(0, r"^threads=0: give a whole"), (257, r"^threads=257: give"), (2.5, r"^threads=2\.5: ")],
)
def test_load_model_checks_its_threads(threads: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_model(threads=threads)  # type: ignore[arg-type]


def test_a_missing_model_file_is_reported_as_missing() -> None:
    with pytest.raises(VmafxSaliencyError, match=r"absent\.onnx at the path check: no such file"):
        load_model(Path("/nonexistent/absent.onnx"))


def test_color_range_overrides_the_videos_as_the_cli_does(videos_dir: Path) -> None:
    from vmafx_saliency.video.job import ModelChoice, Outputs, VideoInput, run_job

    raw = RawVideo(width=320, height=192)
    limited = extract_features(videos_dir / CISCO, raw=raw, frames=(0, 3), threads=1)
    said = extract_features(
        videos_dir / CISCO, raw=raw, frames=(0, 3), threads=1, color_range="limited"
    )
    full = extract_features(
        videos_dir / CISCO, raw=raw, frames=(0, 3), threads=1, color_range="full"
    )
    cli = run_job(  # what 'extract --color-range full' runs
        VideoInput(path=videos_dir / CISCO, width=320, height=192, color_range="full", end=3),
        ModelChoice(),
        Outputs(output=None),
        threads=1,
    )
    assert [f.saliency_mean for f in said.frames] == pytest.approx(
        [f.saliency_mean for f in limited.frames], abs=1e-7
    )  # raw YUV is limited range unless told otherwise
    assert [f.saliency_mean for f in full.frames] == pytest.approx(
        [f.saliency_mean for f in cli.extraction.features], abs=1e-7
    )
    assert (
        max(
            abs(a.saliency_mean - b.saliency_mean)
            for a, b in zip(full.frames, limited.frames, strict=True)
        )
        > 1e-4
    )  # the range changes the model's input, so its output


def test_saliency_maps_are_the_maps_whose_means_extract_reports(videos_dir: Path) -> None:
    clip = videos_dir / FOREMAN
    maps = list(saliency_maps(clip, frames=(0, 6), subsample=2, threads=1))
    features = extract_features(clip, frames=(0, 6), subsample=2, threads=1)
    assert [n for n, _ in maps] == [0, 2, 4]
    for (_, saliency), frame in zip(maps, features.frames, strict=True):
        assert saliency.shape == (320, 320) and saliency.dtype == np.float32
        assert float(saliency.min()) >= 0.0 and float(saliency.max()) <= 1.0
        assert float(saliency.astype(np.float64).mean()) == pytest.approx(
            frame.saliency_mean, abs=1e-9
        )


def test_saliency_maps_stream_from_a_video_still_being_written(tmp_path: Path) -> None:
    # A named pipe whose writer sends three frames, then waits: three maps must
    # arrive before the rest of the video exists.
    fifo = tmp_path / "live.y4m"
    os.mkfifo(fifo)
    more = threading.Event()

    def feed() -> None:
        with fifo.open("wb") as fh:
            fh.write(b"YUV4MPEG2 W64 H48 F25:1 C420jpeg\n")
            for level in (40, 120, 200, 90):
                fh.write(b"FRAME\n" + bytes([level]) * (64 * 48) + bytes([128]) * (64 * 48 // 2))
                fh.flush()
                if level == 200:
                    more.wait(60)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    stream = saliency_maps(fifo, threads=1)
    got = [next(stream)[0] for _ in range(3)]
    assert got == [0, 1, 2] and not more.is_set()
    more.set()
    assert [n for n, _ in stream] == [3]
    writer.join(timeout=10)


def test_bad_arguments_are_one_clear_error(videos_dir: Path) -> None:
    clip = videos_dir / FOREMAN
    with pytest.raises(UsageError, match=r"frames=\(5, 5\): give \(start, end\) with 0 <= start"):
        extract_features(clip, frames=(5, 5))
    with pytest.raises(UsageError, match=r"subsample=0: give a whole number >= 1"):
        extract_features(clip, subsample=0)
    with pytest.raises(UnknownModelError, match=r"no_such_model"):
        extract_features(clip, model="no_such_model")
    with pytest.raises(VideoError, match=r"absent\.mp4: no such file"):
        extract_features(videos_dir / "absent.mp4")
    with pytest.raises(UsageError, match=r"raw YUV, which has no header: pass --width"):
        next(saliency_maps(videos_dir / CISCO))
    with pytest.raises(UsageError, match=r"352 wide, not --width 320: drop --width \(raw= in Py"):
        extract_features(clip, raw=RawVideo(width=320, height=288))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"frames": 5}, r"^frames=5: give \(start, end\) with 0 <= start < end"),
        ({"frames": (0.5, 3)}, r"^frames=\(0\.5, 3\): give"),
        ({"frames": (-1, 5)}, r"^frames=\(-1, 5\): give"),
        ({"subsample": 2.5}, r"^subsample=2\.5: give a whole number >= 1$"),
        ({"threads": 0}, r"^threads=0: give a whole number from 1 to 256, or None \(all cores\)$"),
        ({"threads": 257}, r"^threads=257: give a whole number from 1 to 256"),
        ({"model": ""}, r"^model='': give a registry id, a path to an ONNX file, or None"),
        ({"model": np.ones((4, 40))}, r"^model=<ndarray of shape \(4, 40\)>: give a registry"),
        ({"raw": (320, 192)}, r"^raw=\(320, 192\): give RawVideo\(width=\.\.\., height"),
        ({"infer_size": (160, 320)}, r"^infer_size=\(160, 320\): give 'WIDTHxHEIGHT'"),
        ({"infer_size": "16x16"}, r"^infer_size='16x16': give at least 32 pixels a side"),
        ({"infer_size": "9000x320"}, r"^infer_size='9000x320': give at most 4096 pixels"),
        ({"color_range": "tv-ish"}, r"^color_range='tv-ish': give 'limited' \(16\.\.235\) or"),
        ({"color_range": 1}, r"^color_range=1: give 'limited', 'full' or None$"),
    ],
)
def test_api_arguments_are_checked_in_the_apis_words(
    videos_dir: Path, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        extract_features(videos_dir / FOREMAN, **arguments)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=message):  # at the call, before any iteration
        saliency_maps(videos_dir / FOREMAN, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (None, r"^video=None: give the video's path \(a str or a Path\), or '-' for standard"),
        (3, r"^video=3: give the video's path"),
        (b"/clip.mp4", r"^video=b'/clip\.mp4': give the video's path"),
        (io.BytesIO(b"\x00"), r"^video=<_io\.BytesIO .*>: give the video's path"),
        ("", r"^the video's path is empty: give a video file, or '-' for standard input$"),
        (BytesPath(), r"^video=BytesPath\(\): give the video's path \(a str or a Path\)"),
        # Frames in memory: named by type and shape, not a kilobyte of repr.
        (
            np.zeros((5, 288, 352), np.uint8),
            r"^video=<ndarray of shape \(5, 288, 352\)>: give the video's path",
        ),
    ],
)
def test_a_video_that_is_not_a_path_is_a_usage_error(video: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        extract_features(video)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=message):
        saliency_maps(video)  # type: ignore[arg-type]


def test_raw_video_checks_its_geometry_and_infer_size_reads_as_the_cli() -> None:
    with pytest.raises(UsageError, match=r"^RawVideo width=0: give a whole number of pixels"):
        RawVideo(width=0, height=96)
    with pytest.raises(UsageError, match=r"^RawVideo height='96': give a whole number"):
        RawVideo(width=160, height="96")  # type: ignore[arg-type]


def test_infer_size_is_width_by_height_as_on_the_command_line(videos_dir: Path) -> None:
    features = extract_features(videos_dir / FOREMAN, frames=(0, 2), infer_size="160x320")
    assert features.run.infer_size == (160, 320)  # (width, height), as the JSON says
    assert json.loads(features.to_json())["model"]["infer_size"] == "160x320"
    (_, saliency), *_ = saliency_maps(videos_dir / FOREMAN, frames=(0, 1), infer_size="160x320")
    assert saliency.shape == (320, 160)  # an array: (height, width)


def test_the_supply_chain_from_the_package() -> None:
    loaded = load_model()
    assert loaded.model_id == "saliency_student_v2_int8"
    assert loaded.scan.allowed and loaded.sha256 == Registry.load().get(loaded.model_id).sha256
    (out,) = loaded.session.run(
        ["saliency_map"], {"input": np.zeros((1, 3, 64, 96), dtype=np.float32)}
    )
    assert out.shape == (1, 1, 64, 96)
    assert scan_file(PACKAGED / "saliency_student_v2.onnx").allowed
    assert scan_file(str(PACKAGED / "saliency_student_v2.onnx")).allowed  # a str as well
    assert isinstance(vmafx_saliency.errors.VmafxSaliencyError, type)


def test_every_public_name_resolves_and_import_is_cheap() -> None:
    for name in vmafx_saliency.__all__:
        assert getattr(vmafx_saliency, name) is not None, name
    assert Features.__name__ == "Features"
    # dir() shows the API (what tab completion offers), not this package's own imports.
    listed = set(dir(vmafx_saliency))
    assert set(vmafx_saliency.__all__) <= listed
    assert not listed & {"annotations", "importlib", "TYPE_CHECKING", "Any"}
    code = (
        "import sys, vmafx_saliency; "
        "heavy = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('numpy', 'onnxruntime', 'av', 'torch', 'jsonschema')); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def readme_example() -> str:
    """The README's Python block, as a user copies it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    (block,) = [b for b in blocks if "extract_features" in b]
    return str(block)


def test_the_readme_example_runs_and_prints_the_clis_numbers(
    videos_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clip = videos_dir / FOREMAN
    script = readme_example().replace(f'"{FOREMAN}"', repr(str(clip)))
    assert str(clip) in script and len(script.splitlines()) <= 14
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    lines = done.stdout.splitlines()
    doc = _cli_json(capsys, str(clip), "--frames", "0:50", "--subsample", "5")
    frames = doc["frames"]
    assert isinstance(frames, list)
    expected = [
        f"{f['frameNum']} {f['metrics']['saliency_mean']:.6f} {f['metrics']['saliency_var']:.6f}"
        for f in frames
    ]
    assert lines[: len(expected)] == expected
    pooled = doc["pooled_metrics"]
    assert isinstance(pooled, dict)
    assert lines[len(expected)] == f"pooled {pooled['saliency_mean']['mean']:.6f}"
    assert [line.split()[0] for line in lines[len(expected) + 1 :]] == ["0", "1", "2"]


def test_a_loaded_model_runs_as_loaded_for_many_videos(
    videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmafx_saliency.video import job

    clip = videos_dir / FOREMAN
    by_id = extract_features(clip, frames=(0, 6))
    side_by_side, own_threads = load_model(threads=1), load_model()

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded again")

    monkeypatch.setattr(job, "_load_found", never)  # no second trip through the gate
    for loaded in (side_by_side, own_threads):
        again = extract_features(clip, frames=(0, 6), model=loaded)
        assert again.run.model_id == by_id.run.model_id == "saliency_student_v2_int8"
        for ours, theirs in zip(again.frames, by_id.frames, strict=True):
            assert ours.frame_num == theirs.frame_num
            assert ours.saliency_mean == pytest.approx(theirs.saliency_mean, abs=1e-7)
        maps = list(saliency_maps(clip, frames=(0, 2), model=loaded))
        assert [n for n, _ in maps] == [0, 1]
    # How it runs: a small model (this one) side by side however it was loaded, as the
    # extractor runs it; a large one on its session's own threads unless it has one.
    assert job.ReadyModel.of(side_by_side).plan(3) == job.InferencePlan(3, 1)
    assert job.ReadyModel.of(own_threads).plan(3) == job.InferencePlan(3, 1)
    large = dataclasses.replace(own_threads, size=job.SMALL_MODEL_BYTES + 1)
    assert job.ReadyModel.of(large).plan(None) == job.InferencePlan(1, 0)
    large_single = dataclasses.replace(side_by_side, size=job.SMALL_MODEL_BYTES + 1)
    assert job.ReadyModel.of(large_single).plan(None).frames == job._default_threads()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"threads": 2}, r"^threads=2 with a model loaded with ONNX Runtime's default threads: "),
        ({"sidecar": "s.json"}, r"^sidecar='s\.json' goes with a model file: a loaded model"),
        ({"signed": True}, r"^signed=True, and this model was loaded without its signature"),
        ({"provider": "cuda"}, r"^provider='cuda', and this model was loaded on 'cpu': load it"),
    ],
)
def test_a_loaded_model_refuses_arguments_it_was_not_loaded_with(
    videos_dir: Path, arguments: dict[str, object], message: str
) -> None:
    from vmafx_saliency.video.job import SMALL_MODEL_BYTES

    # As a large model (the mirror's size), whose own threads are the session's.
    loaded = dataclasses.replace(load_model(), size=SMALL_MODEL_BYTES + 1)
    with pytest.raises(UsageError, match=message):
        extract_features(videos_dir / FOREMAN, model=loaded, **arguments)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=message):  # at the call, before any iteration
        saliency_maps(videos_dir / FOREMAN, model=loaded, **arguments)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^model= is a model load_model already loaded"):
        load_model(loaded, **arguments)  # type: ignore[arg-type]
    # What it was loaded with, given again, is no conflict.
    again = extract_features(videos_dir / FOREMAN, frames=(0, 1), model=loaded, provider="cpu")
    assert again.run.provider == "cpu"
