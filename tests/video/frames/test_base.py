"""What every frame source shares: a source is iterated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._video import write_raw
from vmafx_saliency.video.frames import open_video


def test_single_pass(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    write_raw(path, "yuv420p", 16, 8, frames=2)
    with open_video(path, width=16, height=8) as src:
        assert len(list(src)) == 2
        with pytest.raises(RuntimeError, match="already iterated"):
            iter(src)
