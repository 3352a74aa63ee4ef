"""Frame sources: raw YUV, Y4M and PyAV containers, frame selection, streaming."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
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
from vmafx_saliency.video.frames import (
    PIXEL_FORMATS,
    Frame,
    RawYuvSource,
    Y4mSource,
    open_video,
    parse_frame_range,
    select_frames,
)

# frame_bytes worked out by hand for an odd 33x17 frame: luma 561 samples,
# 4:2:0 chroma 17x9 (rounded up), 4:2:2 chroma 17x17, 4:4:4 chroma 33x17.
FRAME_BYTES_33x17 = {
    "yuv420p": 561 + 2 * 17 * 9,
    "yuv422p": 561 + 2 * 17 * 17,
    "yuv444p": 561 * 3,
    "yuv420p10le": 2 * (561 + 2 * 17 * 9),
    "yuv422p10le": 2 * (561 + 2 * 17 * 17),
    "yuv444p10le": 2 * 561 * 3,
    "yuv400p": 561,
    "gray10le": 2 * 561,
}


# --- pixel formats and raw YUV ----------------------------------------------------------


def test_pixel_format_table_and_aliases() -> None:
    assert set(CANONICAL) <= set(PIXEL_FORMATS)
    assert PIXEL_FORMATS["gray"] is PIXEL_FORMATS["yuv400p"]
    assert PIXEL_FORMATS["yuv400p10le"] is PIXEL_FORMATS["gray10le"]
    for name in CANONICAL:
        fmt = PIXEL_FORMATS[name]
        assert fmt.name == name
        assert fmt.bit_depth == (10 if "10" in name else 8)
        assert fmt.frame_bytes(33, 17) == FRAME_BYTES_33x17[name], name
    # Even sizes: the familiar I420 1.5 bytes per pixel.
    assert PIXEL_FORMATS["yuv420p"].frame_bytes(352, 288) == 352 * 288 * 3 // 2


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


def test_raw_colour_range_override_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    write_raw(path, "yuv420p", 16, 8, frames=1)
    with open_video(path, width=16, height=8, color_range="full") as src:
        assert src.info.color_range == "full"
    with pytest.raises(UsageError, match="--color-range"):
        open_video(path, width=16, height=8, color_range="studio")
    with pytest.raises(UsageError, match="--fps"):
        open_video(path, width=16, height=8, fps=0)


def test_dispatch_by_suffix_and_magic(tmp_path: Path) -> None:
    raw = tmp_path / "clip.bin"  # unknown suffix + geometry: raw
    write_raw(raw, "yuv420p", 16, 8, frames=2)
    with open_video(raw, width=16, height=8) as src:
        assert src.info.container == "raw"
    y4m = tmp_path / "clip_without_suffix"
    write_y4m(y4m, "420jpeg", 16, 8, frames=2)
    with open_video(y4m) as src:
        assert isinstance(src, Y4mSource)
    # Geometry that agrees with a Y4M header is accepted; a mismatch is refused.
    with open_video(y4m, width=16, height=8, pixel_format="yuv420p") as src:
        assert src.info.container == "y4m"
    with pytest.raises(UsageError, match="not --width 20"):
        open_video(y4m, width=20)
    with pytest.raises(UsageError, match="not --pixel-format yuv444p"):
        open_video(y4m, pixel_format="yuv444p")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for name in ("absent.yuv", "absent.y4m", "absent.mp4"):
        with pytest.raises(VideoError, match="no such file"):
            open_video(tmp_path / name, width=16, height=8)
    with pytest.raises(VideoError, match="is a directory"):
        open_video(tmp_path)


def test_single_pass(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    write_raw(path, "yuv420p", 16, 8, frames=2)
    with open_video(path, width=16, height=8) as src:
        assert len(list(src)) == 2
        with pytest.raises(RuntimeError, match="already iterated"):
            iter(src)


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


# --- select_frames and parse_frame_range ----------------------------------------------


def _counting(n: int, *, stop_at: int | None = None) -> Iterator[Frame]:
    """Frames 0..n-1; fails the test if pulled at or beyond ``stop_at``."""
    luma = np.zeros((2, 2), np.uint8)
    for index in range(n):
        if stop_at is not None and index >= stop_at:
            raise AssertionError(f"frame {index} was read past the end of the range")
        yield Frame(index=index, luma=luma, bit_depth=8)


@pytest.mark.parametrize(
    ("start", "end", "subsample", "want"),
    [
        (0, None, 1, list(range(12))),
        (3, 11, 1, [3, 4, 5, 6, 7, 8, 9, 10]),
        # Counted from the start of the range, as vmaf counts from its first frame:
        (3, 11, 3, [3, 6, 9]),
        (4, 12, 3, [4, 7, 10]),  # source numbering would give 6, 9
        (0, None, 5, [0, 5, 10]),
        (7, 8, 1, [7]),
        (10, None, 4, [10]),
        (20, None, 1, []),  # past the end: nothing, no error here
    ],
)
def test_select_frames(start: int, end: int | None, subsample: int, want: list[int]) -> None:
    got = select_frames(_counting(12), start=start, end=end, subsample=subsample)
    assert [f.index for f in got] == want


def test_select_frames_stops_reading_at_end() -> None:
    got = select_frames(_counting(100, stop_at=10), start=2, end=10, subsample=4)
    assert [f.index for f in got] == [2, 6]


def test_select_frames_validates_eagerly() -> None:
    with pytest.raises(UsageError, match="negative"):
        select_frames(_counting(3), start=-1)
    with pytest.raises(UsageError, match="END must be greater than START"):
        select_frames(_counting(3), start=5, end=5)
    with pytest.raises(UsageError, match="--subsample 0"):
        select_frames(_counting(3), subsample=0)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("3:11", (3, 11)),
        ("3:", (3, None)),
        (":11", (0, 11)),
        ("7", (7, 8)),
        ("0", (0, 1)),
        (" 2 : 5 ", (2, 5)),
        (":", (0, None)),
    ],
)
def test_parse_frame_range(text: str, want: tuple[int, int | None]) -> None:
    assert parse_frame_range(text) == want


@pytest.mark.parametrize("text", ["", "a:b", "5:3", "5:5", "-1:3", "1:2:3", "1.5", "x"])
def test_parse_frame_range_errors(text: str) -> None:
    with pytest.raises(UsageError, match="START:END"):
        parse_frame_range(text)


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


# --- containers through PyAV: synthetic --------------------------------------------------


@pytest.fixture
def av() -> Any:
    """PyAV, a core dependency; raw and Y4M tests above run without it."""
    return pytest.importorskip("av")


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


def test_truncated_faststart_mp4_stops_with_warning(
    av: Any, videos_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Index first, data cut: FFmpeg stops quietly, we say the count fell short."""
    faststart = tmp_path / "faststart.mp4"
    with (
        av.open(str(videos_dir / "foreman_cif.mp4")) as src,
        av.open(str(faststart), "w", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
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


def test_container_without_video(av: Any, tmp_path: Path) -> None:
    path = tmp_path / "audio.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(VideoError, match="has no video stream"):
        open_video(path)


def test_copying_a_clip_keeps_it_readable(videos_dir: Path, tmp_path: Path) -> None:
    """A clip under another name and suffix-less still dispatches to PyAV."""
    path = tmp_path / "clip"
    shutil.copyfile(videos_dir / "carphone_distorted.mp4", path)
    with open_video(path) as src:
        assert src.info.container == "av"
        assert src.info.frame_count == 120


def test_geometry_flags_must_match_a_container(videos_dir: Path) -> None:
    path = videos_dir / "carphone_distorted.mp4"
    with open_video(path, width=176, height=144, pixel_format="yuv420p") as src:
        assert src.info.container == "av"
    with pytest.raises(UsageError, match="not --height 120: drop --height"):
        open_video(path, height=120)


def test_sources_report_missing_files_themselves(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        RawYuvSource(tmp_path / "gone.yuv", width=16, height=8)
    with pytest.raises(VideoError, match="no such file"):
        Y4mSource(tmp_path / "gone.y4m")


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
