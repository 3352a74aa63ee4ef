"""Images for the parity check: upstream's pre-processing, seeded synthetic images, the inputs.

:func:`preprocess_upstream` is U-2-Net's test-time pre-processing (also the
student's); :func:`parity_inputs` gives one pre-processed input per
:data:`PARITY_SIZES` entry, from real images when there are any and from
:func:`synthetic_image` otherwise. Pillow is imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vmafx_saliency._util import in_shared
from vmafx_saliency.errors import InputFileError
from vmafx_saliency.supply.export import lazy

# (H, W): the upstream test size, a non-square one, and an odd one.
PARITY_SIZES: tuple[tuple[int, int], ...] = ((320, 320), (288, 352), (333, 517))
# Upstream test-time normalisation (data_loader.ToTensorLab, flag 0).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# The parity images read when no --images-dir is given (installed: generated ones).
DEFAULT_IMAGES = in_shared("data", "images")


class ParityInput(NamedTuple):
    """A pre-processed input (float32 [1, 3, H, W]) and the name of its source."""

    image: str
    array: np.ndarray[Any, np.dtype[np.float32]]


def preprocess_upstream(image: Any, size: tuple[int, int]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Upstream test-time pre-processing: float32 [1, 3, H, W] for ``size=(H, W)``.

    RGB (grey is replicated, alpha dropped), bilinear resize, division by the
    image maximum, then ImageNet mean/std, as upstream's RescaleT + ToTensorLab.
    """
    pil_image = lazy.pil_image()
    height, width = size
    rgb = image.convert("RGB").resize((width, height), pil_image.Resampling.BILINEAR)
    arr = np.asarray(rgb, dtype=np.float64)
    peak = float(arr.max())
    # Upstream divides unconditionally; an all-black image would give NaN.
    if peak > 0:
        arr = arr / peak
    arr = (arr - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None], dtype=np.float32)


def synthetic_image(size: tuple[int, int], *, seed: int = 0) -> Any:
    """A seeded natural-looking RGB image: smooth colour noise plus a few shapes."""
    pil_image = lazy.pil_image()
    image_draw = lazy.pil_image_draw()
    height, width = size
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(max(2, height // 24), max(2, width // 24), 3))
    canvas = pil_image.fromarray(coarse.astype(np.uint8), "RGB").resize(
        (width, height), pil_image.Resampling.BICUBIC
    )
    draw = image_draw.Draw(canvas)
    for _ in range(4):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, size=2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, size=2))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return canvas


def parity_inputs(images_dir: Path | None) -> list[ParityInput]:
    """One input per :data:`PARITY_SIZES` entry: real images when there are any."""
    pil_image = lazy.pil_image()
    explicit = images_dir is not None
    directory = images_dir if images_dir is not None else DEFAULT_IMAGES
    files: list[Path] = []
    if directory is not None and directory.is_dir():
        files = sorted(
            p for p in directory.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()
        )
    if explicit and not files:
        raise InputFileError(
            f"--images-dir {directory} holds no .jpg/.png images: point it at the upstream "
            "demo images or leave it out to use generated ones"
        )
    inputs = []
    for index, size in enumerate(PARITY_SIZES):
        if files:
            path = files[index % len(files)]
            try:
                with pil_image.open(path) as img:
                    img.load()
                    array = preprocess_upstream(img, size)
            except OSError as exc:
                raise InputFileError(f"cannot read image {path}: {exc}") from exc
            inputs.append(ParityInput(path.name, array))
        else:
            image = synthetic_image(size, seed=index)
            inputs.append(ParityInput(f"synthetic(seed={index})", preprocess_upstream(image, size)))
    return inputs
