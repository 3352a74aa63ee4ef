"""Encoder ROI formats: the SVT-AV1 map, addroi regions and x265 zones."""

from __future__ import annotations

import numpy as np
import pytest

from vmafx_saliency.downstream import roi
from vmafx_saliency.errors import RoiError

# --- SVT-AV1 ROI map ---------------------------------------------------------------


def test_svtav1_roi_map_format_hand_worked() -> None:
    pictures = [(0, np.array([[-2, 0], [1, 0]])), (5, np.array([[0, 0], [3, -3]]))]
    # One line per event: picture number, then qindex offsets (4 x AV1 QP) in raster order.
    assert roi.svtav1_roi_map(pictures) == "0 -8 0 4 0\n5 0 0 12 -12\n"


def test_svtav1_roi_map_refusals() -> None:
    with pytest.raises(RoiError, match="must increase: 3 after 3"):
        roi.svtav1_roi_map([(3, np.zeros((1, 1))), (3, np.zeros((1, 1)))])
    with pytest.raises(RoiError, match=r"outside -255\.\.255"):
        roi.svtav1_roi_map([(0, np.array([[64]]))])
    with pytest.raises(RoiError, match="more than 8 distinct offsets"):
        roi.svtav1_roi_map([(0, np.arange(-4, 5).reshape(1, 9))])


# --- addroi regions ----------------------------------------------------------------


def test_region_filter_string_keeps_the_qp_exact() -> None:
    region = roi.Region(16, 32, 48, 16, -6)
    assert region.to_filter() == "addroi=x=16:y=32:w=48:h=16:qoffset=-6/51"
    assert region.qoffset * 51 == -6  # libx264.c: qoffset * (51 + 6 * (bit_depth - 8))
    both = roi.addroi_filter([region, roi.Region(0, 0, 64, 64, 3)])
    assert both == (
        "addroi=x=16:y=32:w=48:h=16:qoffset=-6/51,addroi=x=0:y=0:w=64:h=64:qoffset=3/51"
    )


def test_regions_hand_worked_most_important_first() -> None:
    # 50x60 frame, 16px blocks: a 4x4 grid (partial last row and column).
    target = np.full((4, 4), 3)
    target[1, 1] = -6
    regions = roi.regions_from_offsets(
        target, frame_hw=(50, 60), block=16, clamp=6, levels=5, max_regions=8
    )
    # Painter: the whole frame at +3 first (largest error cut), then the block at -6.
    # ffmpeg order is precedence order (the first region wins), so the block comes first,
    # and the frame-wide region is clipped to the frame (60x50, not 64x64).
    assert roi.addroi_filter(regions) == (
        "addroi=x=16:y=16:w=16:h=16:qoffset=-6/51,addroi=x=0:y=0:w=60:h=50:qoffset=3/51"
    )
    rendered = roi.render_regions(regions, frame_hw=(50, 60), block=16)
    np.testing.assert_array_equal(rendered, target)


def test_render_regions_first_region_wins_like_libx264() -> None:
    small, whole = roi.Region(0, 0, 16, 16, -6), roi.Region(0, 0, 32, 32, 3)
    np.testing.assert_array_equal(
        roi.render_regions([small, whole], frame_hw=(32, 32), block=16), [[-6, 3], [3, 3]]
    )
    np.testing.assert_array_equal(
        roi.render_regions([whole, small], frame_hw=(32, 32), block=16), [[3, 3], [3, 3]]
    )


def test_regions_are_bounded_and_approximate_the_map() -> None:
    rng = np.random.default_rng(1)
    blocks = rng.random((18, 22))
    blocks[5:12, 7:14] += 2.0  # a salient blob
    target = roi.quantise_offsets(roi.raw_offsets(blocks, strength=3, clamp=6), clamp=6, levels=5)
    regions = roi.regions_from_offsets(
        target, frame_hw=(288, 352), block=16, clamp=6, levels=5, max_regions=6
    )
    assert 1 <= len(regions) <= 6
    rendered = roi.render_regions(regions, frame_hw=(288, 352), block=16)
    before = float(((target - 0) ** 2).sum())
    after = float(((target - rendered) ** 2).sum())
    assert after < 0.5 * before
    assert rendered[8, 10] < 0  # the blob is boosted


def test_an_all_zero_map_needs_no_region() -> None:
    assert roi.plan_regions(np.zeros((3, 3)), clamp=6, levels=3, max_regions=4) == ()
    assert roi.addroi_filter(()) == ""


# --- x265 zones --------------------------------------------------------------------


def test_zones_hand_worked() -> None:
    means = [(0, 0.2), (1, 0.2), (2, 0.8), (3, 0.8), (4, 0.5), (5, 0.5)]
    # clip mean 0.5: segment 0 -> sqrt(0.4) = 0.63 -> 0.80 (floor); segment 1 -> sqrt(1.6)
    # = 1.26 -> 1.25 (cap); segment 2 -> 1.00, left out
    zones = roi.plan_zones(means, frame_count=6, zone_frames=2)
    assert roi.zones_string(zones) == "0,2,b=0.80/2,4,b=1.25"
    assert roi.plan_zones([], frame_count=6, zone_frames=2) == ()
    assert roi.plan_zones([(0, 0.0)], frame_count=1, zone_frames=2) == ()


def test_zones_merge_equal_neighbours() -> None:
    means = [(i, 0.9 if i < 4 else 0.1) for i in range(8)]
    assert roi.zones_string(roi.plan_zones(means, frame_count=8, zone_frames=2)) == (
        "0,4,b=1.25/4,8,b=0.80"
    )
