"""Streaming frame sources: raw planar YUV, Y4M, and containers through PyAV.

Every source yields :class:`Frame` objects holding the RAW luma plane of one
frame: the samples exactly as stored (8-bit ``uint8`` or 10-bit ``uint16``),
with no range conversion, so the extractor decides explicitly how to treat
limited-range (16..235) video. Sources read one frame at a time and never load
the whole file, so memory does not grow with the length of the video.

Only numpy is needed for raw and Y4M input; PyAV is imported when a container
is opened.

Colour range (``VideoInfo.color_range``): an explicit ``color_range`` argument
always wins. Otherwise raw YUV carries no flag and is reported as ``"limited"``
(video is limited range by convention, and that is what the ``vmaf`` tool
assumes); Y4M reports its ``XCOLORRANGE`` tag or ``None``; containers report
the decoder's value (``yuvj*`` formats are full range) or ``None`` when the
stream leaves it unspecified, in which case callers assume limited for YUV.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from vmafx_saliency.errors import MissingDependencyError, UsageError, VideoError

if TYPE_CHECKING:
    import av.container.input
    import av.video.frame
    import av.video.stream

logger = logging.getLogger(__name__)

ContainerKind = Literal["raw", "y4m", "av"]
ColorRange = Literal["limited", "full"]

Y4M_MAGIC = b"YUV4MPEG2 "
RAW_SUFFIXES = frozenset({".yuv", ".raw"})
# Suffixes that name a container even when --width/--height were passed: only
# an unknown suffix plus geometry means "headerless raw YUV".
CONTAINER_SUFFIXES = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".mpg",
        ".mpeg", ".flv", ".wmv", ".asf", ".mxf", ".nut", ".ivf", ".obu", ".264", ".h264",
        ".265", ".h265", ".hevc", ".avc", ".vvc", ".266", ".3gp", ".ogv", ".gif",
    }
)  # fmt: skip
# A Y4M header or FRAME line longer than this is not a Y4M file we can trust.
_Y4M_MAX_LINE = 4096


@dataclass(frozen=True)
class PixelFormat:
    """A planar YUV (or grey) layout as ffmpeg names it."""

    name: str
    bit_depth: int  # 8 or 10; 10-bit samples are stored little-endian in 16 bits
    chroma_w_shift: int  # log2 of the horizontal chroma subsampling
    chroma_h_shift: int  # log2 of the vertical chroma subsampling
    has_chroma: bool

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.bit_depth <= 8 else 2

    def luma_bytes(self, width: int, height: int) -> int:
        return width * height * self.bytes_per_sample

    def frame_bytes(self, width: int, height: int) -> int:
        """Bytes of one frame: luma plus two chroma planes.

        Chroma sizes round up for odd sizes (``-((-w) >> shift)``), as ffmpeg's
        ``AV_CEIL_RSHIFT`` does, so a 4:2:0 frame of 33x17 has 17x9 chroma.
        """
        samples = width * height
        if self.has_chroma:
            cw = -((-width) >> self.chroma_w_shift)
            ch = -((-height) >> self.chroma_h_shift)
            samples += 2 * cw * ch
        return samples * self.bytes_per_sample


def _formats() -> dict[str, PixelFormat]:
    canonical = [
        PixelFormat("yuv420p", 8, 1, 1, True),
        PixelFormat("yuv422p", 8, 1, 0, True),
        PixelFormat("yuv444p", 8, 0, 0, True),
        PixelFormat("yuv420p10le", 10, 1, 1, True),
        PixelFormat("yuv422p10le", 10, 1, 0, True),
        PixelFormat("yuv444p10le", 10, 0, 0, True),
        PixelFormat("yuv400p", 8, 0, 0, False),
        PixelFormat("gray10le", 10, 0, 0, False),
    ]
    table = {fmt.name: fmt for fmt in canonical}
    # ffmpeg calls 8-bit grey "gray"; vmaf and some tools say yuv400p. Accept both.
    table["gray"] = table["yuv400p"]
    table["yuv400p10le"] = table["gray10le"]
    return table


PIXEL_FORMATS: dict[str, PixelFormat] = _formats()


def get_pixel_format(name: str) -> PixelFormat:
    """Look a pixel format up by name (case-insensitive) or explain the choices."""
    fmt = PIXEL_FORMATS.get(name.strip().lower())
    if fmt is None:
        known = ", ".join(sorted(PIXEL_FORMATS))
        raise UsageError(f"unknown pixel format {name!r}: --pixel-format takes one of {known}")
    return fmt


@dataclass(frozen=True)
class VideoInfo:
    """What a source says about its video before any frame is consumed."""

    path: Path
    container: ContainerKind
    width: int
    height: int
    pixel_format: str  # the source's own format name (e.g. "yuv420p", "nv12", "rgb24")
    bit_depth: int  # of the luma samples the source yields: 8 or 10
    fps: float | None
    frame_count: int | None  # None when the container does not say
    color_range: ColorRange | None  # None: unknown (callers assume limited for YUV)


@dataclass(frozen=True)
class Frame:
    """One frame's raw luma plane (H x W, C-contiguous, uint8 or uint16)."""

    index: int  # 0-based frame number in the source
    luma: np.ndarray
    bit_depth: int


class FrameSource(ABC):
    """An open video: ``info`` up front, then frames one at a time.

    A source is single-pass: iterate it once, then close it (or use it as a
    context manager). Iterating it a second time is a programming error.
    """

    info: VideoInfo

    def __init__(self) -> None:
        self._iterated = False

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError(f"{type(self).__name__} for {self.info.path} was already iterated")
        self._iterated = True
        return self._frames()

    @abstractmethod
    def _frames(self) -> Iterator[Frame]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_color_range(value: str | None) -> ColorRange | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("limited", "tv", "mpeg"):
        return "limited"
    if text in ("full", "pc", "jpeg"):
        return "full"
    raise UsageError(f"--color-range {value!r}: give 'limited' (16..235) or 'full' (0..255)")


def _check_fps(fps: float | None) -> float | None:
    if fps is None:
        return None
    if not math.isfinite(fps) or fps <= 0:
        raise UsageError(f"--fps {fps}: give a positive frame rate, e.g. 25 or 29.97")
    return float(fps)


def _open_binary(path: Path, *, buffering: int = -1) -> tuple[Any, int | None]:
    """Open for reading and stat, turning OS errors into a VideoError naming the file.

    The size is ``None`` for a stream (a named pipe, ``/dev/stdin``): it can be
    read front to back but neither measured nor seeked, so frames are counted
    as they arrive and a cut-short last frame is found by reading.
    """
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


def _native_uint16(luma: np.ndarray) -> np.ndarray:
    # Little-endian on disk; on a little-endian host this is already native uint16.
    return luma if luma.dtype == np.uint16 else luma.astype(np.uint16)


def _read_planar_frame(
    fh: Any,
    fmt: PixelFormat,
    width: int,
    height: int,
    chroma_bytes: int,
    path: Path,
    index: int,
    *,
    seekable: bool = True,
    may_end: bool = False,
) -> Frame | None:
    """One planar frame at the file position: its luma, with the chroma skipped.

    ``None`` where a stream ends inside the frame (with a warning), or before
    it where ``may_end`` (raw YUV: nothing marks the last frame); a file's size
    was checked before, so a short read there means the file changed under us.
    """
    luma, got = _luma_from_bytes(fh, fmt, width, height)
    if got == 0 and may_end and not seekable:
        return None
    if got < luma.nbytes and seekable:
        raise VideoError(f"{path}: frame {index} ends early: did the file shrink?")
    # Skip the chroma planes: only luma is used, so do not read them.
    if got < luma.nbytes or _skip(fh, chroma_bytes, seekable=seekable) < chroma_bytes:
        logger.warning(
            "%s: the stream ends inside frame %d: stopping after %d whole frames",
            path, index, index,
        )  # fmt: skip
        return None
    if fmt.bit_depth > 8:
        luma = _native_uint16(luma)
        _check_10bit(luma, path, index)
    return Frame(index=index, luma=luma, bit_depth=fmt.bit_depth)


class RawYuvSource(FrameSource):
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
    ) -> None:
        super().__init__()
        if width <= 0 or height <= 0:
            raise UsageError(f"{path}: --width and --height must be positive, got {width}x{height}")
        self._fmt = fmt = get_pixel_format(pixel_format)
        self._width, self._height = width, height
        self._frame_bytes = fmt.frame_bytes(width, height)
        # Validate every argument before opening, so an error leaks no file handle.
        fps = _check_fps(fps)
        checked_range = _check_color_range(color_range) or "limited"
        # Unbuffered: each luma plane is read straight into its own array.
        fh, size = _open_binary(path, buffering=0)
        self._fh: io.FileIO | None = fh
        what = f"{width} x {height} {fmt.name} ({self._frame_bytes} bytes each)"
        self._what = what
        count: int | None = None
        leftover = 0
        if size is not None:
            count, leftover = divmod(size, self._frame_bytes)
        if count == 0:
            self.close()
            raise VideoError(
                f"{path}: holds 0 whole frames of {what}, the file has {size} bytes: "
                "check --width/--height/--pixel-format"
            )
        if leftover:
            logger.warning(
                "%s: file size %d bytes is not a whole number of frames of %s: "
                "reading %d whole frames and ignoring the %d leftover bytes; "
                "check --width/--height/--pixel-format if this is unexpected",
                path, size, what, count, leftover,
            )  # fmt: skip
        self.info = VideoInfo(
            path=path,
            container="raw",
            width=width,
            height=height,
            pixel_format=fmt.name,
            bit_depth=fmt.bit_depth,
            fps=fps,
            frame_count=count,
            color_range=checked_range,
        )

    def _frames(self) -> Iterator[Frame]:
        fh = self._fh
        if fh is None:
            raise RuntimeError(f"{self.info.path}: source is closed")
        fmt, path = self._fmt, self.info.path
        chroma_bytes = self._frame_bytes - fmt.luma_bytes(self._width, self._height)
        read = functools.partial(
            _read_planar_frame, fh, fmt, self._width, self._height, chroma_bytes, path
        )
        count = self.info.frame_count
        if count is not None:
            for index in range(count):
                yield cast(Frame, read(index))  # a file's frames were counted from its size
            return
        index = 0
        while (frame := read(index, seekable=False, may_end=True)) is not None:
            yield frame
            index += 1
        if index == 0:
            raise VideoError(
                f"{path}: the stream held no whole frame of {self._what}: "
                "check --width/--height/--pixel-format"
            )

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _check_10bit(luma: np.ndarray, path: Path, index: int) -> None:
    peak = int(luma.max())
    if peak > 1023:
        raise VideoError(
            f"{path}: frame {index} has luma sample {peak} > 1023, impossible in 10-bit video: "
            "the file is probably 16-bit or big-endian; convert it to a *10le pixel format"
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


class Y4mSource(FrameSource):
    """YUV4MPEG2: a text header, then ``FRAME`` lines each followed by one frame."""

    def __init__(
        self, path: Path, *, fps: float | None = None, color_range: str | None = None
    ) -> None:
        super().__init__()
        fps = _check_fps(fps)
        checked_range = _check_color_range(color_range)
        # Buffered for a file, as FRAME lines are read with readline; a stream is
        # read raw (readline then takes a byte at a time, six per FRAME line).
        fh, self._size = _open_binary(path)
        self._fh: io.BufferedReader | io.FileIO | None = fh
        try:
            header = fh.readline(_Y4M_MAX_LINE)
            width, height, tag, y4m_fps, y4m_range = _parse_y4m_header(path, header)
            self._fmt = fmt = PIXEL_FORMATS[Y4M_CHROMA[tag]]
            self._width, self._height = width, height
            self._frame_bytes = fmt.frame_bytes(width, height)
            self._data_start = len(header)
            if self._size == self._data_start:
                raise VideoError(f"{path}: contains no video frames (a Y4M header only)")
            count = None if self._size is None else self._count_frames(fh, self._size)
        except BaseException:
            self.close()
            raise
        self.info = VideoInfo(
            path=path,
            container="y4m",
            width=width,
            height=height,
            pixel_format=fmt.name,
            bit_depth=fmt.bit_depth,
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
        fh = self._fh
        if fh is None:
            raise RuntimeError(f"{self.info.path}: source is closed")
        fmt, path = self._fmt, self.info.path
        chroma_bytes = self._frame_bytes - fmt.luma_bytes(self._width, self._height)
        read = functools.partial(
            _read_planar_frame, fh, fmt, self._width, self._height, chroma_bytes, path
        )
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
            frame = read(index, seekable=self._size is not None)
            if frame is None:
                break
            yield frame
            index += 1
        if index == 0:
            raise VideoError(f"{path}: contains no whole video frame")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


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
            num, _, den = value.partition(":")
            if not (num.isdigit() and den.isdigit()):
                raise VideoError(f"{path}: Y4M header has a bad frame rate {token!r}")
            # F0:0 means "unknown" in the spec.
            fps = int(num) / int(den) if int(num) and int(den) else None
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


# Container pixel formats whose plane 0 already holds the luma samples as we
# want them: 8-bit in bytes, or 10-bit in the low bits of little-endian 16-bit
# words. Everything else is converted with swscale (see _AvPlan).
_AV_NATIVE_8 = frozenset(
    {
        "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
        "yuvj440p", "yuv411p", "yuvj411p", "yuv410p", "gray", "yuva420p", "yuva422p",
        "yuva444p", "nv12", "nv21", "nv16", "nv24", "nv42",
    }
)  # fmt: skip
_AV_NATIVE_10 = frozenset(
    {
        "yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv440p10le", "gray10le",
        "yuva420p10le", "yuva422p10le", "yuva444p10le",
    }
)  # fmt: skip
# PyAV reports colour ranges as ints (FFmpeg's AVColorRange): 1 MPEG/limited, 2 JPEG/full.
_AV_RANGE: dict[int, ColorRange] = {1: "limited", 2: "full"}


@dataclass(frozen=True)
class _AvPlan:
    """How to get raw luma out of one decoded pixel format."""

    bit_depth: int
    reformat_to: str | None  # None: read plane 0 as is
    rgb: bool  # luma computed from RGB by swscale (limited range)


def _av_plan(frame: av.video.frame.VideoFrame) -> _AvPlan:
    name = frame.format.name
    if name in _AV_NATIVE_8:
        return _AvPlan(8, None, rgb=False)
    if name in _AV_NATIVE_10:
        return _AvPlan(10, None, rgb=False)
    bits = max((c.bits for c in frame.format.components), default=8)
    # swscale keeps YUV luma samples unchanged when only the layout changes
    # (nv12 -> yuv420p, p010 -> yuv420p10le); deeper than 10 bits is scaled to 10.
    target = "yuv420p10le" if bits > 8 else "yuv420p"
    return _AvPlan(10 if bits > 8 else 8, target, rgb=bool(frame.format.is_rgb))


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError(
            "reading container video (mp4, mkv, ...) needs the Python package 'av' (PyAV), "
            "a core dependency of vmafx-saliency: run pip install av, "
            "or convert the video to .y4m or raw .yuv"
        ) from exc
    return av


class AvSource(FrameSource):
    """Any container FFmpeg can demux, decoded with PyAV (first video stream).

    The first frame is decoded when the source opens, so ``info`` reports the
    decoded pixel format and colour range, and an undecodable or empty file
    fails before any output is written.
    """

    def __init__(
        self,
        path: Path,
        *,
        fps: float | None = None,
        color_range: str | None = None,
    ) -> None:
        super().__init__()
        fps = _check_fps(fps)
        checked_range = _check_color_range(color_range)
        pyav = _import_av()
        self._ffmpeg_error: type[Exception] = pyav.error.FFmpegError
        try:
            container = pyav.open(str(path))
        except (self._ffmpeg_error, OSError) as exc:
            raise VideoError(f"cannot open {path}: {exc}: is it a video file?") from exc
        self._container: av.container.input.InputContainer | None = container
        try:
            self._open(path, container, fps=fps, color_range=checked_range)
        except BaseException:
            self.close()
            raise

    def _open(
        self,
        path: Path,
        container: av.container.input.InputContainer,
        *,
        fps: float | None,
        color_range: ColorRange | None,
    ) -> None:
        if not container.streams.video:
            raise VideoError(f"{path}: has no video stream (audio or data only?)")
        stream = container.streams.video[0]
        # Frame and slice threads: decoding is the extractor's producer side.
        stream.thread_type = "AUTO"
        self._decoder = container.decode(stream)
        self._path = path
        first = self._next(0)
        if first is None:
            raise VideoError(f"{path}: contains no video frames")
        self._first: av.video.frame.VideoFrame | None = first
        self._plans: dict[str, _AvPlan] = {}
        plan = self._plan(first)
        rate = stream.average_rate or stream.guessed_rate
        self._declared = int(stream.frames) or None  # 0: the container does not say
        self.info = VideoInfo(
            path=path,
            container="av",
            width=first.width,
            height=first.height,
            pixel_format=first.format.name,
            bit_depth=plan.bit_depth,
            fps=fps or (float(rate) if rate else None),
            frame_count=self._declared,
            color_range=color_range or _av_range(first, stream, plan),
        )

    def _plan(self, frame: av.video.frame.VideoFrame) -> _AvPlan:
        name = frame.format.name
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = _av_plan(frame)
        return plan

    def _next(self, index: int) -> av.video.frame.VideoFrame | None:
        try:
            return next(self._decoder, None)
        except self._ffmpeg_error as exc:
            raise VideoError(
                f"{self._path}: decoding failed at frame {index} "
                f"({index} frames decoded before it): {exc}: the file is corrupt or truncated"
            ) from exc

    def _luma(self, frame: av.video.frame.VideoFrame) -> np.ndarray:
        plan = self._plan(frame)
        if plan.reformat_to is not None:
            # With no colour ranges given, swscale treats both sides as
            # unspecified: YUV luma samples are copied unchanged (nv12, p010 ->
            # planar), and RGB becomes limited-range BT.601 luma (16..235).
            # Both facts are pinned by tests/test_frames.py. One thread: with
            # PyAV's default (auto) swscale's slice threads at times wrote 512s
            # over the first samples of a slice's first luma row (p010le ->
            # yuv420p10le, FFmpeg's libswscale 9.5, 3 or more threads), and the
            # extractor's own threads have the cores anyway.
            frame = frame.reformat(format=plan.reformat_to, threads=1)
        plane = frame.planes[0]
        dtype = np.dtype("<u2") if plan.bit_depth > 8 else np.dtype(np.uint8)
        # Rows are padded to plane.line_size bytes (e.g. 384 for 352-wide CIF):
        # view the padded rows, keep the first `width` samples, copy out of the
        # decoder's buffer into a C-contiguous array of our own.
        rows = np.frombuffer(memoryview(plane), dtype=dtype).reshape(
            plane.height, plane.line_size // dtype.itemsize
        )
        luma = rows[:, : plane.width].copy()  # copy() is C-ordered
        return _native_uint16(luma) if plan.bit_depth > 8 else luma

    def _frames(self) -> Iterator[Frame]:
        info, frame, index = self.info, self._first, 0
        self._first = None
        while frame is not None:
            if (frame.width, frame.height) != (info.width, info.height):
                raise VideoError(
                    f"{info.path}: frame {index} is {frame.width}x{frame.height} but the video "
                    f"started at {info.width}x{info.height}: resolution changes are not supported"
                )
            luma = self._luma(frame)
            yield Frame(index=index, luma=luma, bit_depth=self._plan(frame).bit_depth)
            index += 1
            frame = self._next(index)
        if self._declared is not None and index != self._declared:
            logger.warning(
                "%s: decoded %d frames but the container declares %d: the file may be truncated",
                info.path, index, self._declared,
            )  # fmt: skip

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _av_range(
    frame: av.video.frame.VideoFrame, stream: av.video.stream.VideoStream, plan: _AvPlan
) -> ColorRange | None:
    if plan.rgb:
        return "limited"  # what swscale produces from RGB, see AvSource._luma
    found = _AV_RANGE.get(int(getattr(frame, "color_range", 0) or 0)) or _AV_RANGE.get(
        int(getattr(stream.codec_context, "color_range", 0) or 0)
    )
    if found is None and frame.format.name.startswith("yuvj"):
        return "full"  # the deprecated yuvj* formats are full range by definition
    return found


def open_video(
    path: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    pixel_format: str | None = None,
    fps: float | None = None,
    color_range: str | None = None,
) -> FrameSource:
    """Open a video for streaming and pick the reader from the file.

    ``.yuv``/``.raw`` (or ``width``/``height`` given with an unknown suffix):
    headerless raw YUV, which needs ``width`` and ``height`` (``pixel_format``
    defaults to ``yuv420p``). ``.y4m``, or any file starting with
    ``YUV4MPEG2 ``: Y4M. Anything else: a container decoded with PyAV. For
    Y4M and containers, geometry or a pixel format passed here must agree
    with the file's own. ``fps`` and ``color_range`` override what the file
    says.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video file")
    suffix = path.suffix.lower()
    geometry = width is not None or height is not None
    if suffix in RAW_SUFFIXES or (
        geometry and suffix not in CONTAINER_SUFFIXES and suffix != ".y4m" and not _is_y4m(path)
    ):
        if width is None or height is None:
            raise UsageError(
                f"{path} is raw YUV, which has no header: pass --width and --height "
                "(and --pixel-format unless it is yuv420p)"
            )
        return RawYuvSource(
            path,
            width=width,
            height=height,
            pixel_format=pixel_format or "yuv420p",
            fps=fps,
            color_range=color_range,
        )
    source: FrameSource
    if suffix == ".y4m" or _is_y4m(path):
        source = Y4mSource(path, fps=fps, color_range=color_range)
    else:
        source = AvSource(path, fps=fps, color_range=color_range)
    try:
        _check_agrees(source.info, width=width, height=height, pixel_format=pixel_format)
    except BaseException:
        source.close()
        raise
    return source


def _is_y4m(path: Path) -> bool:
    """Whether a file starts with the Y4M magic; a stream is never probed.

    Reading a pipe's first bytes here would take them from the reader that
    follows: a stream is Y4M by its ``.y4m`` name, raw YUV by its geometry
    flags, and anything else goes to PyAV, which probes on its own handle.
    """
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with path.open("rb") as fh:
            return fh.read(len(Y4M_MAGIC)) == Y4M_MAGIC
    except OSError as exc:
        raise VideoError(f"{path}: cannot be read: {exc}") from exc


def _check_agrees(
    info: VideoInfo, *, width: int | None, height: int | None, pixel_format: str | None
) -> None:
    """Geometry flags are for raw YUV; for other files they must match the header."""
    if width is not None and width != info.width:
        raise UsageError(f"{info.path} is {info.width} wide, not --width {width}: drop --width")
    if height is not None and height != info.height:
        raise UsageError(f"{info.path} is {info.height} high, not --height {height}: drop --height")
    if pixel_format is not None:
        wanted = PIXEL_FORMATS.get(pixel_format.lower())
        have = PIXEL_FORMATS.get(info.pixel_format)
        same = (wanted is not None and wanted is have) or pixel_format.lower() == info.pixel_format
        if not same:
            raise UsageError(
                f"{info.path} is {info.pixel_format}, not --pixel-format {pixel_format}: "
                "drop --pixel-format (it applies to raw YUV)"
            )


def select_frames(
    frames: Iterable[Frame], *, start: int = 0, end: int | None = None, subsample: int = 1
) -> Iterator[Frame]:
    """Frames ``start <= index < end`` (a Python slice), every ``subsample``-th.

    Subsampling follows the ``vmaf`` tool: it numbers pictures from 0 at the
    first frame it reads (after any ``--frame_skip_ref``) and computes and
    writes only those whose number is a multiple of N. Here that number is
    ``index - start``, so the first frame of the range is always kept; frames
    keep their source ``index``. Reading stops as soon as ``end`` is reached:
    the rest of the file is never decoded.
    """
    if start < 0:
        raise UsageError(f"frame range start {start} is negative: frames count from 0")
    if end is not None and end <= start:
        raise UsageError(f"frame range {start}:{end} is empty: END must be greater than START")
    if subsample < 1:
        raise UsageError(f"--subsample {subsample}: give 1 (every frame) or more")
    return _select(frames, start, end, subsample)


def _select(
    frames: Iterable[Frame], start: int, end: int | None, subsample: int
) -> Iterator[Frame]:
    for frame in frames:
        index = frame.index
        if end is not None and index >= end:
            return
        if index >= start and (index - start) % subsample == 0:
            yield frame
        if end is not None and index + 1 >= end:
            return  # do not pull (decode) one frame more than needed


_RANGE_FORMS = "START:END (END excluded), START:, :END or a single frame N"


def parse_frame_range(text: str) -> tuple[int, int | None]:
    """``"START:END"``, ``"START:"``, ``":END"`` or ``"N"`` -> ``(start, end)``.

    END is excluded, as in a Python slice; ``"N"`` is the single frame N.
    """
    raw = text.strip()

    def number(part: str) -> int:
        part = part.strip()
        if not part.isdigit():
            raise UsageError(
                f"--frames {text!r}: {part!r} is not a frame number; give {_RANGE_FORMS}, "
                "with frames counted from 0"
            )
        return int(part)

    if ":" not in raw:
        if not raw:
            raise UsageError(f"--frames {text!r} is empty: give {_RANGE_FORMS}")
        first = number(raw)
        return first, first + 1
    head, _, tail = raw.partition(":")
    if ":" in tail:
        raise UsageError(f"--frames {text!r} has more than one ':': give {_RANGE_FORMS}")
    start = number(head) if head.strip() else 0
    end = number(tail) if tail.strip() else None
    if end is not None and end <= start:
        raise UsageError(
            f"--frames {text!r} is empty: END is excluded and must be greater than START; "
            f"give {_RANGE_FORMS}"
        )
    return start, end


__all__ = [
    "PIXEL_FORMATS",
    "AvSource",
    "Frame",
    "FrameSource",
    "PixelFormat",
    "RawYuvSource",
    "VideoInfo",
    "Y4mSource",
    "get_pixel_format",
    "open_video",
    "parse_frame_range",
    "select_frames",
]
