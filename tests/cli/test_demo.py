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
    monkeypatch.setattr(demo, "PROJECT_ROOT", None)

    def must_not_run(**_: object) -> None:
        raise AssertionError("the demo ran outside a source checkout")

    monkeypatch.setattr(demo, "run", must_not_run)
    assert demo.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"demo: error: {tmp_path} is not a source checkout: ")
    assert "run 'vmafx-saliency extract VIDEO' instead" in err
