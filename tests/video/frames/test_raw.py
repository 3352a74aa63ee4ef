"""Raw YUV and Y4M readers: files and streams, truncation, streaming memory."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._video import (
    CANONICAL,
    RNG_SEED,
    Y4M_TAGS,
    luma_pattern,
    raw_frame,
    write_raw,
    write_y4m,
)
from vmafx_saliency.errors import InputFileError, UsageError, VideoError
from vmafx_saliency.video.frames import PIXEL_FORMATS, RawYuvSource, Y4mSource, open_video

# --- raw YUV ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt_name", [*CANONICAL, "gray", "yuv400p10le"])
@pytest.mark.parametrize(("width", "height"), [(33, 17), (16, 8)])
def test_raw_round_trip_every_format(
    tmp_path: Path, fmt_name: str, width: int, height: int
) -> None:
    path = tmp_path / "clip.yuv"
    lumas = write_raw(path, fmt_name, width, height, frames=4)
    fmt = PIXEL_FORMATS[fmt_name]
    with open_video(path, width=width, height=height, pixel_format=fmt_name, fps=30) as src:
        assert isinstance(src, RawYuvSource)
        info = src.info
        assert (info.container, info.width, info.height) == ("raw", width, height)
        assert info.pixel_format == fmt.name
        assert info.bit_depth == fmt.bit_depth
        assert info.frame_count == 4
        assert info.fps == 30.0
        assert info.color_range == "limited"  # raw YUV: the convention, documented
        got = list(src)
    assert [f.index for f in got] == [0, 1, 2, 3]
    for frame, want in zip(got, lumas, strict=True):
        assert frame.bit_depth == fmt.bit_depth
        assert frame.luma.dtype == (np.uint16 if fmt.bit_depth > 8 else np.uint8)
        assert frame.luma.shape == (height, width)
        assert frame.luma.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(frame.luma, want)
    assert int(got[0].luma.max()) == (1 << fmt.bit_depth) - 1


def test_raw_frames_do_not_alias(tmp_path: Path) -> None:
    """Each frame owns its array: keeping one must not see the next frame's data."""
    path = tmp_path / "clip.yuv"
    lumas = write_raw(path, "yuv420p", 16, 8, frames=3)
    with open_video(path, width=16, height=8) as src:
        kept = list(src)
    for frame, want in zip(kept, lumas, strict=True):
        np.testing.assert_array_equal(frame.luma, want)


def test_raw_partial_trailing_frame_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "clip.yuv"
    lumas = write_raw(path, "yuv420p", 33, 17, frames=3)
    with path.open("ab") as fh:
        fh.write(b"\x80" * 100)
    size = 3 * 867 + 100
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"):
        src = open_video(path, width=33, height=17)
    text = caplog.text
    assert f"{size} bytes" in text
    assert "867 bytes each" in text
    assert "3 whole frames" in text
    assert "100 leftover bytes" in text
    with src:
        assert src.info.frame_count == 3
        got = [f.luma for f in src]
    assert len(got) == 3
    np.testing.assert_array_equal(got[2], lumas[2])


def test_raw_smaller_than_one_frame(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yuv"
    path.write_bytes(b"\x10" * 100)
    with pytest.raises(VideoError, match=r"0 whole frames of 33 x 17 yuv420p \(867 bytes each\)"):
        open_video(path, width=33, height=17)
    with pytest.raises(VideoError, match="check --width/--height/--pixel-format"):
        open_video(path, width=33, height=17)


def test_raw_unknown_pixel_format(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    write_raw(path, "yuv420p", 16, 8, frames=1)
    with pytest.raises(UsageError, match="nv12") as err:
        open_video(path, width=16, height=8, pixel_format="nv12")
    for name in CANONICAL:
        assert name in str(err.value)


def test_raw_missing_geometry(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    write_raw(path, "yuv420p", 16, 8, frames=1)
    with pytest.raises(UsageError, match="--width and --height"):
        open_video(path)
    with pytest.raises(UsageError, match="--width and --height"):
        open_video(path, width=16)


def test_raw_10bit_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    fmt = PIXEL_FORMATS["yuv420p10le"]
    rng = np.random.default_rng(RNG_SEED)
    good = luma_pattern(0, 16, 8, 10)
    bad = good.copy()
    bad[3, 4] = 1024
    path.write_bytes(raw_frame(fmt, good, rng) + raw_frame(fmt, bad, rng))
    with open_video(path, width=16, height=8, pixel_format="yuv420p10le") as src:
        frames = iter(src)
        np.testing.assert_array_equal(next(frames).luma, good)
        with pytest.raises(VideoError, match=r"frame 1 has luma sample 1024 > 1023") as err:
            next(frames)
    assert str(path) in str(err.value)
    assert isinstance(err.value, InputFileError)


def test_an_8bit_file_read_as_10bit_says_which_format_to_give(tmp_path: Path) -> None:
    # Two 8-bit 16x8 frames are the bytes of one 10-bit frame: each pair of samples
    # (100, 100) reads as the word 100 * 257 = 25700.
    path = tmp_path / "clip.yuv"
    path.write_bytes(bytes([100]) * (2 * 16 * 8 * 3 // 2))
    with (
        open_video(path, width=16, height=8, pixel_format="yuv420p10le") as src,
        pytest.raises(
            VideoError,
            match=r"sample 25700 > 1023, .*probably 8-bit \(give its 8-bit --pixel-format, e\.g\. "
            r"yuv420p; raw= in Python\), or 16-bit or big-endian",
        ),
    ):
        next(iter(src))


def test_raw_colour_range_override_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    write_raw(path, "yuv420p", 16, 8, frames=1)
    with open_video(path, width=16, height=8, color_range="full") as src:
        assert src.info.color_range == "full"
    with pytest.raises(UsageError, match="--color-range"):
        open_video(path, width=16, height=8, color_range="studio")
    with pytest.raises(UsageError, match="--fps"):
        open_video(path, width=16, height=8, fps=0)


# --- Y4M -------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", list(Y4M_TAGS))
def test_y4m_every_chroma_tag(tmp_path: Path, tag: str) -> None:
    path = tmp_path / "clip.y4m"
    lumas = write_y4m(
        path, tag, 33, 17, frames=3, extra=" F30000:1001 Ip A1:1 XCOLORRANGE=FULL XYSCSS=X"
    )
    fmt = PIXEL_FORMATS[Y4M_TAGS[tag]]
    with open_video(path) as src:
        info = src.info
        assert (info.container, info.width, info.height) == ("y4m", 33, 17)
        assert info.pixel_format == fmt.name
        assert info.bit_depth == fmt.bit_depth
        assert info.fps == pytest.approx(30000 / 1001)
        assert info.frame_count == 3
        assert info.color_range == "full"
        got = list(src)
    assert [f.index for f in got] == [0, 1, 2]
    for frame, want in zip(got, lumas, strict=True):
        assert frame.bit_depth == fmt.bit_depth
        assert frame.luma.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(frame.luma, want)


def test_y4m_defaults_and_frame_parameters(tmp_path: Path) -> None:
    path = tmp_path / "clip.y4m"
    # No C tag (-> 420jpeg), no F (fps unknown), no XCOLORRANGE, FRAME lines with parameters.
    lumas = write_y4m(path, None, 16, 8, frames=3, extra="", frame_line=b"FRAME Ib XFOO=1\n")
    with open_video(path) as src:
        info = src.info
        assert info.pixel_format == "yuv420p"
        assert info.fps is None
        assert info.color_range is None
        assert info.frame_count is None  # frame headers are not plain: unknown
        got = [f.luma for f in src]
    assert len(got) == 3
    for luma, want in zip(got, lumas, strict=True):
        np.testing.assert_array_equal(luma, want)
    limited = tmp_path / "limited.y4m"
    write_y4m(limited, "420", 16, 8, frames=1, extra=" F25:1 XCOLORRANGE=LIMITED")
    with open_video(limited) as src:
        assert (src.info.color_range, src.info.fps) == ("limited", 25.0)


def test_y4m_truncated_last_frame(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "clip.y4m"
    lumas = write_y4m(path, "420jpeg", 33, 17, frames=3)
    data = path.read_bytes()
    path.write_bytes(data[:-400])
    with open_video(path) as src:
        assert src.info.frame_count is None  # the size no longer divides
        with caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"):
            got = [f.luma for f in src]
    assert len(got) == 2
    np.testing.assert_array_equal(got[1], lumas[1])
    assert "frame 2 is truncated (467 of 867 bytes)" in caplog.text


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"YUV4MPEG W16 H8\n", "does not start with 'YUV4MPEG2 '"),
        (b"YUV4MPEG2 H8 F25:1\n", "lacks the W size token"),
        (b"YUV4MPEG2 F25:1\n", "lacks the W and H"),
        (b"YUV4MPEG2 W16 Hx\n", "bad size token 'Hx'"),
        (b"YUV4MPEG2 W16 H8 F25\n", "bad frame rate"),
        (b"YUV4MPEG2 W16 H8 F1" + b"0" * 400 + b":1\n", "bad frame rate 'F1000"),  # no overflow
        (b"YUV4MPEG2 W16 H8 C411\n", "C411 is not supported.*420jpeg.*mono10"),
        (b"YUV4MPEG2 W16 H8" + b" X" * 3000, "no end of line"),
    ],
)
def test_y4m_bad_header(tmp_path: Path, header: bytes, message: str) -> None:
    path = tmp_path / "bad.y4m"
    path.write_bytes(header + b"FRAME\n" + bytes(192))
    with pytest.raises(VideoError, match=message) as err:
        open_video(path)
    assert str(path) in str(err.value)


def test_y4m_bad_frame_line_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "clip.y4m"
    write_y4m(path, "420jpeg", 16, 8, frames=2)
    data = bytearray(path.read_bytes())
    second = data.index(b"FRAME\n", data.index(b"FRAME\n") + 1)
    data[second : second + 5] = b"FRAMX"
    path.write_bytes(bytes(data))
    with open_video(path) as src, pytest.raises(VideoError, match="frame 1 does not start"):
        list(src)
    header_only = tmp_path / "empty.y4m"
    header_only.write_bytes(b"YUV4MPEG2 W16 H8 F25:1\n")
    with pytest.raises(VideoError, match="contains no video frames"):
        open_video(header_only)


@pytest.mark.parametrize("cut", [b"FRAME", b"FRA", b"FRAME Ixx"])
def test_y4m_cut_inside_frame_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: bytes
) -> None:
    path = tmp_path / "clip.y4m"
    lumas = write_y4m(path, "mono", 16, 8, frames=2)
    with path.open("ab") as fh:
        fh.write(cut)
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"),
        open_video(path) as src,
    ):
        got = [f.luma for f in src]
    assert len(got) == 2
    np.testing.assert_array_equal(got[1], lumas[1])
    assert "frame 2 is truncated inside its FRAME line" in caplog.text


# --- streams: a named pipe is read front to back, never measured or seeked --------------


@contextlib.contextmanager
def _pipe_of(tmp_path: Path, data: bytes, name: str) -> Iterator[Path]:
    """A named pipe that a thread fills with ``data``, then closes (end of stream)."""
    fifo = tmp_path / name
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as fh:
            for start in range(0, len(data), 4096):  # in pieces, as a pipe delivers
                fh.write(data[start : start + 4096])

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        yield fifo
    finally:
        writer.join(timeout=10)


@pytest.mark.parametrize("fmt_name", ["yuv420p", "yuv420p10le"])
def test_y4m_from_a_pipe_reads_what_the_file_reads(tmp_path: Path, fmt_name: str) -> None:
    tag = "420jpeg" if fmt_name == "yuv420p" else "420p10"
    path = tmp_path / "clip.y4m"
    lumas = write_y4m(path, tag, 33, 17, frames=4)
    with _pipe_of(tmp_path, path.read_bytes(), "pipe.y4m") as fifo, open_video(fifo) as src:
        assert src.info.frame_count is None  # a stream cannot be measured
        assert (src.info.width, src.info.pixel_format) == (33, fmt_name)
        got = [f.luma for f in src]
    assert len(got) == 4
    for frame, want in zip(got, lumas, strict=True):
        np.testing.assert_array_equal(frame, want)


def test_y4m_stream_cut_inside_a_frame_warns_and_keeps_the_whole_frames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "clip.y4m"
    lumas = write_y4m(path, "420jpeg", 33, 17, frames=3)
    data = path.read_bytes()
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"),
        _pipe_of(tmp_path, data[:-400], "pipe.y4m") as fifo,
        open_video(fifo) as src,
    ):
        got = [f.luma for f in src]
    assert len(got) == 2
    np.testing.assert_array_equal(got[1], lumas[1])
    assert "the stream ends inside frame 2: stopping after 2 whole frames" in caplog.text


def test_raw_from_a_pipe_counts_frames_as_they_come(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "clip.yuv"
    lumas = write_raw(path, "yuv420p", 33, 17, frames=3)
    data = path.read_bytes() + b"\x80" * 100  # a cut-short fourth frame
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"),
        _pipe_of(tmp_path, data, "pipe.yuv") as fifo,
        open_video(fifo, width=33, height=17) as src,
    ):
        assert src.info.frame_count is None
        got = [f.luma for f in src]
    assert len(got) == 3
    np.testing.assert_array_equal(got[2], lumas[2])
    assert "the stream ends inside frame 3: stopping after 3 whole frames" in caplog.text


def test_streams_not_named_by_suffix_are_not_probed(
    tmp_path: Path, av: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """/dev/stdin or a FIFO named 'live': no byte may be read before the real reader.

    With geometry it is raw YUV; without, PyAV probes it on its own handle (a Y4M
    here). Both must give the file's frames, and a clean end gives no warning.
    """
    raw = tmp_path / "clip.yuv"
    lumas = write_raw(raw, "yuv420p", 32, 16, frames=3)
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.video.frames"),
        _pipe_of(tmp_path, raw.read_bytes(), "live") as fifo,
        open_video(fifo, width=32, height=16) as src,
    ):
        got = [f.luma for f in src]
    assert [g.tobytes() for g in got] == [w.tobytes() for w in lumas]
    assert caplog.text == ""
    y4m = tmp_path / "clip.y4m"
    lumas = write_y4m(y4m, "420jpeg", 32, 16, frames=3)
    with _pipe_of(tmp_path, y4m.read_bytes(), "live2") as fifo, open_video(fifo) as src:
        got = [f.luma for f in src]
    assert [g.tobytes() for g in got] == [w.tobytes() for w in lumas]


def test_raw_pipe_without_a_whole_frame(tmp_path: Path) -> None:
    with (
        _pipe_of(tmp_path, b"\x10" * 100, "pipe.yuv") as fifo,
        open_video(fifo, width=33, height=17) as src,
        pytest.raises(
            VideoError,
            match=r"pipe\.yuv: the stream held no whole frame of 33 x 17 yuv420p \(867 bytes "
            r"each\): check --width/--height/--pixel-format",
        ),
    ):
        list(src)


# --- streaming memory -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["raw", "y4m"])
def test_memory_does_not_grow_with_frames(tmp_path: Path, kind: str) -> None:
    width = height = 128
    frames = 300
    fmt = PIXEL_FORMATS["yuv420p"]
    frame_bytes = fmt.frame_bytes(width, height)
    path = tmp_path / f"long.{'yuv' if kind == 'raw' else 'y4m'}"
    rng = np.random.default_rng(RNG_SEED)
    chroma = rng.integers(0, 256, frame_bytes - width * height, dtype=np.uint8).tobytes()
    with path.open("wb") as fh:
        if kind == "y4m":
            fh.write(b"YUV4MPEG2 W128 H128 F25:1 C420jpeg\n")
        for index in range(frames):
            if kind == "y4m":
                fh.write(b"FRAME\n")
            fh.write(np.full((height, width), index % 256, np.uint8).tobytes() + chroma)
    assert path.stat().st_size > 100 * frame_bytes
    src = open_video(path, width=width, height=height) if kind == "raw" else open_video(path)
    tracemalloc.start()
    try:
        count = total = 0
        with src:
            for frame in src:
                count += 1
                total += int(frame.luma[0, 0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == frames
    assert total == sum(i % 256 for i in range(frames))
    # Streaming: a couple of frames in flight, never the file (7.4 MB).
    assert peak < 3 * frame_bytes, f"peak {peak} bytes for {frame_bytes}-byte frames"


# --- the real raw clips, and missing files ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "width", "height", "count"),
    [
        ("CiscoVT2people_320x192_12fps.yuv", 320, 192, 9),
        ("CiscoVT2people_160x96_6fps.yuv", 160, 96, 5),
    ],
)
def test_real_raw_i420(videos_dir: Path, name: str, width: int, height: int, count: int) -> None:
    path = videos_dir / name
    with open_video(path, width=width, height=height) as src:
        assert src.info.frame_count == count
        frames = list(src)
    assert len(frames) == count
    # Independent read: the luma plane sits at the start of each I420 frame.
    frame_bytes = width * height * 3 // 2
    with path.open("rb") as fh:
        fh.seek((count - 1) * frame_bytes)
        want = np.frombuffer(fh.read(width * height), np.uint8).reshape(height, width)
    np.testing.assert_array_equal(frames[-1].luma, want)


def test_sources_report_missing_files_themselves(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        RawYuvSource(tmp_path / "gone.yuv", width=16, height=8)
    with pytest.raises(VideoError, match="no such file"):
        Y4mSource(tmp_path / "gone.y4m")
