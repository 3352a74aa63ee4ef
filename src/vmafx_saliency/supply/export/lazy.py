"""The export extra's heavy modules, imported on first use: torch, onnx, ONNX Runtime, Pillow.

No module of :mod:`vmafx_saliency.supply.export` imports them at module level,
so the package imports without the ``export`` extra; each function here names
the extra to install when an export needs the module and it is missing.
"""

from __future__ import annotations

from typing import Any

from vmafx_saliency._util import require


def torch() -> Any:
    return require("torch", purpose="export", extra="export")


def onnx() -> Any:
    return require("onnx", purpose="export", extra="export")


def onnxruntime() -> Any:
    return require("onnxruntime", purpose="the export's parity check", extra=None)


def pil_image() -> Any:
    return require("PIL.Image", purpose="export", extra="export")


def pil_image_draw() -> Any:
    return require("PIL.ImageDraw", purpose="export", extra="export")
