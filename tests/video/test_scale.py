"""swscale's luma scaling against the numpy resize, the second implementation.

``resize_plane`` is itself checked against PIL (test_resize.py). swscale runs
the same triangle filter in fixed point: inside the outer two rows and
columns the two agree within a small fraction of a code value; on those
lines swscale's edge handling differs (it keeps the taps inside the plane).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vmafx_saliency.supply.registry import Preprocessing
from vmafx_saliency.video.extract import preprocess
from vmafx_saliency.video.resize import resize_plane
from vmafx_saliency.video.scale import (
    ScaleRefused,
    can_scale,
    resize_luma,
    scale_luma,
    scale_picture,
)

# Bounds in code values; _compare gave 0.102 inside (CIF upscaled) and 10.1 on the
# outer lines (4K to 320x320) on 2026-12-07, as video/scale.py's docstring says.
INSIDE = 0.12  # inside the two outer lines
EDGE = 12.0  # on the outer lines
SIZES = {
    "720p to 320x320": ((720, 1280), (320, 320)),
    "CIF to 320x320 (height grows)": ((288, 352), (320, 320)),
    "1080p to 320x320": ((1080, 1920), (320, 320)),
    "2160p to 320x320": ((2160, 3840), (320, 320)),
    "160x96 up to 320x320": ((96, 160), (320, 320)),
    "VGA to 320x333": ((480, 640), (333, 320)),
}


def _smooth_plane(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A picture-like 8-bit plane: random blobs a few pixels wide, full 0..255 range."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((shape[0] // 8 + 2, shape[1] // 8 + 2))
    plane = resize_plane(coarse.astype(np.float32), shape)
    plane = (plane - plane.min()) / (plane.max() - plane.min()) * 255.0
    out: np.ndarray = np.rint(plane).astype(np.uint8)
    return out


def _compare(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    diff = np.abs(ours.astype(np.float64) - reference)
    return float(diff[2:-2, 2:-2].max()), float(diff.max())


@pytest.mark.parametrize(("in_size", "out_size"), list(SIZES.values()), ids=list(SIZES))
def test_agrees_with_the_numpy_resize(in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    plane = _smooth_plane(in_size, seed=3)
    ours = scale_luma(plane, out_size, bit_depth=8)
    assert ours.shape == out_size
    assert ours.dtype == np.float32
    inside, anywhere = _compare(ours, resize_plane(plane, out_size))
    assert inside <= INSIDE
    assert anywhere <= EDGE


def test_agrees_with_the_numpy_resize_on_real_hd_frames(videos_dir: Path) -> None:
    from vmafx_saliency.video.frames import open_video, select_frames

    with open_video(videos_dir / "bigbuckbunny_720p.mp4") as source:
        lumas = [frame.luma for frame in select_frames(source, end=6)]
    for luma in lumas:
        inside, anywhere = _compare(
            scale_luma(luma, (320, 320), bit_depth=8), resize_plane(luma, (320, 320))
        )
        assert inside <= INSIDE
        assert anywhere <= EDGE


@pytest.mark.parametrize("value", [0, 1, 16, 128, 235, 255])
def test_a_flat_plane_keeps_its_value_exactly(value: int) -> None:
    # No range conversion: limited-range black (16) and white (235) stay where they are.
    plane = np.full((72, 128), value, np.uint8)
    np.testing.assert_array_equal(scale_luma(plane, (40, 40), bit_depth=8), float(value))
    np.testing.assert_array_equal(
        scale_luma(plane.astype(np.uint16) << 2, (40, 40), bit_depth=10), float(value * 4)
    )


def test_ten_bit_samples_scale_to_four_times_the_eight_bit_values() -> None:
    # 16-bit output: 8-bit samples shifted by 8, 10-bit by 6, so the same picture
    # stored either way gives the same values, not two different roundings.
    plane = _smooth_plane((288, 352), seed=5)
    eight = scale_luma(plane, (320, 320), bit_depth=8)
    ten = scale_luma(plane.astype(np.uint16) << 2, (320, 320), bit_depth=10)
    np.testing.assert_array_equal(ten, eight * 4)


def test_keeps_a_fraction_of_a_code_value() -> None:
    # Two columns 0 and 1 averaged: 8-bit output would round each sample to 0 or 1.
    plane = np.tile(np.array([[0, 1]], np.uint8), (8, 8))
    out = scale_luma(plane, (8, 8), bit_depth=8)
    np.testing.assert_allclose(out[2:-2, 2:-2], 0.5, atol=1 / 128)


def test_threads_scale_side_by_side_as_one_thread_does() -> None:
    planes = [_smooth_plane((720, 1280), seed=s) for s in range(4)]
    alone = [scale_luma(p, (320, 320), bit_depth=8) for p in planes]
    results: dict[int, list[np.ndarray]] = {}

    def work(worker: int) -> None:
        results[worker] = [scale_luma(p, (320, 320), bit_depth=8) for p in planes * 3]

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outs in results.values():
        for index, out in enumerate(outs):
            np.testing.assert_array_equal(out, alone[index % len(planes)])


@pytest.mark.parametrize(
    ("plane", "bits", "why"),
    [
        (np.zeros((4, 4), np.float32), 8, "float32"),
        (np.zeros((4, 4), np.uint16), 8, "uint16"),
        (np.zeros((4, 4), np.uint16), 12, "12 bits"),
        (np.zeros((2, 4, 4), np.uint8), 8, r"\(2, 4, 4\)"),
    ],
)
def test_refuses_what_is_not_a_raw_plane(plane: np.ndarray, bits: int, why: str) -> None:
    assert not can_scale(plane, bits)
    with pytest.raises(ValueError, match=f"scale_luma takes a 2-D plane.*{why}"):
        scale_luma(plane, (8, 8), bit_depth=bits)


PRE = Preprocessing(
    inference_size=(320, 320),
    colour_mode="luma_tile",
    luma_range="auto",
    scaling="unit_range",
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
)


def test_preprocess_scales_raw_samples_with_swscale_and_floats_with_numpy() -> None:
    plane = _smooth_plane((720, 1280), seed=9)
    raw = preprocess(plane, bit_depth=8, color_range=None, pre=PRE, size=(320, 320))
    floats = preprocess(
        plane.astype(np.float32), bit_depth=8, color_range=None, pre=PRE, size=(320, 320)
    )
    # Limited range: one code value is 1/219 of the unit, 4 model-input units after std 0.25.
    unit = 1.0 / 219.0 / 0.25
    expected = scale_luma(plane, (320, 320), bit_depth=8)
    direct = np.clip((expected - 16.0) / 219.0, 0.0, 1.0)
    np.testing.assert_allclose(raw[0, 0], (direct - 0.5) / 0.25, rtol=0, atol=1e-5)
    inside, anywhere = _compare(raw[0, 1] / unit, floats[0, 1] / unit)
    assert inside <= INSIDE
    assert anywhere <= EDGE


def _picture(fmt: str, luma: np.ndarray) -> object:
    """A PyAV frame of ``fmt`` whose plane 0 holds ``luma`` (rows padded as FFmpeg pads them)."""
    import av

    height, width = luma.shape
    frame = av.VideoFrame(width, height, fmt)
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), dtype=luma.dtype).reshape(
        height, plane.line_size // luma.itemsize
    )
    rows[:, :width] = luma
    return frame


@pytest.mark.parametrize(
    ("fmt", "bits"),
    [("yuv420p", 8), ("yuvj420p", 8), ("nv12", 8), ("yuv444p", 8), ("gray", 8),
     ("yuv420p10le", 10), ("yuv422p10le", 10)],
)  # fmt: skip
def test_a_decoded_picture_scales_as_its_luma_plane_does(fmt: str, bits: int) -> None:
    # CIF: rows padded (352 samples in a 384-byte line), the height grows, the width shrinks.
    luma = _smooth_plane((288, 352), seed=11)
    if bits == 10:
        luma = (luma.astype(np.uint16) << 2) + 3
    direct = scale_picture(_picture(fmt, luma), (320, 320), bit_depth=bits)
    np.testing.assert_array_equal(direct, scale_luma(luma, (320, 320), bit_depth=bits))
    np.testing.assert_array_equal(direct, resize_luma(luma, (320, 320), bit_depth=bits))


def test_resize_luma_sends_float_planes_to_numpy() -> None:
    plane = _smooth_plane((72, 128), seed=2).astype(np.float32)
    np.testing.assert_array_equal(
        resize_luma(plane, (40, 40), bit_depth=8), resize_plane(plane, (40, 40))
    )


def test_scale_picture_refuses_other_bit_depths() -> None:
    with pytest.raises(ValueError, match="8 or 10-bit samples, not 12 bits"):
        scale_picture(_picture("gray", np.zeros((8, 8), np.uint8)), (4, 4), bit_depth=12)


def test_a_geometry_swscale_refuses_is_resized_by_numpy() -> None:
    # The review's 4096x2 plane to 32x4096 (--infer-size 32x4096): FFmpeg answers EINVAL.
    plane = _smooth_plane((8, 4096), seed=6)[:2]
    with pytest.raises(ScaleRefused, match="swscale refused 4096x2 to 32x4096"):
        scale_luma(plane, (4096, 32), bit_depth=8)
    np.testing.assert_array_equal(
        resize_luma(plane, (4096, 32), bit_depth=8), resize_plane(plane, (4096, 32))
    )


def test_the_same_size_gives_the_samples_as_they_are() -> None:
    # swscale's 16-bit copy would fill the low bits with the top ones: 255 -> 255.996.
    plane = np.array([[0, 16, 235, 255]], np.uint8)
    for scaled in (
        scale_luma(plane, (1, 4), bit_depth=8),
        resize_luma(plane, (1, 4), bit_depth=8),
        resize_luma(plane, (1, 4), bit_depth=8, picture=_picture("gray", plane)),
    ):
        np.testing.assert_array_equal(scaled, plane.astype(np.float32))
    ten = np.array([[0, 64, 940, 1023]], np.uint16)
    np.testing.assert_array_equal(scale_luma(ten, (1, 4), bit_depth=10), ten.astype(np.float32))


def test_threads_scaling_one_shared_picture_agree() -> None:
    # PyAV's reformat sets the source frame's colour range while it runs: without the
    # lock, another thread scaling the same limited-range frame read it expanded.
    luma = _smooth_plane((288, 352), seed=8)
    picture: Any = _picture("yuv420p", luma)
    picture.color_range = 1  # MPEG: limited, as decoded video says
    want = scale_luma(luma, (320, 320), bit_depth=8)
    results: list[np.ndarray] = []

    def work() -> None:
        results.extend(scale_picture(picture, (320, 320), bit_depth=8) for _ in range(20))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 160
    for got in results:
        np.testing.assert_array_equal(got, want)
    assert int(picture.color_range) == 1
