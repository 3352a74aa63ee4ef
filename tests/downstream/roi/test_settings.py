"""ROI settings: the defaults validate, and every bad value is explained."""

from __future__ import annotations

import math

import pytest

from vmafx_saliency.downstream import roi
from vmafx_saliency.errors import UsageError


def test_settings_validate() -> None:
    assert roi.RoiSettings().validate().block_size == 16
    assert roi.RoiSettings(codec="av1", clamp=63).validate().block_size == 64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codec": "vp9"}, "unknown codec 'vp9': --codec takes one of h264, hevc, av1"),
        ({"strength": 0.0}, r"--strength 0.0: give a positive number"),
        ({"strength": -2.0}, r"--strength -2.0: give a positive number"),
        ({"strength": math.nan}, r"--strength nan: give a positive number"),
        ({"clamp": 52}, "--clamp 52: give a whole number of QP from 1 to 51 for h264"),
        ({"clamp": 0, "codec": "av1"}, "from 1 to 63 for av1"),
        ({"levels": 9}, "--levels 9: give 3 to 8"),
        ({"aggregate": "median"}, "unknown aggregate 'median'"),
        ({"ema_alpha": 0.0}, r"--ema-alpha 0.0"),
        ({"max_regions": 0}, "--max-regions 0"),
        ({"zone_frames": 0}, "--zone-frames 0"),
    ],
)
def test_settings_refuse_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        roi.RoiSettings(**kwargs).validate()  # type: ignore[arg-type]
