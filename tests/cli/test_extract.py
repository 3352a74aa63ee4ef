"""``vmafx-saliency extract`` through ``cli.main``: outputs, options, model choice,
and bad inputs (exit 2, one line on stderr, no traceback, nothing written).

The tiny ad-hoc model from ``tests/_onnx_models.py`` stands in for a real one;
the u2netp mirror's sidecar is used once, on a few frames.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
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
from tests._onnx_models import nan_on_bright_model, refused_on_bright_model
from tests._trust import MIRROR_SIDECAR, isolate_registry, write_model
from tests._video import vmaf_file
from vmafx_saliency.cli.main import main

Image = pytest.importorskip("PIL.Image")

PRINTED = 5e-7 + 1e-12
CISCO_SMALL = "CiscoVT2people_160x96_6fps.yuv"  # 5 frames
CISCO_LARGE = "CiscoVT2people_320x192_12fps.yuv"  # 9 frames


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass(frozen=True)
class Env:
    """What every test gets: the videos, a tiny model + sidecar, an empty output folder."""

    videos: Path
    model: Path
    sidecar: Path
    out: Path
    tmp: Path

    def small(self) -> list[str]:
        return [str(self.videos / CISCO_SMALL), "--width", "160", "--height", "96"]

    def large(self) -> list[str]:
        return [str(self.videos / CISCO_LARGE), "--width", "320", "--height", "192"]

    def tiny(self) -> list[str]:
        return ["--model-path", str(self.model), "--sidecar", str(self.sidecar)]


@pytest.fixture
def env(videos_dir: Path, tmp_path: Path) -> Env:
    model, sidecar = write_tiny(tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    return Env(videos_dir, model, sidecar, out, tmp_path)


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    # The file descriptors, not sys.stdout/err: ONNX Runtime and FFmpeg log there.
    def run(*args: str | Path) -> Run:
        capfd.readouterr()  # drop anything printed before
        code = main(["extract", *(str(a) for a in args)])
        captured = capfd.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _frame_nums(doc: Any) -> list[int]:
    return [int(f["frameNum"]) for f in doc["frames"]]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- outputs ----------------------------------------------------------------------------------


def test_output_dash_prints_json_to_stdout(env: Env, cli: Callable[..., Run]) -> None:
    run = cli(env.videos / "foreman_cif.mp4", "--frames", "0:3", *env.tiny(), "--output", "-")
    assert run.code == 0
    doc = run.json()
    assert _frame_nums(doc) == [0, 1, 2]
    assert list(doc) == [
        "version",
        "fps",
        "params",
        "model",
        "frames",
        "pooled_metrics",
        "aggregate_metrics",
    ]
    assert list(doc["frames"][0]["metrics"]) == ["saliency_mean", "saliency_var"]
    assert doc["model"]["sha256"] == _sha256(env.model)
    # The summary goes to stderr, never into the JSON.
    assert "3 frames of" in run.err
    assert "with an ad-hoc model at 64x48" in run.err
    # Without --output (and without --merge-into) it is stdout too.
    again = cli(env.videos / "foreman_cif.mp4", "--frames", "0:3", *env.tiny(), "--quiet")
    assert again.code == 0
    assert again.err == ""
    assert _frame_nums(again.json()) == [0, 1, 2]


def test_format_csv_and_xml_on_stdout(env: Env, cli: Callable[..., Run]) -> None:
    as_json = cli(*env.small(), *env.tiny(), "-q").json()
    as_csv = cli(*env.small(), *env.tiny(), "-q", "--format", "csv")
    rows = list(csv.reader(io.StringIO(as_csv.out)))
    assert rows[0] == ["Frame", "saliency_mean", "saliency_var", ""]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2, 3, 4]
    as_xml = cli(*env.small(), *env.tiny(), "-q", "--format", "xml")
    root = ET.fromstring(as_xml.out)
    assert root.tag == "VMAF"
    xml_frames = root.findall("./frames/frame")
    for i, frame in enumerate(as_json["frames"]):
        value = frame["metrics"]["saliency_mean"]
        assert float(rows[i + 1][1]) == pytest.approx(value, abs=1e-12)
        assert float(xml_frames[i].get("saliency_mean", "nan")) == pytest.approx(value, abs=1e-12)


def test_files_take_their_format_from_the_suffix(env: Env, cli: Callable[..., Run]) -> None:
    for suffix in ("json", "xml", "csv"):
        target = env.out / f"cisco.{suffix}"
        run = cli(*env.small(), *env.tiny(), "--output", target)
        assert run.code == 0
        assert run.out == ""
        assert f"wrote {target}" in run.err
    doc = json.loads((env.out / "cisco.json").read_text())
    root = ET.fromstring((env.out / "cisco.xml").read_text())
    rows = list(csv.reader(io.StringIO((env.out / "cisco.csv").read_text())))
    pooled = root.find("./pooled_metrics/metric[@name='saliency_mean']")
    assert pooled is not None
    for key in ("min", "max", "mean", "harmonic_mean"):
        assert float(pooled.get(key, "nan")) == pytest.approx(
            doc["pooled_metrics"]["saliency_mean"][key], abs=1e-12
        )
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(
        [f["metrics"]["saliency_mean"] for f in doc["frames"]], abs=1e-12
    )
    assert sorted(p.name for p in env.out.iterdir()) == ["cisco.csv", "cisco.json", "cisco.xml"]


def test_frames_and_subsample(env: Env, cli: Callable[..., Run]) -> None:
    foreman = env.videos / "foreman_cif.mp4"
    run = cli(foreman, "--frames", "2:10", "--subsample", "3", *env.tiny())
    assert run.code == 0
    doc = run.json()
    assert _frame_nums(doc) == [2, 5, 8]  # from the start of the range; 10 excluded
    assert doc["params"]["subsample"] == 3
    # The same frames without subsampling have the same values.
    every = cli(foreman, "--frames", "2:10", *env.tiny()).json()
    assert _frame_nums(every) == list(range(2, 10))
    by_num = {f["frameNum"]: f["metrics"] for f in every["frames"]}
    for frame in doc["frames"]:
        assert frame["metrics"] == pytest.approx(by_num[frame["frameNum"]], abs=1e-12)


def test_infer_size_native_and_explicit(env: Env, cli: Callable[..., Run]) -> None:
    # A sidecar that asks for 320x320, as the mirror's does.
    model, sidecar = write_tiny(env.tmp / "square", inference_size=[320, 320])
    tiny = ["--model-path", model, "--sidecar", sidecar]
    default = cli(*env.small(), *tiny).json()
    assert default["model"]["infer_size"] == "320x320"
    assert default["model"]["map_note"] == "saliency_map computed at 320x320, frame is 160x96"
    native = cli(*env.small(), *tiny, "--infer-size", "native").json()
    assert native["model"]["infer_size"] == "native"
    assert native["model"]["map_note"] is None
    explicit = cli(*env.small(), *tiny, "--infer-size", "64x48").json()
    assert explicit["model"]["infer_size"] == "64x48"
    assert explicit["model"]["map_note"] == "saliency_map computed at 64x48, frame is 160x96"
    for doc in (default, native, explicit):
        assert (doc["params"]["qualityWidth"], doc["params"]["qualityHeight"]) == (160, 96)


def test_save_maps_every_second_map(env: Env, cli: Callable[..., Run]) -> None:
    maps = env.out / "maps"
    run = cli(*env.large(), *env.tiny(), "--save-maps", maps, "--maps-every", "2")
    assert run.code == 0
    doc = run.json()
    names = sorted(p.name for p in maps.iterdir())
    assert names == [f"frame_{n:06d}.png" for n in (0, 2, 4, 6, 8)]
    assert sorted(p.name for p in env.out.iterdir()) == ["maps"]  # no hidden temp folder left
    assert f"wrote {maps}" in run.err
    by_num = {f["frameNum"]: f["metrics"]["saliency_mean"] for f in doc["frames"]}
    for name in names:
        with Image.open(maps / name) as image:
            assert image.mode == "L"  # 8-bit grayscale
            assert image.size == (TINY_SIZE[1], TINY_SIZE[0])  # the map's own size
            pixels = np.asarray(image, dtype=np.float64)
        # round(x * 255) per pixel: the PNG's mean is the frame's saliency_mean to half a step.
        num = int(name[len("frame_") : -len(".png")])
        assert pixels.mean() / 255 == pytest.approx(by_num[num], abs=0.5 / 255 + PRINTED)


def test_maps_every_counts_computed_frames(env: Env, cli: Callable[..., Run]) -> None:
    maps = env.out / "maps"
    run = cli(
        *env.large(), *env.tiny(), "--subsample", "3", "--save-maps", maps, "--maps-every", "2"
    )
    assert run.code == 0
    assert _frame_nums(run.json()) == [0, 3, 6]
    assert sorted(p.name for p in maps.iterdir()) == ["frame_000000.png", "frame_000006.png"]


def test_plot(env: Env, cli: Callable[..., Run]) -> None:
    plot = env.out / "saliency.png"
    run = cli(*env.small(), *env.tiny(), "--plot", plot, "--output", env.out / "x.json")
    assert run.code == 0
    assert f"wrote {plot}" in run.err
    with Image.open(plot) as image:
        assert image.format == "PNG"
        assert image.size == (800, 350)
    assert sorted(p.name for p in env.out.iterdir()) == ["saliency.png", "x.json"]


def test_quiet_prints_nothing_but_the_output(env: Env, cli: Callable[..., Run]) -> None:
    target = env.out / "x.json"
    run = cli(*env.small(), *env.tiny(), "--output", target, "--quiet")
    assert (run.code, run.out, run.err) == (0, "", "")
    assert _frame_nums(json.loads(target.read_text())) == [0, 1, 2, 3, 4]


def test_raw_size_not_a_whole_number_of_frames_warns_and_runs(
    env: Env, cli: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    path = env.tmp / "cut.yuv"
    path.write_bytes((env.videos / CISCO_SMALL).read_bytes()[: 3 * 23040 + 777])
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"):
        run = cli(path, "--width", "160", "--height", "96", *env.tiny())
    assert run.code == 0
    assert _frame_nums(run.json()) == [0, 1, 2]
    assert f"file size {3 * 23040 + 777} bytes is not a whole number of frames" in caplog.text
    assert "(23040 bytes each)" in caplog.text


# --- merge ------------------------------------------------------------------------------------


def test_merge_into_a_new_file(env: Env, cli: Callable[..., Run]) -> None:
    vmaf = vmaf_file(env.out / "vmaf.json", [0, 1, 2, 3])
    before = vmaf.read_bytes()
    merged = env.out / "merged.json"
    run = cli(
        *env.small(), "--frames", "0:4", *env.tiny(), "--merge-into", vmaf, "--merge-output", merged
    )
    assert run.code == 0
    assert run.out == ""  # --merge-into alone prints no JSON
    assert f"wrote {merged}" in run.err
    assert vmaf.read_bytes() == before
    doc = json.loads(merged.read_text())
    assert _frame_nums(doc) == [0, 1, 2, 3]
    assert all("saliency_mean" in f["metrics"] and "vmaf" in f["metrics"] for f in doc["frames"])


def test_merge_output_dash_is_standard_output(
    env: Env, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(env.out)
    vmaf = vmaf_file(env.out / "vmaf.json", [0, 1, 2, 3])
    common = [*env.small(), "--frames", "0:4", *env.tiny(), "--merge-into", vmaf]
    assert cli(*common, "--merge-output", env.tmp / "merged.json").code == 0
    run = cli(*common, "--merge-output", "-", "--quiet")
    assert run.code == 0
    assert run.out == (env.tmp / "merged.json").read_text()  # the same document, on stdout
    assert not Path("-").exists() and sorted(p.name for p in env.out.iterdir()) == ["vmaf.json"]
    both = cli(*common, "--merge-output", "-", "--output", "-")
    assert both.code == 2 and "would both go to standard output" in both.err


def test_merge_into_in_place_with_force(env: Env, cli: Callable[..., Run]) -> None:
    vmaf = vmaf_file(env.out / "vmaf.json", [0, 2, 4])
    run = cli(*env.small(), "--subsample", "2", *env.tiny(), "--merge-into", vmaf, "--force")
    assert run.code == 0
    doc = json.loads(vmaf.read_text())
    assert _frame_nums(doc) == [0, 2, 4]
    for frame in doc["frames"]:
        assert {"vmaf", "saliency_mean", "saliency_var"} <= set(frame["metrics"])
    assert "saliency_mean" in doc["pooled_metrics"]


# --- model choice -------------------------------------------------------------------------------


def test_sidecar_beside_the_model(env: Env, cli: Callable[..., Run]) -> None:
    model, _ = write_tiny(env.tmp / "beside", name="student", beside=True, inference_size=[40, 56])
    run = cli(*env.small(), "--model-path", model)
    assert run.code == 0
    assert run.json()["model"]["infer_size"] == "56x40"


def test_model_path_from_the_environment(
    env: Env, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = write_tiny(env.tmp / "beside", name="student", beside=True)
    monkeypatch.setenv("VMAF_MOBILESAL_MODEL_PATH", str(model))
    run = cli(*env.small())
    assert run.code == 0
    doc = run.json()
    assert doc["model"]["id"] is None
    assert doc["model"]["sha256"] == _sha256(model)
    # --sidecar goes with the model the environment names.
    other = write_tiny(env.tmp / "other", inference_size=[40, 56])[1]
    assert cli(*env.small(), "--sidecar", other).json()["model"]["infer_size"] == "56x40"
    # A path that is no file: the variable is named, or no one could tell where it came from.
    monkeypatch.setenv("VMAF_MOBILESAL_MODEL_PATH", str(env.tmp / "nope.onnx"))
    gone = cli(*env.small())
    assert gone.code == 2
    assert re.search(r"\$VMAF_MOBILESAL_MODEL_PATH names .*nope\.onnx, which is not a file: "
                     r"set it to a model's ONNX file, or unset it", gone.err)  # fmt: skip


def test_registered_model_by_id(
    env: Env, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmafx_saliency.supply import registry as reg

    isolate_registry(env.tmp, monkeypatch)
    monkeypatch.delenv("VMAF_MOBILESAL_MODEL_PATH", raising=False)
    write_model(env.tmp / "in", "tiny_reg")
    inputs = env.tmp / "in" / "tiny_reg"
    reg.add_model(
        onnx=inputs / "model.onnx",
        model_id="tiny_reg",
        sidecar=inputs / "sidecar.json",
        license="BSD-3-Clause",
        license_file=inputs / "LICENSE.txt",
        source=reg.Source(type="fork-trained"),
    )
    run = cli(*env.small(), "--model", "tiny_reg", "--infer-size", "64x48")
    assert run.code == 0, run.err
    doc = run.json()
    assert doc["model"]["id"] == "tiny_reg"
    # The overlay it was looked up in is an input: never an output, even with --force.
    overlay = reg.overlay_registry_path()
    before = overlay.read_bytes()
    refused = cli(*env.small(), "--model", "tiny_reg", "--output", overlay, "--force")
    assert refused.code == 2 and re.search(r"is the registry .*: give the outputs", refused.err)
    assert overlay.read_bytes() == before

    assert doc["model"]["sha256"] == _sha256(inputs / "model.onnx")
    assert "with tiny_reg at 64x48" in run.err
    # Registered without a bundle: --signed fails closed.
    signed = cli(*env.small(), "--model", "tiny_reg", "--signed")
    assert signed.code == 2
    assert "declares none" in signed.err
    assert signed.out == ""
    # Not registered as the default: no model named means no model at all.
    none = cli(*env.small())
    assert none.code == 2
    assert "no default model for extractor 'mobilesal'" in none.err
    assert "models for it: tiny_reg" in none.err
    assert "pass --model ID" in none.err


def test_the_overlay_is_spared_when_the_model_is_a_committed_one(
    env: Env, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlay is read on every lookup, also of a model of the committed registry."""
    from vmafx_saliency.supply import registry as reg

    monkeypatch.delenv(reg.ENV_COMMITTED, raising=False)  # the packaged registry, its student
    overlay = env.tmp / "overlay.json"
    overlay.write_text('{"schema": "vmafx-saliency/registry/v1", "models": []}')
    monkeypatch.setenv(reg.ENV_OVERLAY, str(overlay))
    before = overlay.read_bytes()
    args = [*env.small(), "--model", "saliency_student_v2", "--output", overlay, "--force"]
    refused = cli(*args, "--format", "json")
    assert refused.code == 2 and "is the overlay registry" in refused.err
    assert overlay.read_bytes() == before


def test_no_default_registered(
    env: Env, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_registry(env.tmp, monkeypatch)
    monkeypatch.delenv("VMAF_MOBILESAL_MODEL_PATH", raising=False)
    run = cli(*env.small(), "--output", env.out / "x.json")
    assert run.code == 2
    assert run.err.count("\n") == 1
    assert "no default model for extractor 'mobilesal'" in run.err
    assert "no model for it is registered" in run.err
    assert "vmafx-saliency registry add" in run.err
    assert_nothing_written(env.out)


def test_real_mirror_through_the_cli(env: Env, cli: Callable[..., Run], mirror_onnx: Path) -> None:
    run = cli(
        env.videos / "foreman_cif.mp4",
        "--frames",
        "0:2",
        "--model-path",
        mirror_onnx,
        "--sidecar",
        MIRROR_SIDECAR,
        "--infer-size",
        "96x80",
    )
    assert run.code == 0
    doc = run.json()
    assert doc["model"]["infer_size"] == "96x80"
    assert doc["model"]["map_note"] == "saliency_map computed at 96x80, frame is 352x288"
    assert doc["model"]["sha256"] == _sha256(mirror_onnx)
    values = [f["metrics"]["saliency_mean"] for f in doc["frames"]]
    assert all(0.0 < v < 1.0 for v in values)


# --- bad inputs: exit 2, one line on stderr, nothing written -------------------------------------

Case = Callable[[Env], list[str | Path]]


def _exists(env: Env) -> list[str | Path]:
    (env.out / "x.json").write_text("mine\n")
    return [*env.small(), *env.tiny(), "--output", env.out / "x.json"]


def _mismatched_merge(env: Env) -> list[str | Path]:
    vmaf = vmaf_file(env.out / "vmaf.json", [0, 1, 2, 3])
    return [*env.small(), *env.tiny(), "--merge-into", vmaf, "--merge-output", env.out / "m.json"]


def _merge_in_place(env: Env) -> list[str | Path]:
    vmaf = vmaf_file(env.out / "vmaf.json", [0, 1, 2, 3, 4])
    return [*env.small(), *env.tiny(), "--merge-into", vmaf]


def _nan(env: Env) -> list[str | Path]:
    model, sidecar = write_tiny(
        env.tmp / "nan", data=nan_on_bright_model(), inference_size="native"
    )
    white_on_frame_3(env.tmp / "white3.yuv")
    return [
        env.tmp / "white3.yuv",
        "--width",
        "64",
        "--height",
        "48",
        "--model-path",
        model,
        "--sidecar",
        sidecar,
    ]


def _refused(env: Env) -> list[str | Path]:
    model, sidecar = write_tiny(
        env.tmp / "refused", data=refused_on_bright_model(), inference_size="native"
    )
    white_on_frame_3(env.tmp / "white3.yuv")
    clip: list[str | Path] = [env.tmp / "white3.yuv", "--width", "64", "--height", "48"]
    return [*clip, "--model-path", model, "--sidecar", sidecar]


def _broken(env: Env) -> list[str | Path]:
    return [broken_foreman(env.videos, env.tmp), *env.tiny()]


def _not_video(env: Env) -> list[str | Path]:
    (env.tmp / "notes.mp4").write_text("not a video\n" * 10)
    return [env.tmp / "notes.mp4", *env.tiny()]


BAD: dict[str, tuple[Case, str]] = {
    "missing file": (
        lambda e: [e.tmp / "gone.yuv", "--width", "160", "--height", "96", *e.tiny()],
        r"gone\.yuv: no such file",
    ),
    "unknown pixel format": (
        lambda e: [*e.small(), "--pixel-format", "nv12", *e.tiny()],
        r"unknown pixel format 'nv12': --pixel-format \(raw=RawVideo\(pixel_format=\.\.\.\) in "
        r"Python\) takes one of "
        r".*yuv420p10le.*yuv444p",
    ),
    "raw without geometry": (
        lambda e: [e.videos / CISCO_SMALL, *e.tiny()],
        r"is raw YUV, which has no header: pass --width and --height",
    ),
    "corrupt mid-stream": (_broken, r"broken\.mp4: decoding failed at frame \d{3} "),
    "not a video": (_not_video, r"cannot open .*notes\.mp4: .*is it a video file\?"),
    "range past the end": (
        lambda e: [*e.small(), "--frames", "400:500", *e.tiny()],
        r"no frames were selected of its 5: check --frames and --subsample",
    ),
    "empty range": (
        lambda e: [*e.small(), "--frames", "5:2", *e.tiny()],
        r"--frames '5:2' is empty: END is excluded",
    ),
    "subsample 0": (lambda e: [*e.small(), "--subsample", "0", *e.tiny()], r"--subsample 0"),
    "bad infer size": (
        lambda e: [*e.small(), "--infer-size", "0x48", *e.tiny()],
        r"--infer-size '0x48': give 'native' or WIDTHxHEIGHT",
    ),
    "threads 0": (lambda e: [*e.small(), "--threads", "0", *e.tiny()], r"--threads 0"),
    "maps every 0": (
        lambda e: [*e.small(), *e.tiny(), "--save-maps", e.out / "maps", "--maps-every", "0"],
        r"--maps-every 0",
    ),
    "nan map": (_nan, r"frame 3: the model produced NaN or infinite values"),
    "model refused by ONNX Runtime": (
        _refused,
        r"frame 3: model .*refused/tiny\.onnx failed at 64x48 \(.*out of data bounds.*\): the "
        r"model cannot run this input; try --infer-size 320x320 or another model",
    ),
    "output exists": (_exists, r"x\.json already exists: pass --force"),
    "merge mismatch": (
        _mismatched_merge,
        r"frame numbers do not match: the vmaf file has 4 frames, the saliency features 5",
    ),
    "merge in place": (_merge_in_place, r"would modify that file in place: pass --merge-output"),
    "model and model path": (
        lambda e: [*e.small(), "--model", "x", *e.tiny()],
        r"give --model or --model-path, not both",
    ),
    "model file missing, no sidecar": (
        lambda e: [*e.small(), "--model-path", e.out / "absent.onnx"],
        r"loader refused .*absent\.onnx at the path check: no such file",
    ),
    "model path a folder, no sidecar": (
        lambda e: [*e.small(), "--model-path", e.videos],
        r"loader refused .* at the path check: a directory, not a regular file",
    ),
    "no sidecar": (
        lambda e: [*e.small(), "--model-path", e.model],
        r"no sidecar JSON declares its pre-processing: pass --sidecar FILE",
    ),
    "unknown model id": (lambda e: [*e.small(), "--model", "nope"], r"no model 'nope'"),
    "bad plot suffix": (
        lambda e: [*e.small(), *e.tiny(), "--plot", e.out / "plot.xyz"],
        r"matplotlib cannot write 'xyz' files",
    ),
    "output onto the input video, no --format": (
        lambda e: [*_small_in_out(e), *e.tiny(), "--output", e.out / CISCO_SMALL],
        rf"--output .*{CISCO_SMALL} is the input video",  # before its suffix's refusal
    ),
    "output suffix of no format": (
        lambda e: [*e.small(), *e.tiny(), "--output", e.out / "x.txt"],
        r"--output .*x\.txt: the format is taken from the suffix \(\.json, \.xml or \.csv\) "
        r"and \.txt is none of them: give --format json, xml or csv",
    ),
    "output is a folder": (
        lambda e: [*e.small(), *e.tiny(), "--output", e.tmp, "--force"],
        r"is a folder: give a file name for the output",
    ),
    "two outputs, one file": (
        lambda e: [
            *e.small(),
            *e.tiny(),
            "--merge-into",
            vmaf_file(e.tmp / "vmaf.json"),
            "--merge-output",
            e.out / "m.json",
            "--output",
            e.out / "m.json",
        ],
        r"--output .*m\.json is also --merge-output: give each its own path",
    ),
    "output onto the merge input": (
        lambda e: [
            *e.small(),
            *e.tiny(),
            "--merge-into",
            vmaf_file(e.tmp / "vmaf.json"),
            "--output",
            e.tmp / "vmaf.json",
            "--force",
        ],
        r"--output .*vmaf\.json is also --merge-into: give each its own path",
    ),
    "output onto the maps folder": (
        lambda e: [*e.small(), *e.tiny(), "--output", e.out / "m", "--save-maps", e.out / "m"],
        r"--save-maps .*m is also --output: give each its own path",
    ),
    "output onto the input video, even with --force": (
        # --format: the suffix of a video names no output format (refused on its own).
        lambda e: [
            *_small_in_out(e),
            *e.tiny(),
            "--output",
            e.out / CISCO_SMALL,
            "--format",
            "json",
            "--force",
        ],
        rf"--output .*{CISCO_SMALL} is the input video .*{CISCO_SMALL}: give the outputs paths "
        r"apart from the inputs \(--force replaces earlier outputs, never a run's inputs\)",
    ),
    "output onto the model, even with --force": (
        lambda e: [*e.small(), *e.tiny(), "--output", e.model, "--format", "json", "--force"],
        r"--output .* is --model-path .*: give the outputs paths apart from the inputs",
    ),
    "merge output without merge input": (
        lambda e: [*e.small(), *e.tiny(), "--merge-output", e.out / "m.json"],
        r"--merge-output .*m\.json is where the merged vmaf JSON goes: add --merge-into",
    ),
    "empty video path": (
        lambda e: ["", *e.tiny()],
        r"the video's path is empty: give a video file, or '-' for standard input",
    ),
    "maps folder below a file": (
        lambda e: [*e.small(), *e.tiny(), "--save-maps", _plain_file(e) / "maps"],
        r"plain/maps: .*plain is a file, not a folder: give a path in a folder",
    ),
    "merged JSON named .xml": (
        lambda e: [
            *e.small(),
            *e.tiny(),
            "--merge-into",
            vmaf_file(e.tmp / "vmaf.json"),
            "--merge-output",
            e.out / "m.xml",
        ],
        r"--merge-output .*m\.xml: the merged file is vmaf's JSON, whatever its name",
    ),
    "format without an output": (
        lambda e: [
            *e.small(),
            *e.tiny(),
            "--merge-into",
            vmaf_file(e.tmp / "vmaf.json"),
            "--merge-output",
            e.out / "m.json",
            "--format",
            "csv",
        ],
        r"--format csv sets --output's format, and with --merge-into alone there is no --output",
    ),
    "plot to '-'": (
        lambda e: [*e.small(), *e.tiny(), "--plot", "-"],
        r"--plot -: this output cannot go to standard output: give a file name",
    ),
    "maps folder '-'": (
        lambda e: [*e.small(), *e.tiny(), "--save-maps", "-"],
        r"--save-maps -: this output cannot go to standard output: give a folder name",
    ),
    "infer size under 32": (
        lambda e: [*e.small(), "--infer-size", "16x16", *e.tiny()],
        r"--infer-size '16x16': give at least 32 pixels a side",
    ),
}


def _plain_file(env: Env) -> Path:
    (env.out / "plain").write_bytes(b"not a folder")
    return env.out / "plain"


def _small_in_out(env: Env) -> list[str]:
    """The small raw clip, copied into the output folder (whose files must stay as they are)."""
    shutil.copyfile(env.videos / CISCO_SMALL, env.out / CISCO_SMALL)
    return [str(env.out / CISCO_SMALL), "--width", "160", "--height", "96"]


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    env: Env, cli: Callable[..., Run], case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(env.out)  # a relative output (such as "-") would land among the checked
    build, message = BAD[case]
    args = build(env)
    before = {p.name: p.read_bytes() for p in env.out.iterdir()}
    target, maps = env.out / "result.json", env.out / "result_maps"
    extra: list[str | Path] = (
        [] if "--output" in args or "--merge-into" in args else ["--output", target]
    )
    if "--save-maps" not in args:
        extra += ["--save-maps", maps]
    run = cli(*args, *extra)
    assert run.code == 2
    assert run.out == ""
    assert "Traceback" not in run.err
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("vmafx-saliency extract: error: ")
    assert re.search(message, lines[0]), lines[0]
    # Whatever was there before is untouched, and nothing new appeared.
    assert {p.name: p.read_bytes() for p in env.out.iterdir() if p.name in before} == before
    assert_nothing_written(env.out, target, maps, keep=list(before))


def test_maps_every_without_save_maps_is_refused(env: Env, cli: Callable[..., Run]) -> None:
    # (The table above adds --save-maps to every case.)
    run = cli(*env.small(), *env.tiny(), "--maps-every", "5", "--output", env.out / "x.json")
    assert run.code == 2
    assert re.search(r"--maps-every 5 thins the maps that --save-maps writes: add --save-maps DIR",
                     run.err), run.err  # fmt: skip
    assert list(env.out.iterdir()) == []


# --- a stalled stream, stopped by a signal: nothing is left behind --------------------------


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [
        (signal.SIGTERM, 143, "terminated"),
        (signal.SIGINT, 130, "interrupted"),
        (signal.SIGHUP, 129, "hung up"),
    ],
)
def test_a_signal_mid_stream_leaves_no_output(
    env: Env, signum: signal.Signals, code: int, said: str
) -> None:
    """`kill`/`timeout` (SIGTERM) and a closed terminal (SIGHUP) unwind as Ctrl-C does: no
    maps folder, no temporary file.

    The video is a named pipe whose writer sends three frames and then stalls, so
    the run is certainly mid-stream, its maps in a hidden folder, when signalled;
    it must end while the writer still stalls.
    """
    fifo = env.tmp / "live.y4m"
    os.mkfifo(fifo)
    release = threading.Event()

    def feed() -> None:
        with fifo.open("wb") as fh:
            fh.write(b"YUV4MPEG2 W64 H48 F25:1 C420jpeg\n")
            for level in (40, 120, 200):
                fh.write(b"FRAME\n" + bytes([level]) * (64 * 48) + bytes([128]) * (64 * 48 // 2))
            fh.flush()
            release.wait(60)  # the stream stalls; end it once the signal is sent

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    maps, target = env.out / "maps", env.out / "x.json"
    args = [str(fifo), *env.tiny(), "--save-maps", str(maps), "-o", str(target), "--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmafx_saliency", "extract", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(env.out.glob(".maps.*/frame_*.png"))) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the three frames never reached the maps"
            time.sleep(0.02)
        # Three times: a hangup often comes twice (the kernel, then the shell), and a
        # second exception inside the cleanup would leave the maps folder behind.
        for _ in range(3):
            proc.send_signal(signum)
            time.sleep(0.002)
        # The writer still holds the stream, stalled: the run must end without it
        # (the decode worker, blocked reading, is given up on after a short wait).
        _, err = proc.communicate(timeout=30)
    finally:
        release.set()
        proc.kill()
        writer.join(timeout=10)
    assert proc.returncode == code, err
    assert err.strip().endswith(f"vmafx-saliency: {said}"), err
    assert_nothing_written(env.out)


# --- standard input, as ffmpeg users pipe it ---------------------------------------------


def _run_extract(*args: str | Path, stdin: Any) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "vmafx_saliency", "extract", *(str(a) for a in args)]
    return subprocess.run(command, stdin=stdin, capture_output=True, timeout=300, check=False)


@pytest.mark.parametrize(
    ("muxer", "options", "geometry"),
    [
        ("yuv4mpegpipe", ["-pix_fmt", "yuv420p"], []),
        ("mpegts", ["-c", "copy"], []),
        ("rawvideo", ["-pix_fmt", "yuv420p"], ["--width", "352", "--height", "288"]),
    ],
    ids=["y4m", "mpegts", "raw"],
)
def test_standard_input_from_ffmpeg_gives_the_files_values(
    env: Env, cli: Callable[..., Run], muxer: str, options: list[str], geometry: list[str]
) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    clip = env.videos / "foreman_cif.mp4"
    common = ["--frames", "0:12", "--format", "csv", "-o", "-", "-q", "--threads", "1"]
    expected = cli(clip, *common)
    assert expected.code == 0, expected.err
    feed = [ffmpeg, "-loglevel", "error", "-i", str(clip), *options, "-f", muxer, "-"]
    with subprocess.Popen(feed, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as feeder:
        run = _run_extract("-", *geometry, *common, stdin=feeder.stdout)
        feeder.kill()  # it may still be writing frames past --frames
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode() == expected.out
    assert expected.out.count("\n") == 13  # the header and twelve frames


@pytest.mark.parametrize(
    ("muxer", "options"),
    [("yuv4mpegpipe", ["-pix_fmt", "yuv420p"]), ("matroska", ["-c:v", "ffv1"])],
    ids=["y4m", "matroska"],
)
def test_geometry_flags_never_make_a_piped_y4m_or_container_raw(
    env: Env, cli: Callable[..., Run], muxer: str, options: list[str]
) -> None:
    # Read as what it is, as a file would be; flags that disagree are refused.
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    clip = env.videos / "foreman_cif.mp4"
    common = ["--frames", "0:3", "--format", "csv", "-o", "-", "-q", "--threads", "1"]
    expected = cli(clip, *common).out
    feed = [ffmpeg, "-loglevel", "error", "-i", str(clip), "-frames:v", "3", *options]
    for width, code in (("352", 0), ("320", 2)):
        with subprocess.Popen(
            [*feed, "-f", muxer, "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ) as feeder:
            run = _run_extract(
                "-", "--width", width, "--height", "288", *common, stdin=feeder.stdout
            )
            feeder.kill()
        assert run.returncode == code, run.stderr.decode()
        if code == 0:
            assert run.stdout.decode() == expected
        else:
            assert run.stderr.decode() == (
                "vmafx-saliency extract: error: - is 352 wide, not --width 320: drop --width "
                "(raw= in Python): the geometry is for raw YUV\n"
            )


def test_hostile_standard_input_is_one_line(env: Env, tmp_path: Path) -> None:
    huge = tmp_path / "huge.y4m"
    huge.write_bytes(b"YUV4MPEG2 W999999 H999999 F25:1\nFRAME\n" + bytes(1000))
    with huge.open("rb") as fh:  # through a pipe: no file size to check it against
        feeder = subprocess.Popen(["cat"], stdin=fh, stdout=subprocess.PIPE)
        run = _run_extract("-", *env.tiny(), stdin=feeder.stdout)
        feeder.wait()
    assert run.returncode == 2
    assert run.stderr.decode() == (
        "vmafx-saliency extract: error: -: 999999x999999 is over the 134,217,728-pixel limit "
        "of a frame: check the geometry (--width/--height, or the Y4M header)\n"
    )
    closed = subprocess.run(
        [sys.executable, "-m", "vmafx_saliency", "extract", "-", *env.tiny()],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.close(0),
    )
    assert closed.returncode == 2
    assert closed.stderr.decode().startswith(
        "vmafx-saliency extract: error: -: standard input cannot be read (Bad file descriptor)"
    )


def test_dot_slash_dash_names_a_file_called_dash(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    dash = env.tmp / "-"
    dash.write_bytes((env.videos / CISCO_SMALL).read_bytes())
    monkeypatch.chdir(env.tmp)
    common = ["--width", "160", "--height", "96", "--format", "csv", "-o", "-", "-q"]
    run = _run_extract("./-", *env.tiny(), *common, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr.decode()
    assert len(run.stdout.decode().splitlines()) == 6  # the header and five frames


def test_an_inference_size_past_a_sidecars_limit_is_refused(
    env: Env, cli: Callable[..., Run]
) -> None:
    run = cli(*env.small(), *env.tiny(), "--infer-size", "20000x20000")
    assert run.code == 2
    assert run.err.strip() == (
        "vmafx-saliency extract: error: --infer-size '20000x20000': give at most 4096 pixels "
        "a side (a sidecar's limit too); the activations of a larger input fill the memory"
    )


def test_standard_input_redirected_from_a_file(env: Env, cli: Callable[..., Run]) -> None:
    clip = env.videos / "foreman_cif.mp4"
    common = ["--frames", "0:5", "--format", "csv", "-o", "-", "-q", "--threads", "1"]
    with clip.open("rb") as fh:
        run = _run_extract("-", *common, stdin=fh)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode() == cli(clip, *common).out


def test_empty_standard_input_is_one_line(env: Env) -> None:
    run = _run_extract("-", *env.tiny(), stdin=subprocess.DEVNULL)
    assert run.returncode == 2
    assert run.stdout == b""
    assert run.stderr.decode() == (
        "vmafx-saliency extract: error: -: standard input is empty: pipe a video into it, "
        "e.g. ffmpeg -i in.mkv -f yuv4mpegpipe - | vmafx-saliency extract -\n"
    )


# --- outputs that are not plain files ---------------------------------------------------


def test_output_through_a_symlink_replaces_the_file_it_names(
    env: Env, cli: Callable[..., Run]
) -> None:
    real = env.out / "real.csv"
    real.write_text("old\n")
    link = env.out / "link.csv"
    link.symlink_to(real.name)
    assert cli(*env.small(), *env.tiny(), "--output", link, "--force", "-q").code == 0
    assert link.is_symlink() and link.readlink() == Path("real.csv")
    assert real.read_text().startswith("Frame,saliency_mean,saliency_var,")


def test_output_into_a_named_pipe_needs_no_force(env: Env, cli: Callable[..., Run]) -> None:
    pipe = env.out / "live.csv"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()), daemon=True)
    reader.start()
    assert cli(*env.small(), *env.tiny(), "--output", pipe, "--frames", "0:2", "-q").code == 0
    reader.join(timeout=30)
    rows = got[0].decode().splitlines()
    assert rows[0] == "Frame,saliency_mean,saliency_var," and len(rows) == 3
    assert stat.S_ISFIFO(pipe.stat().st_mode)  # still the pipe, not a file put in its place


def test_extract_offers_no_fps(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing extract writes depends on the frame rate: --fps would be silently ignored."""
    with pytest.raises(SystemExit) as info:
        main(["extract", *env.small(), *env.tiny(), "--fps", "50"])
    assert info.value.code == 2
    assert "unrecognized arguments: --fps 50" in capsys.readouterr().err


def test_output_to_dev_stdout_redirected_to_a_log_appends(env: Env) -> None:
    """`-o /dev/stdout >> log`: written through the descriptor, so the log keeps its lines."""
    log = env.out / "log.txt"
    log.write_text("line one\n")
    args = [*env.small(), *env.tiny(), "--frames", "0:2", "--format", "csv", "-q"]
    args += ["--output", "/dev/stdout"]
    with log.open("a") as fh:
        done = subprocess.run(
            [sys.executable, "-m", "vmafx_saliency", "extract", *map(str, args)],
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    assert lines[:2] == ["line one", "Frame,saliency_mean,saliency_var,"] and len(lines) == 4


def test_frames_past_the_end_say_so(
    env: Env, cli: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.job"):
        run = cli(*env.small(), *env.tiny(), "--frames", "3:100", "--format", "csv", "-o", "-")
    assert run.code == 0
    assert run.out.splitlines()[1:] and [r.split(",")[0] for r in run.out.splitlines()[1:]] == [
        "3",
        "4",
    ]
    assert (
        "--frames 3:100 (frames= in Python) runs past the end: the video has 5 frames, so 2 "
        "were computed" in caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.job"):
        assert cli(*env.small(), *env.tiny(), "--frames", "0:5", "-o", "-", "-q").code == 0
    assert "runs past the end" not in caplog.text


def test_two_runs_writing_one_output_without_force_one_wins(env: Env) -> None:
    # Both pass the existence check at the start; only one may write the file.
    for trial in range(3):
        target = env.out / f"race{trial}.csv"
        command = [
            sys.executable, "-m", "vmafx_saliency", "extract", *env.small(), *env.tiny(),
            "--format", "csv", "-o", str(target), "-q", "--threads", "1",
        ]  # fmt: skip
        runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(run.wait(timeout=120), run.communicate()[1]) for run in runs]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 2], results
        ((_, err),) = [r for r in results if r[0] == 2]
        assert f"{target} already exists" in err
        assert target.read_text().startswith("Frame,saliency_mean,saliency_var,")
    assert sorted(p.name for p in env.out.iterdir()) == ["race0.csv", "race1.csv", "race2.csv"]
