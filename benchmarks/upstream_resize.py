"""The upstream protocol's input resize: ours against scikit-image's, as upstream has it.

Upstream ``u2net_test.py`` resizes with ``skimage.transform.resize`` (order 1,
``mode='constant'``, antialiased by a Gaussian when downscaling); eval's
``upstream`` protocol uses the extractor's antialiased triangle filter
(``video.resize.resize_plane``). This runs the upstream protocol on the first
``--limit`` pairs (eval's order, sorted by stem) twice, the second time with
``resize_plane`` swapped for scikit-image's inside
``science/evaluate/protocols.py``, and prints the mean over images of the mean
absolute difference of the two 8-bit maps (/ 255) and max F (i) and
S-measure of each. Needs scikit-image (not a dependency of the product).

    .venv/bin/python benchmarks/upstream_resize.py --model-path models/u2netp_mirror_v1.onnx \\
        --sidecar src/vmafx_saliency/models/u2netp_mirror_v1.sidecar.json --limit 200
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency.science.evaluate import DatasetMetrics, pair_dataset, protocols
from vmafx_saliency.science.evaluate.dataset import load_pair
from vmafx_saliency.video.job import ModelChoice, load_model

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "data" / "pascal-s"


def skimage_resize(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Upstream's RescaleT on one plane (floats in [0, 1], as skimage makes of uint8)."""
    transform: Any = importlib.import_module("skimage.transform")
    resized = transform.resize(plane, size, order=1, mode="constant", anti_aliasing=True)
    return np.asarray(resized, dtype=np.float32)


@contextmanager
def skimage_in_protocol() -> Iterator[None]:
    # The protocol's own module global: upstream_input resizes through it.
    saved = getattr(protocols, "resize_plane")  # noqa: B009 -- not exported, patched
    setattr(protocols, "resize_plane", skimage_resize)  # noqa: B010
    try:
        yield
    finally:
        setattr(protocols, "resize_plane", saved)  # noqa: B010


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", type=Path, default=ROOT / "models/u2netp_mirror_v1.onnx")
    parser.add_argument("--sidecar", type=Path)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    if not args.dataset.is_dir() or not args.model_path.is_file():
        parser.exit(0, f"skipped: {args.dataset} or {args.model_path} is not there\n")
    loaded, pre = load_model(
        ModelChoice(model_path=args.model_path, sidecar=args.sidecar), threads=None
    )
    metrics = {"ours": DatasetMetrics(), "scikit-image": DatasetMetrics()}
    differences = []
    pairs = pair_dataset(args.dataset, limit=args.limit)
    for pair in pairs:
        image_and_mask = load_pair(pair)
        maps = {}
        for name in metrics:
            if name == "ours":
                tensor = protocols.upstream_input(image_and_mask.image, pre)
            else:
                with skimage_in_protocol():
                    tensor = protocols.upstream_input(image_and_mask.image, pre)
            (saliency,) = loaded.session.run(["saliency_map"], {"input": tensor})
            maps[name] = protocols.upstream_output(saliency[0, 0], image_and_mask.mask.shape)
            metrics[name].step(maps[name], image_and_mask.mask)
        a, b = (maps[name].astype(np.float64) / 255.0 for name in metrics)
        differences.append(float(np.mean(np.abs(a - b))))
    print(f"{args.model_path.name}, upstream protocol, first {len(pairs)} pairs of {args.dataset}")
    print(f"scikit-image {importlib.metadata.version('scikit-image')}")
    print(f"mean |difference| of the 8-bit maps / 255: {np.mean(differences):.4f}")
    for name, accumulator in metrics.items():
        figures, _ = accumulator.get_results()
        print(f"{name:13s} max F (i) {figures['max_f']:.4f}  S-measure {figures['s_measure']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
