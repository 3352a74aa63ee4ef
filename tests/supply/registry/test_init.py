"""The registry package: importing it needs neither numpy nor ONNX (nor torch)."""

from __future__ import annotations

import subprocess
import sys

from tests._trust import ROOT


def test_import_needs_no_numpy_or_onnx() -> None:
    code = (
        "import sys, vmafx_saliency.supply.registry; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'onnx', 'onnxruntime', 'torch')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
