"""How a training run reports itself: the time left on its progress lines."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from vmafx_saliency.science import train  # noqa: E402


@pytest.mark.parametrize(
    ("done", "total", "seconds", "said"),
    [
        (50, 200, 100.0, ", about 5 min left"),  # 150 more at 2 s each
        (10, 20, 30.0, ", about 30 s left"),  # under 90 s is said in seconds
        (1, 3, 50.0, ", about 2 min left"),  # 100 s
        (0, 20, 0.0, ""),  # no pace yet
        (20, 20, 60.0, ""),  # done
    ],
)
def test_time_left_extrapolates_the_pace_so_far(
    done: int, total: int, seconds: float, said: str
) -> None:
    assert train.time_left(done, total, seconds) == said
