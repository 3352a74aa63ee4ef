"""Shared helpers of the ROI tests (tests/downstream/roi)."""

from __future__ import annotations

import shutil

import pytest

from vmafx_saliency.downstream import roi
from vmafx_saliency.errors import MissingDependencyError


def _need_ffmpeg_with(encoder: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    try:
        roi.check_ffmpeg("ffmpeg", encoder)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
