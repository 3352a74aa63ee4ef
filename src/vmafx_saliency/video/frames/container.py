"""Containers FFmpeg can demux (mp4, mkv, ...), decoded through PyAV.

The reader yields the raw luma plane of the first video stream: plane 0 as
decoded where the pixel format already holds it as we want it, else converted
by swscale (see :class:`_AvPlan`). PyAV is imported when a container is
opened, never at import time.

Colour range: an explicit ``color_range`` argument always wins; otherwise the
decoder's value (``yuvj*`` formats are full range), or ``None`` when the stream
leaves it unspecified, in which case callers assume limited for YUV.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vmafx_saliency.errors import MissingDependencyError, VideoError
from vmafx_saliency.video.frames.base import (
    ColorRange,
    Frame,
    FrameSource,
    VideoInfo,
    check_color_range,
    check_fps,
    logger,
    native_uint16,
)

if TYPE_CHECKING:
    import av.container.input
    import av.video.frame
    import av.video.stream


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
# What a stream that FFmpeg cannot demux from a pipe needs: no seeking there.
_PIPE_ADVICE = (
    "FFmpeg cannot read this from a pipe: pipe Y4M, Matroska or MPEG-TS "
    "(ffmpeg -i in.mp4 -f yuv4mpegpipe -), or an MP4 with its index first "
    "(-movflags +faststart); raw YUV on a pipe needs --width and --height"
)
# FFmpeg's decoder threading (PyAV's thread_type): frame and slice threads. On two
# cores they cost about 0.4 ms of CPU more per 720p H.264 frame than one thread,
# and one thread gained the extractor nothing (benchmarks/decoder_threads.py); kept
# for more cores, where one thread decoding large frames could hold inference back.
DECODER_THREADS = "AUTO"
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
        stream: io.RawIOBase | None = None,
    ) -> None:
        super().__init__()
        fps = check_fps(fps)
        checked_range = check_color_range(color_range)
        pyav = _import_av()
        self._ffmpeg_error: type[Exception] = pyav.error.FFmpegError
        # A pipe cannot be seeked: an MP4 whose index comes last cannot be read from one.
        self._streamed = stream is not None
        try:
            # A stream (standard input) is demuxed as it arrives, never seeked.
            container = pyav.open(stream if stream is not None else str(path), mode="r")
        except (self._ffmpeg_error, OSError) as exc:
            if stream is not None:
                raise VideoError(f"{path}: {_PIPE_ADVICE} ({exc})") from exc
            # strerror: FFmpeg's words without PyAV's errno number and repeated path.
            reason = getattr(exc, "strerror", None) or str(exc)
            raise VideoError(
                f"cannot open {path}: {reason}: is it a video file? (one cut short cannot be "
                "opened when its index was at the end, as in most MP4s)"
            ) from exc
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
        stream.thread_type = DECODER_THREADS  # decoding is the extractor's producer side
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
        self._expected = None if self._declared else _frames_from_duration(container, stream)
        self._clock = _Clock.of(stream, first, rate)
        self._coded = (first.width, first.height)
        self._turns = _quarter_turns(path, first)
        width, height = self._coded if self._turns % 2 == 0 else self._coded[::-1]
        self.info = VideoInfo(
            path=path,
            container="av",
            width=width,
            height=height,
            pixel_format=first.format.name,
            bit_depth=plan.bit_depth,
            fps=fps or (float(rate) if rate else None),
            frame_count=self._declared,
            color_range=color_range or _av_range(first, stream, plan),
            rotation=90 * self._turns,
        )
        if self._turns:
            logger.warning(
                "%s: the container says to turn the picture %d degrees: the frames are "
                "turned as a player shows them (%dx%d) before the model sees them",
                path, 90 * self._turns, width, height,
            )  # fmt: skip

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
            if self._streamed and index == 0:
                raise VideoError(f"{self._path}: {_PIPE_ADVICE} ({exc})") from exc
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
            # Both facts are pinned by tests/video/frames/test_container.py. One thread: with
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
        luma = rows[:, : plane.width]
        if self._turns:
            # np.rot90 turns counter-clockwise, as ffmpeg's autorotation does for
            # these tags (tests/video/frames/test_container.py checks against it).
            luma = np.rot90(luma, self._turns)
        luma = np.ascontiguousarray(luma) if self._turns else luma.copy()  # our own, C-ordered
        return native_uint16(luma) if plan.bit_depth > 8 else luma

    def _frames(self) -> Iterator[Frame]:
        info, frame, decoded = self.info, self._first, 0
        self._first = None
        numbers = _Numbering(self._clock)
        while frame is not None:
            if (frame.width, frame.height) != self._coded:
                width, height = self._coded
                raise VideoError(
                    f"{info.path}: frame {decoded} is {frame.width}x{frame.height} but the "
                    f"video started at {width}x{height}: resolution changes are not supported"
                )
            index = numbers.of(frame)
            if index is not None:
                plan = self._plan(frame)
                # swscale scales plane 0 of the decoded picture itself only where
                # that plane is the luma as we read it (see Frame.luma_at).
                direct = plan.reformat_to is None and not self._turns
                yield Frame(
                    index=index,
                    luma=self._luma(frame),
                    bit_depth=plan.bit_depth,
                    picture=frame if direct else None,
                )
            decoded += 1
            frame = self._next(decoded)
        numbers.report(info.path)
        if self._declared is not None and decoded != self._declared:
            logger.warning(
                "%s: decoded %d frames but the container declares %d: the file may be truncated",
                info.path, decoded, self._declared,
            )  # fmt: skip
        elif self._expected is not None and decoded + max(2, self._expected // 50) < self._expected:
            logger.warning(
                "%s: decoded %d frames but the container's duration and average frame rate "
                "imply about %d: the file may be truncated",
                info.path, decoded, self._expected,
            )  # fmt: skip

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


@dataclass(frozen=True)
class _Clock:
    """Presentation time to frame number: ``round((pts - origin) * time_base * rate)``."""

    origin: int
    frames_per_tick: float

    @classmethod
    def of(cls, stream: Any, first: Any, rate: Any) -> _Clock | None:
        if first.pts is None or not rate or not stream.time_base:
            return None  # no clock: frames are numbered as they are decoded
        origin = stream.start_time if stream.start_time is not None else first.pts
        return cls(int(origin), float(stream.time_base * rate))


class _Numbering:
    """Frame numbers by presentation time, as the video's own, never renumbered.

    A frame the decoder could not produce leaves its number unused, so every
    later frame keeps the number ``vmaf`` and a player give it; a frame that
    comes out of order after corruption is dropped. Both are counted and said.
    """

    def __init__(self, clock: _Clock | None) -> None:
        self.clock = clock
        self.next = 0
        self.missing = 0
        self.dropped = 0

    def of(self, frame: Any) -> int | None:
        number = self.next
        if self.clock is not None and frame.pts is not None:
            number = round((int(frame.pts) - self.clock.origin) * self.clock.frames_per_tick)
        if number < self.next:
            self.dropped += 1
            return None
        self.missing += number - self.next
        self.next = number + 1
        return number

    def report(self, path: Path) -> None:
        if self.missing or self.dropped:
            logger.warning(
                "%s: %d frames are missing or could not be decoded and %d came out of order "
                "(dropped); the others keep their numbers by presentation time",
                path, self.missing, self.dropped,
            )  # fmt: skip


def _frames_from_duration(container: Any, stream: Any) -> int | None:
    """About how many frames a container that counts none (Matroska, MPEG-TS) holds.

    Its duration times the stream's average rate (frames over duration, where
    the demuxer measured one), never the guessed rate: a header written before
    the file was cut short still says how long it was.
    """
    duration = stream.duration * stream.time_base if stream.duration and stream.time_base else None
    # Matroska's header states the whole file's duration; elsewhere (MPEG-TS) FFmpeg's
    # container duration may be a guess from the bit rate, so no warning rests on it.
    if duration is None and container.duration and "matroska" in container.format.name:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    rate = stream.average_rate
    if not duration or not rate or duration <= 0:
        return None
    return int(float(duration) * float(rate))


def _quarter_turns(path: Path, frame: av.video.frame.VideoFrame) -> int:
    """Quarter turns counter-clockwise that the rotation tag asks for (0 to 3)."""
    degrees = round(float(getattr(frame, "rotation", 0) or 0))
    if degrees % 90:
        raise VideoError(
            f"{path}: the container says to turn the picture {degrees} degrees, not a multiple "
            "of 90: re-encode it upright (ffmpeg -i in -c:v libx264 out.mp4 applies it)"
        )
    return (degrees // 90) % 4


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
