"""Helpers shared by the student-training tests (tests/science/train, tests/cli/test_train.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch  # the test modules that import these helpers skip first without it

from vmafx_saliency.nets.student import StudentUNet
from vmafx_saliency.science import train

COMMITTED_STUDENT = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "vmafx_saliency"
    / "models"
    / "saliency_student_v2.onnx"
)

TINY = train.TrainConfig(
    epochs=3, batch_size=2, crop=48, steps_per_epoch=3, val_fraction=0.34, lr=1e-2
)


def _arrays(n: int, seed: int) -> train.Arrays:
    rng = np.random.default_rng(seed)
    luma = rng.random((n, 40, 40), dtype=np.float32)
    yy, xx = np.mgrid[:40, :40]
    blob = ((yy - 20) ** 2 + (xx - 20) ** 2 < 120).astype(np.float32)
    label = np.repeat(blob[None], n, axis=0) * rng.uniform(0.6, 1.0, (n, 1, 1)).astype(np.float32)
    return train.Arrays(luma, label, tuple(f"{i}" for i in range(n)))


def _exported_student(tmp_path: Path, widths: tuple[int, ...] = (16, 32, 32, 32, 40, 40)) -> Path:
    torch.manual_seed(7)
    path = tmp_path / f"student_{len(widths)}.onnx"
    path.write_bytes(train.student_onnx_bytes(StudentUNet(widths).eval()))
    return path


def _assert_init_from_refused(
    cfg: train.TrainConfig, error: type[Exception], match: str, tmp_path: Path
) -> None:
    """Refused by the early check (before any labelling) and by the library's own."""
    with pytest.raises(error, match=match):
        train.check_init_from(cfg)
    with pytest.raises(error, match=match):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "h.pt")
    assert not (tmp_path / "h.pt").exists()


def _conv_graph(nodes: list[Any], initialisers: list[Any]) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
        initializer=initialisers,
    )
    return bytes(helper.make_model(graph).SerializeToString())
