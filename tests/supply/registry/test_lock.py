"""One writer of a registry at a time: the folder's lock, and writers that read again under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._trust import register_tiny
from tests.supply.registry._raw import entries_of
from vmafx_saliency.errors import RegistryError
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply.registry import add as add_module
from vmafx_saliency.supply.registry.lock import writing


def test_a_second_writer_waits_then_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    registry = tmp_path / "data" / "registry.json"  # its folder is made for the lock
    with (
        writing(registry),
        pytest.raises(
            RegistryError,
            match=r"registry\.json: another vmafx-saliency run has been writing it for over "
            r"0\.2 s \(it holds the lock of \S+data\): run again when it has finished",
        ),
        writing(registry, wait=0.2),
    ):
        pass
    with writing(registry, wait=0.2):  # released: taken at once
        pass
    assert list((tmp_path / "data").iterdir()) == []  # no lock file


def test_a_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    registry = tmp_path / "afile" / "sub" / "registry.json"
    with (
        pytest.raises(
            RegistryError,
            match=r"cannot write \S+registry\.json: its folder \S+sub cannot be made or opened "
            r"\(Not a directory\): check the path",
        ),
        writing(registry),
    ):
        pass


def test_an_add_keeps_an_entry_written_while_it_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `registry add` at once: the one that checks longer used to write back what it
    read before, and the other's entry was lost while both said 'registered'."""
    check = add_module._check_signature
    landed: list[str] = []

    def meanwhile(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)
        if not landed:  # once, after the slow run's first read: the other run lands now
            landed.append("quick")
            register_tiny(tmp_path, "quick", signed=False)

    monkeypatch.setattr(add_module, "_check_signature", meanwhile)
    register_tiny(tmp_path, "slow", signed=False)
    assert sorted(e["id"] for e in entries_of(reg.overlay_registry_path())) == ["quick", "slow"]
