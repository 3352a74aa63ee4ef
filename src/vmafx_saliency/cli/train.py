"""``vmafx-saliency train``: distil ``saliency_student_v2`` from the u2netp mirror.

The parser lives here, beside nothing heavy: it takes its defaults from
:mod:`vmafx_saliency.science.train.config` (no numpy, no torch), and the library
itself (which needs torch) is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import vmafx_saliency.science.train.config as config
from vmafx_saliency._util import positive_int
from vmafx_saliency.cli.options import Subparsers, add_action_group, add_command
from vmafx_saliency.errors import UsageError
from vmafx_saliency.science.train.config import (
    LOSSES,
    PRECISIONS,
    TEACHER_INPUTS,
    TrainConfig,
)

if TYPE_CHECKING:
    from vmafx_saliency.science.train import TrainResult


def _widths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers") from None
    if len(values) < 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least two positive widths")
    return values


def _cmd_train(args: argparse.Namespace) -> int:
    cfg = train_config(args)
    image_dirs = train_image_dirs(args)
    checkpoint = Path(args.out) / "checkpoint.pt"
    before = _stamp(checkpoint)
    try:
        result = _run(args, cfg, image_dirs)
    except KeyboardInterrupt:
        # This run's checkpoint only: one left by an earlier run (--force) is not it.
        now = _stamp(checkpoint)
        if now is not None and (args.resume or now != before):
            # Without this, the obvious re-run meets "already exists: pass --force",
            # which would throw the finished epochs away.
            print(
                f"the last finished epoch is in {checkpoint}: carry on with the same "
                "command and --resume",
                file=sys.stderr,
            )
        raise
    print(result.render())
    return 0


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """A file's identity and version (a checkpoint is replaced by a rename), or None.

    Not its mtime against the clock: a file's mtime comes from a coarser clock
    than ``time.time()`` and can read a few milliseconds older than a start
    taken before it was written.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size) if path.is_file() else None


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` that ``train``'s options ask for."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        crop=args.crop,
        scale_min=args.scale_min,
        iou_weight=args.iou_weight,
        val_fraction=args.val_fraction,
        seed=args.seed,
        run_seed=args.run_seed,
        widths=args.widths,
        stem_convs=args.stem_convs,
        separable=args.separable,
        steps_per_epoch=args.steps_per_epoch,
        init_from=args.init_from,
        teacher_input=args.teacher_input,
        loss=args.loss,
        channels_last=args.channels_last,
        precision=args.precision,
        ema_decay=args.ema_decay,
        side_weight=args.side_weight,
        freeze_batchnorm=args.freeze_batchnorm,
    )


def train_image_dirs(args: argparse.Namespace) -> list[Path]:
    """The folders that `train` splits (and `views synth` must split alike).

    --no-default-images leaves the --images folders, or only the --gt-root pairs;
    with neither, the split would have no images: refused, never ignored. An
    installed package has no default folder: the given ones are the split.
    """
    given = [Path(p) for p in args.images or ()]
    if args.no_default_images and not given and not args.gt_root:
        or_default = (
            ", or leave out --no-default-images to use MSRA-B"
            if config.DEFAULT_IMAGES is not None
            else ""
        )
        raise UsageError(
            "--no-default-images without --images: the split needs images; give --images DIR "
            f"(or --gt-root DIR){or_default}"
        )
    if args.no_default_images:
        return given
    if config.DEFAULT_IMAGES is None and (given or args.gt_root):
        return given  # installed: no MSRA-B to add, the given folders are the split
    return [config.default_images(), *given]


def _run(args: argparse.Namespace, cfg: TrainConfig, image_dirs: list[Path]) -> TrainResult:
    from vmafx_saliency.science import train

    return train.run_training(
        out_dir=Path(args.out),
        image_dirs=image_dirs,
        gt_root=Path(args.gt_root) if args.gt_root else None,
        teacher=args.teacher,
        cache_root=Path(args.label_cache) if args.label_cache else None,
        cfg=cfg,
        resume=args.resume,
        force=args.force,
        limit=args.limit,
        parity_images=Path(args.parity_images) if args.parity_images else None,
        progress=sys.stderr,
        threads=args.threads,
        train_only_dirs=[Path(p) for p in args.train_only or ()],
        extra_val_dirs=[Path(p) for p in args.extra_val or ()],
        command=["vmafx-saliency", "train", *sys.argv[2:]] if len(sys.argv) > 1 else [],
    )


# The parser's defaults are TrainConfig's own (config imports neither numpy nor torch).
DEFAULTS = TrainConfig()


def register(sub: Subparsers) -> None:
    """Add ``train`` and ``views`` to the CLI's subparsers."""
    register_views(sub)
    p = add_command(
        sub,
        "train",
        help="train saliency_student_v2 by distillation from the u2netp mirror",
        example="vmafx-saliency train --out runs/student_v2 --threads 1   # in a checkout: "
        "MSRA-B, the exported mirror\n  vmafx-saliency train --out runs/s --images "
        "my_images/ --teacher u2netp_mirror_v1.onnx",
        handler=_cmd_train,
    )
    _add_data_options(p)
    _add_teacher_options(p)
    _add_schedule_options(p)
    _add_loss_options(p)
    _add_seed_options(p)
    _add_architecture_options(p)
    _add_run_options(p)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """The run folder and the images: split, train-only, extra validation, a start."""
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (outputs, checkpoint)")
    p.add_argument(
        "--images",
        action="append",
        metavar="DIR",
        help="extra training image folder (repeatable; in a checkout, ../shared's MSRA-B is "
        "always included unless --no-default-images)",
    )
    p.add_argument("--no-default-images", action="store_true", help="use only the --images folders")
    p.add_argument(
        "--train-only",
        action="append",
        metavar="DIR",
        help="teacher-labelled images used for training only, never split off for validation "
        "(repeatable; e.g. the folders 'vmafx-saliency views' writes, or video frames)",
    )
    p.add_argument(
        "--extra-val",
        action="append",
        metavar="DIR",
        help="images whose agreement with the teacher is reported every epoch, never "
        "selected on (repeatable)",
    )
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT|ONNX",
        help="start from another run's checkpoint.pt (widened if its widths are narrower), or "
        "fine-tune an exported student such as the shipped saliency_student_v2.onnx (give the "
        "--widths, --stem-convs and --separable it was trained with, and a low --lr such as "
        "1e-4)",
    )
    p.add_argument(
        "--gt-root", metavar="DIR", help="DUTS-style root with images/ + masks/ to mix in"
    )


# The teacher's default as --help says it: a file of the checkout, else the registry id.
_TEACHER_DEFAULT = (
    f"models/{config.MIRROR_ID}.onnx in the checkout"
    if isinstance(config.DEFAULT_TEACHER, Path)
    else f"the registered {config.MIRROR_ID}"
)


def _add_teacher_options(p: argparse.ArgumentParser) -> None:
    """The teacher, what it labels from, and where its labels are cached."""
    p.add_argument(
        "--teacher",
        default=str(config.DEFAULT_TEACHER),
        metavar="ONNX|ID",
        help=f"teacher ONNX file or registry id (default: {_TEACHER_DEFAULT})",
    )
    p.add_argument(
        "--teacher-input",
        choices=TEACHER_INPUTS,
        default=DEFAULTS.teacher_input,
        help="what the teacher labels from: rgb (its best setting, the default) or luma "
        "tiled to RGB (the student's own input, so every label is reachable from luma)",
    )
    p.add_argument(
        "--label-cache",
        metavar="DIR",
        help="teacher label cache root (default: ~/.cache/vmafx-saliency/teacher)",
    )


def _add_schedule_options(p: argparse.ArgumentParser) -> None:
    """Epochs, batches, the learning rate and the training crops."""
    p.add_argument("--epochs", type=positive_int, default=DEFAULTS.epochs)
    p.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size)
    p.add_argument("--lr", type=float, default=DEFAULTS.lr)
    p.add_argument(
        "--crop", type=positive_int, default=DEFAULTS.crop, help="training crop side (px)"
    )
    p.add_argument(
        "--scale-min",
        type=float,
        default=DEFAULTS.scale_min,
        help="smallest crop, as a fraction of the plane's area (1.0: whole planes, the "
        "test-time context)",
    )


def _add_loss_options(p: argparse.ArgumentParser) -> None:
    """The loss and how a step computes it: layout, precision, averages, side heads, BN."""
    p.add_argument(
        "--iou-weight",
        type=float,
        default=DEFAULTS.iou_weight,
        help="weight of the loss's region term: the soft IoU, or 1 - F with --loss fmeasure",
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default=DEFAULTS.loss,
        help="bce_iou: BCE + soft IoU (the default); structure: F3Net's boundary-weighted "
        "BCE + weighted IoU; fmeasure: BCE + (1 - soft F-measure, beta^2 0.3), the FLoss of "
        "Zhao et al. 2019",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.channels_last,
        help="train on NHWC tensors (faster convolutions on the CPU; --no-channels-last "
        "reproduces runs made before attempt 12 exactly)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DEFAULTS.precision,
        help="fp32 (the default), or bf16: the forward pass under autocast, about twice "
        "as fast on a CPU with AMX or AVX512-BF16 and several times slower on one without "
        "(a warning says so; benchmarks/train_step.py); weights and loss stay float32",
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        default=DEFAULTS.ema_decay,
        metavar="DECAY",
        help="also keep a moving average of the weights with this decay per step (e.g. "
        "0.999); each epoch validates both and the selection may pick either (0: off)",
    )
    p.add_argument(
        "--side-weight",
        type=float,
        default=DEFAULTS.side_weight,
        metavar="W",
        help="deep supervision: add W x the loss of a training-only 1x1 side head on each "
        "coarser decoder output (e.g. 0.5); the exported net is unchanged (0: off)",
    )
    p.add_argument(
        "--freeze-batchnorm",
        action="store_true",
        default=DEFAULTS.freeze_batchnorm,
        help="with --init-from: keep every BatchNorm's statistics, gamma and beta fixed "
        "and train the convolutions only (a fine-tune that starts from the file's own map)",
    )


def _add_seed_options(p: argparse.ArgumentParser) -> None:
    """The validation split and the seeds of the split and of the run's draws."""
    p.add_argument("--val-fraction", type=float, default=DEFAULTS.val_fraction)
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help="the train/validation split's seed, and the run's unless --run-seed is given",
    )
    p.add_argument(
        "--run-seed",
        type=int,
        default=DEFAULTS.run_seed,
        metavar="N",
        help="seed the initial weights, batch order and augmentation with N instead of "
        "--seed, keeping --seed's split (and views): measures run-to-run spread",
    )


def _add_architecture_options(p: argparse.ArgumentParser) -> None:
    """The student's widths, stem and block kind."""
    p.add_argument(
        "--widths",
        type=_widths,
        default=DEFAULTS.widths,
        metavar="W,W,...",
        help="channels of the stem and each encoder stage",
    )
    p.add_argument("--stem-convs", type=positive_int, default=DEFAULTS.stem_convs)
    p.add_argument(
        "--separable",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.separable,
        help="depthwise-separable blocks after the stem (wider stages, same parameter budget)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """How this run goes: steps, image limit, parity images, threads, resume, overwrite."""
    p.add_argument("--steps-per-epoch", type=positive_int, default=DEFAULTS.steps_per_epoch)
    p.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="use the first N images of each folder (--images, --train-only and --extra-val alike)",
    )
    p.add_argument("--parity-images", metavar="DIR", help="images for the export parity check")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch intra-op threads (default: torch's)",
    )
    p.add_argument("--resume", action="store_true", help="resume from DIR/checkpoint.pt")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


# --- views ------------------------------------------------------------------


def _cmd_views_synth(args: argparse.Namespace) -> int:
    from vmafx_saliency.science import train, views

    # The folders, the split and its options exactly as `train` takes them: views
    # are made from the training part only, so no validation image leaks into one.
    image_dirs = train_image_dirs(args)
    samples = train.collect_samples(image_dirs, Path(args.gt_root) if args.gt_root else None)
    train_split, _ = train.split_samples(samples, val_fraction=args.val_fraction, seed=args.seed)
    result = views.make_views(
        [s.path for s in train_split],
        Path(args.out),
        recipe=args.recipe,
        seed=args.view_seed,
        limit=args.limit,
        progress=sys.stderr,
    )
    print(f"{result.written} view(s) written, {result.skipped} already there, in {result.out_dir}")
    return 0


def _cmd_views_frames(args: argparse.Namespace) -> int:
    from vmafx_saliency.science import views

    for clip in args.videos:
        result = views.video_frames(Path(clip), Path(args.out), every=args.every)
        print(
            f"{result.written} frame(s) written, {result.skipped} already there, "
            f"in {result.out_dir}"
        )
    return 0


def register_views(sub: Subparsers) -> None:
    """``views synth|frames``: extra images for ``train --train-only``."""
    vsub = add_action_group(
        sub,
        "views",
        help="make extra distillation images: synthetic views of the training split, video frames",
        example="vmafx-saliency views synth --recipe mix --out runs/views/mix   # in a "
        "checkout: MSRA-B\n  vmafx-saliency views synth --recipe mix --out views/ --images "
        "my_images/",
    )
    s = add_command(
        vsub,
        "synth",
        help="crops, mosaics and composites of the training split's images (teacher-labelled "
        "by train)",
        example="vmafx-saliency views synth --recipe clutter --out runs/views/clutter   # in a "
        "checkout: MSRA-B\n"
        "  vmafx-saliency train --out runs/student --train-only runs/views --threads 1",
        handler=_cmd_views_synth,
    )
    s.add_argument("--out", required=True, metavar="DIR", help="folder for the views")
    s.add_argument("--recipe", required=True, choices=["mix", "clutter"])
    s.add_argument(
        "--images",
        action="append",
        metavar="DIR",
        help="more image folders, as train takes them (repeatable; in a checkout, MSRA-B is "
        "always included unless --no-default-images): pass the --images, "
        "--no-default-images, --gt-root, --val-fraction and --seed of the train run, so its "
        "validation split gets no view "
        "(a train run with --limit splits fewer images: make no views for it)",
    )
    s.add_argument("--no-default-images", action="store_true", help="as train's")
    s.add_argument("--gt-root", metavar="DIR", help="as train's: its images join the split")
    s.add_argument("--val-fraction", type=float, default=DEFAULTS.val_fraction)
    s.add_argument("--seed", type=int, default=DEFAULTS.seed, help="train's split seed")
    s.add_argument(
        "--view-seed", type=int, default=None, help="the views' own seed (default: per recipe)"
    )
    s.add_argument(
        "--limit", type=positive_int, default=None, help="views of the first N images only"
    )
    f = add_command(
        vsub,
        "frames",
        help="every N-th frame of video clips as RGB PNG images",
        example="vmafx-saliency views frames ../shared/data/videos/akiyo_cif.mp4 --every 10 "
        "--out runs/frames",
        handler=_cmd_views_frames,
    )
    f.add_argument("videos", nargs="+", metavar="VIDEO")
    f.add_argument("--out", required=True, metavar="DIR", help="folder for <clip>/<clip>_<i>.png")
    f.add_argument("--every", type=positive_int, required=True, help="keep frames 0, N, 2N, ...")
