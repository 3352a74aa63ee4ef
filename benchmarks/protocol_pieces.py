"""What each piece of eval's two protocols does to the mirror on PASCAL-S.

Both studies run on the first ``--limit`` pairs (eval's order, sorted by
stem) with eval's own pieces (``science/evaluate/protocols.py``) and figures
(``DatasetMetrics``):

``luma``: the deployment protocol differs from upstream's in two ways: the
    model sees the image's luma tiled to three channels instead of RGB, and
    the map is kept raw instead of min-maxed per image. This scores the four
    combinations (``upstream_input`` for RGB, ``deployment_input`` for luma;
    ``upstream_output`` for min-max, ``deployment_output`` for raw) and prints
    max F (i) and S-measure of each, then the mean over images of
    ``saliency_mean`` (the plain mean of the raw map, what the extractor
    reports) with luma input minus with RGB input.
``resize``: upstream ``u2net_test.py`` resizes its input with
    ``skimage.transform.resize`` (order 1, ``mode='constant'``, antialiased by
    a Gaussian when downscaling); eval's ``upstream`` protocol uses the
    extractor's antialiased triangle filter (``video.resize.resize_plane``).
    This runs the upstream protocol twice, the second time with
    ``resize_plane`` swapped for scikit-image's inside the protocols module,
    and prints the mean over images of the mean absolute difference of the
    two 8-bit maps (/ 255) and max F (i) and S-measure of each. Needs
    scikit-image (not a dependency of the product).

    .venv/bin/python benchmarks/protocol_pieces.py luma --model-path models/u2netp_mirror_v1.onnx \\
        --sidecar src/vmafx_saliency/models/u2netp_mirror_v1.sidecar.json --limit 200
    .venv/bin/python benchmarks/protocol_pieces.py resize (the same options)
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
from vmafx_saliency.science.evaluate.dataset import LoadedPair, load_pair
from vmafx_saliency.supply.loader import LoadedModel
from vmafx_saliency.supply.registry import Preprocessing
from vmafx_saliency.video.job import ModelChoice, load_model

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "data" / "pascal-s"
INPUTS = {"RGB": protocols.upstream_input, "luma": protocols.deployment_input}
OUTPUTS = {"min-max": protocols.upstream_output, "raw": protocols.deployment_output}


def _saliency(loaded: LoadedModel, tensor: np.ndarray) -> np.ndarray:
    (saliency,) = loaded.session.run(["saliency_map"], {"input": tensor})
    plane: np.ndarray = saliency[0, 0]
    return plane


def luma_study(loaded: LoadedModel, pre: Preprocessing, pairs: list[LoadedPair]) -> None:
    metrics = {(i, o): DatasetMetrics() for i in INPUTS for o in OUTPUTS}
    shift = []
    for pair in pairs:
        raw_means = {}
        for input_name, to_input in INPUTS.items():
            plane = _saliency(loaded, to_input(pair.image, pre))
            raw_means[input_name] = float(np.mean(plane, dtype=np.float64))
            for output_name, to_output in OUTPUTS.items():
                metrics[input_name, output_name].step(to_output(plane, pair.mask.shape), pair.mask)
        shift.append(raw_means["luma"] - raw_means["RGB"])
    print(f"{'input':6} {'map':8} {'max F (i)':>10} {'S-measure':>10}")
    for (input_name, output_name), accumulator in metrics.items():
        figures, _ = accumulator.get_results()
        print(
            f"{input_name:6} {output_name:8} {figures['max_f']:10.4f} {figures['s_measure']:10.4f}"
        )
    print(f"saliency_mean, luma minus RGB, mean over images: {np.mean(shift):+.4f}")


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


def resize_study(loaded: LoadedModel, pre: Preprocessing, pairs: list[LoadedPair]) -> None:
    metrics = {"ours": DatasetMetrics(), "scikit-image": DatasetMetrics()}
    differences = []
    for pair in pairs:
        tensor = protocols.upstream_input(pair.image, pre)
        with skimage_in_protocol():
            tensor_skimage = protocols.upstream_input(pair.image, pre)
        maps = {}
        for name, model_input in zip(metrics, (tensor, tensor_skimage), strict=True):
            saliency = _saliency(loaded, model_input)
            maps[name] = protocols.upstream_output(saliency, pair.mask.shape)
            metrics[name].step(maps[name], pair.mask)
        ours, theirs = (maps[name].astype(np.float64) / 255.0 for name in metrics)
        differences.append(float(np.mean(np.abs(ours - theirs))))
    print(f"scikit-image {importlib.metadata.version('scikit-image')}")
    print(f"mean |difference| of the 8-bit maps / 255: {np.mean(differences):.4f}")
    for name, accumulator in metrics.items():
        figures, _ = accumulator.get_results()
        print(f"{name:13s} max F (i) {figures['max_f']:.4f}  S-measure {figures['s_measure']:.4f}")


STUDIES = {"luma": luma_study, "resize": resize_study}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=list(STUDIES))
    parser.add_argument("--model-path", type=Path, default=ROOT / "models/u2netp_mirror_v1.onnx")
    parser.add_argument("--sidecar", type=Path)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if not args.dataset.is_dir() or not args.model_path.is_file():
        parser.exit(0, f"skipped: {args.dataset} or {args.model_path} is not there\n")
    loaded, pre = load_model(
        ModelChoice(model_path=args.model_path, sidecar=args.sidecar), threads=args.threads
    )
    pairs = [load_pair(pair) for pair in pair_dataset(args.dataset, limit=args.limit)]
    print(f"{args.model_path.name}, study {args.study}, first {len(pairs)} pairs of {args.dataset}")
    STUDIES[args.study](loaded, pre, pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
