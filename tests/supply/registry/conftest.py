"""Every registry test runs with both default locations in its own tmp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._trust import isolate_registry


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point both default locations into tmp, so no test reads a user's overlay."""
    isolate_registry(tmp_path, monkeypatch)
