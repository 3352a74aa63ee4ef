"""Parity inputs and pre-processing: upstream's normalisation, generated and real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from PIL import Image  # noqa: E402

from vmafx_saliency.errors import InputFileError  # noqa: E402
from vmafx_saliency.supply import export  # noqa: E402
from vmafx_saliency.supply.export import images  # noqa: E402


def test_preprocess_upstream() -> None:
    white = Image.new("RGB", (40, 30), (255, 255, 255))
    x = export.preprocess_upstream(white, (16, 24))
    assert x.shape == (1, 3, 16, 24)
    assert x.dtype == np.float32
    for c, (mean, std) in enumerate(zip(export.IMAGENET_MEAN, export.IMAGENET_STD, strict=True)):
        np.testing.assert_allclose(x[0, c], (1.0 - mean) / std, rtol=1e-6)
    # Division by the image maximum: a dim image maps like a bright one.
    dim = export.preprocess_upstream(Image.new("RGB", (40, 30), (100, 100, 100)), (16, 24))
    np.testing.assert_allclose(dim, x, rtol=1e-6)
    # Grey and RGBA inputs become three channels; black does not divide by zero.
    grey = export.preprocess_upstream(Image.new("L", (8, 8), 0), (8, 8))
    assert grey.shape == (1, 3, 8, 8)
    assert np.isfinite(grey).all()
    rgba = export.preprocess_upstream(Image.new("RGBA", (8, 8), (10, 20, 30, 0)), (5, 7))
    assert rgba.shape == (1, 3, 5, 7)


def test_parity_inputs_fall_back_to_generated_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "DEFAULT_IMAGES", tmp_path / "absent")
    inputs = images.parity_inputs(None)
    assert [i.array.shape[2:] for i in inputs] == list(export.PARITY_SIZES)
    assert all(i.image.startswith("synthetic") for i in inputs)
    again = images.parity_inputs(None)
    for a, b in zip(inputs, again, strict=True):
        np.testing.assert_allclose(a.array, b.array, rtol=0, atol=0)
    assert float(inputs[0].array.std()) > 0.1  # not a flat image
    with pytest.raises(InputFileError, match=r"no \.jpg/\.png images"):
        images.parity_inputs(tmp_path)
    # Installed, with no ../shared to default to: generated images alike.
    monkeypatch.setattr(images, "DEFAULT_IMAGES", None)
    assert [i.image for i in images.parity_inputs(None)] == [i.image for i in inputs]


def test_real_parity_inputs_are_sorted_files(images_dir: Path) -> None:
    inputs = images.parity_inputs(images_dir)
    names = sorted(p.name for p in images_dir.iterdir())
    assert [i.image for i in inputs] == names[:3]
