"""PASCAL-S figures of one model's deployment maps, as they are and transformed.

A diagnostic for what limits a model's max F under the ``deployment``
protocol (eval's inputs, outputs and metrics, one threshold for the whole
dataset): each image's map is also scored after

- ``half`` / ``quarter``: the pipeline's antialiased resize
  (``resize.resize_plane``) to 1/2 or 1/4 of the inference size and back, as
  if the model had predicted at that resolution (the student's head predicts
  at 1/2 and resizes up);
- ``minmax``: per-image min-max normalisation (upstream's ``normPRED``), which
  takes away any difference in the maps' scale from one image to the next.

A variant that scores well above ``raw`` points at what to change: output
resolution, or calibration across images. The model goes through the loader
gate, and its maps through eval's checks, as in eval.

    .venv/bin/python benchmarks/map_variants.py models/u2netp_mirror_v1.onnx
    .venv/bin/python benchmarks/map_variants.py \\
        src/vmafx_saliency/models/saliency_student_v2.onnx --limit 100
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vmafx_saliency.science.evaluate import (
    DatasetMetrics,
    LoadedPair,
    Pair,
    _check_map,
    deployment_input,
    deployment_output,
    load_models,
    load_pair,
    pair_dataset,
    parse_models,
)
from vmafx_saliency.video.resize import resize_plane

FIGURES = ("max_f", "s_measure", "mae", "max_f_per_image")
LOOK_AHEAD = 4  # pairs decoded ahead of inference: memory stays flat, as in eval


def _rescaled(factor: int) -> Callable[[np.ndarray], np.ndarray]:
    def apply(sal: np.ndarray) -> np.ndarray:
        h, w = sal.shape
        small = resize_plane(sal, (max(1, h // factor), max(1, w // factor)))
        return resize_plane(small, (h, w))

    return apply


def _minmax(sal: np.ndarray) -> np.ndarray:
    lo, hi = float(sal.min()), float(sal.max())
    return (sal - lo) / (hi - lo) if hi > lo else np.zeros_like(sal)


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "raw": lambda sal: sal,
    "half": _rescaled(2),
    "quarter": _rescaled(4),
    "minmax": _minmax,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a registry id or an .onnx path with its sidecar beside it")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/pascal-s"))
    parser.add_argument("--limit", type=int, default=None, help="the first N pairs only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    (model,) = load_models(parse_models(args.model), threads=args.threads)
    pairs = pair_dataset(args.dataset, limit=args.limit)
    metrics = {name: DatasetMetrics() for name in VARIANTS}

    def prepare(pair: Pair) -> tuple[LoadedPair, np.ndarray]:
        loaded = load_pair(pair)
        return loaded, deployment_input(loaded.image, model.pre)

    def prepared(executor: ThreadPoolExecutor) -> Iterator[tuple[LoadedPair, np.ndarray]]:
        # Decoding overlaps with inference through a bounded window, as in eval.
        pending: deque[Future[tuple[LoadedPair, np.ndarray]]] = deque()
        for pair in pairs:
            pending.append(executor.submit(prepare, pair))
            if len(pending) > LOOK_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    with ThreadPoolExecutor(1) as executor:
        for loaded, tensor in prepared(executor):
            (saliency,) = model.loaded.session.run(["saliency_map"], {"input": tensor})
            plane = np.asarray(saliency, dtype=np.float32)[0, 0]
            _check_map(plane, model.id, loaded.stem)
            for name, variant in VARIANTS.items():
                map8 = deployment_output(variant(plane).astype(np.float32), loaded.mask.shape)
                metrics[name].step(map8, loaded.mask)

    print(f"{model.id} on {len(pairs)} pairs of {args.dataset}, deployment protocol")
    print(f"{'variant':>8} " + " ".join(f"{f:>15}" for f in FIGURES))
    for name, acc in metrics.items():
        results, _ = acc.get_results()
        print(f"{name:>8} " + " ".join(f"{results[f]:>15.4f}" for f in FIGURES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
