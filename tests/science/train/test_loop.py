"""The training loop: resume, progress lines, seeds, divergence, layouts, precision, averages."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from tests._train import TINY, _arrays, _exported_student  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    TrainingDivergedError,
    UsageError,
)
from vmafx_saliency.nets.student import StudentUNet  # noqa: E402
from vmafx_saliency.science import train  # noqa: E402


def test_resume_reaches_the_same_weights(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32)
    data, val = _arrays(6, 0), _arrays(2, 1)
    whole = train.train_student(cfg, data, val, checkpoint=tmp_path / "a.pt")
    part = train.train_student(cfg, data, val, checkpoint=tmp_path / "b.pt", stop_after=1)
    assert part.interrupted and len(part.history) == 1
    resumed = train.train_student(cfg, data, val, checkpoint=tmp_path / "b.pt", resume=True)
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    strip = [dataclasses.replace(h, seconds=0.0) for h in whole.history]
    assert [dataclasses.replace(h, seconds=0.0) for h in resumed.history] == strip
    a = torch.load(tmp_path / "a.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_each_epoch_line_says_how_long_is_left_and_the_last_does_not(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32)
    lines = io.StringIO()
    train.train_student(
        cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "p.pt", progress=lines
    )
    epochs = [line for line in lines.getvalue().splitlines() if line.startswith("epoch ")]
    assert len(epochs) == cfg.epochs
    assert all(" left" in line for line in epochs[:-1])
    assert " left" not in epochs[-1]


def _batchnorm_state(net: StudentUNet) -> dict[str, Any]:
    """The BatchNorm entries of ``net``'s state dict (gamma, beta and statistics)."""
    names = {name for name, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    return {k: v for k, v in net.state_dict().items() if k.rpartition(".")[0] in names}


def test_freeze_batchnorm_trains_the_convolutions_and_keeps_the_files_batchnorms(
    tmp_path: Path,
) -> None:
    onnx_path = _exported_student(tmp_path)
    data, val = _arrays(6, 0), _arrays(2, 1)
    cfg = dataclasses.replace(TINY, crop=32, epochs=2, init_from=str(onnx_path))
    start = StudentUNet()
    train.init_from_onnx(cfg, start, onnx_path, data.luma)  # what train_student starts from
    initial = start.state_dict()

    def trained(c: train.TrainConfig, name: str) -> dict[str, Any]:
        train.train_student(c, data, val, checkpoint=tmp_path / name)
        state: dict[str, Any] = torch.load(tmp_path / name, weights_only=False)["model"]
        return state

    frozen = trained(dataclasses.replace(cfg, freeze_batchnorm=True), "frozen.pt")
    free = trained(cfg, "free.pt")
    kept = _batchnorm_state(start)
    assert len(kept) == 5 * len(
        [m for m in start.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    )  # weight, bias, running_mean, running_var, num_batches_tracked
    assert all(torch.equal(frozen[k], v) for k, v in kept.items())
    assert not all(torch.equal(free[k], v) for k, v in kept.items())  # train mode moves them
    convs = [k for k in initial if k.endswith("conv.weight") or k == "head.weight"]
    assert convs and all(not torch.allclose(frozen[k], initial[k]) for k in convs)


def test_a_run_seed_changes_the_draws_and_nothing_else(tmp_path: Path) -> None:
    """--run-seed equal to --seed is the default run; another draws other weights
    and batches from the same data (the split is made by the caller from --seed)."""
    cfg = dataclasses.replace(TINY, crop=32, epochs=1)
    data, val = _arrays(6, 0), _arrays(2, 1)

    def weights(c: train.TrainConfig, name: str) -> dict[str, Any]:
        train.train_student(c, data, val, checkpoint=tmp_path / name)
        state: dict[str, Any] = torch.load(tmp_path / name, weights_only=False)["model"]
        return state

    default = weights(cfg, "default.pt")
    same = weights(dataclasses.replace(cfg, run_seed=cfg.seed), "same.pt")
    other = weights(dataclasses.replace(cfg, run_seed=cfg.seed + 1), "other.pt")
    assert all(torch.equal(default[k], same[k]) for k in default)
    assert any(not torch.allclose(default[k], other[k]) for k in default if k.endswith("weight"))
    assert train.run_seed(cfg) == cfg.seed
    assert train.run_seed(dataclasses.replace(cfg, run_seed=5)) == 5


def test_a_checkpoint_from_before_run_seed_resumes_with_the_split_seed(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32, epochs=2)
    data, val = _arrays(4, 0), _arrays(2, 1)
    train.train_student(cfg, data, val, checkpoint=tmp_path / "old.pt", stop_after=1)
    state = torch.load(tmp_path / "old.pt", weights_only=False)
    del state["config"]["run_seed"]  # as the code before --run-seed wrote it
    torch.save(state, tmp_path / "old.pt")
    resumed = train.train_student(cfg, data, val, checkpoint=tmp_path / "old.pt", resume=True)
    assert [h.epoch for h in resumed.history] == [1, 2]
    with pytest.raises(UsageError, match="hyper-parameters"):
        train.train_student(
            dataclasses.replace(cfg, run_seed=3),
            data,
            val,
            checkpoint=tmp_path / "old.pt",
            resume=True,
        )


def test_resume_with_other_options_is_refused(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32, epochs=2)
    data, val = _arrays(4, 0), _arrays(2, 1)
    train.train_student(cfg, data, val, checkpoint=tmp_path / "c.pt", stop_after=1)
    with pytest.raises(UsageError, match="hyper-parameters"):
        train.train_student(
            dataclasses.replace(cfg, lr=1e-4), data, val, checkpoint=tmp_path / "c.pt", resume=True
        )


@pytest.mark.parametrize("option", ["precision", "freeze_batchnorm"])
def test_a_checkpoint_from_before_an_option_resumes_as_it_trained(
    tmp_path: Path, option: str
) -> None:
    # Before --precision every run trained fp32, before --freeze-batchnorm with BN trained.
    cfg = dataclasses.replace(TINY, crop=32, epochs=2)
    data, val = _arrays(4, 0), _arrays(2, 1)
    train.train_student(cfg, data, val, checkpoint=tmp_path / "old.pt", stop_after=1)
    state = torch.load(tmp_path / "old.pt", weights_only=False)
    del state["config"][option]  # as the code before the option wrote it
    torch.save(state, tmp_path / "old.pt")
    resumed = train.train_student(cfg, data, val, checkpoint=tmp_path / "old.pt", resume=True)
    assert [h.epoch for h in resumed.history] == [1, 2]
    with pytest.raises(UsageError, match="hyper-parameters"):
        train.train_student(
            dataclasses.replace(cfg, precision="bf16"),
            data,
            val,
            checkpoint=tmp_path / "old.pt",
            resume=True,
        )


@pytest.mark.parametrize(
    ("steps", "said"),
    [
        (None, r"the loss became nan at epoch 1, step \d+"),
        # One step an epoch: its loss was taken before the update that broke the weights.
        (1, r"the validation maps became NaN or infinite in epoch 1"),
    ],
)
def test_a_diverging_run_stops_with_what_to_do(
    tmp_path: Path, steps: int | None, said: str
) -> None:
    cfg = dataclasses.replace(TINY, crop=32, epochs=3, lr=1e30, steps_per_epoch=steps)
    with pytest.raises(
        TrainingDivergedError,
        match=rf"{said}: the training diverged at --lr 1e\+30; run again with a lower --lr "
        r"and --force \(or another --out\)",
    ):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()  # no epoch finished: nothing to resume from


def test_channels_last_trains_like_nchw(tmp_path: Path) -> None:
    # NHWC only changes the convolution kernels' summation order: the same run
    # in both layouts starts with the same loss and keeps nearly the same
    # validation figures (batch-2 BatchNorm amplifies the last-bit differences
    # over the steps, so the first epoch is compared tightly, the rest loosely).
    # Attempt 8E's narrower widths and one-convolution stem: the wider, deeper
    # default stem drifts apart faster within the first epoch's three steps,
    # which says nothing about the layout.
    cfg = dataclasses.replace(
        TINY,
        crop=32,
        loss="structure",
        lr=1e-3,
        widths=(8, 24, 32, 32, 40, 40),
        stem_convs=1,
    )
    data, val = _arrays(6, 0), _arrays(2, 1)
    nhwc = train.train_student(cfg, data, val, checkpoint=tmp_path / "a.pt")
    nchw = train.train_student(
        dataclasses.replace(cfg, channels_last=False), data, val, checkpoint=tmp_path / "b.pt"
    )
    first_a, first_b = nhwc.history[0], nchw.history[0]
    assert first_a.train_loss == pytest.approx(first_b.train_loss, rel=1e-4)
    assert first_a.val_mae == pytest.approx(first_b.val_mae, abs=1e-4)
    for a, b in zip(nhwc.history, nchw.history, strict=True):
        assert a.val_mae == pytest.approx(b.val_mae, abs=5e-3)


def test_bf16_trains_like_fp32_and_keeps_float32_weights(tmp_path: Path) -> None:
    # Autocast rounds the forward pass to bf16 (8 bits of mantissa): the same run
    # starts from the same loss within bf16's rounding and keeps close validation
    # figures, while the weights it saves stay float32 (the export needs them so).
    cfg = dataclasses.replace(TINY, crop=32, lr=1e-3, widths=(8, 24, 32, 32, 40, 40))
    data, val = _arrays(6, 0), _arrays(2, 1)
    fp32 = train.train_student(cfg, data, val, checkpoint=tmp_path / "a.pt")
    bf16 = train.train_student(
        dataclasses.replace(cfg, precision="bf16"), data, val, checkpoint=tmp_path / "b.pt"
    )
    assert bf16.history[0].train_loss == pytest.approx(fp32.history[0].train_loss, rel=2e-2)
    assert abs(bf16.history[0].train_loss - fp32.history[0].train_loss) > 1e-6  # it acted
    for a, b in zip(fp32.history, bf16.history, strict=True):
        assert b.val_mae == pytest.approx(a.val_mae, abs=2e-2)
    assert all(v.dtype == torch.float32 for v in bf16.best_state.values() if v.is_floating_point())


def test_the_moving_average_follows_its_formula_across_a_resume(tmp_path: Path) -> None:
    # One step per epoch: after epoch 1 the average is a copy of the weights w1
    # (the first update copies); after epoch 2 it is d * w1 + (1 - d) * w2, by hand.
    decay = 0.75
    cfg = dataclasses.replace(TINY, crop=32, epochs=2, steps_per_epoch=1, ema_decay=decay)
    data, val = _arrays(4, 0), _arrays(2, 1)
    ckpt = tmp_path / "e.pt"
    train.train_student(cfg, data, val, checkpoint=ckpt, stop_after=1)
    first = torch.load(ckpt, weights_only=False)
    w1 = first["model"]
    assert all(torch.equal(first["ema"][f"module.{k}"], w1[k]) for k in w1)
    done = train.train_student(cfg, data, val, checkpoint=ckpt, resume=True)
    second = torch.load(ckpt, weights_only=False)
    w2, avg = second["model"], second["ema"]
    moved = [k for k in w1 if w1[k].is_floating_point() and not torch.equal(w1[k], w2[k])]
    assert moved, "the second step changed no weight"
    for k in moved:
        expected = decay * w1[k] + (1 - decay) * w2[k]
        assert torch.allclose(avg[f"module.{k}"], expected, rtol=1e-5, atol=1e-7), k
    assert all(h.ema_val_max_f is not None and h.ema_val_mae is not None for h in done.history)
    source = "module." if done.best_weights == "ema" else ""
    table = avg if source else w2
    # The selected state is the chosen candidate of the chosen epoch; at epoch 1
    # the raw weights and the average are both w1.
    assert done.best_epoch in (1, 2)
    chosen = w1 if done.best_epoch == 1 else {k: table[f"{source}{k}"] for k in w1}
    assert all(torch.equal(done.best_state[k], chosen[k]) for k in w1)


def test_the_moving_average_is_off_by_default_and_the_raw_weights_are_selected(
    tmp_path: Path,
) -> None:
    cfg = dataclasses.replace(TINY, crop=32, epochs=1)
    outcome = train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "o.pt")
    assert outcome.best_weights == "raw"
    assert outcome.history[0].ema_val_max_f is None
    assert torch.load(tmp_path / "o.pt", weights_only=False)["ema"] is None


def test_a_near_zero_decay_averages_to_the_weights_themselves(tmp_path: Path) -> None:
    # decay 1e-9: the average is the last weights, so it validates like them.
    cfg = dataclasses.replace(TINY, crop=32, epochs=2, ema_decay=1e-9)
    outcome = train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "n.pt")
    for h in outcome.history:
        assert h.ema_val_mae == pytest.approx(h.val_mae, abs=1e-5)
        assert h.ema_val_max_f == pytest.approx(h.val_max_f, abs=1e-5)


def _whole_and_resumed(
    cfg: train.TrainConfig, tmp_path: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoints of an uninterrupted run and of one resumed after epoch 1,
    having checked that both record the same epochs and selection."""
    data, val = _arrays(6, 0), _arrays(2, 1)
    whole = train.train_student(cfg, data, val, checkpoint=tmp_path / "a.pt")
    train.train_student(cfg, data, val, checkpoint=tmp_path / "b.pt", stop_after=1)
    resumed = train.train_student(cfg, data, val, checkpoint=tmp_path / "b.pt", resume=True)
    strip = [dataclasses.replace(h, seconds=0.0) for h in whole.history]
    assert [dataclasses.replace(h, seconds=0.0) for h in resumed.history] == strip
    assert resumed.best_weights == whole.best_weights
    a = torch.load(tmp_path / "a.pt", weights_only=False)
    b = torch.load(tmp_path / "b.pt", weights_only=False)
    return a, b


def test_resume_reaches_the_same_weights_with_the_moving_average(tmp_path: Path) -> None:
    a, b = _whole_and_resumed(dataclasses.replace(TINY, crop=32, ema_decay=0.9), tmp_path)
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])


def test_resume_reaches_the_same_weights_with_side_heads(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32, side_weight=0.5)
    a, b = _whole_and_resumed(cfg, tmp_path)
    assert a["sides"].keys() == b["sides"].keys()
    assert all(torch.equal(a["sides"][k], b["sides"][k]) for k in a["sides"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # The side loss changes the training: the weights differ from a run without it.
    train.train_student(
        dataclasses.replace(cfg, side_weight=0.0),
        _arrays(6, 0),
        _arrays(2, 1),
        checkpoint=tmp_path / "p.pt",
    )
    plain = torch.load(tmp_path / "p.pt", weights_only=False)
    assert plain["sides"] is None
    assert not all(torch.equal(a["model"][k], plain["model"][k]) for k in a["model"])
