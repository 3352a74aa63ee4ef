"""roi encode: refused before the model without ffmpeg, one real encode (libx264)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests._roi import _need_ffmpeg_with
from vmafx_saliency.cli import main as cli


def test_cli_encode_without_ffmpeg_fails_before_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read: the ffmpeg check comes first")
    code = cli.main(
        ["roi", "encode", str(video), "--codec", "libx264", "--bitrate", "300k",
         "--model-path", str(tmp_path / "absent.onnx")]
    )  # fmt: skip
    assert code == 2
    assert "apt-get install ffmpeg" in capsys.readouterr().err


# --- end to end: a tiny model, 20 frames, libx264 ----------------------------------


def test_roi_encode_end_to_end_libx264(
    tiny_model: Path,
    videos_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _need_ffmpeg_with("libx264")
    # Relative paths on purpose: ffmpeg runs in a work folder, not in the caller's.
    monkeypatch.chdir(tmp_path)
    video = os.path.relpath(videos_dir / "foreman_cif.mp4", tmp_path)
    out = tmp_path / "enc"
    out.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that is gone: the run SIGKILL ended, leaving its work folder
    (out / f".roi-encode.{gone.pid}.abcd1234").mkdir()
    code = cli.main(
        ["roi", "encode", video, "--codec", "libx264",
         "--bitrate", "200k", "--preset", "veryfast", "--frames", "0:20", "--subsample", "4",
         "--encode-threads", "1", "--threads", "1", "--model-path", str(tiny_model),
         "--out", "enc", "--json", "--quiet"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "vmafx-saliency/roi-encode/v1"
    assert report["frames"] == {"start": 0, "count": 20}
    assert report["encoder"] == "libx264" and report["target_bitrate_kbps"] == 200
    assert report["roi"]["computed_frames"] == 5 and report["roi"]["block_size"] == 16
    for name in ("plain", "roi"):
        encode = report["encodes"][name]
        assert encode["frames"] == 20
        assert encode["stream_bytes"] > 0 and encode["bitrate_kbps"] > 0
        assert set(encode["psnr_y"]) >= {"inside", "outside", "overall"}
        assert 20 < encode["psnr_y"]["overall"] < 60
        assert (tmp_path / encode["path"]).is_file()
    assert set(report["comparison"]) >= {"size_delta_pct", "bitrate_match", "psnr_gain_db"}
    assert len(report["commands"]) == 4  # two passes of two encodes
    assert {p.name for p in out.iterdir()} == {
        "roi_offsets.json", "addroi.txt", "x265_zones.txt", "plain.mp4", "roi.mp4",
        "report.json", "report.txt",
    }  # fmt: skip
    assert "PSNR-Y in" in (out / "report.txt").read_text()


def test_roi_encode_fps_reaches_the_encoder(
    tiny_model: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--fps overrides the file's rate in the encodes, not only in the kb/s arithmetic."""
    _need_ffmpeg_with("libx264")
    av = pytest.importorskip("av")
    out = tmp_path / "enc"
    code = cli.main(
        ["roi", "encode", str(videos_dir / "foreman_cif.mp4"), "--fps", "50", "--codec", "libx264",
         "--bitrate", "200k", "--preset", "ultrafast", "--frames", "0:10", "--passes", "1",
         "--encode-threads", "1", "--threads", "1", "--model-path", str(tiny_model),
         "--out", str(out), "--json", "--quiet"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("plain", "roi"):
        encode = report["encodes"][name]
        with av.open(str(tmp_path / encode["path"])) as container:
            stream = container.streams.video[0]
            assert stream.average_rate == 50, (name, stream.average_rate)  # foreman is 25 fps
            seconds = float(stream.frames / stream.average_rate)
        # The report's kb/s is the stream's bits over the time the file itself lasts.
        assert encode["bitrate_kbps"] == pytest.approx(
            encode["stream_bytes"] * 8 / seconds / 1000, rel=1e-3
        )
    # The commands are recorded as they run again: writing into --out, not a removed folder.
    outputs = [shlex.split(command)[-1] for command in report["commands"]]
    assert outputs == [str(out.resolve() / "plain.mp4"), str(out.resolve() / "roi.mp4")]
    assert all(Path(path).is_file() for path in outputs)


def test_roi_encode_of_raw_yuv_without_fps_warns(
    tiny_model: Path,
    videos_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _need_ffmpeg_with("libx264")
    clip = videos_dir / "CiscoVT2people_160x96_6fps.yuv"
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.downstream.roi"):
        code = cli.main(
            ["roi", "encode", str(clip), "--width", "160", "--height", "96", "--codec", "libx264",
             "--bitrate", "100k", "--preset", "ultrafast", "--passes", "1", "--encode-threads",
             "1", "--threads", "1", "--model-path", str(tiny_model), "--json", "--quiet"]
        )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    assert (
        "raw YUV has no frame rate: the encodes and their kb/s assume 25 fps; pass --fps"
        in caplog.text
    )


def test_roi_encode_that_ffmpeg_refuses_leaves_no_out_folder(
    tiny_model: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An ffmpeg that lists libx264 and addroi, then refuses the encode itself.
    ffmpeg = tmp_path / "ffmpeg"
    ffmpeg.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = "-encoders" ]; then echo " V....D libx264  libx264 H.264"; exit 0; fi\n'
        'if [ "$2" = "-filters" ]; then echo " ... addroi V->V Add ROI"; exit 0; fi\n'
        'echo "x264 [error]: invalid preset" >&2; exit 1\n'
    )
    ffmpeg.chmod(0o755)
    out = tmp_path / "enc"
    code = cli.main(
        ["roi", "encode", str(videos_dir / "carphone_pristine.mp4"), "--frames", "0:4",
         "--codec", "libx264", "--bitrate", "100k", "--passes", "1", "--ffmpeg", str(ffmpeg),
         "--threads", "1", "--model-path", str(tiny_model), "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 2
    assert "plain encode pass 1 (libx264): ffmpeg exited with status" in capsys.readouterr().err
    assert not out.exists()


def test_roi_encode_never_replaces_its_source_even_with_force(
    tiny_model: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_ffmpeg_with("libx264")
    # A source named as one of the encodes, in the --out folder: --force must not
    # let the plain encode replace it.
    source = tmp_path / "plain.mp4"
    source.write_bytes((videos_dir / "carphone_distorted.mp4").read_bytes())
    before, names = source.read_bytes(), sorted(p.name for p in tmp_path.iterdir())
    code = cli.main(
        ["roi", "encode", str(source), "--codec", "libx264", "--bitrate", "100k",
         "--model-path", str(tiny_model), "--out", str(tmp_path), "--force", "--quiet"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert f"--out's plain.mp4 {source} is the input video {source}: give the outputs" in err
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # nothing written


def test_roi_encode_refuses_a_stream_it_could_read_only_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model and both encodes each read the source: a FIFO (or a piped stdin) cannot."""
    fifo = tmp_path / "live.y4m"
    os.mkfifo(fifo)
    code = cli.main(
        ["roi", "encode", str(fifo), "--codec", "libx264", "--bitrate", "300k",
         "--model-path", str(tmp_path / "absent.onnx"), "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "vmafx-saliency roi encode: error: roi encode reads its source three times"
    )
    assert f"and {fifo} is a stream, read once: save it to a file first" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.y4m"]


def test_roi_encode_refuses_a_piped_standard_input(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vmafx_saliency", "roi", "encode", "-", "--codec", "libx264",
         "--bitrate", "300k", "--out", str(tmp_path / "out")],
        input=b"YUV4MPEG2 W64 H48 F25:1 C420jpeg\n",
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert b"and standard input is a stream, read once: save it to a file first" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_roi_encode_of_a_folder_says_it_is_a_folder(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not "a stream": only pipes, FIFOs and devices are refused as read-once."""
    folder = tmp_path / "clips"
    folder.mkdir()
    _need_ffmpeg_with("libx264")
    code = cli.main(
        ["roi", "encode", str(folder), "--codec", "libx264", "--bitrate", "300k",
         "--model-path", str(tiny_model), "--quiet"]
    )  # fmt: skip
    assert code == 2
    assert f"{folder}: is a directory, not a video file" in capsys.readouterr().err
