"""The pictures a run writes: PNG saliency maps and the per-frame plot."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._video import AWKWARD
from tests._video import frame_records as _frames
from vmafx_saliency.errors import MissingDependencyError, OutputError
from vmafx_saliency.video.maps import plot_series, save_map, write_png_gray

# ---------------------------------------------------------------------- PNG maps


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 31), (64, 7)])
def test_png_round_trip_through_pil(tmp_path: Path, shape: tuple[int, int]) -> None:
    # PIL is a second, independent PNG decoder: it must read back every pixel.
    from PIL import Image

    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / "m.png"
    write_png_gray(path, image)
    with Image.open(path) as decoded:
        assert decoded.mode == "L"
        assert decoded.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(decoded), image)


def test_png_refuses_what_is_not_gray_uint8(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="uint8"):
        write_png_gray(tmp_path / "m.png", np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(OutputError, match="uint8"):
        write_png_gray(tmp_path / "m.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(OutputError, match="empty"):
        write_png_gray(tmp_path / "m.png", np.zeros((0, 4), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_save_map_rounds_x_times_255(tmp_path: Path) -> None:
    from PIL import Image

    # 0.4/255 -> 0.4 -> 0; 0.6/255 -> 0.6 -> 1; 0.5 -> 127.5 -> 128 (half to
    # even, like round()); a hair over 1 is float noise and clips to 255.
    m = np.array([[0.0, 0.4 / 255, 0.6 / 255], [0.5, 1.0, 1.0 + 1e-9]], dtype=np.float32)
    path = save_map(tmp_path / "maps", 123, m)
    assert path == tmp_path / "maps" / "frame_000123.png"
    with Image.open(path) as decoded:
        assert np.asarray(decoded).tolist() == [[0, 0, 1], [128, 255, 255]]


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_save_map_refuses_values_outside_0_1(tmp_path: Path, bad: float) -> None:
    with pytest.raises(OutputError, match=r"frame 7: .*\[0, 1\]"):
        save_map(tmp_path, 7, np.array([[0.5, bad]]))
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------- plot


def test_plot_series_writes_a_png(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "plot.png"
    plot_series(path, _frames(AWKWARD), title="foreman")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 100 and image.size[1] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_plot_series_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, target: Any) -> Path:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OutputError, match="Permission denied"):
        plot_series(tmp_path / "plot.png", _frames(AWKWARD))
    assert list(tmp_path.iterdir()) == []


def test_plot_series_unknown_metric(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no frame has the metric 'vmaf'"):
        plot_series(tmp_path / "p.png", _frames(AWKWARD), metric="vmaf")
    assert list(tmp_path.iterdir()) == []


def test_plot_series_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import matplotlib` raise ImportError,
    # as on an install without the eval extra.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'vmafx-saliency\[plot\]'"):
        plot_series(tmp_path / "p.png", _frames(AWKWARD))
    assert list(tmp_path.iterdir()) == []
