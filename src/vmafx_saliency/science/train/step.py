"""One training step and what it runs on: the student, its side heads, bf16 autocast.

``benchmarks/train_step.py`` times exactly :func:`optimizer_step` on the nets
built here, so the loop and the benchmark share one step.
"""

from __future__ import annotations

import logging
from typing import Any

from vmafx_saliency.science.train.config import TrainConfig, autocast_bf16
from vmafx_saliency.science.train.data import require_torch
from vmafx_saliency.science.train.losses import _loss

log = logging.getLogger(__name__)


def build_student(cfg: TrainConfig) -> Any:
    from vmafx_saliency.nets.student import StudentUNet

    return StudentUNet(cfg.widths, stem_convs=cfg.stem_convs, separable=cfg.separable)


def build_side_heads(cfg: TrainConfig, net: Any) -> Any:
    """The training-only side heads of ``cfg.side_weight`` for ``net``; None when it is 0."""
    if not cfg.side_weight:
        return None
    from vmafx_saliency.nets.student import SideHeads

    return SideHeads(net)


def trained_parameters(net: Any, sides: Any) -> list[Any]:
    """What the optimiser updates: the net's trainable parameters, then any side heads'."""
    params = [*net.parameters(), *(sides.parameters() if sides is not None else ())]
    return [p for p in params if p.requires_grad]


def freeze_batchnorm(net: Any) -> None:
    """Put every BatchNorm of ``net`` in eval mode with its gamma and beta untrainable.

    Call after each ``net.train()``, which would put them back in train mode.
    """
    torch = require_torch()
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.requires_grad_(False)


def native_bf16(torch: Any) -> bool | None:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); None if torch can't tell.

    Without either, autocast still gives bf16's numerics but emulates them: a
    224-crop step took 7.35x the float32 one on a Zen 3 with AVX2 only
    (``benchmarks/train_step.py --threads 2``, 2026-12-04).
    """
    # torch.cpu has no public probe; these two private ones are what its own CPU tests use.
    unknown = False
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        probe = getattr(torch.cpu, name, None)
        if probe is None:
            unknown = True
        elif probe():
            return True
    return None if unknown else False


def warn_if_bf16_emulated(torch: Any, cfg: TrainConfig) -> None:
    """Log a warning when ``--precision bf16`` would run emulated on this CPU.

    A warning, not a refusal: emulated bf16 is slow but gives the same numbers,
    which is what a user re-running a bf16 recipe (attempt 15B's) wants.
    """
    if autocast_bf16(cfg) and native_bf16(torch) is False:
        log.warning(
            "--precision bf16: this CPU has no native bf16 (neither AVX512-BF16 nor AMX), so "
            "autocast emulates it and each step takes several times the float32 one (7.35x "
            "on a Zen 3 with AVX2 only); train with --precision fp32 on this machine unless "
            "you need the bf16 recipe's numbers (benchmarks/train_step.py times both)"
        )


def optimizer_step(
    torch: Any,
    net: Any,
    optimizer: Any,
    x: Any,
    y: Any,
    cfg: TrainConfig,
    *,
    bf16: bool,
    sides: Any = None,
) -> float:
    """One training step on a batch: forward (under bf16 autocast if asked), loss, update.

    The loss is taken on float32 logits either way; with ``sides`` (the
    :class:`~vmafx_saliency.nets.student.SideHeads` of ``cfg.side_weight``) it
    adds ``cfg.side_weight`` x the same loss on each side map. Returns the
    batch's loss. ``benchmarks/train_step.py`` times exactly this step.
    """
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if sides is None:
            logits, side_logits = net.forward_logits(x), []
        else:
            logits, coarse = net.forward_decoder(x)
            side_logits = sides(coarse)
    loss = _loss(torch, logits.float(), y, cfg.iou_weight, cfg.l1_weight, cfg.loss)
    if side_logits:
        from vmafx_saliency.nets.student import side_targets

        for side, target in zip(side_logits, side_targets(y, side_logits), strict=True):
            side_loss = _loss(torch, side.float(), target, cfg.iou_weight, cfg.l1_weight, cfg.loss)
            loss = loss + cfg.side_weight * side_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


__all__ = [
    "build_side_heads",
    "build_student",
    "freeze_batchnorm",
    "native_bf16",
    "optimizer_step",
    "trained_parameters",
    "warn_if_bf16_emulated",
]
