"""Helpers of the export tests: the fixture licence, the images, an ONNX Runtime run, a probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import IMAGES, SHARED

FIXTURE_LICENSE = SHARED / "fixtures" / "u2netp" / "LICENSE-U-2-Net.txt"
DEFAULT_IMAGES = IMAGES if IMAGES.exists() else None


def _ort_run(path_or_bytes: Path | bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x})[0])


def _probe_input(size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    from vmafx_saliency.supply import export

    if IMAGES.exists():
        with Image.open(sorted(IMAGES.glob("*.jpg"))[0]) as img:
            return export.preprocess_upstream(img, size)
    return export.preprocess_upstream(export.synthetic_image(size, seed=7), size)
