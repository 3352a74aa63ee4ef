"""Shared by the extractor tests: a tiny ad-hoc model with its sidecar, inputs
that break the extractor, and the check that a failure leaves nothing behind."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests._onnx_models import conv_sigmoid_model
from tests._trust import sidecar_doc, write_json
from tests._video import write_raw

TINY_SIZE = (48, 64)  # (H, W): the tiny model's sidecar inference size, unless told


def write_tiny(
    folder: Path,
    *,
    name: str = "tiny",
    data: bytes | None = None,
    inference_size: list[int] | str = list(TINY_SIZE),  # noqa: B006 - never mutated
    beside: bool = False,
    **preprocessing: Any,
) -> tuple[Path, Path]:
    """An ad-hoc model and its sidecar; ``beside``: named ``<stem>.sidecar.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{name}.onnx"
    model.write_bytes(data if data is not None else conv_sigmoid_model())
    doc = sidecar_doc(name)
    doc["preprocessing"]["inference_size"] = inference_size
    doc["preprocessing"].update(preprocessing)
    sidecar = folder / (f"{name}.sidecar.json" if beside else f"{name}-preprocessing.json")
    write_json(sidecar, doc)
    return model, sidecar


def assert_nothing_written(folder: Path, *paths: Path, keep: Sequence[str] = ()) -> None:
    """No output, no temporary ``.<name>.*`` file, no maps folder: nothing new."""
    for path in paths:
        assert not path.exists(), path
    left = sorted(p.name for p in folder.iterdir() if p.name not in keep)
    assert left == [], f"left behind in {folder}: {left}"


def broken_foreman(videos_dir: Path, folder: Path) -> Path:
    data = bytearray((videos_dir / "foreman_cif.mp4").read_bytes())
    data[300_000:340_000] = bytes(40_000)  # the moov is at the end: it opens, then fails
    path = folder / "broken.mp4"
    path.write_bytes(bytes(data))
    return path


def white_on_frame_3(path: Path, width: int = 64, height: int = 48, frames: int = 6) -> None:
    """Noise frames (finite under the NaN model) and one white frame, frame 3 (NaN)."""
    rng = np.random.default_rng(11)
    lumas = [rng.integers(16, 236, (height, width), dtype=np.uint8) for _ in range(frames)]
    lumas[3] = np.full((height, width), 235, np.uint8)
    write_raw(path, "yuv420p", width, height, frames, lumas=lumas)
