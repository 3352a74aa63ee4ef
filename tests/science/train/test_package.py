"""The package: every module's names from one place, and no numpy or torch to import it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from vmafx_saliency.science import train

ROOT = Path(__file__).resolve().parents[3]


def test_every_modules_names_come_from_the_package_once() -> None:
    package = Path(train.__file__).parent
    assert set(train.MODULES) == {p.stem for p in package.glob("*.py")} - {"__init__"}
    homes: dict[str, str] = {}
    for module_name in train.MODULES:
        module = importlib.import_module(f"{train.__name__}.{module_name}")
        for name in module.__all__:
            assert name not in homes, (name, homes.get(name), module_name)
            homes[name] = module_name
            assert getattr(train, name) is getattr(module, name)
    assert set(train.__all__) <= set(homes)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        getattr(train, "no_such_name")  # noqa: B009


def test_the_package_and_its_config_import_neither_numpy_nor_torch() -> None:
    # The CLI builds its parser from the config's defaults: that must stay cheap.
    code = (
        "import sys, vmafx_saliency.science.train, vmafx_saliency.cli.train; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'jsonschema')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_default_teacher_id_is_the_mirrors() -> None:
    from vmafx_saliency.supply.export.mirror import MODEL_ID

    assert train.MIRROR_ID == MODEL_ID
