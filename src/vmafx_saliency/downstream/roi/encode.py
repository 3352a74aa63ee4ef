"""The ``roi encode`` job: plan, encode twice (plain and ROI), decode, compare.

:func:`run_encode` checks everything before the model runs (ffmpeg, the
encoder, the outputs), computes the ROI plan, runs two ABR encodes at the same
target bitrate (with and without the ``addroi`` chain) in a temporary work
folder, decodes them beside the source and reports luma PSNR inside and
outside the salient region. With an output folder the encodes, the map files
and the report are kept there; otherwise the work folder is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmafx_saliency._util import own_temporary_folder
from vmafx_saliency.downstream.roi.ffmpeg import (
    EncodeInput,
    EncodeSettings,
    _run,
    check_ffmpeg,
    encode_commands,
)
from vmafx_saliency.downstream.roi.measure import _stream_bytes, measure
from vmafx_saliency.downstream.roi.plan import (
    RoiPlan,
    _check_out_dir,
    _check_targets,
    _other_codec_file,
    compute_plan,
    map_targets,
    write_plan,
)
from vmafx_saliency.downstream.roi.report import EncodeReport, EncodeResult
from vmafx_saliency.downstream.roi.settings import (
    DEFAULT_RAW_FPS,
    ENCODER_CODEC,
    Codec,
    RoiSettings,
)
from vmafx_saliency.video.frames.stdin import check_rereadable

if TYPE_CHECKING:
    from vmafx_saliency.video.extract import InferSize
    from vmafx_saliency.video.frames import VideoInfo
    from vmafx_saliency.video.job import ModelChoice, VideoInput

logger = logging.getLogger(__name__)

# The two encodes, by name, and the files they become in the output folder.
VIDEO_NAMES = {"plain": "plain.mp4", "roi": "roi.mp4"}
REPORT_JSON = "report.json"
REPORT_TXT = "report.txt"


@dataclass(frozen=True, kw_only=True)
class ModelRun:
    """How the model runs over the clip: ``compute_plan``'s keyword arguments, as one value."""

    infer_size: InferSize = None
    threads: int | None = None  # ONNX Runtime threads; None: the default
    progress: bool = False  # a progress bar on stderr


@dataclass(frozen=True, kw_only=True)
class _Encoding:
    """What the two encodes share: the source, its plan, the settings, where they run."""

    video: VideoInput
    info: VideoInfo
    plan: RoiPlan
    settings: EncodeSettings
    ffmpeg: str  # the checked executable
    work: Path  # the temporary folder ffmpeg runs and writes in
    out_dir: Path | None

    @property
    def home(self) -> str:
        """Where the recorded commands write: ``out_dir``, or the work folder without one."""
        return str(self.out_dir.resolve()) if self.out_dir is not None else str(self.work)


def run_encode(
    video: VideoInput,
    model: ModelChoice,
    settings: RoiSettings,
    encode: EncodeSettings,
    *,
    out_dir: Path | None = None,
    run: ModelRun | None = None,
    force: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> EncodeReport:
    """``roi encode``: plan, encode twice (plain and ROI), decode, compare.

    Everything is checked before the model runs (ffmpeg, encoder, outputs), so
    a refusal costs nothing. With ``out_dir`` the encodes, the map files and
    the report are written there (each atomically); without it the encodes
    live in a temporary folder that is removed. ``run`` says how the model
    runs (default: ``ModelRun()``).
    """
    encode.validate()
    check_rereadable(
        video.path, reads="roi encode reads its source three times (the model, then two encodes)"
    )
    settings = _settings_for(encode, settings)
    ffmpeg = check_ffmpeg(encode.ffmpeg, encode.encoder)
    say = on_step or (lambda _message: None)
    if out_dir is not None:
        from vmafx_saliency.video.job import run_inputs

        _check_encode_targets(out_dir, settings.codec, reads=run_inputs(video, model), force=force)
    info = _probe(video)
    say("computing saliency")
    run = run or ModelRun()
    plan = compute_plan(
        video,
        model,
        settings,
        infer_size=run.infer_size,
        threads=run.threads,
        progress=run.progress,
    )
    made_out = out_dir is not None and not out_dir.exists()
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    # Named with our pid: a later run sweeps what a killed one left (SIGKILL, a power cut).
    here = out_dir if out_dir is not None else Path(tempfile.gettempdir())
    work = own_temporary_folder(here, "roi-encode").resolve()
    try:
        job = _Encoding(
            video=video,
            info=info,
            plan=plan,
            settings=encode,
            ffmpeg=ffmpeg,
            work=work,
            out_dir=out_dir,
        )
        report, paths = _encode_and_compare(job, say)
        if out_dir is None:
            return report
        return dataclasses.replace(report, written=_keep(report, paths, out_dir, force=force))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # now: the new out folder holds it
        if made_out and out_dir is not None:
            with contextlib.suppress(OSError):  # only if nothing else landed there
                out_dir.rmdir()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _settings_for(encode: EncodeSettings, settings: RoiSettings) -> RoiSettings:
    """The ROI settings on the encoder's block grid (addroi's codec), validated."""
    codec = ENCODER_CODEC[encode.encoder]
    if settings.codec != codec:
        settings = dataclasses.replace(settings, codec=codec)
    return settings.validate()


def _check_encode_targets(
    out_dir: Path, codec: Codec, *, reads: list[tuple[str, Path | None]], force: bool
) -> None:
    """Refuse before any work: the folder, the map files, the report and the encodes.

    None may be an input (``--out .`` beside a ``plain.mp4``): its own encode
    would replace it, --force or not.
    """
    _check_out_dir(out_dir)
    targets = [
        *map_targets(out_dir, codec),
        _other_codec_file(out_dir, codec),
        out_dir / REPORT_JSON,
        out_dir / REPORT_TXT,
        *(out_dir / n for n in VIDEO_NAMES.values()),
    ]
    _check_targets(targets, force=force, reads=reads)


def _probe(video: VideoInput) -> VideoInfo:
    """The source as the encodes read it; raw YUV without --fps gets a warning."""
    from vmafx_saliency.video.frames import open_video

    with open_video(
        video.path,
        width=video.width,
        height=video.height,
        pixel_format=video.pixel_format,
        fps=video.fps,
        color_range=video.color_range,
    ) as probe:
        info = probe.info
    if info.fps is None:
        logger.warning(
            "%s: raw YUV has no frame rate: the encodes and their kb/s assume %g fps; "
            "pass --fps for the clip's own",
            video.path, DEFAULT_RAW_FPS,
        )  # fmt: skip
    return info


def _encode_and_compare(
    job: _Encoding, say: Callable[[str], None]
) -> tuple[EncodeReport, dict[str, Path]]:
    """Both encodes, then the comparison; returns the report and the encodes' work paths."""
    commands: list[tuple[str, ...]] = []
    paths: dict[str, Path] = {}
    for name, chain in (("plain", ""), ("roi", job.plan.addroi)):
        paths[name], recorded = _encode(job, name, chain, say)
        commands += recorded
    say("decoding and comparing")
    results = _results(job, paths)
    report = EncodeReport(
        video=job.video.path,
        plan=job.plan,
        settings=job.settings,
        plain=results["plain"],
        roi=results["roi"],
        commands=tuple(commands),
    )
    return report, paths


def _encode(
    job: _Encoding, name: str, chain: str, say: Callable[[str], None]
) -> tuple[Path, list[tuple[str, ...]]]:
    """One encode (every pass) in the work folder; returns its file and its commands."""
    output = job.work / VIDEO_NAMES[name]
    passes = encode_commands(
        ffmpeg=job.ffmpeg,
        source=EncodeInput(
            info=job.info,
            start=job.plan.start,
            frame_count=job.plan.frame_count,
            rate=job.video.fps,
        ),
        settings=job.settings,
        roi_chain=chain,
        stats=job.work / f"{name}-2pass",
        output=output,
    )
    recorded: list[tuple[str, ...]] = []
    for number, command in enumerate(passes, start=1):
        say(f"{name} encode, pass {number}/{len(passes)}")
        _run(command, cwd=job.work, what=f"{name} encode pass {number} ({job.settings.encoder})")
        # Recorded as they would run again: the outputs and pass logs in --out,
        # not in the work folder that is removed at the end.
        recorded.append(tuple(arg.replace(str(job.work), job.home) for arg in command))
    return output, recorded


def _results(job: _Encoding, paths: dict[str, Path]) -> dict[str, EncodeResult]:
    """Decode the encodes beside the source: each one's size, rate and masked PSNR."""
    measured = measure(job.video, job.plan, [paths["plain"], paths["roi"]])
    peak = float((1 << job.info.bit_depth) - 1)
    fps = job.info.fps or DEFAULT_RAW_FPS
    results = {}
    for (name, path), (meter, frames) in zip(paths.items(), measured, strict=True):
        stream, _packets = _stream_bytes(path)
        results[name] = EncodeResult(
            name=name,
            path=(job.out_dir / VIDEO_NAMES[name]) if job.out_dir is not None else None,
            file_bytes=path.stat().st_size,
            stream_bytes=stream,
            frames=frames,
            bitrate=stream * 8 * fps / frames,
            psnr=meter.result(peak),
        )
    return results


def _keep(
    report: EncodeReport, paths: dict[str, Path], out_dir: Path, *, force: bool
) -> tuple[Path, ...]:
    """Write the map files, move the encodes in and write the report, each atomically."""
    from vmafx_saliency._util import atomic_write_text

    written = list(write_plan(report.plan, out_dir, force=force))
    for name, path in paths.items():
        target = out_dir / VIDEO_NAMES[name]
        path.replace(target)  # same folder: an atomic rename
        written.append(target)
    atomic_write_text(
        out_dir / REPORT_JSON, json.dumps(report.to_json(), indent=2) + "\n", force=force
    )
    atomic_write_text(out_dir / REPORT_TXT, report.render() + "\n", force=force)
    written += [out_dir / REPORT_JSON, out_dir / REPORT_TXT]
    return tuple(written)
