"""The training loop: epochs of steps, validation, selection, a checkpoint every epoch.

Adam with a short linear warm-up, then a cosine schedule down to ``min_lr``.
Each epoch validates against the teacher (and any extra validation set, which is
reported, never selected on) and keeps the best weights by max-F (ties: lower
MAE), over the optimiser's weights and, with ``--ema-decay``, their moving
average. Every random draw comes from generators derived from (seed, epoch) and
the checkpoint keeps torch's generator, so a run resumed from the checkpoint of
epoch k ends with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from vmafx_saliency._util import atomic_write_bytes
from vmafx_saliency.errors import InputFileError, TrainingDivergedError, UsageError
from vmafx_saliency.science.train.checkpoint import load_checkpoint
from vmafx_saliency.science.train.config import (
    TrainConfig,
    autocast_bf16,
    check_ema,
    check_freeze_batchnorm,
    check_loss_weights,
    check_schedule,
    run_seed,
)
from vmafx_saliency.science.train.data import (
    Arrays,
    augment_batch,
    deployment_input,
    require_torch,
)
from vmafx_saliency.science.train.init_from import start_from_init
from vmafx_saliency.science.train.losses import max_f_measure
from vmafx_saliency.science.train.report import time_left
from vmafx_saliency.science.train.step import (
    build_side_heads,
    build_student,
    freeze_batchnorm,
    optimizer_step,
    trained_parameters,
)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_mae: float
    val_max_f: float
    lr: float
    seconds: float
    extra_val_mae: float | None = None  # the train-only held-out set (e.g. video clips)
    extra_val_max_f: float | None = None
    # The same figures for the moving average of the weights (--ema-decay), if kept.
    ema_val_mae: float | None = None
    ema_val_max_f: float | None = None
    ema_extra_val_mae: float | None = None
    ema_extra_val_max_f: float | None = None


@dataclass(frozen=True)
class TrainOutcome:
    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_state: dict[str, Any]
    seconds: float
    interrupted: bool = False
    best_weights: str = "raw"  # "raw": the optimiser's weights; "ema": their moving average


def _seed_everything(torch: Any, seed: int) -> None:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def evaluate_val(torch: Any, net: Any, arrays: Arrays, batch: int = 8) -> tuple[float, float]:
    """Mean MAE vs the teacher map and mean max-F vs the teacher binarised at 0.5.

    A net whose maps are not finite (a diverged run) scores ``(nan, nan)``.
    """
    net.eval()
    maes, fs = [], []
    with torch.no_grad():
        for start in range(0, len(arrays.luma), batch):
            x = deployment_input(torch.from_numpy(arrays.luma[start : start + batch]))
            pred = net(x)[:, 0].numpy()
            if not np.isfinite(pred).all():
                return math.nan, math.nan
            for p, t in zip(pred, arrays.label[start : start + batch], strict=True):
                maes.append(float(np.abs(p - t).mean()))
                fs.append(max_f_measure(p, t > 0.5))
    return float(np.mean(maes)), float(np.mean(fs))


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    # Cosine from lr to min_lr over all steps (a short linear warm-up first).
    warm = min(100, total // 20)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def _diverged(cfg: TrainConfig, what: str) -> TrainingDivergedError:
    # A resume keeps the run's --lr, so the way on is a new run.
    return TrainingDivergedError(
        f"{what}: the training diverged at --lr {cfg.lr:g}; run again with a lower --lr "
        "and --force (or another --out)"
    )


def train_student(  # noqa: PLR0913 -- the library's options, each a keyword of its own
    cfg: TrainConfig,
    train: Arrays,
    val: Arrays,
    *,
    checkpoint: Path,
    resume: bool = False,
    stop_after: int | None = None,
    progress: TextIO | None = None,
    extra_val: Arrays | None = None,
    data_key: str | None = None,
) -> TrainOutcome:
    """Train, checkpointing after every epoch; ``stop_after`` simulates an interruption.

    ``data_key`` names the data (images, split, teacher) in the checkpoint, so
    that a resume on other data can be refused (:func:`check_resume_data`).

    Every random draw comes from generators derived from (seed, epoch), so a run
    resumed from the checkpoint of epoch k ends with the same weights as one
    that was never interrupted.
    """
    torch = require_torch()
    bf16 = autocast_bf16(cfg)
    check_ema(cfg)
    check_loss_weights(cfg)
    check_schedule(cfg, limit=None, threads=None)
    check_freeze_batchnorm(cfg)
    _seed_everything(torch, run_seed(cfg))
    if resume:
        check_resumable(checkpoint)
    parts = _build_parts(torch, cfg, train, fresh=not resume)
    done = _Done()
    if resume:
        done = _resume(torch, cfg, parts, checkpoint)
        if progress is not None:
            print(f"resumed from {checkpoint} after epoch {done.epoch}", file=progress)
    for epoch in range(done.epoch + 1, cfg.epochs + 1):
        start = time.perf_counter()
        train_loss, lr = _train_epoch(torch, cfg, parts, train, epoch, bf16=bf16)
        figures = _validate(torch, parts, epoch, val, extra_val, cfg=cfg)
        seconds = time.perf_counter() - start
        record = _epoch_record(epoch, train_loss, lr, seconds, figures)
        done = _Done(
            epoch,
            (*done.history, record),
            _select(done.best, epoch, figures, parts),
            done.elapsed + seconds,
        )
        if progress is not None:
            _print_epoch(progress, cfg, record, figures, done, seconds=seconds)
        _save_checkpoint(torch, checkpoint, cfg, parts, done, data_key=data_key)
        if stop_after is not None and epoch >= stop_after and epoch < cfg.epochs:
            return done.outcome(interrupted=True)
    return done.outcome()


def check_resumable(checkpoint: Path) -> None:
    """Refuse a ``--resume`` with no checkpoint: a mistyped --out would start afresh unsaid."""
    if not checkpoint.is_file():
        raise UsageError(
            f"--resume: no checkpoint {checkpoint} to resume from: give the --out of the "
            "interrupted run, or start afresh without --resume"
        )


# --- the loop's steps -------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    """What the epochs train: the net, any side heads, the optimiser, any moving average."""

    net: Any
    sides: Any
    optimizer: Any
    average: Any


@dataclass(frozen=True)
class _Best:
    """The weights selected so far: their epoch, their kind ("raw" or "ema") and their
    selection key (val max-F, then minus val MAE; the start loses to any epoch)."""

    state: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    key: tuple[float, float] = (-1.0, 0.0)
    weights: str = "raw"


@dataclass(frozen=True)
class _Done:
    """Where a run stands after its last finished epoch (0: none): what a checkpoint keeps."""

    epoch: int = 0
    history: tuple[EpochRecord, ...] = ()
    best: _Best = field(default_factory=_Best)
    elapsed: float = 0.0  # seconds of training, over every session of a resumed run

    def outcome(self, *, interrupted: bool = False) -> TrainOutcome:
        best = self.best
        return TrainOutcome(
            self.history,
            best.epoch,
            best.state,
            self.elapsed,
            interrupted=interrupted,
            best_weights=best.weights,
        )


@dataclass(frozen=True)
class _Figures:
    """An epoch's validation figures, each (MAE, max-F) and unrounded; None where not kept."""

    val: tuple[float, float]
    extra: tuple[float, float] | None
    ema: tuple[float, float] | None
    ema_extra: tuple[float, float] | None


def _build_parts(torch: Any, cfg: TrainConfig, train: Arrays, *, fresh: bool) -> _Parts:
    """The net (from ``--init-from`` when ``fresh``, i.e. not resuming), side heads,
    optimiser and moving average, in the order that gives every run its seeded draws."""
    net = build_student(cfg)
    if fresh:
        start_from_init(cfg, net, train.luma)
    # Built after the net (and any --init-from): fresh, seeded heads every run.
    sides = build_side_heads(cfg, net)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if cfg.freeze_batchnorm:
        freeze_batchnorm(net)
    optimizer = torch.optim.Adam(
        trained_parameters(net, sides), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    average = None
    if cfg.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        average = AveragedModel(
            net,
            multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),  # type: ignore[no-untyped-call]
            use_buffers=True,
        )
    return _Parts(net, sides, optimizer, average)


def _resume(torch: Any, cfg: TrainConfig, parts: _Parts, checkpoint: Path) -> _Done:
    """Load ``parts`` and torch's generator from ``checkpoint``; where that run stood.

    Refuses a checkpoint written with other hyper-parameters.
    """
    state = load_checkpoint(checkpoint, flag="--resume from")
    saved = dict(state["config"])
    saved.setdefault("precision", "fp32")  # checkpoints from before --precision trained fp32
    saved.setdefault("ema_decay", 0.0)  # and from before --ema-decay kept no average
    saved.setdefault("side_weight", 0.0)  # and from before --side-weight had no side heads
    saved.setdefault("run_seed", None)  # and from before --run-seed drew from --seed
    saved.setdefault("freeze_batchnorm", False)  # and before --freeze-batchnorm trained BN
    if saved != asdict(cfg):
        raise UsageError(
            f"{checkpoint} was written with other hyper-parameters: resume with the same "
            "options, or start afresh without --resume (or with another --out)"
        )
    try:
        return _load_state(torch, parts, state)
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:
        # Its options are this run's, its tensors or records not: cut, edited or foreign.
        # torch's first line only names the net: its second names the tensor.
        said = " ".join(line.strip() for line in str(exc).splitlines()[:2]) or type(exc).__name__
        raise InputFileError(
            f"--resume from {checkpoint}: its weights or records do not fit this run's net "
            f"({said[:300]}): start afresh without --resume (or with another --out)"
        ) from exc


def _load_state(torch: Any, parts: _Parts, state: dict[str, Any]) -> _Done:
    """Load a checkpoint's tensors into ``parts``; where its run stood."""
    parts.net.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    history = tuple(EpochRecord(**h) for h in state["history"])
    best = _Best(
        state["best_state"],
        int(state["best_epoch"]),
        (float(state["best_key"][0]), float(state["best_key"][1])),
        str(state.get("best_weights", "raw")),
    )
    if parts.average is not None:
        parts.average.load_state_dict(state["ema"])
    if parts.sides is not None:
        parts.sides.load_state_dict(state["sides"])
    torch.set_rng_state(state["torch_rng"])
    return _Done(int(state["epoch"]), history, best, float(state.get("seconds", 0.0)))


def _train_epoch(
    torch: Any, cfg: TrainConfig, parts: _Parts, train: Arrays, epoch: int, *, bf16: bool
) -> tuple[float, float]:
    """One epoch's steps over a seeded order of ``train``: the mean loss and the last rate."""
    net, optimizer, average = parts.net, parts.optimizer, parts.average
    net.train()
    if cfg.freeze_batchnorm:
        freeze_batchnorm(net)
    n = len(train.luma)
    steps = cfg.steps_per_epoch or max(1, n // cfg.batch_size)
    total = steps * cfg.epochs
    rng = np.random.default_rng([run_seed(cfg), epoch])
    order = np.concatenate(
        [rng.permutation(n) for _ in range(math.ceil(steps * cfg.batch_size / n))]
    )
    losses = []
    lr = cfg.lr
    for step in range(steps):
        lr = _lr_at(cfg, (epoch - 1) * steps + step, total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        x, y = augment_batch(torch, train, idx, rng, cfg)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        losses.append(
            optimizer_step(torch, net, optimizer, x, y, cfg, bf16=bf16, sides=parts.sides)
        )
        if not math.isfinite(losses[-1]):
            # The weights are now NaN too: every later step and figure would be.
            raise _diverged(cfg, f"the loss became {losses[-1]} at epoch {epoch}, step {step + 1}")
        if average is not None:
            average.update_parameters(net)
    return float(np.mean(losses)), lr


def _validate(
    torch: Any,
    parts: _Parts,
    epoch: int,
    val: Arrays,
    extra_val: Arrays | None,
    *,
    cfg: TrainConfig,
) -> _Figures:
    """The net's figures on ``val`` (and ``extra_val``), and the moving average's if kept."""
    val_mae, val_f = evaluate_val(torch, parts.net, val)
    if not math.isfinite(val_mae):
        # The last step's loss was taken before its update, which can be what
        # sent the weights out of range: the maps show it.
        raise _diverged(cfg, f"the validation maps became NaN or infinite in epoch {epoch}")
    average = parts.average
    extra = evaluate_val(torch, parts.net, extra_val) if extra_val is not None else None
    ema = evaluate_val(torch, average.module, val) if average is not None else None
    ema_extra = (
        evaluate_val(torch, average.module, extra_val)
        if average is not None and extra_val is not None
        else None
    )
    return _Figures((val_mae, val_f), extra, ema, ema_extra)


def _rounded(pair: tuple[float, float] | None) -> tuple[float | None, float | None]:
    return (None, None) if pair is None else (round(pair[0], 6), round(pair[1], 6))


def _epoch_record(
    epoch: int, train_loss: float, lr: float, seconds: float, figures: _Figures
) -> EpochRecord:
    """The history's entry for an epoch: figures rounded to 6 places, seconds to 0.1."""
    extra, ema, ema_extra = (_rounded(f) for f in (figures.extra, figures.ema, figures.ema_extra))
    return EpochRecord(
        epoch,
        train_loss,
        round(figures.val[0], 6),
        round(figures.val[1], 6),
        lr,
        round(seconds, 1),
        extra_val_mae=extra[0],
        extra_val_max_f=extra[1],
        ema_val_mae=ema[0],
        ema_val_max_f=ema[1],
        ema_extra_val_mae=ema_extra[0],
        ema_extra_val_max_f=ema_extra[1],
    )


def _select(best: _Best, epoch: int, figures: _Figures, parts: _Parts) -> _Best:
    """The best weights after ``epoch``: its raw weights or their moving average where
    either beats the best so far (unrounded figures: higher max-F, then lower MAE)."""
    val_mae, val_f = figures.val
    candidates = [("raw", (val_f, -val_mae), parts.net)]
    if parts.average is not None and figures.ema is not None:
        candidates.append(("ema", (figures.ema[1], -figures.ema[0]), parts.average.module))
    for weights, key, source in candidates:
        if key > best.key:
            state = {k: v.detach().clone() for k, v in source.state_dict().items()}
            best = _Best(state, epoch, key, weights)
    return best


def _print_epoch(
    progress: TextIO,
    cfg: TrainConfig,
    record: EpochRecord,
    figures: _Figures,
    done: _Done,
    *,
    seconds: float,
) -> None:
    """The epoch's progress line (unrounded figures), with the time left and the best mark."""
    val_mae, val_f = figures.val
    extra, ema = figures.extra, figures.ema
    epoch = record.epoch
    print(
        f"epoch {epoch}/{cfg.epochs}: loss {record.train_loss:.4f}  val MAE {val_mae:.4f}  "
        f"val maxF {val_f:.4f}  lr {record.lr:.2e}  {seconds:.0f} s"
        + time_left(epoch, cfg.epochs, done.elapsed)
        + (f"  extra-val MAE {extra[0]:.4f} maxF {extra[1]:.4f}" if extra else "")
        + (f"  EMA val maxF {ema[1]:.4f}" if ema else "")
        + (f"  *best ({done.best.weights})" if done.best.epoch == epoch else ""),
        file=progress,
        flush=True,
    )


def _save_checkpoint(
    torch: Any,
    path: Path,
    cfg: TrainConfig,
    parts: _Parts,
    done: _Done,
    *,
    data_key: str | None,
) -> None:
    """Write, atomically, what ``--resume`` needs to go on after ``done.epoch``."""
    state = {
        "config": asdict(cfg),
        "epoch": done.epoch,
        "model": parts.net.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "history": [asdict(h) for h in done.history],
        "best_state": done.best.state,
        "best_epoch": done.best.epoch,
        "best_key": list(done.best.key),
        "best_weights": done.best.weights,
        "ema": parts.average.state_dict() if parts.average is not None else None,
        "sides": parts.sides.state_dict() if parts.sides is not None else None,
        "seconds": done.elapsed,
        "torch_rng": torch.get_rng_state(),
        "data": data_key,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


__all__ = [
    "EpochRecord",
    "TrainOutcome",
    "check_resumable",
    "evaluate_val",
    "train_student",
]
