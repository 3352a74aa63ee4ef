"""Fixtures of the student-training tests: one torch thread, six images, a tiny teacher."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from vmafx_saliency.nets.student import StudentUNet  # noqa: E402
from vmafx_saliency.science import train  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared, loaded machine two threads thrash on tiny convs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def six_images(tmp_path_factory: pytest.TempPathFactory, images_dir: Path) -> Path:
    """Six of the shared demo images (mixed sizes, RGB and RGBA)."""
    folder = tmp_path_factory.mktemp("train-images")
    for path in train.list_images(images_dir)[:6]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weights teacher ONNX that meets the contract (fast labels)."""
    torch.manual_seed(3)
    data = train.student_onnx_bytes(StudentUNet((4, 4, 8), stem_convs=1))
    path = tmp_path_factory.mktemp("teacher") / "tiny_teacher.onnx"
    path.write_bytes(data)
    return path
