"""Standard input as a video, as ffmpeg users pipe it: ``vmafx-saliency extract -``.

A file redirected to standard input is opened by name like any other file. A
pipe cannot be opened twice nor rewound, so its first bytes are read once to
learn its format and handed back in front of the rest (:class:`PrefixedStream`):
``YUV4MPEG2 `` is Y4M, geometry flags mean headerless raw YUV, anything else goes
to PyAV, which demuxes what FFmpeg can read from a pipe (Matroska, MPEG-TS,
fragmented MP4, ...; an MP4 with its index at the end cannot be streamed).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from vmafx_saliency._util import shown, str_path
from vmafx_saliency.errors import UsageError

STDIN = "-"
_FD = 0
# Enough to see the Y4M magic, a Matroska or MP4 header, and three MPEG-TS sync bytes.
PEEK_BYTES = 377
_TS_PACKET = 188
_EBML = b"\x1a\x45\xdf\xa3"


def is_container(head: bytes) -> bool:
    """Whether a stream's first bytes are those of Matroska/WebM, MP4/MOV or MPEG-TS."""
    ts = len(head) > 2 * _TS_PACKET and head[0] == head[_TS_PACKET] == head[2 * _TS_PACKET] == 0x47
    return head.startswith(_EBML) or head[4:8] == b"ftyp" or ts


def video_path(given: str | os.PathLike[str]) -> Path:
    """The path of a video as given: exactly ``-`` is standard input.

    pathlib writes ``./-`` as ``-``; that spelling (the Unix way to name a file
    called ``-``) becomes an absolute path, so it still names the file.
    """
    text = str_path(given)
    if text is None:
        raise UsageError(
            f"video={shown(given)}: give the video's path (a str or a Path), or '-' for "
            "standard input"
        )
    if not text:
        raise UsageError("the video's path is empty: give a video file, or '-' for standard input")
    path = Path(text)
    if text != STDIN and is_stdin(path):
        return Path.cwd() / text
    return path


class PrefixedStream(io.RawIOBase):
    """Standard input with the bytes already read from it put back in front.

    Never seekable; closing it leaves the descriptor open (it is the process's).
    """

    def __init__(self, prefix: bytes, *, fd: int = _FD) -> None:
        super().__init__()
        self._prefix = prefix
        self._fd = fd

    @property
    def head(self) -> bytes:
        """The bytes read ahead and not yet handed back."""
        return self._prefix

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._prefix:
            count = min(len(view), len(self._prefix))
            view[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        data = os.read(self._fd, len(view))
        view[: len(data)] = data
        return len(data)


def is_stdin(path: Path) -> bool:
    return str(path) == STDIN


def check_rereadable(path: Path, *, reads: str) -> None:
    """Refuse a stream (standard input from a pipe, a FIFO, a device) for a command that
    ``reads`` its source more than once; a missing file is left to the opener's words."""
    if is_stdin(path):
        stream = redirected_file() is None
    else:
        try:
            mode = path.stat().st_mode
        except OSError:
            return
        stream = stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)
    if stream:
        what = "standard input" if is_stdin(path) else str(path)
        raise UsageError(
            f"{reads}, and {what} is a stream, read once: save it to a file first (ffmpeg "
            "-i ... -f yuv4mpegpipe clip.y4m), or redirect a file (< clip.y4m)"
        )


def redirected_file() -> Path | None:
    """``/dev/stdin`` where standard input is a regular file (``< clip.mp4``): a name to open."""
    try:
        mode = os.fstat(_FD).st_mode
    except OSError:
        return None
    return Path("/dev/stdin") if stat.S_ISREG(mode) else None


def peek(count: int, *, fd: int = _FD) -> PrefixedStream:
    """Read up to ``count`` bytes of the pipe; a stream that yields them again first."""
    from vmafx_saliency.errors import VideoError

    if os.isatty(fd):
        raise VideoError(
            "-: standard input is a terminal: pipe a video into it, e.g. "
            "ffmpeg -i in.mkv -f yuv4mpegpipe - | vmafx-saliency extract -"
        )
    prefix = b""
    try:
        while len(prefix) < count and (chunk := os.read(fd, count - len(prefix))):
            prefix += chunk
    except OSError as exc:  # closed (<&-), or not readable
        raise VideoError(
            f"-: standard input cannot be read ({exc.strerror}): pipe a video into it, e.g. "
            "ffmpeg -i in.mkv -f yuv4mpegpipe - | vmafx-saliency extract -"
        ) from exc
    if not prefix:
        raise VideoError(
            "-: standard input is empty: pipe a video into it, e.g. "
            "ffmpeg -i in.mkv -f yuv4mpegpipe - | vmafx-saliency extract -"
        )
    return PrefixedStream(prefix, fd=fd)
