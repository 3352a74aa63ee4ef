"""Planar YUV from a file or a stream: headerless raw YUV and YUV4MPEG2 (Y4M).

Both readers read each frame's luma plane straight into an array of its own and
skip the chroma planes (only luma is used), one frame at a time, so memory does
not grow with the length of the video. They share the reading of one frame
(:class:`_PlanarReader`) and the open file with its layout (:class:`_PlanarSource`).
Only numpy is needed.

Colour range: an explicit ``color_range`` argument always wins. Otherwise raw
YUV carries no flag and is reported as ``"limited"`` (video is limited range by
convention, and that is what the ``vmaf`` tool assumes); Y4M reports its
``XCOLORRANGE`` tag or ``None``.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from vmafx_saliency.errors import UsageError, VideoError
from vmafx_saliency.video.frames.base import (
    ColorRange,
    ContainerKind,
    Frame,
    FrameSource,
    VideoInfo,
    check_color_range,
    check_fps,
    check_frame_size,
    logger,
    native_uint16,
)
from vmafx_saliency.video.frames.formats import PIXEL_FORMATS, PixelFormat, get_pixel_format

Y4M_MAGIC = b"YUV4MPEG2 "
# A Y4M header or FRAME line longer than this is not a Y4M file we can trust.
_Y4M_MAX_LINE = 4096


def _open_binary(
    path: Path, *, buffering: int = -1, stream: io.RawIOBase | None = None
) -> tuple[Any, int | None]:
    """Open for reading and stat, turning OS errors into a VideoError naming the file.

    The size is ``None`` for a stream (a named pipe, ``/dev/stdin``, or the
    already open ``stream`` given): it can be read front to back but neither
    measured nor seeked, so frames are counted as they arrive and a cut-short
    last frame is found by reading.
    """
    if stream is not None:
        return stream, None
    try:
        raw = path.open("rb", buffering=0)
    except FileNotFoundError:
        raise VideoError(f"{path}: no such file") from None
    except OSError as exc:
        raise VideoError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(raw.fileno())
    except OSError as exc:
        raw.close()
        raise VideoError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        # Unbuffered: closing a buffered reader waits for its lock, which a thread
        # blocked reading a stalled pipe holds; a raw file closes at once.
        return raw, None
    return (raw if buffering == 0 else io.BufferedReader(raw)), st.st_size


def _skip(fh: Any, count: int, *, seekable: bool) -> int:
    """Move ``count`` bytes on; bytes skipped (fewer only where a stream ends)."""
    if seekable:
        fh.seek(count, os.SEEK_CUR)
        return count
    skipped = 0
    while skipped < count:
        chunk = fh.read(min(count - skipped, 1 << 20))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped


def _read_full(fh: io.RawIOBase | io.BufferedIOBase, view: memoryview) -> int:
    """``readinto`` until ``view`` is full or the file ends; bytes read."""
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _luma_from_bytes(
    fh: io.RawIOBase | io.BufferedIOBase, fmt: PixelFormat, width: int, height: int
) -> tuple[np.ndarray, int]:
    """Read one luma plane straight into a fresh array (no intermediate buffer)."""
    if fmt.bit_depth > 8:
        luma = np.empty((height, width), dtype=np.dtype("<u2"))
    else:
        luma = np.empty((height, width), dtype=np.uint8)
    got = _read_full(fh, luma.data.cast("B"))
    return luma, got


def _check_10bit(luma: np.ndarray, path: Path, index: int) -> None:
    peak = int(luma.max())
    if peak > 1023:
        raise VideoError(
            f"{path}: frame {index} has luma sample {peak} > 1023, impossible in 10-bit video: "
            "the file is probably 8-bit (give its 8-bit --pixel-format, e.g. yuv420p; raw= "
            "in Python), or "
            "16-bit or big-endian (convert it to a *10le pixel format)"
        )


@dataclass(frozen=True)
class _PlanarReader:
    """Reads the planar frames of one open file: its handle, layout and name."""

    fh: Any
    fmt: PixelFormat
    width: int
    height: int
    chroma_bytes: int  # after each luma plane, skipped: only luma is used
    path: Path  # for messages

    def read(self, index: int, *, seekable: bool = True, may_end: bool = False) -> Frame | None:
        """One planar frame at the file position: its luma, with the chroma skipped.

        ``None`` where a stream ends inside the frame (with a warning), or before
        it where ``may_end`` (raw YUV: nothing marks the last frame); a file's size
        was checked before, so a short read there means the file changed under us.
        """
        fh, fmt, path = self.fh, self.fmt, self.path
        luma, got = _luma_from_bytes(fh, fmt, self.width, self.height)
        if got == 0 and may_end and not seekable:
            return None
        if got < luma.nbytes and seekable:
            raise VideoError(f"{path}: frame {index} ends early: did the file shrink?")
        # Skip the chroma planes: only luma is used, so do not read them.
        chroma_bytes = self.chroma_bytes
        if got < luma.nbytes or _skip(fh, chroma_bytes, seekable=seekable) < chroma_bytes:
            logger.warning(
                "%s: the stream ends inside frame %d: stopping after %d whole frames",
                path, index, index,
            )  # fmt: skip
            return None
        if fmt.bit_depth > 8:
            luma = native_uint16(luma)
            _check_10bit(luma, path, index)
        return Frame(index=index, luma=luma, bit_depth=fmt.bit_depth)


class _PlanarSource(FrameSource):
    """A source of planar frames read from one open file: raw YUV and Y4M.

    A subclass opens its file into ``_fh``, calls :meth:`_set_layout` once the
    geometry is known, and reads its frames through :meth:`_reader`.
    """

    _fh: io.BufferedReader | io.FileIO | None
    _fmt: PixelFormat
    _width: int
    _height: int
    _frame_bytes: int  # luma and chroma of one frame

    def _set_layout(self, fmt: PixelFormat, width: int, height: int) -> None:
        self._fmt = fmt
        self._width, self._height = width, height
        self._frame_bytes = fmt.frame_bytes(width, height)

    def _reader(self) -> _PlanarReader:
        """The reader of the open file, from where it stands (for :meth:`_frames`)."""
        fh = self._fh
        if fh is None:
            raise RuntimeError(f"{self.info.path}: source is closed")
        fmt, width, height = self._fmt, self._width, self._height
        chroma_bytes = self._frame_bytes - fmt.luma_bytes(width, height)
        return _PlanarReader(fh, fmt, width, height, chroma_bytes, self.info.path)

    def _video_info(
        self,
        path: Path,
        *,
        container: ContainerKind,
        fps: float | None,
        frame_count: int | None,
        color_range: ColorRange | None,
    ) -> VideoInfo:
        """What the source says about its video, the layout set."""
        return VideoInfo(
            path=path,
            container=container,
            width=self._width,
            height=self._height,
            pixel_format=self._fmt.name,
            bit_depth=self._fmt.bit_depth,
            fps=fps,
            frame_count=frame_count,
            color_range=color_range,
        )

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class RawYuvSource(_PlanarSource):
    """Headerless planar YUV (``.yuv``): geometry and format come from the caller."""

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        pixel_format: str = "yuv420p",
        fps: float | None = None,
        color_range: str | None = None,
        stream: io.RawIOBase | None = None,
    ) -> None:
        super().__init__()
        if width <= 0 or height <= 0:
            raise UsageError(f"{path}: --width and --height must be positive, got {width}x{height}")
        check_frame_size(path, width, height)
        self._set_layout(get_pixel_format(pixel_format), width, height)
        fmt = self._fmt
        # Validate every argument before opening, so an error leaks no file handle.
        fps = check_fps(fps)
        checked_range = check_color_range(color_range) or "limited"
        # Unbuffered: each luma plane is read straight into its own array.
        fh, size = _open_binary(path, buffering=0, stream=stream)
        self._fh = fh
        what = f"{width} x {height} {fmt.name} ({self._frame_bytes} bytes each)"
        self._what = what
        count: int | None = None
        leftover = 0
        if size is not None:
            count, leftover = divmod(size, self._frame_bytes)
        # Bytes past the last whole frame: read as nothing, they hint at a wrong geometry.
        self.leftover_bytes = leftover
        if count == 0:
            self.close()
            raise VideoError(
                f"{path}: holds 0 whole frames of {what}, the file has {size} bytes: "
                "check --width/--height/--pixel-format (raw= in Python)"
            )
        if leftover:
            logger.warning(
                "%s: file size %d bytes is not a whole number of frames of %s: "
                "reading %d whole frames and ignoring the %d leftover bytes; "
                "check --width/--height/--pixel-format (raw= in Python) if this is unexpected",
                path, size, what, count, leftover,
            )  # fmt: skip
        self.info = self._video_info(
            path, container="raw", fps=fps, frame_count=count, color_range=checked_range
        )

    def _frames(self) -> Iterator[Frame]:
        reader = self._reader()
        count = self.info.frame_count
        if count is not None:
            for index in range(count):
                yield cast(Frame, reader.read(index))  # a file's frames were counted from its size
            return
        index = 0
        while (frame := reader.read(index, seekable=False, may_end=True)) is not None:
            yield frame
            index += 1
        if index == 0:
            raise VideoError(
                f"{self.info.path}: the stream held no whole frame of {self._what}: "
                "check --width/--height/--pixel-format (raw= in Python)"
            )


# Y4M chroma tag -> pixel format. 4:2:0 siting variants share a layout.
Y4M_CHROMA: dict[str, str] = {
    "420jpeg": "yuv420p",
    "420paldv": "yuv420p",
    "420mpeg2": "yuv420p",
    "420": "yuv420p",
    "422": "yuv422p",
    "444": "yuv444p",
    "mono": "yuv400p",
    "420p10": "yuv420p10le",
    "422p10": "yuv422p10le",
    "444p10": "yuv444p10le",
    "mono10": "gray10le",
}


class Y4mSource(_PlanarSource):
    """YUV4MPEG2: a text header, then ``FRAME`` lines each followed by one frame."""

    def __init__(
        self,
        path: Path,
        *,
        fps: float | None = None,
        color_range: str | None = None,
        stream: io.RawIOBase | None = None,
    ) -> None:
        super().__init__()
        fps = check_fps(fps)
        checked_range = check_color_range(color_range)
        # Buffered for a file, as FRAME lines are read with readline; a stream is
        # read raw (readline then takes a byte at a time, six per FRAME line).
        fh, self._size = _open_binary(path, stream=stream)
        self._fh = fh
        try:
            header = fh.readline(_Y4M_MAX_LINE)
            width, height, tag, y4m_fps, y4m_range = _parse_y4m_header(path, header)
            check_frame_size(path, width, height)
            self._set_layout(PIXEL_FORMATS[Y4M_CHROMA[tag]], width, height)
            self._data_start = len(header)
            if self._size == self._data_start:
                raise VideoError(f"{path}: contains no video frames (a Y4M header only)")
            count = None if self._size is None else self._count_frames(fh, self._size)
        except BaseException:
            self.close()
            raise
        self.info = self._video_info(
            path,
            container="y4m",
            fps=fps or y4m_fps,
            frame_count=count,
            color_range=checked_range or y4m_range,
        )

    def _count_frames(self, fh: io.BufferedReader, size: int) -> int | None:
        """Frame count from the file size when frame headers are plain ``FRAME\\n``.

        Checking the first and the last header is enough in practice: any
        header with parameters shifts every later frame, so the last header
        would not sit where the plain layout puts it. Anything else: ``None``
        (unknown), and the frames are simply counted as they stream.
        """
        stride = len(b"FRAME\n") + self._frame_bytes
        count, leftover = divmod(size - self._data_start, stride)
        if count == 0 or leftover:
            return None
        for offset in (self._data_start, self._data_start + (count - 1) * stride):
            fh.seek(offset)
            if fh.read(6) != b"FRAME\n":
                fh.seek(self._data_start)
                return None
        fh.seek(self._data_start)
        return count

    def _frames(self) -> Iterator[Frame]:
        reader = self._reader()
        fh, path = reader.fh, reader.path
        index = 0
        while True:
            line = fh.readline(_Y4M_MAX_LINE)
            if not line:
                break
            at_eof = not line.endswith(b"\n") and len(line) < _Y4M_MAX_LINE
            if at_eof and (line.startswith(b"FRAME") or b"FRAME".startswith(line)):
                logger.warning(
                    "%s: frame %d is truncated inside its FRAME line: stopping after %d frames",
                    path, index, index,
                )  # fmt: skip
                break
            if not line.startswith(b"FRAME") or line[5:6] not in (b"\n", b" "):
                raise VideoError(
                    f"{path}: frame {index} does not start with a FRAME line "
                    f"(found {line[:20]!r}): the file is corrupt or its header's "
                    "size/chroma tag is wrong"
                )
            if not line.endswith(b"\n"):
                raise VideoError(
                    f"{path}: frame {index}'s FRAME line has no end of line within "
                    f"{_Y4M_MAX_LINE} bytes: the file is corrupt"
                )
            if self._size is not None:
                remaining = self._size - fh.tell()
                if remaining < self._frame_bytes:
                    logger.warning(
                        "%s: frame %d is truncated (%d of %d bytes): stopping after %d whole "
                        "frames",
                        path, index, remaining, self._frame_bytes, index,
                    )  # fmt: skip
                    break
            frame = reader.read(index, seekable=self._size is not None)
            if frame is None:
                break
            yield frame
            index += 1
        if index == 0:
            raise VideoError(f"{path}: contains no whole video frame")


def _y4m_rate(path: Path, token: str) -> float | None:
    """An ``F<num>:<den>`` token's frames/s; ``F0:0`` means "unknown" in the spec."""
    num, _, den = token[1:].partition(":")
    # No real rate needs 10 digits a side; a longer one would overflow the division.
    if not (num.isdigit() and den.isdigit()) or len(num) > 9 or len(den) > 9:
        raise VideoError(f"{path}: Y4M header has a bad frame rate {token[:40]!r}")
    return int(num) / int(den) if int(num) and int(den) else None


def _parse_y4m_header(
    path: Path, header: bytes
) -> tuple[int, int, str, float | None, ColorRange | None]:
    """``YUV4MPEG2 W<w> H<h> F<n>:<d> I<i> A<a:b> C<tag> X<...>`` -> fields."""
    if not header.startswith(Y4M_MAGIC):
        raise VideoError(f"{path}: not a Y4M file: it does not start with 'YUV4MPEG2 '")
    if not header.endswith(b"\n"):
        raise VideoError(
            f"{path}: Y4M header has no end of line within {_Y4M_MAX_LINE} bytes: "
            "the file is truncated or not Y4M"
        )
    try:
        text = header[len(Y4M_MAGIC) :].decode("ascii").strip()
    except UnicodeDecodeError:
        raise VideoError(f"{path}: Y4M header is not ASCII text") from None
    width = height = None
    tag = "420jpeg"  # the Y4M default when no C tag is present
    fps: float | None = None
    color_range: ColorRange | None = None
    for token in text.split():
        key, value = token[0], token[1:]
        if key in "WH":
            if not value.isdigit() or int(value) <= 0:
                raise VideoError(f"{path}: Y4M header has a bad size token {token!r}")
            if key == "W":
                width = int(value)
            else:
                height = int(value)
        elif key == "F":
            fps = _y4m_rate(path, token)
        elif key == "C":
            tag = value.lower()
            if tag not in Y4M_CHROMA:
                supported = ", ".join(Y4M_CHROMA)
                raise VideoError(
                    f"{path}: Y4M chroma tag C{value} is not supported: supported tags are "
                    f"{supported}; convert the file, e.g. ffmpeg -i IN -pix_fmt yuv420p OUT.y4m"
                )
        elif key == "X" and value.upper().startswith("COLORRANGE="):
            flag = value.split("=", 1)[1].upper()
            if flag in ("FULL", "LIMITED"):
                color_range = "full" if flag == "FULL" else "limited"
        # I (interlacing), A (aspect) and other X tokens do not change the luma samples.
    if width is None or height is None:
        missing = " and ".join(k for k, v in (("W", width), ("H", height)) if v is None)
        raise VideoError(f"{path}: Y4M header lacks the {missing} size token(s)")
    return width, height, tag, fps, color_range
