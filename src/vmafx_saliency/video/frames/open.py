"""Opening a video by its name and contents, and choosing which of its frames to read.

:func:`open_video` picks the reader (raw YUV, Y4M or a PyAV container) from the
file's suffix, its first bytes and the geometry flags given; :func:`select_frames`
and :func:`parse_frame_range` are ``--frames`` and ``--subsample``.
"""

from __future__ import annotations

import io
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vmafx_saliency.errors import UsageError, VideoError
from vmafx_saliency.video.frames.base import Frame, FrameSource, VideoInfo
from vmafx_saliency.video.frames.container import AvSource
from vmafx_saliency.video.frames.formats import PIXEL_FORMATS
from vmafx_saliency.video.frames.raw import Y4M_MAGIC, RawYuvSource, Y4mSource
from vmafx_saliency.video.frames.stdin import (
    PEEK_BYTES,
    STDIN,
    is_container,
    is_stdin,
    peek,
    redirected_file,
)

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


@dataclass(frozen=True)
class _Asked:
    """What the caller said about the video: geometry for raw YUV, overrides for all."""

    width: int | None
    height: int | None
    pixel_format: str | None
    fps: float | None
    color_range: str | None
    raw_only: bool = False  # the geometry is for raw YUV only: others need not agree

    @property
    def geometry(self) -> bool:
        return self.width is not None or self.height is not None


def open_video(
    path: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    pixel_format: str | None = None,
    fps: float | None = None,
    color_range: str | None = None,
    geometry_for_raw_only: bool = False,
) -> FrameSource:
    """Open a video for streaming and pick the reader from the file.

    ``.yuv``/``.raw`` (or ``width``/``height`` given with an unknown suffix):
    headerless raw YUV, which needs ``width`` and ``height`` (``pixel_format``
    defaults to ``yuv420p``). ``.y4m``, or any file starting with
    ``YUV4MPEG2 ``: Y4M. Anything else: a container decoded with PyAV. For
    Y4M and containers, geometry or a pixel format passed here must agree
    with the file's own, unless ``geometry_for_raw_only`` (one set of flags for
    several clips, as ``compare`` takes them): then they ignore it. ``fps`` and
    ``color_range`` override what the file says. ``-`` is standard input
    (:mod:`.stdin`).
    """
    path = Path(path)
    asked = _Asked(width, height, pixel_format, fps, color_range, geometry_for_raw_only)
    if is_stdin(path):
        return _open_stdin(asked)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video file")
    suffix = path.suffix.lower()
    y4m = suffix == ".y4m" or _is_y4m(path)
    if suffix in RAW_SUFFIXES or (asked.geometry and suffix not in CONTAINER_SUFFIXES and not y4m):
        return _raw(path, asked)
    if y4m:
        return _agreeing(Y4mSource(path, fps=fps, color_range=color_range), asked)
    return _agreeing(AvSource(path, fps=fps, color_range=color_range), asked)


def _open_stdin(asked: _Asked) -> FrameSource:
    """Standard input: a redirected file by its name, a pipe by its first bytes."""
    redirected = redirected_file()
    if redirected is not None:
        return open_video(
            redirected,
            width=asked.width,
            height=asked.height,
            pixel_format=asked.pixel_format,
            fps=asked.fps,
            color_range=asked.color_range,
            geometry_for_raw_only=asked.raw_only,
        )
    path = Path(STDIN)
    # Always looked at, even with geometry flags: a Y4M or a container piped in
    # with --width/--height is read as what it is (the flags must then agree),
    # never as raw YUV, as for a file.
    stream = peek(PEEK_BYTES)
    fps, color_range = asked.fps, asked.color_range
    if stream.head.startswith(Y4M_MAGIC):
        return _agreeing(Y4mSource(path, fps=fps, color_range=color_range, stream=stream), asked)
    if asked.geometry and not is_container(stream.head):
        return _raw(path, asked, stream=stream)
    return _agreeing(AvSource(path, fps=fps, color_range=color_range, stream=stream), asked)


def _raw(path: Path, asked: _Asked, *, stream: io.RawIOBase | None = None) -> RawYuvSource:
    if asked.width is None or asked.height is None:
        raise UsageError(
            f"{path} is raw YUV, which has no header: pass --width and --height "
            "(and --pixel-format unless it is yuv420p; in Python, "
            "raw=RawVideo(width=..., height=...))"
        )
    return RawYuvSource(
        path,
        width=asked.width,
        height=asked.height,
        pixel_format=asked.pixel_format or "yuv420p",
        fps=asked.fps,
        color_range=asked.color_range,
        stream=stream,
    )


def _agreeing(source: FrameSource, asked: _Asked) -> FrameSource:
    """The source, once the geometry flags agree with its header (closed if not)."""
    if asked.raw_only:
        return source
    try:
        _check_agrees(
            source.info, width=asked.width, height=asked.height, pixel_format=asked.pixel_format
        )
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
    # In Python the flags are raw=RawVideo(...): the advice names both.
    if width is not None and width != info.width:
        raise UsageError(
            f"{info.path} is {info.width} wide, not --width {width}: drop --width (raw= in "
            "Python): the geometry is for raw YUV"
        )
    if height is not None and height != info.height:
        raise UsageError(
            f"{info.path} is {info.height} high, not --height {height}: drop --height (raw= in "
            "Python): the geometry is for raw YUV"
        )
    if pixel_format is not None:
        wanted = PIXEL_FORMATS.get(pixel_format.lower())
        have = PIXEL_FORMATS.get(info.pixel_format)
        same = (wanted is not None and wanted is have) or pixel_format.lower() == info.pixel_format
        if not same:
            raise UsageError(
                f"{info.path} is {info.pixel_format}, not --pixel-format {pixel_format}: "
                "drop --pixel-format (raw= in Python): it applies to raw YUV"
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
