"""Student training data: the student's deployment input, the split, the held-out refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from vmafx_saliency.errors import (  # noqa: E402
    UsageError,
)
from vmafx_saliency.science import train  # noqa: E402
from vmafx_saliency.supply.registry import Preprocessing  # noqa: E402
from vmafx_saliency.video.extract import preprocess  # noqa: E402


@pytest.mark.parametrize("size", [(320, 320), (333, 517)])
def test_deployment_input_equals_extract_preprocess(
    images_dir: Path, size: tuple[int, int]
) -> None:
    for path in train.list_images(images_dir)[:3]:
        rgb = train.load_rgb(path)
        want = preprocess(
            train.bt601_luma(rgb),
            bit_depth=8,
            color_range="full",
            pre=train.STUDENT_PREPROCESSING,
            size=size,
        )
        got = train.deployment_input(torch.from_numpy(train.luma_plane(rgb, size))[None]).numpy()
        assert got.shape == want.shape == (1, 3, *size)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_deployment_input_keeps_a_black_frame_black_and_honours_unit_range() -> None:
    black = np.zeros((40, 60, 3), dtype=np.uint8)
    pre = train.STUDENT_PREPROCESSING
    got = train.deployment_input(torch.from_numpy(train.luma_plane(black, (40, 60)))[None])
    want = preprocess(
        np.zeros((40, 60), np.uint8), bit_depth=8, color_range="full", pre=pre, size=(40, 60)
    )
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    unit = Preprocessing(
        "luma_tile", (40, 60), "unit_range", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "auto"
    )
    grey = np.full((40, 60, 3), 128, dtype=np.uint8)
    got = train.deployment_input(torch.from_numpy(train.luma_plane(grey, (40, 60)))[None], unit)
    want = preprocess(
        train.bt601_luma(grey), bit_depth=8, color_range="full", pre=unit, size=(40, 60)
    )
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)


def test_bt601_luma_of_primaries() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert train.bt601_luma(rgb).tolist() == [[76, 150, 29, 255]]


def test_split_is_fixed_disjoint_and_complete(six_images: Path) -> None:
    samples = train.collect_samples([six_images])
    a_train, a_val = train.split_samples(samples, val_fraction=0.34, seed=0)
    b_train, b_val = train.split_samples(list(reversed(samples)), val_fraction=0.34, seed=0)
    assert (a_train, a_val) == (b_train, b_val)  # independent of listing order
    names_train = {s.sha256 for s in a_train}
    names_val = {s.sha256 for s in a_val}
    assert not names_train & names_val
    assert names_train | names_val == {s.sha256 for s in samples}
    assert len(a_val) == 2


def test_duplicate_folders_do_not_leak_across_the_split(six_images: Path) -> None:
    samples = train.collect_samples([six_images, six_images])
    assert len(samples) == 6


@pytest.mark.parametrize("name", ["pascal-s", "PASCAL_S", "pascals"])
def test_pascal_s_is_refused(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name / "images"
    folder.mkdir(parents=True)
    with pytest.raises(UsageError, match="held-out"):
        train.collect_samples([folder])
    with pytest.raises(UsageError, match="held-out"):
        train.collect_samples([], gt_root=tmp_path / name)


def test_default_data_is_not_pascal_s() -> None:
    train.refuse_held_out(train.default_images())
    assert "pascal" not in str(train.default_images()).lower()


@pytest.mark.parametrize(
    ("count", "fraction", "said"),
    [
        (
            12,
            0.99,
            r"--val-fraction 0\.99 of 12 images leaves no training images: give a smaller "
            r"--val-fraction \(at most 0\.95 here; the default is 0\.1\) or more images",
        ),
        (1, 0.1, r"1 image: too few to split into training and validation images: give more"),
    ],
)
def test_a_split_without_training_images_says_what_to_change(
    count: int, fraction: float, said: str
) -> None:
    samples = [train.Sample(Path(f"{i}.png"), f"{i:064x}") for i in range(count)]
    with pytest.raises(UsageError, match=said):
        train.split_samples(samples, val_fraction=fraction, seed=0)
    if count > 1:  # the largest fraction it names still leaves a training image, no more
        kept, _ = train.split_samples(samples, val_fraction=0.95, seed=0)
        assert kept
        with pytest.raises(UsageError, match="leaves no training images"):
            train.split_samples(samples, val_fraction=0.96, seed=0)
