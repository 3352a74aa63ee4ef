"""One registry document: structural errors stop a load; a committed file needs defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._trust import write_model, write_registry
from vmafx_saliency.errors import InvalidRegistryError
from vmafx_saliency.supply import registry as reg


def test_structural_errors_stop_registry_load(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    entries = [write_model(folder, "tiny")]
    entries[0]["license_file"] = "../LICENSE"
    path = write_registry(folder / "registry.json", entries)
    with pytest.raises(InvalidRegistryError, match=r"registry\.json is invalid: .*'\.\.'"):
        reg.Registry.load(committed=path)


def test_committed_registry_needs_a_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "reg"
    path = write_registry(
        folder / "registry.json", [write_model(folder, "tiny", default=False, status="alternative")]
    )
    # As an overlay, alternatives without a default are fine ...
    assert reg.validate_registry(path).ok
    # ... as the committed registry, an extractor with models needs exactly one default.
    monkeypatch.setenv(reg.ENV_COMMITTED, str(path))
    report = reg.validate_registry(path)
    assert re.search(r"extractor 'mobilesal' has no default in the committed", report.render())
