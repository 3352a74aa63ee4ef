"""``vmafx-saliency train``, the whole run: label, train, export, into one folder.

The recipe, in order:

1. **Teacher labels** (:mod:`.labels`): the teacher labels every training image
   once, into a cache keyed by its sha256.
2. **Deployment input** (:mod:`.data`): the student sees what the extractor
   feeds it, BT.601 luma tiled to three channels, so it learns to reproduce the
   RGB teacher from luma.
3. **Training** (:mod:`.loop`): BCE + soft IoU against the soft teacher map,
   Adam, cosine schedule, flips / random scaled crops / brightness-contrast on
   the luma, fixed seed, deterministic on CPU, a checkpoint every epoch
   (``--resume``), model selection on a held-out split of the training images
   against the teacher (never on PASCAL-S, which is refused as a training folder).
4. **Export** (:mod:`.export`): ONNX opset 17 with the mirror's checks, a
   manifest, the sidecar, and a training record written here.

torch, onnx and Pillow are imported lazily (the ``export`` extra).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from vmafx_saliency._util import (
    atomic_write_bytes,
    atomic_write_text,
    check_can_write,
    check_inputs_spared,
    check_out_folder,
    sha256_bytes,
    sha256_file,
)
from vmafx_saliency.errors import InputFileError, UsageError
from vmafx_saliency.science.train.checkpoint import load_checkpoint
from vmafx_saliency.science.train.config import (
    DEFAULT_TEACHER,
    MODEL_ID,
    TrainConfig,
    autocast_bf16,
    check_choices,
    check_ema,
    check_freeze_batchnorm,
    check_loss_weights,
    check_schedule,
    default_images,
)
from vmafx_saliency.science.train.data import (
    Sample,
    check_train_extra,
    collect_samples,
    image_list_sha256,
    require_torch,
    split_samples,
)
from vmafx_saliency.science.train.export import (
    OPSET,
    StudentExport,
    export_student,
    parity_inputs,
    student_manifest,
    student_sidecar,
)
from vmafx_saliency.science.train.init_from import check_init_from
from vmafx_saliency.science.train.labels import (
    LabelStats,
    Teacher,
    default_cache_root,
    ensure_labels,
    label_protocol,
    load_arrays,
    load_teacher,
)
from vmafx_saliency.science.train.loop import TrainOutcome, check_resumable, train_student
from vmafx_saliency.science.train.losses import LOSS_DESCRIPTIONS
from vmafx_saliency.science.train.report import display, dump_json, versions
from vmafx_saliency.science.train.step import build_student, native_bf16, warn_if_bf16_emulated

log = logging.getLogger(__name__)

TRAINING_RECORD_SCHEMA = "vmafx-saliency/training-record/v1"
# run_training's default: a TrainConfig is frozen, so one serves every call.
_DEFAULT_CONFIG = TrainConfig()


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    onnx: Path
    manifest: Path
    sidecar: Path
    record: Path
    export: StudentExport
    outcome: TrainOutcome
    labels: LabelStats
    wall_seconds: float

    def render(self) -> str:
        best = self.outcome.history[self.outcome.best_epoch - 1]
        ema = self.outcome.best_weights == "ema"
        mae = best.ema_val_mae if ema else best.val_mae
        max_f = best.ema_val_max_f if ema else best.val_max_f
        lines = [
            f"wrote {self.onnx} ({len(self.export.onnx_bytes):,} bytes, "
            f"sha256 {self.export.sha256})",
            f"wrote {self.manifest}",
            f"wrote {self.sidecar}",
            f"wrote {self.record}",
            f"  {MODEL_ID}: {self.export.params:,} parameters, "
            f"{self.export.macs_320 / 1e9:.3f} GMAC at 320x320, opset {OPSET}",
            f"  best epoch {best.epoch}{' (moving average)' if ema else ''}: "
            f"val MAE {mae:.4f}, val maxF {max_f:.4f} (vs the teacher)",
            f"  teacher labels: {self.labels.computed} computed, {self.labels.reused} reused "
            f"({self.labels.cache_dir})",
            f"  wall time {self.wall_seconds / 60:.1f} min",
        ]
        for fig in self.export.parity:
            lines.append(
                f"  parity {fig.height}x{fig.width}: max |ORT - torch| = {fig.max_abs_diff:.2e} "
                f"<= {fig.tolerance:.0e} ({fig.image})"
            )
        return "\n".join(lines)


def data_key(
    *,
    train: Sequence[Sample],
    val: Sequence[Sample],
    extra_val: Sequence[Sample],
    teacher_sha256: str,
    teacher_input: str,
) -> str:
    """What a run trains and selects on, by content: one digest for the checkpoint."""
    masks = [(s.sha256, sha256_file(s.mask)) for s in [*train, *val] if s.mask is not None]
    doc: dict[str, object] = {
        "train": image_list_sha256(train),
        "val": image_list_sha256(val),
        "extra_val": image_list_sha256(extra_val),
        "teacher": teacher_sha256,
        "teacher_input": teacher_input,
    }
    if masks:  # only then: a run without --gt-root keeps the digest it had before
        doc["masks"] = masks  # --gt-root ground truth, by content
    return sha256_bytes(json.dumps(doc, sort_keys=True).encode())


def check_resume_data(checkpoint: Path, key: str) -> None:
    """Refuse, before any labelling, a resume whose images or teacher differ from the run's.

    Checkpoints from before the key was kept are resumed as they were.
    """
    saved = load_checkpoint(checkpoint, flag="--resume from").get("data")
    if saved is None:
        log.warning(
            "%s was written before checkpoints named their data: resuming without checking "
            "that the images, split and teacher are the same",
            checkpoint,
        )
    elif saved != key:
        raise UsageError(
            f"{checkpoint} was trained on other data (images, split or teacher): resume with "
            "the same --images, --train-only, --extra-val, --gt-root, --limit and --teacher, "
            "or start afresh without --resume (or with another --out)"
        )


def run_training(  # noqa: PLR0913 -- the command's options, each a keyword of its own
    *,
    out_dir: Path,
    image_dirs: Sequence[Path] | None = None,
    gt_root: Path | None = None,
    teacher: str | Path = DEFAULT_TEACHER,
    cache_root: Path | None = None,
    cfg: TrainConfig = _DEFAULT_CONFIG,
    resume: bool = False,
    force: bool = False,
    limit: int | None = None,
    stop_after: int | None = None,
    parity_images: Path | None = None,
    progress: TextIO | None = sys.stderr,
    command: Sequence[str] = (),
    threads: int | None = None,
    train_only_dirs: Sequence[Path] = (),
    extra_val_dirs: Sequence[Path] = (),
) -> TrainResult:
    """Label, train, export; every output lands in ``out_dir``.

    ``threads`` sets torch's intra-op threads: on a loaded shared machine one
    thread is several times faster than two that wait on each other.
    ``image_dirs`` None: the checkout's MSRA-B images (:func:`default_images`).
    """
    dirs = [default_images()] if image_dirs is None else image_dirs
    check_train_extra()
    sources = _Sources(dirs, gt_root, train_only_dirs, extra_val_dirs)
    folders = _folders_read(sources, parity=parity_images)
    files = _files_read(teacher=teacher, init_from=cfg.init_from)
    outputs = _Outputs.checked(out_dir, resume=resume, force=force, reads=files + folders)
    if resume:
        check_resumable(outputs.checkpoint)
    label_cache = [("--label-cache", cache_root or default_cache_root())]
    check_inputs_spared(folders, folders=label_cache)  # labels are written there
    _check_options(cfg, limit=limit, threads=threads)
    parity_inputs(parity_images)  # a bad --parity-images folder fails now, not after the epochs
    wall_start = time.perf_counter()
    torch = require_torch()
    warn_if_bf16_emulated(torch, cfg)
    if threads is not None:
        torch.set_num_threads(threads)
    data = _collect_data(sources, cfg, limit=limit)
    _check_label_cache(label_cache, data.labelled)
    teacher_sha, loaded = _identify_teacher(teacher, cfg.teacher_input)
    plan = _Plan(cfg, sources, data, teacher, teacher_sha, loaded)
    key = plan.data_key()
    if resume:
        check_resume_data(outputs.checkpoint, key)
    labels = _label(plan, cache_root=cache_root, progress=progress)
    train_a = load_arrays(data.train, labels.cache_dir, cfg.size)
    val_a = load_arrays(data.val, labels.cache_dir, cfg.size)
    extra_val_a = (
        load_arrays(data.extra_val, labels.cache_dir, cfg.size) if data.extra_val else None
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = train_student(
        cfg,
        train_a,
        val_a,
        checkpoint=outputs.checkpoint,
        resume=resume,
        stop_after=stop_after,
        progress=progress,
        extra_val=extra_val_a,
        data_key=key,
    )
    export = _export_best(plan, outcome, stop_after=stop_after, parity_images=parity_images)
    wall = time.perf_counter() - wall_start
    training = _record_of_training(outcome, labels, wall=wall)
    _write(outputs, export, plan, training=training, command=command, torch=torch)
    return TrainResult(
        out_dir,
        outputs.onnx,
        outputs.manifest,
        outputs.sidecar,
        outputs.record,
        export,
        outcome,
        labels,
        wall,
    )


# --- the run's steps --------------------------------------------------------


def _check_options(cfg: TrainConfig, *, limit: int | None, threads: int | None) -> None:
    """Refuse, before any work, options that no run can use."""
    check_schedule(cfg, limit=limit, threads=threads)
    check_choices(cfg)
    autocast_bf16(cfg)
    check_ema(cfg)
    check_loss_weights(cfg)
    check_freeze_batchnorm(cfg)
    check_init_from(cfg)


@dataclass(frozen=True)
class _Outputs:
    """The files a run writes in its folder."""

    onnx: Path
    manifest: Path
    sidecar: Path
    record: Path
    checkpoint: Path

    @classmethod
    def checked(
        cls, out_dir: Path, *, resume: bool, force: bool, reads: list[tuple[str, Path | None]]
    ) -> _Outputs:
        """The run's files in ``out_dir``; refused where ``out_dir`` is not a folder, where
        one is an input (``reads``), or (unless resuming) where one exists and ``force``
        is not given."""
        check_out_folder(out_dir, purpose="the run")
        outputs = cls(
            out_dir / f"{MODEL_ID}.onnx",
            out_dir / f"{MODEL_ID}.onnx.manifest.json",
            out_dir / f"{MODEL_ID}.sidecar.json",
            out_dir / f"{MODEL_ID}.training.json",
            out_dir / "checkpoint.pt",
        )
        written = (
            outputs.onnx,
            outputs.manifest,
            outputs.sidecar,
            outputs.record,
            outputs.checkpoint,
        )
        # Resuming reads the checkpoint it writes; --init-from a file of --out may not.
        check_inputs_spared(reads, files=[(f"--out's {p.name}", p) for p in written])
        if not resume:
            for path in written:
                check_can_write(path, force=force)
        return outputs


def _check_label_cache(cache: Sequence[tuple[str, Path | None]], samples: list[Sample]) -> None:
    """Labels are written into the cache and stale ones removed: no image or mask may be
    in it (resolved: a folder apart from it may hold links into it)."""
    files: list[tuple[str, Path | None]] = [("a training image", s.path) for s in samples]
    files += [("a --gt-root mask", s.mask) for s in samples]
    check_inputs_spared(files, folders=cache)


def _files_read(*, teacher: str | Path, init_from: str | None) -> list[tuple[str, Path | None]]:
    """The model files a run reads (:func:`_util.check_inputs_spared`); a registry id is
    no file."""
    return [
        ("--teacher", Path(teacher) if Path(teacher).is_file() else None),
        ("--init-from", Path(init_from) if init_from else None),
    ]


def _folders_read(sources: _Sources, *, parity: Path | None) -> list[tuple[str, Path | None]]:
    """The image folders a run reads."""
    reads: list[tuple[str, Path | None]] = [("--images", d) for d in sources.image_dirs]
    reads += [("--train-only", d) for d in sources.train_only_dirs]
    reads += [("--extra-val", d) for d in sources.extra_val_dirs]
    return [*reads, ("--gt-root", sources.gt_root), ("--parity-images", parity)]


@dataclass(frozen=True)
class _Sources:
    """The image folders a run is given, as its record names them."""

    image_dirs: Sequence[Path]
    gt_root: Path | None
    train_only_dirs: Sequence[Path]
    extra_val_dirs: Sequence[Path]


@dataclass(frozen=True)
class _Data:
    """The run's images: all that are split, then the training split (with the train-only
    images), the validation split, the train-only images and the extra validation images."""

    samples: list[Sample]
    train: list[Sample]
    val: list[Sample]
    extra_train: list[Sample]
    extra_val: list[Sample]

    @property
    def labelled(self) -> list[Sample]:
        """Every image the run reads: each needs its label."""
        return [*self.samples, *self.extra_train, *self.extra_val]


def _collect_data(sources: _Sources, cfg: TrainConfig, *, limit: int | None) -> _Data:
    """The images of every folder, the split ones split by ``cfg``'s seed.

    Train-only folders (e.g. frames of video clips) never enter the split, and the
    extra validation folders (whole held-out clips) are reported, never selected
    on; an image taken once is not taken again.
    """
    samples = collect_samples(list(sources.image_dirs), sources.gt_root, limit=limit)
    train, val = split_samples(samples, val_fraction=cfg.val_fraction, seed=cfg.seed)
    seen = {s.sha256 for s in samples}
    extra_train = _unseen(sources.train_only_dirs, seen, limit=limit)
    seen |= {s.sha256 for s in extra_train}
    extra_val = _unseen(sources.extra_val_dirs, seen, limit=limit)
    return _Data(samples, train + extra_train, val, extra_train, extra_val)


def _unseen(folders: Sequence[Path], seen: set[str], *, limit: int | None) -> list[Sample]:
    """The images of ``folders`` and their sub-folders whose sha256 is not in ``seen``."""
    if not folders:
        return []
    found = collect_samples(list(folders), recursive=True, limit=limit)
    return [s for s in found if s.sha256 not in seen]


def _identify_teacher(teacher: str | Path, teacher_input: str) -> tuple[str, Teacher | None]:
    """The teacher's sha256, and the teacher itself where it had to be loaded for it.

    A file is hashed without a session (a fully cached run never builds one); a
    registry id is loaded, its entry naming the sha256.
    """
    teacher_path = Path(teacher)
    if teacher_path.is_file():
        return sha256_file(teacher_path), None
    loaded = load_teacher(teacher, teacher_input=teacher_input)
    return loaded.sha256, loaded


@dataclass(frozen=True)
class _Plan:
    """What a run trains on, settled before any labelling."""

    cfg: TrainConfig
    sources: _Sources
    data: _Data
    teacher: str | Path
    teacher_sha256: str
    loaded: Teacher | None  # the teacher, where identifying it loaded it

    def data_key(self) -> str:
        """What the run trains and selects on, for its checkpoint (see :func:`data_key`)."""
        return data_key(
            train=self.data.train,
            val=self.data.val,
            extra_val=self.data.extra_val,
            teacher_sha256=self.teacher_sha256,
            teacher_input=self.cfg.teacher_input,
        )


def _label(plan: _Plan, *, cache_root: Path | None, progress: TextIO | None) -> LabelStats:
    """Every image's teacher label (computed where not cached); the data line on ``progress``."""
    teacher, mode = plan.teacher, plan.cfg.teacher_input
    labels = ensure_labels(
        plan.data.labelled,
        plan.loaded
        if plan.loaded is not None
        else (lambda: load_teacher(teacher, teacher_input=mode)),
        _label_cache_root(cache_root),
        teacher_sha256=plan.teacher_sha256,
        teacher_input=mode,
        progress=progress,
    )
    if progress is not None:
        print(
            f"data: {len(plan.data.train)} train / {len(plan.data.val)} val images; teacher labels "
            f"{labels.computed} computed, {labels.reused} cached in {labels.cache_dir}",
            file=progress,
            flush=True,
        )
    return labels


def _label_cache_root(cache_root: Path | None) -> Path:
    root = cache_root if cache_root is not None else default_cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(
            f"--label-cache {root}: cannot be made ({exc.strerror}): give a folder you can write to"
        ) from exc
    return root


def _export_best(
    plan: _Plan, outcome: TrainOutcome, *, stop_after: int | None, parity_images: Path | None
) -> StudentExport:
    """The selected weights exported and checked; an interrupted run stops here instead."""
    net = build_student(plan.cfg)
    net.load_state_dict(outcome.best_state)
    if outcome.interrupted:
        raise UsageError(f"stopped after epoch {stop_after}: resume with --resume")
    return export_student(
        net,
        teacher_sha256=plan.teacher_sha256,
        training_sha256=image_list_sha256(plan.data.samples),
        images=parity_images,
    )


# --- the training record ----------------------------------------------------


def _record_of_plan(plan: _Plan, outputs: _Outputs, *, command: Sequence[str]) -> dict[str, Any]:
    """The training record's account of what the run was asked to do and on what."""
    teacher_path = Path(plan.teacher)
    return {
        "schema": TRAINING_RECORD_SCHEMA,
        "model_id": MODEL_ID,
        "command": list(command),
        "data": _record_of_data(plan),
        "teacher": {
            "sha256": plan.teacher_sha256,
            "source": display(teacher_path) if teacher_path.is_file() else str(plan.teacher),
            "protocol": label_protocol(plan.cfg.teacher_input),
        },
        "student_input": "BT.601 luma (full-range 8-bit) of the RGB image, then "
        f"vmafx_saliency.video.extract.preprocess semantics with {outputs.sidecar.name}",
        **_record_of_recipe(plan.cfg),
    }


def _record_of_data(plan: _Plan) -> dict[str, object]:
    data, sources, cfg = plan.data, plan.sources, plan.cfg
    section: dict[str, object] = {
        "image_dirs": [display(p) for p in sources.image_dirs],
        "gt_root": display(sources.gt_root) if sources.gt_root is not None else None,
        "count": len(data.samples),
        "train": len(data.train),
        "val": len(data.val),
        "split": {"val_fraction": cfg.val_fraction, "seed": cfg.seed, "by": "sha256 order"},
        "image_list_sha256": image_list_sha256(data.samples),
        "train_list_sha256": image_list_sha256(data.train),
        "val_list_sha256": image_list_sha256(data.val),
        "held_out_never_used": "PASCAL-S",
    }
    if sources.train_only_dirs or sources.extra_val_dirs:
        section.update(
            {
                "train_only_dirs": [display(p) for p in sources.train_only_dirs],
                "train_only": len(data.extra_train),
                "extra_val_dirs": [display(p) for p in sources.extra_val_dirs],
                "extra_val": len(data.extra_val),
                "extra_val_list_sha256": image_list_sha256(data.extra_val),
                "extra_val_role": "reported per epoch, never used for selection",
            }
        )
    return section


def _record_of_recipe(cfg: TrainConfig) -> dict[str, object]:
    """The hyper-parameters, and in words the loss, optimiser and selection they make."""
    return {
        "hyperparameters": asdict(cfg),
        # What --init-from named, by content: a path alone does not say which weights.
        "init_from_sha256": sha256_file(Path(cfg.init_from)) if cfg.init_from else None,
        "loss": LOSS_DESCRIPTIONS[cfg.loss]
        + (" + l1_weight * L1(map, teacher map)" if cfg.l1_weight else "")
        + (
            " + side_weight * (the same loss on each coarser decoder output's 1x1 side "
            "head, against the teacher map averaged down to its size; training only)"
            if cfg.side_weight
            else ""
        ),
        "optimizer": "Adam, linear warm-up then cosine to min_lr"
        + (
            "; BatchNorms frozen (eval mode, the init's statistics, gamma and beta)"
            if cfg.freeze_batchnorm
            else ""
        ),
        "selection": "highest val max-F vs the teacher binarised at 0.5 (ties: lower val MAE)"
        + (
            f", over the optimiser's weights and their moving average (decay {cfg.ema_decay})"
            if cfg.ema_decay
            else ""
        ),
    }


def _record_of_training(
    outcome: TrainOutcome, labels: LabelStats, *, wall: float
) -> dict[str, Any]:
    """The training record's account of the epochs, the selection and the time taken."""
    return {
        "history": [asdict(h) for h in outcome.history],
        "best_epoch": outcome.best_epoch,
        "best_weights": outcome.best_weights,
        "train_seconds": round(outcome.seconds, 1),
        "wall_seconds": round(wall, 1),
        "label_seconds": round(labels.seconds, 1),
    }


def _machine(torch: Any) -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # Steps cost several times more where bf16 is emulated: say which kind of CPU ran.
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "native_bf16": native_bf16(torch),
    }


def _write(
    outputs: _Outputs,
    export: StudentExport,
    plan: _Plan,
    *,
    training: dict[str, Any],
    command: Sequence[str],
    torch: Any,
) -> None:
    """Write the student, its manifest, its sidecar and the training record, whose
    account of the ``training`` this completes."""
    found = versions()
    record = {
        **_record_of_plan(plan, outputs, command=command),
        **training,
        "output": {"file": outputs.onnx.name, "sha256": export.sha256},
        "versions": found,
        "machine": _machine(torch),
    }
    manifest = student_manifest(
        export,
        plan.cfg,
        teacher_sha256=plan.teacher_sha256,
        onnx_file=outputs.onnx.name,
        record_file=outputs.record.name,
        versions=found,
    )
    atomic_write_bytes(outputs.onnx, export.onnx_bytes, force=True)
    atomic_write_bytes(outputs.manifest, dump_json(manifest), force=True)
    atomic_write_bytes(outputs.sidecar, dump_json(student_sidecar().to_json()), force=True)
    atomic_write_text(outputs.record, json.dumps(record, indent=2, sort_keys=True) + "\n")


__all__ = [
    "TRAINING_RECORD_SCHEMA",
    "TrainResult",
    "check_resume_data",
    "data_key",
    "run_training",
]
