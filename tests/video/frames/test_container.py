"""Containers through PyAV: synthetic and real clips, broken files, streaming memory."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import subprocess
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._video import RNG_SEED, luma_pattern, write_audio_only
from vmafx_saliency.errors import VideoError
from vmafx_saliency.video.frames import open_video, select_frames
from vmafx_saliency.video.scale import resize_luma

# --- containers through PyAV: synthetic --------------------------------------------------


def _write_nut(path: Path, pix_fmt: str, planes: list[list[np.ndarray]], **stream: int) -> None:
    """Lossless rawvideo (NUT, or Matroska by suffix): decoding gives these planes back."""
    import av

    height, width = planes[0][0].shape
    with av.open(str(path), "w") as out:
        st = out.add_stream("rawvideo", rate=25)
        st.width, st.height, st.pix_fmt = width, height, pix_fmt
        for name, value in stream.items():
            setattr(st.codec_context, name, value)
        for frame_planes in planes:
            frame = av.VideoFrame(width, height, pix_fmt)
            for name, value in stream.items():
                setattr(frame, name, value)
            for plane, data in zip(frame.planes, frame_planes, strict=True):
                row = plane.line_size // data.dtype.itemsize
                padded = np.zeros((plane.height, row), data.dtype)
                padded[:, : data.shape[1]] = data
                plane.update(padded.tobytes())
            for packet in st.encode(frame):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)


@pytest.mark.parametrize(
    ("pix_fmt", "bit_depth", "chroma"),
    [
        ("yuv420p", 8, [(9, 17), (9, 17)]),
        ("gray", 8, []),
        ("nv12", 8, [(9, 34)]),  # interleaved chroma: plane 0 is still the luma
        ("yuv420p10le", 10, [(9, 17), (9, 17)]),
        ("gray10le", 10, []),
    ],
)
def test_av_luma_is_raw_plane(
    av: Any, tmp_path: Path, pix_fmt: str, bit_depth: int, chroma: list[tuple[int, int]]
) -> None:
    width, height = 33, 17
    rng = np.random.default_rng(RNG_SEED)
    dtype = np.uint16 if bit_depth > 8 else np.uint8
    lumas = [luma_pattern(i, width, height, bit_depth) for i in range(3)]
    peak = (1 << bit_depth) - 1
    planes = [
        [luma] + [rng.integers(0, peak + 1, s).astype(dtype) for s in chroma] for luma in lumas
    ]
    path = tmp_path / "clip.nut"
    _write_nut(path, pix_fmt, planes)
    with open_video(path) as src:
        info = src.info
        assert (info.container, info.width, info.height) == ("av", width, height)
        assert (info.pixel_format, info.bit_depth) == (pix_fmt, bit_depth)
        assert info.frame_count is None  # NUT does not declare a count
        assert info.fps == 25.0
        assert info.color_range is None
        got = list(src)
    assert [f.index for f in got] == [0, 1, 2]
    for frame, want in zip(got, lumas, strict=True):
        assert frame.luma.dtype == dtype
        assert frame.luma.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(frame.luma, want)
        # The decoded picture rides along and scales exactly as the copied plane does.
        assert frame.picture is not None
        for size in ((40, 40), (9, 16)):
            np.testing.assert_array_equal(
                frame.luma_at(size), resize_luma(frame.luma, size, bit_depth=bit_depth)
            )


def test_av_rgb_source_gives_limited_luma(av: Any, tmp_path: Path) -> None:
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:, 4:8] = 255  # white
    rgb[:, 8:12] = 128  # mid grey
    path = tmp_path / "rgb.nut"
    _write_nut(path, "rgb24", [[rgb.reshape(8, 48)]])
    with open_video(path) as src:
        assert (src.info.pixel_format, src.info.bit_depth) == ("rgb24", 8)
        assert src.info.color_range == "limited"
        (frame,) = list(src)
    # Swscale's luma of RGB is not plane 0 of the picture: no picture to scale from.
    assert frame.picture is None
    # BT.601 limited range: black 16, white 235, grey 16 + 219 * 128 / 255 = 125.9.
    assert int(frame.luma[:, :4].max()) == 16
    assert int(frame.luma[:, 4:8].min()) == 235
    assert abs(int(frame.luma[0, 9]) - 126) <= 1


def test_av_deep_yuv_is_reduced_to_10_bits(av: Any, tmp_path: Path) -> None:
    luma = np.full((8, 16), 4000, np.uint16)
    chroma = np.full((4, 8), 2048, np.uint16)
    path = tmp_path / "deep.nut"
    _write_nut(path, "yuv420p12le", [[luma, chroma, chroma]])
    with open_video(path) as src:
        assert (src.info.pixel_format, src.info.bit_depth) == ("yuv420p12le", 10)
        (frame,) = list(src)
    assert frame.luma.dtype == np.uint16
    assert abs(int(frame.luma.max()) - 1000) <= 1  # 4000 / 4


def test_pyav_reformat_keeps_yuv_luma(av: Any) -> None:
    """The swscale fact AvSource relies on for p010 and other packed YUV layouts,
    through the call it makes (one thread: see frames.AvSource._luma). Repeated,
    because the multi-threaded conversion failed in a few runs of a hundred."""
    width, height = 34, 18
    luma = luma_pattern(0, width, height, 10)
    for _ in range(50):
        frame = av.VideoFrame(width, height, "p010le")
        plane = frame.planes[0]
        padded = np.zeros((height, plane.line_size // 2), np.uint16)
        padded[:, :width] = luma << 6  # p010 keeps the 10 bits at the top of each word
        plane.update(padded.tobytes())
        converted = frame.reformat(format="yuv420p10le", threads=1)
        out = converted.planes[0]
        rows = np.frombuffer(memoryview(out), np.uint16).reshape(height, -1)[:, :width]
        np.testing.assert_array_equal(rows, luma)


def test_av_full_range_flag(av: Any, tmp_path: Path) -> None:
    width, height = 16, 8
    luma = luma_pattern(0, width, height, 8)
    chroma = np.full((4, 8), 128, np.uint8)
    path = tmp_path / "full.mkv"  # Matroska stores the colour range; NUT does not
    _write_nut(path, "yuv420p", [[luma, chroma, chroma]], color_range=2)
    with open_video(path) as src:
        assert src.info.color_range == "full"
        (frame,) = list(src)
    np.testing.assert_array_equal(frame.luma, luma)
    with open_video(path, color_range="limited") as src:
        assert src.info.color_range == "limited"


# --- containers through PyAV: the real clips ---------------------------------------------

CLIPS = {
    "foreman_cif.mp4": (352, 288, 300, 25.0),
    "akiyo_cif.mp4": (352, 288, 300, 25.0),
    "carphone_pristine.mp4": (176, 144, 120, 30000 / 1001),
    "carphone_distorted.mp4": (176, 144, 120, 30000 / 1001),
}


@pytest.mark.parametrize("name", list(CLIPS))
def test_real_clip_info_and_frame_count(videos_dir: Path, name: str) -> None:
    width, height, count, fps = CLIPS[name]
    with open_video(videos_dir / name) as src:
        info = src.info
        assert (info.container, info.width, info.height) == ("av", width, height)
        assert (info.pixel_format, info.bit_depth) == ("yuv420p", 8)
        assert info.frame_count == count
        assert info.fps == pytest.approx(fps)
        assert info.color_range is None  # these H.264 streams leave it unspecified
        shapes, indices = set(), []
        for frame in src:  # keep shapes and numbers only: streaming, not a list of frames
            shapes.add(frame.luma.shape)
            indices.append(frame.index)
    assert shapes == {(height, width)}
    assert indices == list(range(count))


def test_bigbuckbunny_info_and_first_frames(videos_dir: Path) -> None:
    with open_video(videos_dir / "bigbuckbunny_720p.mp4") as src:
        info = src.info
        assert (info.width, info.height, info.frame_count, info.fps) == (1280, 720, 132, 25.0)
        frames = list(select_frames(src, end=2))
    assert [f.index for f in frames] == [0, 1]
    assert all(f.luma.shape == (720, 1280) and f.luma.dtype == np.uint8 for f in frames)


def test_mp4_luma_is_the_raw_plane(av: Any, videos_dir: Path) -> None:
    """Our luma equals PyAV's own planar export, and is not range expanded.

    ``VideoFrame.to_ndarray()`` on a yuv420p frame returns the three planes
    stacked (H * 3/2 rows, padding removed by PyAV's Cython copy), so its top H
    rows are the Y plane through a code path that shares nothing with our
    ``line_size`` slicing. ``to_ndarray(format="gray")`` goes through swscale,
    which treats grey as full range and stretches 16..235 to 0..255.
    """
    path = videos_dir / "foreman_cif.mp4"
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0))
        assert decoded.format.name == "yuv420p"
        # The rows are padded: this is why AvSource must honour line_size.
        assert decoded.planes[0].line_size == 384 > decoded.width == 352
        planar = decoded.to_ndarray()
        assert planar.shape == (288 * 3 // 2, 352)
        reference = planar[:288]
        gray = decoded.to_ndarray(format="gray")
    with open_video(path) as src:
        first = next(iter(src))
    np.testing.assert_array_equal(first.luma, reference)
    assert not np.array_equal(first.luma, gray)
    expanded = np.clip((first.luma.astype(np.float64) - 16) * 255 / 219, 0, 255)
    assert np.abs(gray - expanded).max() <= 2  # gray is the range-expanded luma
    assert float(first.luma.mean()) < float(gray.mean())


def test_round_trip_mp4_to_raw_and_y4m(videos_dir: Path, tmp_path: Path) -> None:
    with open_video(videos_dir / "foreman_cif.mp4") as src:
        frames = list(select_frames(src, start=0, end=10))
    assert [f.index for f in frames] == list(range(10))
    width, height = 352, 288
    chroma = np.full(2 * (width // 2) * (height // 2), 128, np.uint8).tobytes()
    raw, y4m = tmp_path / "foreman.yuv", tmp_path / "foreman.y4m"
    with raw.open("wb") as fr, y4m.open("wb") as fy:
        fy.write(b"YUV4MPEG2 W352 H288 F25:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\n")
        for frame in frames:
            fr.write(frame.luma.tobytes() + chroma)
            fy.write(b"FRAME\n" + frame.luma.tobytes() + chroma)
    with open_video(raw, width=width, height=height) as a, open_video(y4m) as b:
        assert a.info.frame_count == b.info.frame_count == 10
        for want, got_raw, got_y4m in zip(frames, a, b, strict=True):
            np.testing.assert_array_equal(got_raw.luma, want.luma)
            np.testing.assert_array_equal(got_y4m.luma, want.luma)


# --- broken containers -------------------------------------------------------------------


def test_corrupt_and_non_video_containers(videos_dir: Path, tmp_path: Path) -> None:
    head = (videos_dir / "foreman_cif.mp4").read_bytes()[:2048]
    cases = {
        "garbage.mp4": head + np.random.default_rng(RNG_SEED).bytes(50_000),
        "text.mp4": b"this is not a video\n" * 20,
        "empty.mp4": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(VideoError, match="cannot open") as err:
            open_video(path)
        assert str(path) in str(err.value), name


def test_corrupt_mid_stream_names_the_frame(av: Any, videos_dir: Path, tmp_path: Path) -> None:
    data = bytearray((videos_dir / "foreman_cif.mp4").read_bytes())
    # The mdat starts at byte 40 and the index (moov) sits at the end, so the
    # file still opens; zeroing 40 KB in the middle breaks the H.264 stream.
    data[300_000:340_000] = bytes(40_000)
    path = tmp_path / "broken.mp4"
    path.write_bytes(bytes(data))
    decoded = 0
    with open_video(path) as src, pytest.raises(VideoError) as err:
        for _ in src:
            decoded += 1
    message = str(err.value)
    assert str(path) in message
    assert f"decoding failed at frame {decoded}" in message
    assert 50 < decoded < 300
    assert isinstance(err.value.__cause__, av.error.FFmpegError)


def _remuxed(av: Any, source: Path, target: Path, options: dict[str, str] | None = None) -> Path:
    """``source``'s video packets in ``target``'s container (its suffix), not re-encoded."""
    with av.open(str(source)) as src, av.open(str(target), "w", options=options or {}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return target


def test_truncated_faststart_mp4_stops_with_warning(
    av: Any, videos_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Index first, data cut: FFmpeg stops quietly, we say the count fell short."""
    faststart = _remuxed(
        av, videos_dir / "foreman_cif.mp4", tmp_path / "faststart.mp4", {"movflags": "faststart"}
    )
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(faststart.read_bytes()[:300_000])
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"),
        open_video(truncated) as video,
    ):
        assert video.info.frame_count == 300
        count = sum(1 for _ in video)
    assert 0 < count < 300
    assert f"decoded {count} frames but the container declares 300" in caplog.text


def test_a_cut_matroska_file_is_said_to_fall_short_of_its_duration(
    av: Any, videos_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Matroska counts no frames, but its header keeps the duration of the whole file."""
    whole = _remuxed(av, videos_dir / "foreman_cif.mp4", tmp_path / "whole.mkv")
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"):
        with open_video(whole) as video:
            assert video.info.frame_count is None  # an estimate is not a declared count
            assert sum(1 for _ in video) == 300
        assert caplog.text == ""  # the whole file: no false alarm
        cut = tmp_path / "cut.mkv"
        cut.write_bytes(whole.read_bytes()[:200_000])
        with open_video(cut) as video:
            count = sum(1 for _ in video)
    assert 0 < count < 250
    assert (
        f"decoded {count} frames but the container's duration and average frame rate "
        "imply about 300: the file may be truncated"
    ) in caplog.text


def test_container_without_video(av: Any, tmp_path: Path) -> None:
    path = write_audio_only(tmp_path / "audio.wav")
    with pytest.raises(VideoError, match="has no video stream"):
        open_video(path)


def test_av_memory_does_not_grow_with_frames(videos_dir: Path) -> None:
    """Python-side allocations only: FFmpeg's own buffers are invisible to tracemalloc."""
    src = open_video(videos_dir / "foreman_cif.mp4")
    luma_bytes = 352 * 288
    tracemalloc.start()
    try:
        count = 0
        with src:
            for _ in src:
                count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 300
    assert peak < 3 * luma_bytes, f"peak {peak} bytes for {luma_bytes}-byte luma planes"


# --- the container's rotation tag -----------------------------------------------------


def _tagged_clip(tmp_path: Path, degrees: int) -> tuple[Path, np.ndarray]:
    """A 64x48 clip with a white box in one corner, tagged to turn ``degrees``; and
    the luma plane ffmpeg shows for its first frame (its autorotation is the reference)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    plain, tagged = tmp_path / "plain.mp4", tmp_path / f"turn{degrees}.mp4"
    box = "color=black:s=64x48:d=0.2,drawbox=x=0:y=0:w=16:h=8:color=white:t=fill"
    run = [ffmpeg, "-loglevel", "error", "-y"]
    subprocess.run(
        [
            *run,
            "-f",
            "lavfi",
            "-i",
            box,
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "mpeg4",
            "-q:v",
            "2",
            plain,
        ],
        check=True,
    )
    subprocess.run(
        [*run, "-i", plain, "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", tagged],
        check=True,
    )
    shown = subprocess.run(
        [*run, "-i", tagged, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        check=True,
        capture_output=True,
    ).stdout
    width, height = (48, 64) if degrees % 180 else (64, 48)
    return tagged, np.frombuffer(shown[: width * height], np.uint8).reshape(height, width)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotation_tag_is_applied_as_ffmpeg_shows_the_picture(
    tmp_path: Path, degrees: int, caplog: pytest.LogCaptureFixture
) -> None:
    clip, shown = _tagged_clip(tmp_path, degrees)
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"),
        open_video(clip) as src,
    ):
        info = src.info
        first = next(iter(src))
    assert info.rotation == degrees
    assert (info.width, info.height) == (shown.shape[1], shown.shape[0])
    assert first.luma.shape == shown.shape and first.luma.flags.c_contiguous
    np.testing.assert_array_equal(first.luma, shown)
    assert first.picture is None  # the picture is not turned: the turned copy is scaled
    np.testing.assert_array_equal(
        first.luma_at((32, 32)), resize_luma(shown, (32, 32), bit_depth=8)
    )
    assert f"the container says to turn the picture {degrees} degrees" in caplog.text


def test_the_output_says_the_rotation_was_applied(tmp_path: Path, capsys: Any) -> None:
    from vmafx_saliency.cli.main import main

    clip, _ = _tagged_clip(tmp_path, 90)
    assert main(["extract", str(clip), "--output", "-", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)  # the conftest checks it against the schema
    assert doc["params"]["rotation"] == 90
    assert (doc["params"]["qualityWidth"], doc["params"]["qualityHeight"]) == (48, 64)


# --- frame numbers by presentation time -------------------------------------------------


def _transport_stream(tmp_path: Path, *, corrupt: bool) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    path = tmp_path / ("bad.ts" if corrupt else "good.ts")
    subprocess.run(
        [
            ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            "testsrc=size=96x64:rate=25:duration=2.4", "-c:v", "mpeg2video", "-g", "6",
            "-f", "mpegts", path,
        ],
        check=True,
    )  # fmt: skip
    if corrupt:  # the review's file: a transport stream with a damaged middle
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle : middle + len(data) // 5] = bytes(len(data) // 5)
        path.write_bytes(bytes(data))
    return path


def test_a_clean_stream_is_numbered_0_to_n(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"),
        open_video(_transport_stream(tmp_path, corrupt=False)) as src,
    ):
        numbers = [f.index for f in src]
    assert numbers == list(range(60))
    assert "missing" not in caplog.text


def test_frames_lost_to_corruption_leave_their_numbers_unused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"),
        open_video(_transport_stream(tmp_path, corrupt=True)) as src,
    ):
        numbers = [f.index for f in src]
    assert numbers == sorted(set(numbers))  # increasing, never renumbered
    assert len(numbers) < 60 and numbers[-1] >= 50  # a gap, and the end keeps its numbers
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(numbers))
    assert gaps > 0
    assert "frames are missing or could not be decoded" in caplog.text
    assert "keep their numbers by presentation time" in caplog.text
