"""`make demo`'s entry point: it writes only inside a source checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmafx_saliency.cli import demo


def test_outside_a_source_checkout_the_demo_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As from a wheel: the package's grandparent is site-packages' parent, no pyproject.toml.
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    assert demo.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"demo: error: {tmp_path} is not a source checkout: ")
    assert "run 'vmafx-saliency extract VIDEO' instead" in err
    assert list(tmp_path.iterdir()) == []
