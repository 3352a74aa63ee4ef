"""The numpy antialiased bilinear resize against PIL, the second implementation.

PIL's ``Image.resize(..., BILINEAR)`` on a float32 mode "F" image is the
reference: the same triangle filter, widened by the scale factor when
downscaling. Agreement is within 1e-5 (float32 accumulation order differs).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vmafx_saliency.video import resize
from vmafx_saliency.video.resize import _taps, _window_plan, resize_plane

Image = pytest.importorskip("PIL.Image")

TOLERANCE = 1e-5

CASES = {
    "downscale CIF to 96x80": ((288, 352), (80, 96)),
    "downscale by a large factor": ((288, 352), (7, 11)),
    "mixed: down in W, up in H (CIF to 320x320)": ((288, 352), (320, 320)),
    "upscale": ((17, 33), (40, 71)),
    "upscale from one pixel": ((1, 1), (4, 5)),
    "to one pixel": ((5, 7), (1, 1)),
    "odd sizes, one pixel less": ((239, 319), (238, 318)),
    "odd sizes, both ways": ((13, 9), (7, 20)),
    "identity": ((17, 33), (17, 33)),
    "identity in H only": ((13, 9), (13, 20)),
    "720p to 320x320 (window form, zero border)": ((720, 1280), (320, 320)),
    "1080p to 180x320 (window form)": ((1080, 1920), (180, 320)),
    "2160p to 320x320 (horizontal pass first, in strips)": ((2160, 3840), (320, 320)),
    "down in H, up in W (vertical pass first)": ((100, 40), (30, 90)),
}


def _pil_resize(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(plane)
    assert image.mode == "F"  # 32-bit float: no quantisation on PIL's side
    height, width = size
    out: np.ndarray = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
    return out


@pytest.mark.parametrize(("in_size", "out_size"), list(CASES.values()), ids=list(CASES))
@pytest.mark.parametrize("content", ["random", "gradient"])
def test_equals_pil_bilinear(
    in_size: tuple[int, int], out_size: tuple[int, int], content: str
) -> None:
    rng = np.random.default_rng(7)
    if content == "random":
        plane = rng.random(in_size, dtype=np.float32)
    else:
        yy, xx = np.mgrid[0 : in_size[0], 0 : in_size[1]]
        plane = ((xx * 3 + yy * 5) % 17 / 16.0).astype(np.float32)
    ours = resize_plane(plane, out_size)
    theirs = _pil_resize(plane, out_size)
    assert ours.shape == theirs.shape == out_size
    assert ours.dtype == np.float32
    assert ours.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE)


def test_identity_returns_the_same_values() -> None:
    plane = np.random.default_rng(1).random((9, 14), dtype=np.float32)
    np.testing.assert_array_equal(resize_plane(plane, (9, 14)), plane)


@pytest.mark.parametrize("out_size", [(80, 96), (500, 20), (3, 3)])
def test_constant_plane_stays_constant(out_size: tuple[int, int]) -> None:
    """The weights of each output pixel sum to one, also at the borders."""
    plane = np.full((288, 352), 0.625, np.float32)
    np.testing.assert_allclose(resize_plane(plane, out_size), 0.625, rtol=0, atol=1e-6)


def test_values_stay_within_the_input_range() -> None:
    """A triangle filter has no negative lobes: no overshoot, no ringing."""
    plane = (np.random.default_rng(2).random((120, 160)) > 0.5).astype(np.float32)
    for size in [(37, 53), (240, 320), (61, 400)]:
        out = resize_plane(plane, size)
        assert float(out.min()) >= -1e-6
        assert float(out.max()) <= 1 + 1e-6


def test_taps_are_cached_and_normalised() -> None:
    index, weight = _taps(352, 96)
    again = _taps(352, 96)
    assert again[0] is index and again[1] is weight  # lru_cache: frames reuse them
    assert index.shape == weight.shape
    assert int(index.min()) >= 0 and int(index.max()) <= 351
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, rtol=0, atol=1e-6)


def test_other_dtypes_are_converted_to_float32() -> None:
    luma = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) % 1024).astype(np.uint16)
    as_float = luma.astype(np.float32)
    out = resize_plane(luma, (24, 32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, resize_plane(as_float, (24, 32)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out, _pil_resize(as_float, (24, 32)), rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [((720, 1280), (320, 320)), ((1080, 1920), (320, 320)), ((480, 640), (224, 224))],
)
def test_window_form_equals_gather_form(
    in_size: tuple[int, int], out_size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The windowed matrix product and the gather form are one filter evaluated twice."""
    assert _window_plan(in_size[1], out_size[1]) is not None
    plane = np.random.default_rng(3).random(in_size, dtype=np.float32) * 255
    windowed = resize_plane(plane, out_size)
    monkeypatch.setattr(resize, "_window_plan", lambda _i, _o: None)
    gather = resize_plane(plane, out_size)
    np.testing.assert_allclose(windowed, gather, rtol=0, atol=255 * 1e-6)


def test_window_plan_only_for_small_periods() -> None:
    assert _window_plan(1280, 320) is not None  # 4:1, blocks of one output
    assert _window_plan(720, 320) is not None  # 9:4, blocks of four
    assert _window_plan(352, 320) is not None  # 11:10, a mild downscale
    assert _window_plan(288, 320) is not None  # 9:10, an upscale
    assert _window_plan(1001, 320) is None  # 1001:320: a nearly dense matrix, gather


def test_window_plan_by_hand() -> None:
    """4:1 (1280 -> 320): support 4, output j centred at 4j + 2, inputs 4j-2 .. 4j+5
    weighted 1 - |x + 0.5 - (4j + 2)| / 4 = 1/8, 3/8, 5/8, 7/8, 7/8, 5/8, 3/8, 1/8."""
    plan = _window_plan(1280, 320)
    assert plan is not None
    np.testing.assert_allclose(
        plan.weights, [[1 / 8, 3 / 8, 5 / 8, 7 / 8, 7 / 8, 5 / 8, 3 / 8, 1 / 8]], rtol=0, atol=1e-7
    )
    assert (plan.step, plan.blocks, plan.pad_before, plan.start) == (4, 320, 2, 0)
    # Inside, the weights sum to 4; outputs 0 and 319 lose two zero-border taps (1/8 + 3/8).
    np.testing.assert_allclose(
        plan.inv_norm[[0, 1, 319]], [1 / 3.5, 1 / 4, 1 / 3.5], rtol=0, atol=1e-7
    )


@pytest.mark.parametrize("out_size", [(320, 320), (288, 352), (80, 96)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_samples_give_the_float_result(out_size: tuple[int, int], dtype: type) -> None:
    """Raw luma goes in without a float copy; the result is the float32 one."""
    top = 255 if dtype is np.uint8 else 1023
    plane: np.ndarray = np.random.default_rng(4).integers(0, top + 1, (720, 1280)).astype(dtype)
    got = resize_plane(plane, out_size)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, resize_plane(plane.astype(np.float32), out_size))


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [((288, 352), (320, 320)), ((576, 704), (320, 320)), ((17, 33), (40, 71))],
)
def test_window_form_equals_gather_form_for_mild_and_upward_rescales(
    in_size: tuple[int, int], out_size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    plane = np.random.default_rng(5).random(in_size, dtype=np.float32) * 255
    windowed = resize_plane(plane, out_size)
    monkeypatch.setattr(resize, "_window_plan", lambda _i, _o: None)
    np.testing.assert_allclose(windowed, resize_plane(plane, out_size), rtol=0, atol=255 * 1e-6)


def _spy_passes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int, int]]:
    """Record each window-form pass as (direction, lines across, first block, last block)."""
    calls: list[tuple[str, int, int, int]] = []
    real = resize._filter_lines

    def spy(lines: np.ndarray, plan: resize._WindowPlan, first: int, last: int) -> np.ndarray:
        # The horizontal pass runs on a transposed view: its lines are columns.
        direction = "horizontal" if lines.strides[0] < lines.strides[1] else "vertical"
        calls.append((direction, lines.shape[1], first, last))
        return real(lines, plan, first, last)

    monkeypatch.setattr(resize, "_filter_lines", spy)
    return calls


def test_both_passes_shrinking_run_horizontal_first_in_strips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _spy_passes(monkeypatch)
    resize_plane(np.zeros((2160, 3840), np.uint8), (320, 320))
    columns, rows = _window_plan(3840, 320), _window_plan(2160, 320)
    assert columns is not None and rows is not None
    rows_per_strip = resize.STRIP_BYTES // (columns.padded * 4)
    horizontal = [c for c in calls if c[0] == "horizontal"]
    vertical = [c for c in calls if c[0] == "vertical"]
    # Strips of input rows, each filtered across its full width (all 320 blocks)...
    assert calls[0][0] == "horizontal" and len(horizontal) > 1
    assert {across for _, across, _, _ in horizontal[:-1]} == {rows_per_strip}
    assert sum(across for _, across, _, _ in horizontal) == 2160
    assert all((first, last) == (0, 320) for _, _, first, last in horizontal)
    # ...with the vertical pass caught up after strips, over the narrow plane,
    # each output block once and in order.
    assert all(across == 320 for _, across, _, _ in vertical)
    blocks = [(first, last) for _, _, first, last in vertical]
    assert blocks[0][0] == 0 and blocks[-1][1] == rows.blocks
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    assert calls.index(vertical[0]) < calls.index(horizontal[-1])  # interleaved, not after


def test_only_the_height_shrinking_runs_vertical_first_in_strips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _spy_passes(monkeypatch)
    resize_plane(np.zeros((2160, 300), np.uint8), (320, 320))  # the width grows
    # Strips of output rows from the whole-height plane, each widened after.
    assert [direction for direction, _, _, _ in calls] == ["vertical", "horizontal"] * (
        len(calls) // 2
    )
    vertical, horizontal = calls[::2], calls[1::2]
    assert len(vertical) > 1 and all(across == 300 for _, across, _, _ in vertical)
    assert sum(last - first for _, _, first, last in vertical) == 80  # 2160 -> 320: 80 blocks of 4
    assert [across for _, across, _, _ in horizontal] == [
        4 * (last - first) for _, _, first, last in vertical
    ]


def test_a_growing_height_runs_horizontal_then_vertical_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _spy_passes(monkeypatch)
    resize_plane(np.zeros((288, 352), np.uint8), (320, 320))  # CIF: height grows
    assert calls == [("horizontal", 288, 0, 32), ("vertical", 320, 0, 32)]


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [
        ((720, 1280), (320, 320)),
        ((1080, 1920), (320, 320)),
        ((2160, 3840), (180, 320)),
        ((576, 720), (320, 320)),
        ((720, 320), (320, 320)),  # only the height shrinks: vertical first
        ((2160, 300), (180, 320)),
    ],
)
@pytest.mark.parametrize("strip_bytes", [1, 5_000, 100_000])
def test_strips_equal_the_whole_plane_passes(
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    strip_bytes: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Strips (one line or block a strip, or uneven last strips) give the two
    whole-plane passes' values, in either order."""
    plane = np.random.default_rng(6).integers(0, 256, in_size).astype(np.uint8)
    plan = _window_plan(in_size[0], out_size[0])
    assert plan is not None
    vertical_first = resize._resize_axis(resize._resize_axis(plane, out_size[0], 0), out_size[1], 1)
    horizontal_first = resize._resize_axis(
        resize._resize_axis(plane, out_size[1], 1), out_size[0], 0
    )
    monkeypatch.setattr(resize, "STRIP_BYTES", strip_bytes)
    strips = resize_plane(plane, out_size)
    np.testing.assert_allclose(strips, vertical_first, rtol=0, atol=255 * 1e-6)
    np.testing.assert_allclose(strips, horizontal_first, rtol=0, atol=255 * 1e-6)
    np.testing.assert_allclose(
        strips, _pil_resize(plane.astype(np.float32), out_size), rtol=1e-6, atol=1e-3
    )
