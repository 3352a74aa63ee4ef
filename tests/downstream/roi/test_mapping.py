"""Block reduction, the offset mapping and temporal aggregation, hand-worked."""

from __future__ import annotations

import numpy as np
import pytest

from vmafx_saliency.downstream import roi
from vmafx_saliency.errors import UsageError

# --- block reduction --------------------------------------------------------------


def test_block_means_hand_worked_with_partial_edge_blocks() -> None:
    plane = np.arange(15, dtype=np.float32).reshape(3, 5)
    # [[ 0  1 |  2  3 |  4]
    #  [ 5  6 |  7  8 |  9]
    #  [10 11 | 12 13 | 14]]  blocks of 2: edge blocks average only the pixels they have
    expected = [[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2], [10.5, 12.5, 14.0]]
    np.testing.assert_allclose(roi.block_means(plane, 2), expected)


def test_block_areas_and_grid_shape() -> None:
    assert roi.grid_shape((288, 352), 16) == (18, 22)
    assert roi.grid_shape((288, 352), 64) == (5, 6)  # 288 = 4*64 + 32: a half-height last row
    areas = roi.block_areas((288, 352), 64)
    assert areas[0, 0] == 64 * 64
    assert areas[-1, -1] == 32 * 32  # 352 = 5*64 + 32 as well
    assert areas.sum() == 288 * 352


def test_map_to_blocks_resizes_to_the_frame_first() -> None:
    saliency = np.zeros((40, 40), dtype=np.float32)
    saliency[:, 20:] = 1.0  # right half salient, at the inference size
    blocks = roi.map_to_blocks(saliency, (32, 64), 16)
    assert blocks.shape == (2, 4)
    np.testing.assert_allclose(blocks[:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(blocks[:, 3], 1.0, atol=1e-6)
    assert np.all(np.diff(blocks[0]) >= 0)


def test_block_means_refuses_bad_input() -> None:
    with pytest.raises(UsageError, match="non-empty 2-D plane"):
        roi.block_means(np.zeros((0, 4)), 16)
    with pytest.raises(UsageError, match="block size 0"):
        roi.block_means(np.zeros((4, 4)), 0)


# --- the offset mapping -----------------------------------------------------------


def test_raw_offsets_hand_worked() -> None:
    blocks = np.array([[0.0, 0.0], [0.0, 1.0]])
    # mean 0.25, std sqrt(0.1875) = 0.4330; strength 2: 0 -> +1.1547, 1 -> -3.4641 -> clamp -3
    out = roi.raw_offsets(blocks, strength=2.0, clamp=3.0)
    np.testing.assert_allclose(out, [[1.1547, 1.1547], [1.1547, -3.0]], atol=1e-4)


def test_raw_offsets_salient_is_negative_and_flat_maps_stay_near_zero() -> None:
    flat = np.full((3, 3), 0.5)
    np.testing.assert_allclose(roi.raw_offsets(flat, strength=4.0, clamp=8.0), 0.0)
    # A spread below SIGMA_FLOOR (0.05) is divided by the floor, not by its own std.
    tiny = np.array([[0.495, 0.505]])
    np.testing.assert_allclose(
        roi.raw_offsets(tiny, strength=4.0, clamp=8.0), [[0.4, -0.4]], atol=1e-9
    )


def test_raw_offsets_weights_blocks_by_area() -> None:
    blocks = np.array([[0.0, 1.0]])
    even = roi.raw_offsets(blocks, strength=1.0, clamp=10.0)
    skewed = roi.raw_offsets(blocks, strength=1.0, clamp=10.0, areas=np.array([[3.0, 1.0]]))
    np.testing.assert_allclose(even, [[1.0, -1.0]])
    # mean 0.25, std 0.4330: the small salient block now stands out more.
    np.testing.assert_allclose(skewed, [[0.57735, -1.73205]], atol=1e-5)


@pytest.mark.parametrize(
    ("clamp", "levels", "expected"),
    [
        (8, 8, [-8, -5, -3, 0, 3, 5, 8]),  # 8 levels: an odd 7, symmetric about 0
        (6, 3, [-6, 0, 6]),
        (2, 8, [-2, -1, 0, 1, 2]),  # no more levels than integers in range
        (1, 8, [-1, 0, 1]),
    ],
)
def test_offset_levels(clamp: int, levels: int, expected: list[int]) -> None:
    assert roi.offset_levels(clamp, levels).tolist() == expected


def test_quantise_offsets_hand_worked_ties_go_towards_zero() -> None:
    values = np.array([-4.0, -1.5, 1.5, 4.1, 7.0, -9.0])
    # levels -8 -5 -3 0 3 5 8: -4 is as far from -5 as from -3 -> -3; -1.5 -> 0
    out = roi.quantise_offsets(values, clamp=8, levels=8)
    assert out.tolist() == [-3, 0, 0, 5, 8, -8]


@pytest.mark.parametrize("levels", [3, 4, 5, 6, 7, 8])
def test_quantised_offsets_never_exceed_svt_av1s_eight_segments(levels: int) -> None:
    rng = np.random.default_rng(levels)
    values = rng.normal(scale=20.0, size=(40, 40))
    out = roi.quantise_offsets(values, clamp=30, levels=levels)
    assert len(np.unique(out)) <= min(levels, 8)
    assert np.abs(out).max() <= 30


def test_temporal_aggregation_modes() -> None:
    first = np.zeros((32, 32), dtype=np.float32)
    second = np.ones((32, 32), dtype=np.float32)
    second[:16] = 0.0  # bottom half salient in the second frame only

    def feed(mode: roi.Aggregate) -> roi.TemporalAggregator:
        # strength 4: the second frame's z-scores of +-1 give -+4 QP, nearest level +-6
        settings = roi.RoiSettings(aggregate=mode, ema_alpha=0.5, strength=4.0)
        acc = roi.TemporalAggregator(settings, (32, 32), start=10)
        acc(10, first)
        acc(12, second)
        return acc

    np.testing.assert_allclose(feed("mean").static_blocks(), [[0.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(feed("max").static_blocks(), [[0.0, 0.0], [1.0, 1.0]])
    assert feed("mean").pictures == [] and feed("max").pictures == []
    per_frame = feed("per-frame")
    assert [p for p, _ in per_frame.pictures] == [0, 2]  # numbered from the range start
    assert per_frame.pictures[0][1].tolist() == [[0, 0], [0, 0]]  # a flat map: no offsets
    assert per_frame.pictures[1][1].tolist() == [[6, 6], [-6, -6]]
    assert feed("per-frame").frame_means == [0.0, 0.5]
    ema = feed("ema")  # 0.5 * second + 0.5 * first: the same pattern, half as strong
    assert ema.pictures[1][1].tolist() == [[6, 6], [-6, -6]]
