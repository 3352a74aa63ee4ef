"""Standard input as a video: the bytes read to learn its format are handed back."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from vmafx_saliency.errors import VideoError
from vmafx_saliency.video.frames.stdin import (
    PrefixedStream,
    is_container,
    is_stdin,
    peek,
    video_path,
)


def _pipe_with(data: bytes) -> int:
    """The read end of a pipe a thread fills with ``data`` and closes."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as fh:
            fh.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return read_fd


def test_the_peeked_bytes_come_back_first_then_the_rest() -> None:
    data = b"YUV4MPEG2 W8 H8 F25:1\n" + bytes(range(256)) * 40
    fd = _pipe_with(data)
    try:
        stream = peek(10, fd=fd)
        assert stream.head == b"YUV4MPEG2 "
        got = b""
        while chunk := stream.read(7):  # reads that straddle the prefix and the pipe
            got += chunk
        assert got == data
        assert not stream.seekable()
    finally:
        os.close(fd)


def test_a_short_stream_is_peeked_whole_and_an_empty_one_refused() -> None:
    fd = _pipe_with(b"abc")
    try:
        assert peek(10, fd=fd).head == b"abc"
    finally:
        os.close(fd)
    fd = _pipe_with(b"")
    try:
        with pytest.raises(VideoError, match=r"^-: standard input is empty: pipe a video into it"):
            peek(10, fd=fd)
    finally:
        os.close(fd)


def test_prefixed_stream_reads_into_a_buffer() -> None:
    fd = _pipe_with(b"defgh")
    try:
        stream = PrefixedStream(b"abc", fd=fd)
        buffer = bytearray(2)
        assert stream.readinto(memoryview(buffer)) == 2 and buffer == b"ab"
        assert stream.read() == b"cdefgh"
        assert stream.fileno() == fd
    finally:
        os.close(fd)


def test_only_a_lone_dash_is_standard_input() -> None:
    assert is_stdin(Path("-"))
    assert not is_stdin(Path("-.y4m")) and not is_stdin(Path("clips/-"))


def test_container_headers_are_told_from_raw_bytes() -> None:
    assert is_container(b"\x1a\x45\xdf\xa3" + bytes(50))  # Matroska / WebM (EBML)
    assert is_container(b"\x00\x00\x00\x20ftypisom" + bytes(50))  # MP4 / MOV
    packet = b"\x47" + bytes(187)
    assert is_container(packet * 3)  # MPEG-TS: a sync byte every 188
    assert not is_container(b"\x47" + bytes(400))  # one 0x47 luma byte is not a stream
    assert not is_container(bytes(range(256)) * 2)
    assert not is_container(b"")


def test_only_the_exact_dash_is_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert video_path("-") == Path("-")
    assert video_path("./-") == tmp_path / "-"  # the Unix way to name a file called -
    assert video_path(Path("clip.mp4")) == Path("clip.mp4")


def test_a_closed_descriptor_is_one_error() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    os.close(write_fd)
    with pytest.raises(VideoError, match=r"^-: standard input cannot be read \(Bad file"):
        peek(10, fd=read_fd)
