"""A whole run of the ``mobilesal`` extractor: video in, vmaf-format features out.

:func:`run_job` opens the video (:class:`VideoInput`), loads the model the user
chose (:class:`ModelChoice`, through the loader's gate) with the threads its
:class:`InferencePlan` gives, runs the frame loop of
:mod:`vmafx_saliency.video.extract` and writes every output :class:`Outputs`
names, or none: every refusal comes before any work, and a failure removes what
the run had written. Saliency maps go to a hidden folder moved into place at
the end (:class:`_MapWriter`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from vmafx_saliency._util import check_parents_are_folders, own_temporary_folder
from vmafx_saliency.errors import (
    NoFramesSelectedError,
    OutputError,
    OutputExistsError,
    UsageError,
    VmafxSaliencyError,
)
from vmafx_saliency.video import extract

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.supply.registry import ModelEntry, Preprocessing
    from vmafx_saliency.video.frames import Frame, FrameSource, VideoInfo
    from vmafx_saliency.video.output import FrameRecord, RunInfo

logger = logging.getLogger(__name__)

MODEL_PATH_ENV = "VMAF_MOBILESAL_MODEL_PATH"
EXTRACTOR = "mobilesal"


@dataclass(frozen=True, kw_only=True)
class ModelChoice:
    """Which model: a registry id, an ad-hoc file, or (neither) the registry default."""

    model_id: str | None = None
    model_path: Path | None = None
    sidecar: Path | None = None
    signed: bool = False
    provider: str = "cpu"  # ONNX Runtime's execution provider, by short name


def _locate(choice: ModelChoice) -> tuple[Path, Path] | ModelEntry:
    """An ad-hoc (model, sidecar) pair, or the registry entry the choice names."""
    from vmafx_saliency.supply.registry import Registry, sidecar_beside

    path = choice.model_path
    if path is None and choice.model_id is None and os.environ.get(MODEL_PATH_ENV):
        path = Path(os.environ[MODEL_PATH_ENV])
        if not path.is_file():
            # Said first: a user who named no model cannot tell where the path came from.
            raise UsageError(
                f"${MODEL_PATH_ENV} names {path}, which is not a file: set it to a model's "
                f"ONNX file, or unset it to use the registry's default"
            )
    if choice.sidecar is not None and path is None:
        raise UsageError(
            f"--sidecar {choice.sidecar} goes with --model-path (or ${MODEL_PATH_ENV}; "
            "sidecar= with model= a file in Python): a registered model uses the sidecar its "
            "registry entry names"
        )
    if path is not None:
        if choice.model_id is not None:
            raise UsageError("give --model or --model-path, not both")
        if choice.signed:
            # Fail closed: an ad-hoc file has no registry entry naming a bundle and a key.
            raise UsageError(
                f"--signed (signed=True in Python) needs a registered model, and {path} is an "
                "ad-hoc file: register it with its bundle ('vmafx-saliency registry add') and "
                "pass --model ID (model='ID' in Python)"
            )
        sidecar_path = choice.sidecar or sidecar_beside(path)
        if sidecar_path is None:
            from vmafx_saliency.supply.loader import read_model_bytes

            # The path layer first: a missing file or a folder is not a missing sidecar.
            read_model_bytes(path)
            raise UsageError(
                f"{path}: no sidecar JSON declares its pre-processing: pass --sidecar FILE "
                f"(sidecar= in Python) or put {path.stem}.sidecar.json beside it"
            )
        return path, sidecar_path
    registry = Registry.load()
    return registry.get(choice.model_id) if choice.model_id else registry.default_for(EXTRACTOR)


def load_model(choice: ModelChoice, *, threads: int | None) -> tuple[LoadedModel, Preprocessing]:
    """Load the chosen model through the loader's gate; ``threads``: intra-op threads."""
    return _load_found(
        _locate(choice), signed=choice.signed, threads=threads, provider=choice.provider
    )


def _load_found(
    found: tuple[Path, Path] | ModelEntry, *, signed: bool, threads: int | None, provider: str
) -> tuple[LoadedModel, Preprocessing]:
    from vmafx_saliency.supply import loader
    from vmafx_saliency.supply.registry import Sidecar

    if isinstance(found, tuple):
        path, sidecar_path = found
        sidecar = Sidecar.load(sidecar_path)
        loaded = loader.load_ad_hoc(path, sidecar=sidecar, threads=threads, provider=provider)
        return loaded, sidecar.preprocessing
    policy = loader.Policy.SIGNED if signed else loader.Policy.PINNED
    loaded = loader.load_entry(found, policy=policy, threads=threads, provider=provider)
    if loaded.sidecar is None:  # load_entry always reads the sidecar; keep mypy honest
        raise UsageError(f"{found.id}: no sidecar")
    return loaded, loaded.sidecar.preprocessing


# Models up to this size (the student: 0.74 MB) infer several frames at once, one
# thread each; larger ones (the mirror: 4.65 MB) one frame at a time on all the
# threads: on 2 cores the mirror's frames gain 3 % side by side (8.53 vs 8.31
# frames/s) while each frame in flight holds its own activations (peak RSS 752
# vs 471 MiB, growing with the cores). Figures: benchmarks/extract_throughput.py.
SMALL_MODEL_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class InferencePlan:
    """How ``threads`` inference threads are spent on a video."""

    frames: int  # frames inferred at once (extract's ``jobs``)
    threads_per_frame: int  # ONNX Runtime intra-op threads of the session

    @classmethod
    def for_model(cls, model_bytes: int, threads: int) -> InferencePlan:
        if model_bytes <= SMALL_MODEL_BYTES:
            return cls.side_by_side(threads)
        extract.check_threads(threads)
        return cls(frames=1, threads_per_frame=threads)

    @classmethod
    def side_by_side(cls, threads: int) -> InferencePlan:
        """``threads`` frames at once, one thread each: the plan of a small model."""
        extract.check_threads(threads)
        return cls(frames=threads, threads_per_frame=1)


def _default_threads() -> int:
    """Every core, up to the cap that an explicit --threads meets."""
    return min(extract.default_threads(), extract.MAX_THREADS)


@dataclass(frozen=True)
class ReadyModel:
    """A model already through the loader's gate (``vmafx_saliency.load_model``), run
    without loading it again: a pipeline loads it once for many videos."""

    loaded: LoadedModel
    pre: Preprocessing

    @classmethod
    def of(cls, loaded: LoadedModel) -> ReadyModel:
        if loaded.sidecar is None:
            raise UsageError(
                f"{loaded.path}: this loaded model carries no sidecar to pre-process frames "
                "with: load it with vmafx_saliency.load_model"
            )
        return cls(loaded, loaded.sidecar.preprocessing)

    def plan(self, threads: int | None) -> InferencePlan:
        """``threads`` frames side by side for a small model (as the extractor runs it)
        or one loaded with ``load_model(threads=1)``; else one frame at a time on the
        session's own threads. A small model's frames go side by side even on ONNX
        Runtime's default threads: on a 2-core AMD EPYC of family 25 that ran the INT8
        student at 213.0 frames/s against 169.4 one at a time, and 212.0 on one thread
        a session (``.venv/bin/python benchmarks/reuse_plan.py``: foreman, 120 frames,
        medians of three rounds, 2026-12-08)."""
        intra = int(self.loaded.session.get_session_options().intra_op_num_threads)
        if intra == 1 or self.loaded.size <= SMALL_MODEL_BYTES:
            return InferencePlan.side_by_side(threads or _default_threads())
        if threads is not None:
            loaded_with = f"{intra} threads" if intra else "ONNX Runtime's default threads"
            raise UsageError(
                f"threads={threads} with a model loaded with {loaded_with}: the threads are "
                "its session's; leave threads out, or load it with load_model(threads=1) to "
                "infer threads= frames at once"
            )
        return InferencePlan(frames=1, threads_per_frame=intra)


def load_for_video(
    choice: ModelChoice | ReadyModel, *, threads: int | None
) -> tuple[LoadedModel, Preprocessing, InferencePlan]:
    """:func:`load_model` with the session threads of the plan for this model's size
    (a :class:`ReadyModel` as it was loaded)."""
    if isinstance(choice, ReadyModel):
        return choice.loaded, choice.pre, choice.plan(threads)
    found = _locate(choice)
    onnx = found[0] if isinstance(found, tuple) else found.onnx
    try:
        size = onnx.stat().st_size  # a hint for the plan; the loader checks the file itself
    except OSError:
        size = 0  # the loader reports the missing file, in its own words
    plan = InferencePlan.for_model(size, threads or _default_threads())
    # The location found above, not a second look-up (the registry is read once).
    loaded, pre = _load_found(
        found, signed=choice.signed, threads=plan.threads_per_frame, provider=choice.provider
    )
    return loaded, pre, plan


@dataclass(frozen=True, kw_only=True)
class VideoInput:
    """A video and what the user said about it (raw YUV needs the geometry)."""

    path: Path
    width: int | None = None
    height: int | None = None
    pixel_format: str | None = None
    fps: float | None = None
    color_range: str | None = None
    start: int = 0
    end: int | None = None
    subsample: int = 1
    # The geometry is one of several clips' (compare): a clip with a header keeps its own.
    geometry_for_raw_only: bool = False

    def open(self) -> FrameSource:
        """Open the video for streaming with the geometry and overrides given."""
        from vmafx_saliency.video.frames import open_video

        return open_video(
            self.path,
            width=self.width,
            height=self.height,
            pixel_format=self.pixel_format,
            fps=self.fps,
            color_range=self.color_range,
            geometry_for_raw_only=self.geometry_for_raw_only,
        )


@dataclass(frozen=True, kw_only=True)
class Outputs:
    """Where the results go; every file is written atomically at the end."""

    output: Path | Literal["-"] | None = "-"
    fmt: Literal["json", "xml", "csv"] = "json"
    merge_into: Path | None = None
    merge_output: Path | None = None
    save_maps: Path | None = None
    maps_every: int = 1
    plot: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class JobResult:
    records: tuple[FrameRecord, ...]
    run: RunInfo
    extraction: extract.ExtractionResult
    written: tuple[Path, ...]


def _check_outputs(outputs: Outputs, *, reads: list[tuple[str, Path | None]]) -> None:
    """Refuse before any work is done, so a refusal costs nothing and writes nothing.

    ``reads``: the files the run reads (:func:`_util.check_inputs_spared`): no
    output may replace one, --force or not.
    """
    from vmafx_saliency._util import check_can_write, check_inputs_spared, refuse_dash, require
    from vmafx_saliency.video.maps import saved_maps

    _check_pairs(outputs)
    output = None if outputs.output in (None, "-") else Path(outputs.output)
    # -o onto the video would replace it with its own features, --force or not.
    # The maps folder keeps other files; --force replaces only its maps (maps.saved_maps).
    maps: list[tuple[str, Path | None]] = []
    if outputs.save_maps is not None:
        maps = [("--save-maps", m) for m in (outputs.save_maps, *saved_maps(outputs.save_maps))]
    check_inputs_spared(
        reads,
        files=[
            ("--output", output),
            ("--plot", outputs.plot),
            ("--merge-output", outputs.merge_output),
            *maps,
        ],
    )
    # Every path a run writes, once: -o onto the --merge-into file would replace
    # the vmaf scores with ours, -o onto the maps folder fail at the end.
    named: dict[Path, str] = {}
    for flag, path in (
        ("--merge-into", outputs.merge_into),
        ("--merge-output", outputs.merge_output),
        ("--output", None if outputs.output in (None, "-") else Path(outputs.output)),
        ("--plot", outputs.plot),
        ("--save-maps", outputs.save_maps),
    ):
        if path is None:
            continue
        if path.resolve() in named:
            raise UsageError(
                f"{flag} {path} is also {named[path.resolve()]}: give each its own path"
            )
        named[path.resolve()] = flag
    if outputs.output not in (None, "-"):
        check_can_write(Path(outputs.output), force=outputs.force)
    if outputs.plot is not None:
        refuse_dash(outputs.plot, flag="--plot")
        check_can_write(outputs.plot, force=outputs.force)
        agg = require("matplotlib.backends.backend_agg", purpose="--plot", extra="plot")
        fmt = outputs.plot.suffix.lstrip(".").lower() or "png"
        if fmt not in agg.FigureCanvasAgg.get_supported_filetypes():
            raise UsageError(
                f"--plot {outputs.plot}: matplotlib cannot write {fmt!r} files; "
                "use .png, .svg or .pdf"
            )
    if outputs.save_maps is not None:
        check_maps_folder(outputs.save_maps, force=outputs.force)
    if outputs.merge_into is not None:
        if not outputs.merge_into.is_file():
            what = "a folder" if outputs.merge_into.is_dir() else "no such file"
            raise UsageError(
                f"--merge-into {outputs.merge_into}: {what}: give the JSON file vmaf wrote"
            )
        target = outputs.merge_output or outputs.merge_into
        if target == outputs.merge_into and not outputs.force:
            raise UsageError(
                f"--merge-into {outputs.merge_into} would modify that file in place: pass "
                "--merge-output PATH for a new file, or --force to rewrite it"
            )
        if target != outputs.merge_into:
            check_can_write(target, force=outputs.force)


def _check_pairs(outputs: Outputs) -> None:
    """Options that mean something only beside another are refused alone, not ignored."""
    if outputs.maps_every < 1:
        raise UsageError(f"--maps-every {outputs.maps_every}: give a whole number >= 1")
    if outputs.maps_every != 1 and outputs.save_maps is None:
        raise UsageError(
            f"--maps-every {outputs.maps_every} thins the maps that --save-maps writes: "
            "add --save-maps DIR"
        )
    if outputs.merge_output is not None and outputs.merge_into is None:
        raise UsageError(
            f"--merge-output {outputs.merge_output} is where the merged vmaf JSON goes: add "
            "--merge-into VMAF.json, or give --output for our features alone"
        )


def check_maps_folder(folder: Path, *, force: bool) -> None:
    """Refuse a ``--save-maps`` folder that is a file, or that holds maps, unless --force.

    The folder may exist and hold other files (this run's JSON, the user's notes):
    those are never touched. --force replaces only the maps a previous run wrote,
    all of them, so no stale frame is taken for one of this run's.
    """
    from vmafx_saliency._util import refuse_dash
    from vmafx_saliency.video.maps import saved_maps

    refuse_dash(folder, kind="folder", flag="--save-maps")
    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise UsageError(f"--save-maps {folder}: not a folder; give a folder for the PNG maps")
    check_parents_are_folders(folder)
    old = saved_maps(folder)
    if old and not force:
        raise OutputExistsError(
            f"{folder} already holds saliency maps ({old[0].name}, ...): pass --force to "
            "replace them (other files there are kept), or give another folder"
        )


class _MapWriter:
    """Writes every N-th map into a hidden folder, moved into place at the end."""

    def __init__(self, target: Path, every: int, *, force: bool) -> None:
        self.target = target
        self.every = every
        self.force = force
        self.count = 0
        # Beside the target when it is new (one rename), inside it when it exists;
        # named with our pid, so a later run can sweep it if this one is killed.
        home = target if target.is_dir() else target.parent
        # Folders this run makes on the way, deepest first: a discarded run removes them.
        self.made = [f for f in (target.parent, *target.parent.parents) if not f.exists()]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = own_temporary_folder(home, target.name or "maps")
        except OSError as exc:
            self._remove_made()
            raise OutputError(
                f"cannot write maps into {target}: {exc.strerror or exc}: give a folder you "
                "can write to"
            ) from exc

    def __call__(self, frame_num: int, saliency: np.ndarray) -> None:
        from vmafx_saliency.video.maps import save_map

        if self.count % self.every == 0:
            save_map(self.tmp, frame_num, saliency)
        self.count += 1

    def commit(self) -> None:
        from vmafx_saliency.video.maps import saved_maps

        if not self.target.is_dir():
            self.tmp.chmod(0o755)
            self.tmp.replace(self.target)
            return
        # The folder exists (the user's, or made by this run's -o/--plot inside it):
        # swap the maps only, file by file, and leave every other file where it is.
        check_maps_folder(self.target, force=self.force)  # maps may have appeared since
        for old in saved_maps(self.target):
            try:
                old.unlink()
            except FileNotFoundError as exc:
                raise OutputError(
                    f"{self.target}: {old.name} went while this run replaced the maps: another "
                    "run is writing maps there; give each run its own --save-maps folder"
                ) from exc
        for new in sorted(self.tmp.iterdir()):
            new.replace(self.target / new.name)
        self.tmp.rmdir()

    def discard(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
        self._remove_made()

    def _remove_made(self) -> None:
        for folder in self.made:
            try:
                folder.rmdir()
            except OSError:  # absent, or something else was put there meanwhile: it stays
                break


def extract_video(  # noqa: PLR0913 -- what one run of the extractor over a clip takes
    source: FrameSource,
    video: VideoInput,
    loaded: LoadedModel,
    pre: Preprocessing,
    *,
    jobs: int = 1,
    infer_size: extract.InferSize,
    progress: bool,
    on_map: Callable[[int, np.ndarray], None] | None,
    warn_past_the_end: bool = True,
) -> tuple[extract.ExtractionResult, int]:
    """The frames ``video`` selects from the open ``source``, through the model, ``jobs``
    frames at once (an :class:`InferencePlan`'s ``frames``): the result and the frames
    decoded. A range past the end warns (unless a caller that reads the clip again has
    said so already); one wholly past it is refused with the clip's frame count."""
    from vmafx_saliency.video.frames import select_frames

    tally = FrameTally()
    frames = select_frames(
        tally.counted(source), start=video.start, end=video.end, subsample=video.subsample
    )
    try:
        # Looked up on the module, as before the split: a wrapper put there
        # (benchmarks/extract_cpu_split.py times the frame loop) is the one run.
        result = extract.extract(
            frames,
            loaded,
            pre=pre,
            color_range=source.info.color_range,
            infer_size=infer_size,
            progress=extract.Progress(total=expected_count(source.info, video), enabled=progress),
            on_map=on_map,
            jobs=jobs,
        )
    except NoFramesSelectedError as exc:
        raise tally.none_selected(video) from exc
    if warn_past_the_end:
        tally.warn_past_the_end(video, computed=len(result.features))
    return result, tally.decoded


@dataclass
class FrameTally:
    """Every frame read, including those --frames/--subsample skip (vmaf's fps counts
    every picture it reads: output.RunInfo), and what that says of a frame range."""

    decoded: int = 0

    def counted(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in frames:
            self.decoded += 1
            yield frame

    def none_selected(self, video: VideoInput) -> NoFramesSelectedError:
        return NoFramesSelectedError(
            f"{video.path}: no frames were selected of its {self.decoded}: check --frames "
            "and --subsample (frames=, subsample= in Python; frames are numbered from 0)"
        )

    def warn_past_the_end(self, video: VideoInput, *, computed: int) -> None:
        if video.end is not None and self.decoded < video.end:
            logger.warning(
                "%s: --frames %d:%d (frames= in Python) runs past the end: the video has %d "
                "frames, so %d were computed",
                video.path, video.start, video.end, self.decoded, computed,
            )  # fmt: skip


def run_inputs(video: VideoInput, model: ModelChoice | ReadyModel) -> list[tuple[str, Path | None]]:
    """The files a run reads, as :func:`_util.check_inputs_spared` takes them.

    The model's are found as the loader will find them: ``$VMAF_MOBILESAL_MODEL_PATH``,
    a sidecar beside the model, or a registry entry's files.
    """
    return [("the input video", video.path), *model_inputs(model)]


def model_inputs(model: ModelChoice | ReadyModel) -> list[tuple[str, Path | None]]:
    """The model's files, as :func:`run_inputs` gives them."""
    from vmafx_saliency.supply.registry import overlay_registry_path

    if isinstance(model, ReadyModel):
        return [("the loaded model's file", model.loaded.path)]
    try:
        found = _locate(model)
    except VmafxSaliencyError:
        # The loader raises this again in its turn, after the video's own checks; until
        # then the paths given are all there is to spare.
        return [("--model-path", model.model_path), ("--sidecar", model.sidecar)]
    if isinstance(found, tuple):
        return [
            ("--model-path" if model.model_path else f"${MODEL_PATH_ENV}", found[0]),
            ("--sidecar" if model.sidecar else "the sidecar beside the model", found[1]),
        ]
    return [
        (f"model {found.id}", found.onnx),
        (f"the sidecar of {found.id}", found.sidecar),
        (f"the Sigstore bundle of {found.id}", found.sigstore_bundle),
        (f"the licence of {found.id}", found.license_file),
        (f"the manifest of {found.id}", found.manifest),
        ("the registry", found.registry),
        # Read too (a model of the committed registry is looked up through it).
        ("the overlay registry", overlay_registry_path()),
    ]


def run_job(
    video: VideoInput,
    model: ModelChoice | ReadyModel,
    outputs: Outputs,
    *,
    infer_size: extract.InferSize = None,
    threads: int | None = None,
    progress: bool = False,
) -> JobResult:
    """The extractor end to end: open, load, extract, write. No partial output on failure.

    ``threads`` (default: the cores available) are spent as
    :class:`InferencePlan` says: on a small model, that many frames at once.
    """
    from vmafx_saliency import __version__
    from vmafx_saliency.video.output import FrameRecord, RunInfo

    _check_outputs(outputs, reads=run_inputs(video, model))
    source = video.open()
    with source:
        info = source.info
        loaded, pre, plan = load_for_video(model, threads=threads)
        maps = (
            _MapWriter(outputs.save_maps, outputs.maps_every, force=outputs.force)
            if outputs.save_maps
            else None
        )
        try:
            result, decoded = extract_video(
                source,
                video,
                loaded,
                pre,
                jobs=plan.frames,
                infer_size=infer_size,
                progress=progress,
                on_map=maps,
            )
        except BaseException:
            if maps is not None:
                maps.discard()
            raise
    records = tuple(FrameRecord(f.frame_num, f.metrics()) for f in result.features)
    (frame_h, frame_w), (infer_h, infer_w) = result.frame_size, result.infer_size
    native = result.infer_size == result.frame_size
    run = RunInfo(
        version=f"vmafx-saliency {__version__}",
        fps=decoded / result.seconds if result.seconds > 0 else 0.0,
        model_id=loaded.model_id,
        model_sha256=loaded.sha256,
        infer_size=None if native else (infer_w, infer_h),
        frame_size=(frame_w, frame_h),
        map_note=None
        if native
        else f"saliency_map computed at {infer_w}x{infer_h}, frame is {frame_w}x{frame_h}",
        subsample=video.subsample,
        source=str(video.path),
        rotation=info.rotation,
        provider=loaded.provider,
    )
    title = f"{video.path.name}: {loaded.model_id or 'ad hoc'}"
    written = _write_outputs(outputs, records, run, maps, title=title)
    return JobResult(records, run, result, tuple(written))


def _write_outputs(
    outputs: Outputs,
    records: tuple[FrameRecord, ...],
    run: RunInfo,
    maps: _MapWriter | None,
    *,
    title: str,
) -> list[Path]:
    """Write every output, or none: a failure removes the files this run created
    and the maps folder, so no partial result is left behind."""
    from vmafx_saliency.video.maps import plot_series
    from vmafx_saliency.video.merge import merge_into
    from vmafx_saliency.video.output import write_output

    written: list[Path] = []
    created: list[Path] = []

    def wrote(path: Path, existed: bool) -> None:
        written.append(path)
        if not existed:
            created.append(path)

    try:
        # The merge is the write most likely to be refused (frame numbers): do it first.
        if outputs.merge_into is not None:
            target = outputs.merge_output or outputs.merge_into
            existed = target.exists()
            wrote(
                merge_into(
                    outputs.merge_into, records, out=outputs.merge_output, force=outputs.force
                ),
                existed,
            )
        if outputs.output not in (None, "-"):
            path = Path(outputs.output)
            existed = path.exists()
            write_output(records, run, path=path, fmt=outputs.fmt, force=outputs.force)
            wrote(path, existed)
        if outputs.plot is not None:
            existed = outputs.plot.exists()
            plot_series(outputs.plot, records, title=title)
            wrote(outputs.plot, existed)
        if maps is not None:
            maps.commit()
            written.append(maps.target)
    except BaseException:
        if maps is not None:
            maps.discard()
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    # Standard output last: what is printed cannot be taken back.
    if outputs.output == "-":
        write_output(records, run, path="-", fmt=outputs.fmt, force=outputs.force)
    return written


def expected_count(info: VideoInfo, video: VideoInput) -> int | None:
    """Frames the model will see, for the progress bar (None when the count is unknown)."""
    if info.frame_count is None:
        return None
    end = info.frame_count if video.end is None else min(video.end, info.frame_count)
    span = max(end - video.start, 0)
    return (span + video.subsample - 1) // video.subsample
