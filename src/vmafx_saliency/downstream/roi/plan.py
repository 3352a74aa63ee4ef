"""The ``roi map`` job: run the model over a clip, plan the ROI, write the map files.

:func:`compute_plan` feeds every map the model makes to a
:class:`~vmafx_saliency.downstream.roi.mapping.TemporalAggregator` and turns
the aggregate into a :class:`RoiPlan`: the static block offsets, the
per-picture offsets (``per-frame``, ``ema``), the addroi regions and the x265
zones. :func:`write_plan` writes its files (each atomically) and
:func:`run_map` is the whole command, refusing before any work when an output
exists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vmafx_saliency.downstream.roi.formats import (
    Region,
    Zone,
    addroi_filter,
    plan_zones,
    regions_from_offsets,
    render_regions,
    svtav1_roi_map,
    zones_string,
)
from vmafx_saliency.downstream.roi.mapping import (
    SIGMA_FLOOR,
    TemporalAggregator,
    block_offsets,
    offset_levels,
)
from vmafx_saliency.downstream.roi.settings import DEFAULT_RAW_FPS, Codec, RoiSettings
from vmafx_saliency.errors import UsageError

if TYPE_CHECKING:
    from vmafx_saliency.video.extract import InferSize
    from vmafx_saliency.video.frames import VideoInfo
    from vmafx_saliency.video.job import ModelChoice, VideoInput

SCHEMA = "vmafx-saliency/roi/v1"
FILE_OFFSETS = "roi_offsets.json"
FILE_ADDROI = "addroi.txt"
FILE_SVTAV1 = "svtav1_roi.txt"
FILE_ZONES = "x265_zones.txt"


@dataclass(frozen=True, eq=False)
class RoiPlan:
    """Everything ``roi map`` computed for one video."""

    settings: RoiSettings
    video: Path
    model: str
    model_sha256: str
    frame_hw: tuple[int, int]
    infer_hw: tuple[int, int]
    fps: float | None
    start: int
    frame_count: int  # frames in the range [start, start + frame_count)
    subsample: int
    frames: tuple[int, ...]  # the frames the model saw
    frame_means: tuple[float, ...]
    block_saliency: np.ndarray  # the static (time-aggregated) block map
    offsets: np.ndarray  # its quantised QP offsets
    pictures: tuple[tuple[int, np.ndarray], ...]  # per-picture offsets (per-frame, ema)
    regions: tuple[Region, ...]  # addroi, h264/hevc only
    zones: tuple[Zone, ...]
    seconds: float

    @property
    def block_size(self) -> int:
        return self.settings.block_size

    @property
    def applied(self) -> np.ndarray:
        """The static offsets the encoder applies: the rendered regions for addroi."""
        if self.settings.codec == "av1":
            return self.offsets
        return render_regions(self.regions, frame_hw=self.frame_hw, block=self.block_size)

    def salient_mask(self) -> np.ndarray:
        """Pixels (H x W bool) in blocks the encoder gives a negative offset."""
        blocks = self.applied < 0
        mask = np.repeat(np.repeat(blocks, self.block_size, axis=0), self.block_size, axis=1)
        height, width = self.frame_hw
        result: np.ndarray = mask[:height, :width]
        return result

    @property
    def addroi(self) -> str:
        return addroi_filter(self.regions)

    @property
    def svtav1(self) -> str:
        return svtav1_roi_map(self.pictures or ((0, self.offsets),))

    @property
    def x265_zones(self) -> str:
        # With no zone to set, one no-op zone over the clip keeps the documented
        # `zones=$(cat x265_zones.txt)` valid: x265 refuses an empty `zones=`.
        return zones_string(self.zones) or f"0,{self.frame_count},b=1.00"

    def output_files(self) -> dict[str, str]:
        """File name -> content for the map folder."""
        files = {FILE_OFFSETS: json.dumps(self.to_json(), indent=2) + "\n"}
        if self.settings.codec == "av1":
            files[FILE_SVTAV1] = self.svtav1
        else:
            files[FILE_ADDROI] = self.addroi + "\n"
        files[FILE_ZONES] = self.x265_zones + "\n"
        return files

    def to_json(self) -> dict[str, Any]:
        s = self.settings
        height, width = self.frame_hw
        rows, cols = self.offsets.shape
        applied = self.applied
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "video": str(self.video),
            "model": self.model,
            "model_sha256": self.model_sha256,
            "frame_size": [width, height],
            "infer_size": [self.infer_hw[1], self.infer_hw[0]],
            "fps": self.fps,
            "codec": s.codec,
            "block_size": s.block_size,
            "grid": {"cols": cols, "rows": rows},
            "mapping": {
                "formula": "clamp(-strength * (s - mean) / max(std, sigma_floor), -clamp, clamp)",
                "strength": s.strength,
                "clamp": s.clamp,
                "sigma_floor": SIGMA_FLOOR,
                "levels": [int(v) for v in offset_levels(s.clamp, s.levels)],
                "units": "AV1 QP (qindex / 4)" if s.codec == "av1" else "QP (8-bit)",
            },
            "aggregate": s.aggregate,
            "ema_alpha": s.ema_alpha if s.aggregate == "ema" else None,
            "frames": {
                "start": self.start,
                "count": self.frame_count,
                "subsample": self.subsample,
                "computed": list(self.frames),
            },
            "frame_saliency_mean": [round(m, 6) for m in self.frame_means],
            "block_saliency": np.round(self.block_saliency, 5).tolist(),
            "offsets": self.offsets.astype(int).tolist(),
            "applied_offsets": applied.astype(int).tolist(),
            "salient_fraction": round(float(self.salient_mask().mean()), 5),
            "zones": [{"start": z.start, "end": z.end, "factor": z.factor} for z in self.zones],
            "x265_zones": self.x265_zones,
        }
        if s.codec != "av1":
            doc["max_regions"] = s.max_regions
            doc["regions"] = [r.to_json() for r in self.regions]
            doc["addroi"] = self.addroi
        if self.pictures:
            doc["pictures"] = [
                {"picture": p, "offsets": o.astype(int).tolist()} for p, o in self.pictures
            ]
        return doc


def compute_plan(
    video: VideoInput,
    model: ModelChoice,
    settings: RoiSettings,
    *,
    infer_size: InferSize = None,
    threads: int | None = None,
    progress: bool = False,
) -> RoiPlan:
    """Run the model over the video and turn its maps into an ROI plan."""
    from vmafx_saliency.video.job import extract_video, load_for_video

    settings.validate()
    source = video.open()
    with source:
        info = source.info
        loaded, pre, plan = load_for_video(model, threads=threads)
        frame_hw = (info.height, info.width)
        acc = TemporalAggregator(settings, frame_hw, video.start)
        result, _ = extract_video(
            source,
            video,
            loaded,
            pre,
            jobs=plan.frames,
            infer_size=infer_size,
            progress=progress,
            on_map=acc,
        )
    frame_count = _range_length(info, video, last_seen=acc.frames[-1])
    static = acc.static_blocks()
    offsets = block_offsets(static, acc.areas, settings)
    regions: tuple[Region, ...] = ()
    if settings.codec != "av1":
        regions = regions_from_offsets(
            offsets,
            frame_hw=frame_hw,
            block=settings.block_size,
            clamp=settings.clamp,
            levels=settings.levels,
            max_regions=settings.max_regions,
        )
    zone_frames = settings.zone_frames or max(1, round(info.fps or DEFAULT_RAW_FPS))
    zones = plan_zones(
        [(f - video.start, m) for f, m in zip(acc.frames, acc.frame_means, strict=True)],
        frame_count=frame_count,
        zone_frames=zone_frames,
    )
    return RoiPlan(
        settings=settings,
        video=video.path,
        model=loaded.model_id or str(loaded.path),
        model_sha256=loaded.sha256,
        frame_hw=frame_hw,
        infer_hw=result.infer_size,
        fps=info.fps,
        start=video.start,
        frame_count=frame_count,
        subsample=video.subsample,
        frames=tuple(acc.frames),
        frame_means=tuple(acc.frame_means),
        block_saliency=static,
        offsets=offsets,
        pictures=tuple(acc.pictures),
        regions=regions,
        zones=zones,
        seconds=result.seconds,
    )


def _range_length(info: VideoInfo, video: VideoInput, *, last_seen: int) -> int:
    """Frames in the selected range: from the container's count, else up to the last seen."""
    if info.frame_count is not None:
        end = info.frame_count if video.end is None else min(video.end, info.frame_count)
    else:
        end = video.end if video.end is not None else last_seen + 1
    return max(end - video.start, last_seen + 1 - video.start)


def _check_targets(
    targets: Sequence[Path], *, force: bool, reads: Sequence[tuple[str, Path | None]] = ()
) -> None:
    """Refuse before any work when an output exists and --force was not given.

    ``reads``: the run's inputs (:func:`job.run_inputs`), which no target may be.
    """
    from vmafx_saliency._util import check_can_write, check_inputs_spared

    check_inputs_spared(reads, files=[(f"--out's {path.name}", path) for path in targets])
    for path in targets:
        if path.is_dir():
            raise UsageError(f"{path} is a directory, not a file: remove it or pick another --out")
        check_can_write(path, force=force)


def map_targets(out_dir: Path, codec: Codec) -> tuple[Path, ...]:
    names = [FILE_OFFSETS, FILE_SVTAV1 if codec == "av1" else FILE_ADDROI, FILE_ZONES]
    return tuple(out_dir / name for name in names)


def _other_codec_file(out_dir: Path, codec: Codec) -> Path:
    """The map file a run for the other kind of codec writes, which this run does not."""
    return out_dir / (FILE_ADDROI if codec == "av1" else FILE_SVTAV1)


def _check_out_dir(out_dir: Path) -> None:
    from vmafx_saliency._util import check_out_folder

    check_out_folder(out_dir, purpose="the map files")


def write_plan(plan: RoiPlan, out_dir: Path, *, force: bool) -> tuple[Path, ...]:
    """Write the map files into ``out_dir``, each atomically."""
    from vmafx_saliency._util import atomic_write_text

    _check_out_dir(out_dir)
    files = plan.output_files()
    stale = _other_codec_file(out_dir, plan.settings.codec)
    _check_targets([*(out_dir / name for name in files), stale], force=force)
    written = []
    for name, text in files.items():
        atomic_write_text(out_dir / name, text, force=force)
        written.append(out_dir / name)
    # An earlier run's map for the other codec would sit beside this clip's
    # offsets and read as if it were theirs (--force was checked above).
    stale.unlink(missing_ok=True)
    return tuple(written)


def run_map(
    video: VideoInput,
    model: ModelChoice,
    settings: RoiSettings,
    out_dir: Path,
    *,
    infer_size: InferSize = None,
    threads: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> tuple[RoiPlan, tuple[Path, ...]]:
    """``roi map``: refuse early, compute the plan, write its files."""
    from vmafx_saliency.video.job import run_inputs

    settings.validate()
    _check_out_dir(out_dir)
    _check_targets(
        [*map_targets(out_dir, settings.codec), _other_codec_file(out_dir, settings.codec)],
        force=force,
        reads=run_inputs(video, model),
    )
    plan = compute_plan(
        video, model, settings, infer_size=infer_size, threads=threads, progress=progress
    )
    return plan, write_plan(plan, out_dir, force=force)
