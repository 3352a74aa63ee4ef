"""What a training run is asked to do: :class:`TrainConfig`, its choices and its defaults.

The one home of the training defaults: the CLI builds its parser from them, so
this module must stay cheap to import (no torch, no numpy, no jsonschema). The
checks here refuse, before any labelling, a configuration no run can use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from vmafx_saliency._util import NOT_A_CHECKOUT, PROJECT_ROOT, in_shared
from vmafx_saliency.errors import UsageError

MODEL_ID = "saliency_student_v2"
TEACHER_INPUTS = ("rgb", "luma")
LOSSES = ("bce_iou", "structure", "fmeasure")
PRECISIONS = ("fp32", "bf16")

# supply.export.mirror.MODEL_ID, spelled again: that module imports numpy, this one
# must not (a test ties the two).
MIRROR_ID = "u2netp_mirror_v1"
# The checkout's defaults (None, or the registry id, when the package is installed).
DEFAULT_IMAGES = in_shared("data", "msra-b", "images")
DEFAULT_TEACHER: Path | str = (
    PROJECT_ROOT / "models" / f"{MIRROR_ID}.onnx" if PROJECT_ROOT is not None else MIRROR_ID
)
PARITY_IMAGES = in_shared("data", "images")


def default_images() -> Path:
    """The checkout's MSRA-B images, the default training set: refused when installed."""
    if DEFAULT_IMAGES is None:
        raise UsageError(
            f"{NOT_A_CHECKOUT}, so there are no default training images: give --images DIR "
            "(or --gt-root DIR)"
        )
    return DEFAULT_IMAGES


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; everything that changes the result is here."""

    epochs: int = 70
    batch_size: int = 16
    lr: float = 3e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    crop: int = 224
    scale_min: float = 0.6
    iou_weight: float = 1.0
    brightness: float = 0.2
    contrast: float = 0.3
    val_fraction: float = 0.1
    seed: int = 0
    # The seed of the initial weights, batch order and augmentation; None: ``seed``.
    # Another run seed keeps ``seed``'s split (and the views made from it), so two
    # runs differ only by their random draws: the recipe's run-to-run spread.
    run_seed: int | None = None
    widths: tuple[int, ...] = (16, 32, 32, 32, 40, 40)
    stem_convs: int = 3  # nets.student.DEFAULT_STEM_CONVS
    separable: bool = False  # depthwise-separable blocks after the stem
    size: tuple[int, int] = (320, 320)
    steps_per_epoch: int | None = None  # None: one pass over the training split
    l1_weight: float = 0.0  # + l1_weight * mean |sigmoid(logits) - target|
    init_from: str | None = None  # a train checkpoint (widened if narrower) or student ONNX
    teacher_input: str = "rgb"  # the teacher labels RGB (its best setting) or luma tiled
    loss: str = "bce_iou"  # or "structure" (F3Net) or "fmeasure" (BCE + soft F-measure)
    # NHWC tensors: oneDNN's CPU convolutions are faster on them (the note on threads in
    # the student card's history); the numbers differ from NCHW in the last bits, so it is part
    # of the configuration (runs before attempt 12 trained NCHW).
    channels_last: bool = True
    # bf16 runs the forward pass under torch.autocast (weights, optimiser state,
    # loss and validation stay float32): on a CPU with AMX a step costs about half
    # (benchmarks/train_step.py); fp32, the default, reproduces earlier runs.
    precision: str = "fp32"
    # > 0: also keep an exponential moving average of the weights and BatchNorm
    # statistics (torch.optim.swa_utils, updated after every step); each epoch
    # validates both, and the selection may pick either. 0, the default, is off
    # and reproduces earlier runs.
    ema_decay: float = 0.0
    # > 0: deep supervision. Each coarser decoder output gets a training-only 1x1
    # head (nets.student.SideHeads) and the loss adds side_weight x the same loss on
    # each side map, at its own size; selection and export use the main map only.
    # 0, the default, is off and reproduces earlier runs.
    side_weight: float = 0.0
    # True: every BatchNorm stays in eval mode with its statistics, gamma and beta
    # fixed, so only the convolutions train. For fine-tuning from --init-from: train
    # mode would renormalise with batch statistics and let Adam move the small gammas
    # that load_folded gives low-variance channels by about the rate at every step.
    freeze_batchnorm: bool = False


def run_seed(cfg: TrainConfig) -> int:
    """The seed of a run's random draws (weights, batches, augmentation)."""
    return cfg.seed if cfg.run_seed is None else cfg.run_seed


def check_ema(cfg: TrainConfig) -> None:
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise UsageError(
            f"--ema-decay {cfg.ema_decay}: give a decay in [0, 1) (0 turns the average off; "
            "0.999 averages over about the last 1,000 steps)"
        )


def check_loss_weights(cfg: TrainConfig) -> None:
    """Every weight of a loss term is finite and >= 0 (0 leaves the term out)."""
    for flag, value, hint in (
        (
            "--side-weight",
            cfg.side_weight,
            "for each side map's loss (0 turns deep supervision off)",
        ),
        ("--iou-weight", cfg.iou_weight, "(0 leaves that term out)"),
        ("--l1-weight", cfg.l1_weight, "(0 leaves that term out)"),
    ):
        if not (math.isfinite(value) and value >= 0.0):
            raise UsageError(f"{flag} {value}: give a weight >= 0 {hint}")


def check_schedule(cfg: TrainConfig, *, limit: int | None, threads: int | None) -> None:
    """Refuse, before any labelling, counts and a rate that no run can use.

    (Found later, they would cost the first run on a fresh machine its labelling,
    and a zero ``steps_per_epoch`` would be read as "one pass".)
    """
    counts = {
        "--epochs": cfg.epochs,
        "--batch-size": cfg.batch_size,
        "--crop": cfg.crop,
        "--steps-per-epoch": cfg.steps_per_epoch,
        "--limit": limit,
        "--threads": threads,
    }
    for flag, value in counts.items():
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: give a whole number of 1 or more")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0.0):
        raise UsageError(
            f"--lr {cfg.lr}: give a learning rate > 0 (section 2 of the student's card: "
            "3e-3 from scratch, 1e-3 and 5e-4 for the later stages)"
        )


def check_freeze_batchnorm(cfg: TrainConfig) -> None:
    if cfg.freeze_batchnorm and not cfg.init_from:
        raise UsageError(
            "--freeze-batchnorm keeps the BatchNorms of the net it starts from, and a fresh "
            "net's are identities: give --init-from (a run's checkpoint.pt or a student ONNX)"
        )


def check_choices(cfg: TrainConfig) -> None:
    """The crop scale, the teacher's input and the loss are ones a run knows."""
    if not 0.0 < cfg.scale_min <= 1.0:
        raise UsageError(f"--scale-min {cfg.scale_min}: give a fraction of the area in (0, 1]")
    if cfg.teacher_input not in TEACHER_INPUTS:
        raise UsageError(
            f"--teacher-input {cfg.teacher_input!r}: give one of {', '.join(TEACHER_INPUTS)}"
        )
    if cfg.loss not in LOSSES:
        raise UsageError(f"--loss {cfg.loss!r}: give one of {', '.join(LOSSES)}")


def autocast_bf16(cfg: TrainConfig) -> bool:
    """Whether the forward pass runs under bf16 autocast; refuses an unknown precision."""
    if cfg.precision not in PRECISIONS:
        raise UsageError(f"--precision {cfg.precision!r}: give one of {', '.join(PRECISIONS)}")
    return cfg.precision == "bf16"


__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_TEACHER",
    "LOSSES",
    "MIRROR_ID",
    "MODEL_ID",
    "PARITY_IMAGES",
    "PRECISIONS",
    "TEACHER_INPUTS",
    "TrainConfig",
    "autocast_bf16",
    "check_choices",
    "check_ema",
    "check_freeze_batchnorm",
    "check_loss_weights",
    "check_schedule",
    "default_images",
    "run_seed",
]
