"""The training images: where they come from, how they split, what the student sees of them.

Images are listed from folders (PASCAL-S, the held-out test set, is refused
anywhere), kept once by content, and split into training and validation by a
seeded, order-independent draw. The student sees what the extractor feeds it:
BT.601 luma as full-range 8-bit, resized and scaled as :func:`extract.preprocess`
does for the student's sidecar, tiled to three channels; training batches are
random scaled crops, flips and brightness/contrast shifts of that luma.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency._util import (
    decode_image,
    require,
    require_extra,
    sha256_bytes,
    sha256_file,
    walk_files,
)
from vmafx_saliency.errors import InputFileError, UsageError
from vmafx_saliency.science.train.config import TrainConfig
from vmafx_saliency.supply.registry import Preprocessing

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# The student is a drop-in for the mirror: the same sidecar pre-processing.
STUDENT_PREPROCESSING = Preprocessing(
    colour_mode="luma_tile",
    inference_size=(320, 320),
    scaling="divide_by_max",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    luma_range="auto",
)
# Held-out benchmark data must never reach training or model selection.
_HELD_OUT = re.compile(r"pascal[-_ ]?s", re.IGNORECASE)


def require_torch() -> Any:
    return require("torch", purpose="training", extra="train")


def require_pil_image() -> Any:
    return require("PIL.Image", purpose="training", extra="train")


def check_train_extra() -> None:
    """All of the train extra, named as such before any work (not by a later step's own)."""
    require_extra(
        "train", {"torch": "training", "PIL.Image": "training", "onnx": "training (the export)"}
    )


@dataclass(frozen=True)
class Sample:
    """One training image and where its label comes from."""

    path: Path
    sha256: str
    mask: Path | None = None  # ground truth (a --gt-root pair); None: the teacher labels it


def refuse_held_out(path: Path) -> None:
    """PASCAL-S is the held-out test set: refuse it anywhere in training."""
    for text in (str(path), str(path.resolve())):
        if _HELD_OUT.search(text):
            raise UsageError(
                f"{path} looks like PASCAL-S, the held-out test set: it is never used for "
                "training or model selection; pass other image folders"
            )


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    """The folder's images in path order (with ``recursive``, its sub-folders' too)."""
    refuse_held_out(folder)
    if not folder.is_dir():
        raise InputFileError(f"image folder {folder} not found: check the path")
    found = walk_files(folder, what="image folder") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for path in files:
        refuse_held_out(path)
    if not files:
        raise InputFileError(f"image folder {folder} holds no .jpg/.png images")
    return files


def collect_samples(
    image_dirs: Sequence[Path],
    gt_root: Path | None = None,
    *,
    limit: int | None = None,
    recursive: bool = False,
) -> list[Sample]:
    """Every image of the folders (teacher-labelled) plus the ``gt_root`` pairs.

    Duplicates (same bytes) are kept once, so a folder given twice does not
    weigh double and cannot leak across the split.
    """
    samples: list[Sample] = []
    seen: set[str] = set()
    for folder in image_dirs:
        for path in list_images(folder, recursive=recursive)[:limit]:
            digest = sha256_file(path)
            if digest not in seen:
                seen.add(digest)
                samples.append(Sample(path, digest))
    if gt_root is not None:
        refuse_held_out(gt_root)
        masks = gt_root / "masks"
        for path in list_images(gt_root / "images")[:limit]:
            mask = next(
                (m for m in (masks / f"{path.stem}{s}" for s in (".png", ".jpg")) if m.is_file()),
                None,
            )
            if mask is None:
                raise InputFileError(f"{path}: no mask {masks / path.stem}.png in --gt-root")
            digest = sha256_file(path)
            if digest not in seen:
                seen.add(digest)
                samples.append(Sample(path, digest, mask))
    if not samples:
        raise InputFileError("no training images: pass --images DIR")
    return samples


def split_samples(
    samples: Sequence[Sample], *, val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """A fixed (seeded) train/validation split; order-independent (sorted by sha256)."""
    if not 0.0 < val_fraction < 1.0:
        raise UsageError(f"--val-fraction {val_fraction}: give a fraction in (0, 1)")
    ordered = sorted(samples, key=lambda s: s.sha256)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ordered))
    n_val = max(1, round(len(ordered) * val_fraction))
    if n_val >= len(ordered):
        raise _no_training_images(len(ordered), val_fraction)
    val_idx = set(int(i) for i in order[:n_val])
    train = [s for i, s in enumerate(ordered) if i not in val_idx]
    val = [s for i, s in enumerate(ordered) if i in val_idx]
    return train, val


def _no_training_images(count: int, val_fraction: float) -> UsageError:
    """A split with every image in validation (at least one always is): say what to change."""
    if count < 2:
        return UsageError(
            f"{count} image: too few to split into training and validation images: give "
            "more images (--images, --gt-root)"
        )
    # As the split counts: max(1, round(count * fraction)) validation images.
    largest = max(k / 100 for k in range(1, 100) if max(1, round(count * k / 100)) < count)
    return UsageError(
        f"--val-fraction {val_fraction} of {count} images leaves no training images: give a "
        f"smaller --val-fraction (at most {largest} here; the default is "
        f"{TrainConfig().val_fraction}) or more images"
    )


def image_list_sha256(samples: Iterable[Sample]) -> str:
    text = "".join(f"{s.sha256}  {s.path.name}\n" for s in samples)
    return sha256_bytes(text.encode("utf-8"))


def bt601_luma(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> full-range 8-bit BT.601 luma (what a full-range YUV file holds)."""
    arr = rgb.astype(np.float32)
    luma = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
    out: np.ndarray = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return out


def load_rgb(path: Path) -> np.ndarray:
    rgb: np.ndarray = decode_image(require_pil_image(), path, mode="RGB")
    return rgb


def luma_plane(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB -> the extractor's luma plane at ``size``: full-range unit, resized.

    These are the first steps of :func:`extract.preprocess` (8-bit, full range);
    :func:`deployment_input` does the rest on a batch.
    """
    from vmafx_saliency.video.extract import luma_to_unit
    from vmafx_saliency.video.scale import resize_luma

    luma = bt601_luma(rgb)
    if luma.shape != size:  # same order and resize as extract.preprocess: resize, then range
        luma = resize_luma(luma, size, bit_depth=8)
    plane = luma_to_unit(luma, bit_depth=8, limited=False)
    return np.ascontiguousarray(plane, dtype=np.float32)


def deployment_input(planes: Any, pre: Preprocessing = STUDENT_PREPROCESSING) -> Any:
    """Batch of unit luma planes (torch [N, H, W]) -> model input [N, 3, H, W].

    The torch form of the rest of :func:`extract.preprocess`: the sidecar's
    scaling (divide by each image's max; a black image stays black), then
    per-channel mean/std on the plane tiled to three channels.
    """
    torch = require_torch()
    x = planes.to(torch.float32)
    if pre.scaling == "divide_by_max":
        peak = x.amax(dim=(1, 2), keepdim=True)
        x = torch.where(peak > 0, x / torch.where(peak > 0, peak, torch.ones_like(peak)), x)
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x[:, None, :, :] - mean) / std


# --- the data set in memory -------------------------------------------------


@dataclass(frozen=True)
class Arrays:
    """Luma planes (deployment steps up to the resize) and labels, both [N, H, W] float32."""

    luma: np.ndarray
    label: np.ndarray
    names: tuple[str, ...]


def augment_batch(
    torch: Any, arrays: Arrays, idx: np.ndarray, rng: np.random.Generator, cfg: TrainConfig
) -> tuple[Any, Any]:
    """Random scaled crop + flips + brightness/contrast on the luma; labels follow geometry."""
    functional = require("torch.nn.functional", purpose="training", extra="train")
    height, width = arrays.luma.shape[1:]
    crop = cfg.crop
    xs, ys = [], []
    for i in idx:
        scale = math.sqrt(rng.uniform(cfg.scale_min, 1.0))
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ch = min(height, max(8, round(height * scale / math.sqrt(aspect))))
        cw = min(width, max(8, round(width * scale * math.sqrt(aspect))))
        top = int(rng.integers(0, height - ch + 1))
        left = int(rng.integers(0, width - cw + 1))
        pair = np.stack(
            [
                arrays.luma[i, top : top + ch, left : left + cw],
                arrays.label[i, top : top + ch, left : left + cw],
            ]
        )
        if rng.random() < 0.5:
            pair = pair[:, :, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(pair))[None]
        t = functional.interpolate(
            t, size=(crop, crop), mode="bilinear", align_corners=False, antialias=True
        )[0]
        luma = t[0]
        # Brightness / contrast as a camera or encoder would shift the luma.
        gain = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        offset = rng.uniform(-cfg.brightness, cfg.brightness)
        mid = float(luma.mean())
        luma = ((luma - mid) * gain + mid + offset).clamp(0.0, 1.0)
        xs.append(luma)
        ys.append(t[1].clamp(0.0, 1.0))
    return deployment_input(torch.stack(xs)), torch.stack(ys)[:, None]


__all__ = [
    "IMAGE_SUFFIXES",
    "STUDENT_PREPROCESSING",
    "Arrays",
    "Sample",
    "augment_batch",
    "bt601_luma",
    "check_train_extra",
    "collect_samples",
    "deployment_input",
    "image_list_sha256",
    "list_images",
    "load_rgb",
    "luma_plane",
    "refuse_held_out",
    "require_pil_image",
    "require_torch",
    "split_samples",
]
