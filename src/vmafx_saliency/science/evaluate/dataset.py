"""The labelled dataset: ``images/`` and ``masks/`` paired by file stem, checked, decoded.

A stray file, a duplicated stem or a mask of another size than its image is an
error, not something to skip: it would change what the figures mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmafx_saliency._util import decode_image, open_image
from vmafx_saliency.errors import InputFileError, UsageError
from vmafx_saliency.science.evaluate.helpers import _listed, _pil

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path


def _by_stem(folder: Path, what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not path.is_file():
            continue
        if path.stem in found:
            raise InputFileError(
                f"{folder}: two {what} share the stem {path.stem!r} ({found[path.stem].name} "
                f"and {path.name}): keep one, pairs are matched by file stem"
            )
        found[path.stem] = path
    return found


def pair_dataset(root: Path, *, limit: int | None = None) -> tuple[Pair, ...]:
    """Pairs of ``root/images/X.*`` and ``root/masks/X.*``, sorted by stem (string order).

    Every image needs a mask and every mask an image: a stray file is an error,
    not something to skip silently, because it changes what the figures mean.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(
            f"dataset {root}: no such folder: give a folder with images/ and masks/"
        )
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise InputFileError(
                f"dataset {root} has no {sub}/ folder: give a folder with images/ and masks/ "
                "whose files pair by stem (images/12.jpg with masks/12.png)"
            )
    images = _by_stem(root / "images", "images")
    masks = _by_stem(root / "masks", "masks")
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(f"{len(no_mask)} image(s) without a mask (first: {_listed(no_mask)})")
        if no_image:
            parts.append(f"{len(no_image)} mask(s) without an image (first: {_listed(no_image)})")
        raise InputFileError(
            f"dataset {root} has unpaired files: {'; '.join(parts)}: pair them by file stem "
            "or move the strays out"
        )
    if not images:
        raise InputFileError(f"dataset {root}: images/ and masks/ hold no image files")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit}: give a positive number of pairs")
    stems = sorted(images)[:limit]
    return tuple(Pair(s, images[s], masks[s]) for s in stems)


# A side under 8 pixels is no saliency image. The bound also keeps E-measure's
# h*w / (h*w - 1) on an exact match (1/eps on one pixel) within the schema's 64/63.
MIN_IMAGE_SIDE = 8


def check_sizes(pairs: Sequence[Pair]) -> None:
    """Refuse a mask whose size differs from its image's, or an image under
    :data:`MIN_IMAGE_SIDE` a side, before any work is done.

    Resizing a mask would change the ground truth (interpolated edges, a new
    threshold crossing), so eval refuses instead. Only the headers are read.
    """
    pil = _pil()
    for pair in pairs:
        # Each header within the pixel cap, or one error naming the file.
        with open_image(pil, pair.image) as img, open_image(pil, pair.mask) as msk:
            image_size, mask_size = img.size, msk.size
        if min(image_size) < MIN_IMAGE_SIDE:
            raise InputFileError(
                f"pair {pair.stem!r}: image {pair.image} is {image_size[0]}x{image_size[1]}: "
                f"eval scores images of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels; "
                "remove the pair"
            )
        if image_size != mask_size:
            raise InputFileError(
                f"pair {pair.stem!r}: mask {pair.mask} is {mask_size[0]}x{mask_size[1]} but its "
                f"image {pair.image.name} is {image_size[0]}x{image_size[1]}: eval does not "
                "resize ground truth; give the mask its image's size or remove the pair"
            )


@dataclass(frozen=True)
class LoadedPair:
    stem: str
    image: np.ndarray  # uint8, H x W x 3 (RGB) or H x W (grey)
    mask: np.ndarray  # uint8, H x W


def read_image(path: Path, *, mode: str | None = None) -> np.ndarray:
    """The decoded image (:func:`_util.decode_image`), with the eval extra's PIL."""
    image: np.ndarray = decode_image(_pil(), path, mode=mode)
    return image


def load_pair(pair: Pair) -> LoadedPair:
    try:
        image = read_image(pair.image)
        mask = read_image(pair.mask, mode="L")
    except InputFileError as exc:
        raise InputFileError(f"pair {pair.stem!r}: {exc}") from exc
    if image.shape[:2] != mask.shape:
        raise InputFileError(
            f"pair {pair.stem!r}: mask and image differ in size: give the mask its image's size"
        )
    return LoadedPair(pair.stem, image, mask)
