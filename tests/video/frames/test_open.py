"""Opening a video (the reader chosen by suffix, magic and flags) and choosing frames."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests._video import write_raw, write_y4m
from vmafx_saliency.errors import UsageError, VideoError
from vmafx_saliency.video.frames import (
    Frame,
    Y4mSource,
    open_video,
    parse_frame_range,
    select_frames,
)

# --- open_video: the reader chosen by suffix, magic and flags -----------------------------


def test_dispatch_by_suffix_and_magic(tmp_path: Path) -> None:
    raw = tmp_path / "clip.bin"  # unknown suffix + geometry: raw
    write_raw(raw, "yuv420p", 16, 8, frames=2)
    with open_video(raw, width=16, height=8) as src:
        assert src.info.container == "raw"
    y4m = tmp_path / "clip_without_suffix"
    write_y4m(y4m, "420jpeg", 16, 8, frames=2)
    with open_video(y4m) as src:
        assert isinstance(src, Y4mSource)
    # Geometry that agrees with a Y4M header is accepted; a mismatch is refused.
    with open_video(y4m, width=16, height=8, pixel_format="yuv420p") as src:
        assert src.info.container == "y4m"
    with pytest.raises(UsageError, match="not --width 20"):
        open_video(y4m, width=20)
    with pytest.raises(UsageError, match="not --pixel-format yuv444p"):
        open_video(y4m, pixel_format="yuv444p")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for name in ("absent.yuv", "absent.y4m", "absent.mp4"):
        with pytest.raises(VideoError, match="no such file"):
            open_video(tmp_path / name, width=16, height=8)
    with pytest.raises(VideoError, match="is a directory"):
        open_video(tmp_path)


# --- select_frames and parse_frame_range ----------------------------------------------


def _counting(n: int, *, stop_at: int | None = None) -> Iterator[Frame]:
    """Frames 0..n-1; fails the test if pulled at or beyond ``stop_at``."""
    luma = np.zeros((2, 2), np.uint8)
    for index in range(n):
        if stop_at is not None and index >= stop_at:
            raise AssertionError(f"frame {index} was read past the end of the range")
        yield Frame(index=index, luma=luma, bit_depth=8)


@pytest.mark.parametrize(
    ("start", "end", "subsample", "want"),
    [
        (0, None, 1, list(range(12))),
        (3, 11, 1, [3, 4, 5, 6, 7, 8, 9, 10]),
        # Counted from the start of the range, as vmaf counts from its first frame:
        (3, 11, 3, [3, 6, 9]),
        (4, 12, 3, [4, 7, 10]),  # source numbering would give 6, 9
        (0, None, 5, [0, 5, 10]),
        (7, 8, 1, [7]),
        (10, None, 4, [10]),
        (20, None, 1, []),  # past the end: nothing, no error here
    ],
)
def test_select_frames(start: int, end: int | None, subsample: int, want: list[int]) -> None:
    got = select_frames(_counting(12), start=start, end=end, subsample=subsample)
    assert [f.index for f in got] == want


def test_select_frames_stops_reading_at_end() -> None:
    got = select_frames(_counting(100, stop_at=10), start=2, end=10, subsample=4)
    assert [f.index for f in got] == [2, 6]


def test_select_frames_validates_eagerly() -> None:
    with pytest.raises(UsageError, match="negative"):
        select_frames(_counting(3), start=-1)
    with pytest.raises(UsageError, match="END must be greater than START"):
        select_frames(_counting(3), start=5, end=5)
    with pytest.raises(UsageError, match="--subsample 0"):
        select_frames(_counting(3), subsample=0)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("3:11", (3, 11)),
        ("3:", (3, None)),
        (":11", (0, 11)),
        ("7", (7, 8)),
        ("0", (0, 1)),
        (" 2 : 5 ", (2, 5)),
        (":", (0, None)),
    ],
)
def test_parse_frame_range(text: str, want: tuple[int, int | None]) -> None:
    assert parse_frame_range(text) == want


@pytest.mark.parametrize("text", ["", "a:b", "5:3", "5:5", "-1:3", "1:2:3", "1.5", "x"])
def test_parse_frame_range_errors(text: str) -> None:
    with pytest.raises(UsageError, match="START:END"):
        parse_frame_range(text)


def test_copying_a_clip_keeps_it_readable(videos_dir: Path, tmp_path: Path) -> None:
    """A clip under another name and suffix-less still dispatches to PyAV."""
    path = tmp_path / "clip"
    shutil.copyfile(videos_dir / "carphone_distorted.mp4", path)
    with open_video(path) as src:
        assert src.info.container == "av"
        assert src.info.frame_count == 120


def test_geometry_flags_must_match_a_container(videos_dir: Path) -> None:
    path = videos_dir / "carphone_distorted.mp4"
    with open_video(path, width=176, height=144, pixel_format="yuv420p") as src:
        assert src.info.container == "av"
    with pytest.raises(UsageError, match="not --height 120: drop --height"):
        open_video(path, height=120)
