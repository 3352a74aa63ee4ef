"""Starting a run from other weights (``--init-from``): a checkpoint or an exported student.

A checkpoint of another run is widened into this run's net if narrower (never
narrowed, and only of the same depth, stem and block kind); an exported student
ONNX gives its folded convolutions, its BatchNorms set from training planes, and
must then compute the file's own map. Both are checked before any labelling.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency.errors import InputFileError, UsageError
from vmafx_saliency.science.train.checkpoint import load_checkpoint
from vmafx_saliency.science.train.config import TrainConfig
from vmafx_saliency.science.train.data import deployment_input, require_torch
from vmafx_saliency.science.train.export import (
    PARITY_TOLERANCE,
    folded_convs,
    read_student_onnx,
)
from vmafx_saliency.science.train.step import build_student

# Training planes whose statistics set the BatchNorms of a net started from an ONNX.
ONNX_INIT_PLANES = 64


def _not_this_student(cfg: TrainConfig, path: Path, exc: ValueError) -> UsageError:
    return UsageError(
        f"--init-from {path}: {exc}: it is not a student of --widths "
        f"{','.join(map(str, cfg.widths))}, --stem-convs {cfg.stem_convs}"
        f"{', --separable' if cfg.separable else ''}; give the options it was trained with"
    )


def check_checkpoint_architecture(cfg: TrainConfig, path: Path, saved: dict[str, Any]) -> None:
    """Refuse a ``--init-from`` checkpoint whose net ``widen_from`` cannot carry over.

    Widening takes a checkpoint of narrower widths, but the depth, the stem's
    convolutions and the block kind must be ``cfg``'s: a stem of other depth would
    leave layers at their random start (or miss some) without a word.
    """
    # Checkpoints from before --stem-convs and --separable had one and plain blocks.
    old_stem = int(saved.get("stem_convs", 1))
    old_separable = bool(saved.get("separable", False))
    old_depth = len(saved.get("widths") or ())
    if (old_stem, old_separable, old_depth) != (cfg.stem_convs, cfg.separable, len(cfg.widths)):
        raise UsageError(
            f"--init-from {path}: a checkpoint of a net with {old_depth} widths, "
            f"--stem-convs {old_stem}{', --separable' if old_separable else ''}; this run "
            f"builds {len(cfg.widths)} widths, --stem-convs {cfg.stem_convs}"
            f"{', --separable' if cfg.separable else ''}: give the checkpoint's --stem-convs "
            "and block kind (and as many widths, each at least its own)"
        )
    old_widths = [int(w) for w in saved.get("widths") or ()]
    narrower = [i for i, (o, n) in enumerate(zip(old_widths, cfg.widths, strict=True)) if n < o]
    if narrower:
        raise UsageError(
            f"--init-from {path}: a checkpoint of --widths {','.join(map(str, old_widths))}; "
            f"this run's --widths {','.join(map(str, cfg.widths))} is narrower at stage "
            f"{narrower[0]}: a net can be widened from a checkpoint, never narrowed; give "
            "widths each at least the checkpoint's"
        )


def _init_onnx(cfg: TrainConfig) -> Path | None:
    """The student ONNX that ``--init-from`` names; None for a checkpoint or no init."""
    if cfg.init_from and Path(cfg.init_from).suffix.lower() == ".onnx":
        return Path(cfg.init_from)
    return None


def check_init_from(cfg: TrainConfig) -> None:
    """Refuse, before any labelling, an ``--init-from`` that cannot start this net.

    A checkpoint must exist and hold a net of ``cfg``'s depth, stem and block
    kind; an ONNX must hold the convolutions of ``cfg``'s net.
    """
    if not cfg.init_from:
        return
    path = _init_onnx(cfg)
    if path is None:
        checkpoint = Path(cfg.init_from)
        if not checkpoint.is_file():
            raise InputFileError(
                f"--init-from {cfg.init_from}: no such file: give a run's checkpoint.pt or a "
                "student ONNX"
            )
        state = load_checkpoint(checkpoint, flag="--init-from")
        check_checkpoint_architecture(cfg, checkpoint, dict(state["config"]))
        return
    from vmafx_saliency.nets.student import match_convs

    convs = folded_convs(path, scanned_onnx(path))
    try:
        match_convs(build_student(cfg), [tuple(weight.shape) for weight, _ in convs])
    except ValueError as exc:
        raise _not_this_student(cfg, path, exc) from exc


def scanned_onnx(path: Path) -> bytes:
    """The ``--init-from`` ONNX's bytes, read under the model-file cap and passed by the
    op-allowlist scanner (in a child, under its budget) before any parser reads them."""
    from vmafx_saliency.supply.scan import scan_bounded

    data = read_student_onnx(path)
    report = scan_bounded(data, path=str(path))
    if not report.allowed:
        raise InputFileError(
            f"--init-from {path}: the scanner refuses it ({report.violations[0].detail}): "
            f"run `vmafx-saliency scan {path}` for the report"
        )
    return data


def init_from_onnx(cfg: TrainConfig, net: Any, path: Path, planes: np.ndarray) -> None:
    """Start ``net`` from an exported student (e.g. the shipped one) to fine-tune it.

    ``planes`` are training luma planes: their statistics set the BatchNorms
    (:func:`~vmafx_saliency.nets.student.load_folded`). The loaded net must then
    compute the file's own map in ONNX Runtime on two of them (the scanner
    passes the graph first): convolutions of the same shapes in another order,
    or with other strides or padding, would otherwise load without a word.
    """
    from vmafx_saliency.nets.student import load_folded

    torch = require_torch()
    data = scanned_onnx(path)
    sample = deployment_input(torch.from_numpy(np.ascontiguousarray(planes[:ONNX_INIT_PLANES])))
    try:
        load_folded(net, folded_convs(path, data), sample)
    except ValueError as exc:
        raise _not_this_student(cfg, path, exc) from exc
    diff = _distance_to_file(net, path, data, sample[:2])
    if diff > PARITY_TOLERANCE:
        raise UsageError(
            f"--init-from {path}: the net loaded from its convolutions differs from "
            f"the file's own map by up to {diff:.2e} (tolerance {PARITY_TOLERANCE}): "
            "its graph is not a StudentUNet as `train` exports it"
        )


def _distance_to_file(net: Any, path: Path, data: bytes, sample: Any) -> float:
    """How far ``net`` is from the file's own map on ``sample``, in ONNX Runtime.

    The graph runs in a budgeted child first (the deployment contract), so a
    hostile one costs at most that budget; then the export's own comparison,
    with no tolerance, so the caller's refusal can say how far.
    """
    from vmafx_saliency.errors import ContractError, ExportError
    from vmafx_saliency.supply import contract
    from vmafx_saliency.supply.export import ParityInput, parity_check

    planes_in = [ParityInput(f"training plane {i}", x[None].numpy()) for i, x in enumerate(sample)]
    try:
        contract.check_contract_bytes(data, source=str(path))
        figures = parity_check(net, data, planes_in, math.inf)
    except (ContractError, ExportError) as exc:
        raise InputFileError(
            f"--init-from {path}: ONNX Runtime cannot run it as a student ({exc}): give a "
            "student exported by `train`"
        ) from exc
    return max(figure.max_abs_diff for figure in figures)


def start_from_init(cfg: TrainConfig, net: Any, planes: np.ndarray) -> None:
    """Load ``cfg.init_from``, if any, into the fresh ``net``: an exported student, or a
    checkpoint widened to ``net``'s widths. ``planes``: training luma planes (they set an
    ONNX's BatchNorms)."""
    if not cfg.init_from:
        return
    onnx_init = _init_onnx(cfg)
    if onnx_init is not None:
        init_from_onnx(cfg, net, onnx_init, planes)
        return
    from vmafx_saliency.nets.student import widen_from

    init = load_checkpoint(Path(cfg.init_from), flag="--init-from")
    check_checkpoint_architecture(cfg, Path(cfg.init_from), dict(init["config"]))
    widen_from(net, init["best_state"], tuple(init["config"]["widths"]))


__all__ = [
    "ONNX_INIT_PLANES",
    "check_checkpoint_architecture",
    "check_init_from",
    "init_from_onnx",
    "scanned_onnx",
    "start_from_init",
]
