"""The two protocols that turn an image into a model input and a map into 8 bits.

* ``upstream`` reproduces the test-time pipeline of upstream ``u2net_test.py``
  (U-2-Net, commit pin ``ac7e1c81``): RGB in (a grey image goes to all three
  channels with the first channel's mean/std, as upstream's ``ToTensorLab``
  does), resize to the inference size, divide by the image maximum, ImageNet
  mean/std, take ``d0`` (our ``saliency_map``), min-max it per image
  (``normPRED``), quantise ``x * 255`` by truncation (PIL's float-to-8-bit
  conversion), and resize the 8-bit map back to the image size with PIL's
  ``BILINEAR``, exactly as ``save_output`` does.
* ``deployment`` is the extractor's own pipeline, what production sees: the
  BT.601 full-range luma of the RGB image (``Y = 0.299 R + 0.587 G + 0.114 B``,
  as JPEG stores it, rounded to 8 bits) through :func:`extract.preprocess`
  (``luma_tile``), the raw map (no min-max), resized back with the extractor's
  antialiased bilinear and rounded to 8 bits as ``--save-maps`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

from vmafx_saliency.science.evaluate.helpers import _pil
from vmafx_saliency.video.resize import resize_plane

if TYPE_CHECKING:
    from vmafx_saliency.supply.registry import Preprocessing

Protocol = Literal["upstream", "deployment"]
PROTOCOLS: tuple[Protocol, ...] = ("upstream", "deployment")

PROTOCOL_TEXT: dict[str, str] = {
    "upstream": (
        "upstream u2net_test.py: RGB (grey: channel 0's mean/std on all three), resize to "
        "the sidecar's inference size with the extractor's antialiased bilinear (upstream: "
        "skimage transform.resize), divide by the image max, sidecar mean/std, d0, per-image "
        "min-max (normPRED), x255 truncated to 8 bits, PIL BILINEAR back to the image size"
    ),
    "deployment": (
        "the extractor: BT.601 full-range luma Y = 0.299 R + 0.587 G + 0.114 B rounded to "
        "8 bits, extract.preprocess (luma_tile, color_range full, the sidecar's size, scaling "
        "and mean/std), raw map (no min-max), antialiased bilinear back to the image size, "
        "rounded to 8 bits"
    ),
}


def _size_for(pre: Preprocessing, image_hw: tuple[int, int]) -> tuple[int, int]:
    return pre.inference_size if pre.inference_size is not None else image_hw


def upstream_input(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """Upstream's RescaleT + ToTensorLab(flag=0), with the sidecar's size and mean/std."""
    size = _size_for(pre, (image.shape[0], image.shape[1]))
    planes = [image] if image.ndim == 2 else [image[:, :, c] for c in range(3)]
    # skimage's resize turns uint8 into [0, 1] floats before resizing, as here.
    resized = [resize_plane(p.astype(np.float32) / 255.0, size) for p in planes]
    stack = np.stack(resized)
    if pre.scaling == "divide_by_max":
        peak = float(stack.max())
        if peak > 0.0:  # upstream divides unconditionally; a black image would give NaN
            stack = stack / peak
    if len(resized) == 1:
        # ToTensorLab: a one-channel image gets channel 0's mean/std on all three.
        mean = np.full((3, 1, 1), pre.mean[0], dtype=np.float32)
        std = np.full((3, 1, 1), pre.std[0], dtype=np.float32)
        stack = np.repeat(stack, 3, axis=0)
    else:
        mean = np.asarray(pre.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(pre.std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray(((stack - mean) / std)[None], dtype=np.float32)


def luma8(image: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma of an 8-bit RGB image, rounded to 8 bits (JPEG's Y)."""
    if image.ndim == 2:
        return image
    rgb = image.astype(np.float32)
    y = 0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]
    out: np.ndarray = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    return out


def deployment_input(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    from vmafx_saliency.video.extract import preprocess

    size = _size_for(pre, (image.shape[0], image.shape[1]))
    return preprocess(luma8(image), bit_depth=8, color_range="full", pre=pre, size=size)


def upstream_output(saliency: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """normPRED, x255 truncated to 8 bits, PIL BILINEAR back to the image size."""
    pil = _pil()
    sal = saliency.astype(np.float32)
    lo, hi = float(sal.min()), float(sal.max())
    # Upstream divides by (max - min) unguarded; a flat map becomes all zeros here.
    norm = (sal - lo) / (hi - lo) if hi > lo else np.zeros_like(sal)
    # PIL's float -> 8-bit conversion clips to [0, 255] and truncates.
    map8 = np.clip(norm * np.float32(255.0), 0.0, 255.0).astype(np.uint8)
    height, width = image_hw
    if map8.shape == image_hw:
        return map8
    # A 2-D uint8 array becomes a mode "L" image; one channel of upstream's RGB copy.
    resized = pil.fromarray(map8).resize((width, height), pil.Resampling.BILINEAR)
    out: np.ndarray = np.asarray(resized, dtype=np.uint8)
    return out


def deployment_output(saliency: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """The raw map, antialiased bilinear to the image size, rounded to 8 bits."""
    plane = saliency.astype(np.float32)
    if plane.shape != image_hw:
        plane = resize_plane(plane, image_hw)
    out: np.ndarray = np.rint(np.clip(plane, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


_INPUTS: dict[str, Callable[[np.ndarray, Preprocessing], np.ndarray]] = {
    "upstream": upstream_input,
    "deployment": deployment_input,
}
_OUTPUTS: dict[str, Callable[[np.ndarray, tuple[int, int]], np.ndarray]] = {
    "upstream": upstream_output,
    "deployment": deployment_output,
}
