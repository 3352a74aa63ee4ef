"""Options no run can use are refused before any work, by run_training and train_student."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from tests._train import TINY, _arrays  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    UsageError,
)
from vmafx_saliency.science import train  # noqa: E402


def test_freeze_batchnorm_without_init_from_is_refused_before_any_work(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, freeze_batchnorm=True)
    want = r"--freeze-batchnorm keeps the BatchNorms of the net it starts from.*give --init-from"
    with pytest.raises(UsageError, match=want):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match=want):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "f.pt")
    assert not (tmp_path / "f.pt").exists()


@pytest.mark.parametrize(
    ("change", "run_args", "want"),
    [
        ({"epochs": 0}, {}, "--epochs 0: give a whole number of 1 or more"),
        ({"batch_size": 0}, {}, "--batch-size 0: give a whole number of 1 or more"),
        ({"crop": -8}, {}, "--crop -8: give a whole number of 1 or more"),
        # 0 would otherwise read as None, "one pass over the split"
        ({"steps_per_epoch": 0}, {}, "--steps-per-epoch 0: give a whole number of 1 or more"),
        ({}, {"limit": 0}, "--limit 0: give a whole number of 1 or more"),
        ({}, {"threads": 0}, "--threads 0: give a whole number of 1 or more"),
        ({"lr": 0.0}, {}, r"--lr 0.0: give a learning rate > 0"),
        ({"lr": math.nan}, {}, r"--lr nan: give a learning rate > 0"),
    ],
)
def test_a_schedule_no_run_can_use_is_refused_before_any_labelling(
    tmp_path: Path, change: dict[str, Any], run_args: dict[str, Any], want: str
) -> None:
    cfg = dataclasses.replace(TINY, **change)
    with pytest.raises(UsageError, match=want):
        train.run_training(
            out_dir=tmp_path / "run",
            image_dirs=[tmp_path / "absent"],  # labelling would fail on this, not hang
            cfg=cfg,
            progress=None,
            **run_args,
        )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("change", "want"),
    [
        ({"steps_per_epoch": 0}, r"--steps-per-epoch 0: give a whole number of 1 or more"),
        ({"epochs": 0}, r"--epochs 0: give a whole number of 1 or more"),
        ({"lr": 0.0}, r"--lr 0\.0: give a learning rate > 0"),
    ],
)
def test_train_student_refuses_the_same_schedules_when_called_directly(
    tmp_path: Path, change: dict[str, Any], want: str
) -> None:
    # Not only through run_training: 0 steps would otherwise train a whole pass,
    # and 0 epochs return an outcome with no history.
    cfg = dataclasses.replace(TINY, crop=32, **change)
    with pytest.raises(UsageError, match=want):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize(
    ("field", "flag"), [("iou_weight", "--iou-weight"), ("l1_weight", "--l1-weight")]
)
@pytest.mark.parametrize("value", [-1.0, math.nan])
def test_a_negative_or_nan_loss_weight_is_refused(field: str, flag: str, value: float) -> None:
    changes: dict[str, Any] = {"crop": 32, field: value}
    cfg = dataclasses.replace(TINY, **changes)
    with pytest.raises(UsageError, match=rf"{flag} {value}: give a weight >= 0"):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=Path("/nonexistent"))


@pytest.mark.parametrize("scale_min", [0.0, 1.5])
def test_a_crop_scale_outside_the_unit_interval_is_refused(
    tmp_path: Path, scale_min: float
) -> None:
    cfg = dataclasses.replace(TINY, scale_min=scale_min)
    with pytest.raises(UsageError, match=f"--scale-min {scale_min}: give a fraction"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def test_an_unknown_teacher_input_is_refused_before_any_work(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, teacher_input="yuv")
    with pytest.raises(UsageError, match="--teacher-input 'yuv': give one of rgb, luma"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def test_an_unknown_loss_is_refused_before_any_work(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, loss="focal")
    with pytest.raises(UsageError, match="--loss 'focal': give one of bce_iou, structure"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def test_an_unknown_precision_is_refused_before_any_work(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, precision="fp16")
    with pytest.raises(UsageError, match="--precision 'fp16': give one of fp32, bf16"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def test_train_student_itself_refuses_an_unknown_precision(tmp_path: Path) -> None:
    # Called directly (not through run_training) a bad precision must not train fp32 silently.
    cfg = dataclasses.replace(TINY, precision="fp16")
    with pytest.raises(UsageError, match="--precision 'fp16': give one of fp32, bf16"):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_a_decay_outside_zero_to_one_is_refused_before_any_work(
    tmp_path: Path, decay: float
) -> None:
    cfg = dataclasses.replace(TINY, ema_decay=decay)
    with pytest.raises(UsageError, match=rf"--ema-decay {decay}: give a decay in \[0, 1\)"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="--ema-decay"):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("weight", [-0.5, float("nan")])
def test_a_negative_side_weight_is_refused_before_any_work(tmp_path: Path, weight: float) -> None:
    cfg = dataclasses.replace(TINY, side_weight=weight)
    with pytest.raises(UsageError, match=r"--side-weight nan|--side-weight -0.5: give a weight"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="--side-weight"):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()
