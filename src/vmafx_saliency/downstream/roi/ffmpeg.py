"""ffmpeg for ``roi encode``: the encode settings, the ffmpeg checks and the commands.

:class:`EncodeSettings` holds what the plain and the ROI encode share (encoder,
target bitrate, preset, threads, passes, the ffmpeg to run);
:func:`check_ffmpeg` refuses early unless ffmpeg has the encoder and the
``addroi`` filter; :func:`encode_commands` builds the command(s) of one ABR
encode (1 or 2 passes) and ``_run`` runs one, turning a failure into an
:class:`~vmafx_saliency.errors.EncodeError` that quotes the command.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmafx_saliency.downstream.roi.settings import DEFAULT_RAW_FPS, ENCODERS, Encoder
from vmafx_saliency.errors import EncodeError, MissingDependencyError, UsageError

if TYPE_CHECKING:
    from vmafx_saliency.video.frames import VideoInfo

_BITRATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKM]?)\s*$")


def parse_bitrate(text: str) -> int:
    """``300k`` / ``1.5M`` / ``250000`` -> bits per second."""
    match = _BITRATE.match(text)
    if not match:
        # ffmpeg reads a lowercase m as milli: refuse it rather than guess.
        hint = " (M is mega; ffmpeg reads m as milli)" if text.rstrip().endswith("m") else ""
        raise UsageError(
            f"--bitrate {text!r}: give bits per second, e.g. 300k, 1.5M or 250000{hint}"
        )
    scale = {"": 1, "k": 1000, "m": 1_000_000}[match.group(2).lower()]
    value = round(float(match.group(1)) * scale)
    if value < 1000:
        raise UsageError(f"--bitrate {text!r} is below 1 kb/s: give e.g. 300k")
    return value


# The presets libx264 and libx265 share, fastest first (x264 --help, x265 --help).
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
    "veryslow", "placebo",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class EncodeSettings:
    """How ``roi encode`` runs ffmpeg: the same for the plain and the ROI encode."""

    encoder: Encoder
    bitrate: int  # bits per second
    preset: str = "medium"
    threads: int | None = None  # encoder threads; None: the encoder decides
    passes: int = 2  # 2: two-pass ABR (sizes land closest to the target); 1: one-pass ABR
    ffmpeg: str = "ffmpeg"

    def validate(self) -> EncodeSettings:
        if self.encoder not in ENCODERS:
            raise UsageError(
                f"unknown encoder {self.encoder!r}: --codec takes one of {', '.join(ENCODERS)} "
                "(addroi is honoured by libx264 and libx265 only; for AV1 use 'roi map --codec "
                "av1' and SvtAv1EncApp --roi-map-file)"
            )
        if self.bitrate < 1000:
            raise UsageError(f"bitrate {self.bitrate} b/s is below 1 kb/s: give e.g. 300k")
        if self.preset not in PRESETS:
            raise UsageError(f"--preset {self.preset!r}: give one of {', '.join(PRESETS)}")
        if self.passes not in (1, 2):
            raise UsageError(f"--passes {self.passes}: give 1 (one-pass ABR) or 2 (two-pass)")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--encode-threads {self.threads}: give 1 or more")
        return self


def find_ffmpeg(ffmpeg: str = "ffmpeg") -> str:
    """The ffmpeg executable, or an error that says how to install it."""
    path = shutil.which(ffmpeg)
    if path is None and os.sep in ffmpeg:
        raise MissingDependencyError(
            f"--ffmpeg {ffmpeg}: no executable file there: give the path of an ffmpeg binary, "
            "or leave --ffmpeg out to run the one on PATH"
        )
    if path is None:
        raise MissingDependencyError(
            f"ffmpeg ({ffmpeg!r}) was not found on PATH: 'roi encode' runs it to encode and "
            "needs its addroi filter and libx264/libx265: install Debian's package with "
            "'apt-get install ffmpeg' (or pass --ffmpeg PATH)"
        )
    return path


def _ffmpeg_list(ffmpeg: str, what: str) -> str:
    try:
        done = subprocess.run(
            [ffmpeg, "-hide_banner", what], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise MissingDependencyError(
            f"{ffmpeg} cannot be run ({exc}): install Debian's ffmpeg with 'apt-get install "
            "ffmpeg' (or pass --ffmpeg PATH)"
        ) from exc
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["nothing on stderr"])[-1]
        raise MissingDependencyError(
            f"{ffmpeg} {what} failed (exit {done.returncode}: {said}): is it ffmpeg? Install "
            "Debian's with 'apt-get install ffmpeg' (or pass --ffmpeg PATH)"
        )
    return done.stdout


def check_ffmpeg(ffmpeg: str, encoder: str) -> str:
    """Refuse early unless ffmpeg has the encoder and the addroi filter."""
    path = find_ffmpeg(ffmpeg)
    encoders = {
        parts[1]
        for line in _ffmpeg_list(path, "-encoders").splitlines()
        if len(parts := line.split()) >= 2 and parts[0].startswith("V")
    }
    if encoder not in encoders:
        raise MissingDependencyError(
            f"{path} has no {encoder} encoder (see '{path} -encoders'): install an ffmpeg "
            "built with it (Debian's 'apt-get install ffmpeg' has libx264 and libx265)"
        )
    listing = _ffmpeg_list(path, "-filters").splitlines()
    filters = {parts[1] for line in listing if len(parts := line.split()) >= 2}
    if "addroi" not in filters:
        raise MissingDependencyError(
            f"{path} has no addroi filter (see '{path} -filters'): it needs ffmpeg 4.3 or "
            "newer (Debian: 'apt-get install ffmpeg')"
        )
    return path


def _input_args(info: VideoInfo, *, rate: float | None) -> list[str]:
    """ffmpeg input options: raw YUV has no header, so its geometry goes on the command line.

    ``rate`` is the user's --fps: the encoders must see the frame rate that the
    kb/s figures are computed at, so it overrides the file's own (``-r`` before
    ``-i`` restamps the input at that constant rate).
    """
    source = str(info.path.resolve())  # ffmpeg runs in the work folder: no relative paths
    if info.container != "raw":
        return [*(["-r", f"{rate:g}"] if rate else []), "-i", source]
    return [
        "-f", "rawvideo", "-pixel_format", info.pixel_format,
        "-video_size", f"{info.width}x{info.height}",
        "-framerate", f"{rate or info.fps or DEFAULT_RAW_FPS:g}",
        "-i", source,
    ]  # fmt: skip


def _video_filter(start: int, roi_chain: str) -> str:
    parts = []
    if start > 0:
        parts.append(f"trim=start_frame={start},setpts=PTS-STARTPTS")
    if roi_chain:
        parts.append(roi_chain)
    return ",".join(parts) or "null"


@dataclass(frozen=True, kw_only=True)
class EncodeInput:
    """What one encode reads: the source, the frame rate forced on it, the frame range."""

    info: VideoInfo  # the source as probed (raw YUV: its geometry goes on the command line)
    start: int  # the first frame of the range
    frame_count: int
    rate: float | None = None  # the user's --fps: overrides the file's own


def encode_commands(
    *,
    ffmpeg: str,
    source: EncodeInput,
    settings: EncodeSettings,
    roi_chain: str,
    stats: Path,
    output: Path,
) -> tuple[tuple[str, ...], ...]:
    """The ffmpeg command(s) of one encode: ABR at ``settings.bitrate``, 1 or 2 passes.

    Both passes carry the same ROI chain: x265 documents quant offsets that
    differ between passes as undefined, and x264's second pass predicts from
    the first pass's statistics.
    """
    if ":" in str(stats):  # x265-params separates options with ':'
        raise UsageError(f"{stats}: the stats path may not contain ':'; use another --out")
    inputs = _input_args(source.info, rate=source.rate)
    head = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *inputs]
    common = [
        "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", _video_filter(source.start, roi_chain),
        "-frames:v", str(source.frame_count),
        "-c:v", settings.encoder, "-preset", settings.preset,
        "-b:v", str(settings.bitrate),
    ]  # fmt: skip
    numbers = (1, 2) if settings.passes == 2 else (0,)
    commands = []
    for number in numbers:
        extra: list[str] = []
        if settings.encoder == "libx264":
            if number:
                extra += ["-pass", str(number), "-passlogfile", str(stats)]
            if settings.threads is not None:
                extra += ["-threads", str(settings.threads)]
        else:
            params = [f"pass={number}", f"stats={stats}"] if number else []
            params.append("log-level=error")
            if settings.threads is not None:
                params += [f"pools={settings.threads}", "frame-threads=1"]
            extra += ["-x265-params", ":".join(params)]
        sink = ["-f", "null", "-"] if number == 1 else [str(output)]
        commands.append(tuple([*head, *common, *extra, *sink]))
    return tuple(commands)


def _run(command: Sequence[str], *, cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise EncodeError(f"{what}: ffmpeg could not be started ({exc})") from exc
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-5:]) or "no message"
        # libx264's refusal of a rate its second pass cannot reach on a clip this short.
        hint = (
            "raise --bitrate, encode more frames, or pass --passes 1; "
            if "bitrate is too low" in done.stderr
            else ""
        )
        raise EncodeError(
            f"{what}: ffmpeg exited with status {done.returncode} ({tail}); {hint}the command "
            f"was: {shlex.join(command)}"
        )
