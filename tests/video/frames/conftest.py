"""Fixtures the frame-source tests share."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def av() -> Any:
    """PyAV, a core dependency; raw and Y4M tests above run without it."""
    return pytest.importorskip("av")
