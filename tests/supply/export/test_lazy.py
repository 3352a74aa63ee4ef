"""The export package imports without torch and names the extra when an export needs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


def test_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "import vmafx_saliency.supply.export as e\n"
        "from pathlib import Path\n"
        "from vmafx_saliency.errors import MissingDependencyError\n"
        "try:\n"
        "    e.export_mirror(checkpoint=Path('x.pth'), output=Path('/nonexistent/m.onnx'))\n"
        "except MissingDependencyError as exc:\n"
        "    print('MISSING', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "MISSING" in done.stdout
    assert "vmafx-saliency[export]" in done.stdout
