"""Where the committed registry and the overlay are."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._trust import COMMITTED
from vmafx_saliency.supply import registry as reg


def test_overlay_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(reg.ENV_OVERLAY, str(tmp_path / "o.json"))
    assert reg.overlay_registry_path() == tmp_path / "o.json"
    monkeypatch.delenv(reg.ENV_OVERLAY)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert reg.overlay_registry_path() == tmp_path / "xdg" / "vmafx-saliency" / "registry.json"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "vmafx-saliency" / "registry.json"
    assert reg.overlay_registry_path() == expected


def test_committed_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(reg.ENV_COMMITTED)
    assert reg.committed_registry_path() == COMMITTED
