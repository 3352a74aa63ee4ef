"""evaluate.dataset: images and masks paired by stem; strays, duplicates and sizes refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vmafx_saliency.errors import InputFileError
from vmafx_saliency.science import evaluate as ev

# --- dataset pairing ---------------------------------------------------------------------------


def _dataset(root: Path, stems: list[str], *, size: tuple[int, int] = (12, 10)) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for stem in stems:
        w, h = size
        img = rng.integers(0, 256, size=(h, w, 3)).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{stem}.png")
        mask = np.zeros((h, w), np.uint8)
        mask[2:7, 3:9] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return root


def test_pair_dataset_sorted_and_limited(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["b", "a", "10", "2"])
    assert [p.stem for p in ev.pair_dataset(root)] == ["10", "2", "a", "b"]
    assert [p.stem for p in ev.pair_dataset(root, limit=2)] == ["10", "2"]


@pytest.mark.parametrize("missing", ["images", "masks"])
def test_dataset_without_a_folder(tmp_path: Path, missing: str) -> None:
    root = tmp_path / "ds"
    (root / ({"images", "masks"} - {missing}).pop()).mkdir(parents=True)
    with pytest.raises(InputFileError, match=rf"dataset .*ds has no {missing}/ folder"):
        ev.pair_dataset(root)


def test_dataset_unpaired_files_are_counted_and_named(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["1", "2", "3", "4"])
    for stem in ("2", "3"):
        (root / "masks" / f"{stem}.png").unlink()
    (root / "images" / "4.png").unlink()
    with pytest.raises(
        InputFileError,
        match=r"2 image\(s\) without a mask \(first: 2, 3\); 1 mask\(s\) without an image "
        r"\(first: 4\): pair them by file stem",
    ):
        ev.pair_dataset(root)


def test_dataset_duplicate_stem(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["1"])
    Image.new("RGB", (12, 10)).save(root / "images" / "1.jpg")
    with pytest.raises(InputFileError, match=r"two images share the stem '1'"):
        ev.pair_dataset(root)


def test_mask_of_another_size_is_refused(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["1", "2"])
    Image.new("L", (6, 5)).save(root / "masks" / "2.png")
    with pytest.raises(
        InputFileError, match=r"pair '2': mask .*2\.png is 6x5 but its image 2\.png is 12x10"
    ):
        ev.check_sizes(ev.pair_dataset(root))


def test_a_mask_over_the_pixel_cap_is_refused_from_its_header(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["1", "2"])
    Image.new("1", (8000, 8000)).save(root / "masks" / "2.png")  # 64 Mpx, a few kB
    with pytest.raises(InputFileError, match=r"2\.png: 8000x8000 pixels, over the 50,000,000"):
        ev.check_sizes(ev.pair_dataset(root))
    Image.new("1", (14000, 14000)).save(root / "images" / "1.png")  # past PIL's bomb limit
    with pytest.raises(InputFileError, match=r"cannot decode \S+1\.png \(.*fix or remove it"):
        ev.check_sizes(ev.pair_dataset(root))


def test_an_image_under_eight_pixels_a_side_is_refused(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["1", "2"])
    _dataset(root, ["2"], size=(7, 30))
    with pytest.raises(InputFileError, match=r"pair '2': image \S+2\.png is 7x30: eval scores "):
        ev.check_sizes(ev.pair_dataset(root))
    _dataset(root, ["2"], size=(8, 8))
    ev.check_sizes(ev.pair_dataset(root))
