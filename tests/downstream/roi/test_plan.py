"""roi map: refusals before any work, the map files end to end, stale maps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests._roi import _need_ffmpeg_with
from vmafx_saliency.cli import main as cli
from vmafx_saliency.downstream import roi
from vmafx_saliency.downstream.roi import plan as roi_plan
from vmafx_saliency.errors import OutputExistsError, UsageError


def test_cli_map_bad_strength_and_codec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["roi", "map", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out")]
    assert cli.main([*args, "--strength", "-1"]) == 2
    assert "--strength -1.0: give a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main([*args, "--codec", "vp9"])
    assert exc.value.code == 2
    assert "invalid choice: 'vp9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_map_refuses_to_overwrite_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / roi.FILE_OFFSETS).write_text("{}")
    from vmafx_saliency.video.job import ModelChoice, VideoInput

    with pytest.raises(OutputExistsError, match="already exists: pass --force"):
        roi.run_map(
            VideoInput(path=tmp_path / "absent.mp4"),
            ModelChoice(model_path=tmp_path / "absent.onnx", sidecar=tmp_path / "absent.json"),
            roi.RoiSettings(),
            out,
        )


def test_map_never_writes_over_its_inputs_even_with_force(tmp_path: Path) -> None:
    from vmafx_saliency.video.job import ModelChoice, VideoInput

    out = tmp_path / "out"
    out.mkdir()
    video = VideoInput(path=tmp_path / "absent.mp4")
    addroi, zones = out / roi_plan.FILE_ADDROI, out / roi_plan.FILE_ZONES
    for model, said in (
        (ModelChoice(model_path=tmp_path / "m.onnx", sidecar=out / roi.FILE_OFFSETS), "--sidecar"),
        (ModelChoice(model_path=addroi), "--model-path"),
        # The run for av1 deletes the other codec's file: an input of that name stays.
        (ModelChoice(model_path=tmp_path / "m.onnx", sidecar=addroi), "--sidecar"),
    ):
        settings = roi.RoiSettings(codec="av1") if said == "--sidecar" else roi.RoiSettings()
        with pytest.raises(UsageError, match=rf"--out's \S+ \S+ is {said} .*: give the outputs"):
            roi.run_map(video, model, settings, out, force=True)
    with pytest.raises(UsageError, match=rf"--out's {roi_plan.FILE_ZONES} \S+ is the input video"):
        roi.run_map(VideoInput(path=zones), ModelChoice(), roi.RoiSettings(), out)


# --- end to end: a tiny model ------------------------------------------------------


def test_roi_map_end_to_end(tiny_model: Path, videos_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "map"
    code = cli.main(
        ["roi", "map", str(videos_dir / "foreman_cif.mp4"), "--out", str(out), "--codec", "av1",
         "--frames", "0:6", "--aggregate", "per-frame", "--levels", "8", "--model-path",
         str(tiny_model), "--threads", "1", "--quiet"]
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "roi_offsets.json",
        "svtav1_roi.txt",
        "x265_zones.txt",
    ]
    doc = json.loads((out / "roi_offsets.json").read_text())
    assert doc["grid"] == {"cols": 6, "rows": 5} and doc["block_size"] == 64
    assert len(doc["pictures"]) == 6
    lines = (out / "svtav1_roi.txt").read_text().splitlines()
    assert [int(line.split()[0]) for line in lines] == list(range(6))
    for line in lines:
        values = [int(v) for v in line.split()[1:]]
        assert len(values) == 30 and len(set(values)) <= 8


def _map(tiny_model: Path, video: Path, out: Path, *extra: str) -> int:
    return cli.main(
        ["roi", "map", str(video), "--out", str(out), "--frames", "0:6", "--model-path",
         str(tiny_model), "--threads", "1", "--quiet", *extra]
    )  # fmt: skip


def test_roi_map_again_for_another_codec_leaves_no_stale_map(
    tiny_model: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """foreman's addroi chain must not survive beside carphone's AV1 offsets."""
    out = tmp_path / "map"
    assert _map(tiny_model, videos_dir / "foreman_cif.mp4", out) == 0
    assert (out / "addroi.txt").is_file()
    carphone = videos_dir / "carphone_pristine.mp4"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _map(tiny_model, carphone, out, "--codec", "av1") == 2
    assert "already exists: pass --force" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _map(tiny_model, carphone, out, "--codec", "av1", "--force") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["roi_offsets.json", "svtav1_roi.txt", "x265_zones.txt"]


def test_zones_without_a_zone_are_one_no_op_zone_that_x265_takes(
    tiny_model: Path, videos_dir: Path, tmp_path: Path
) -> None:
    """Six frames are under one zone length: no zone differs, yet the file stays usable."""
    out = tmp_path / "map"
    assert _map(tiny_model, videos_dir / "foreman_cif.mp4", out) == 0
    assert json.loads((out / "roi_offsets.json").read_text())["zones"] == []
    zones = (out / "x265_zones.txt").read_text().strip()
    assert zones == "0,6,b=1.00"
    _need_ffmpeg_with("libx265")
    # The command of docs/roi.md, as a user runs it.
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i",
         str(videos_dir / "foreman_cif.mp4"), "-frames:v", "6", "-c:v", "libx265", "-b:v", "300k",
         "-x265-params", f"zones={zones}:log-level=error", str(tmp_path / "z.mp4")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_roi_map_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    with pytest.raises(UsageError, match=r"--out .*afile: a file, not a folder: give a folder"):
        roi_plan._check_out_dir(afile)
    assert afile.read_text() == "mine\n"


def test_a_frame_range_past_the_end_says_how_long_the_clip_is(
    tiny_model: Path,
    videos_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As extract does: a range past the end warns, one wholly past it is refused."""
    clip = videos_dir / "akiyo_cif.mp4"  # 300 frames
    argv = ["roi", "map", str(clip), "--model-path", str(tiny_model), "--threads", "1", "-q"]
    assert cli.main([*argv, "--frames", "400:500", "--out", str(tmp_path / "a")]) == 2
    assert "akiyo_cif.mp4: no frames were selected of its 300: check --frames" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "a").exists()
    with caplog.at_level("WARNING"):
        assert cli.main([*argv, "--frames", "296:1000", "--out", str(tmp_path / "b")]) == 0
    assert (
        "--frames 296:1000 (frames= in Python) runs past the end: the video has 300 frames, "
        "so 4 were computed" in (caplog.text)
    )
