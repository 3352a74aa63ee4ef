"""What luma-only input costs the mirror on PASCAL-S, split into its two changes.

The deployment protocol differs from upstream's in two ways: the model sees
the image's luma tiled to three channels instead of RGB, and the map is kept
raw instead of min-maxed per image. This scores the four combinations on the
first ``--limit`` pairs (in eval's order, sorted by stem), each with eval's own
pieces (``science/evaluate/protocols.py``: ``upstream_input`` for RGB,
``deployment_input`` for luma; ``upstream_output`` for min-max,
``deployment_output`` for raw; ``DatasetMetrics`` for the figures), and
prints max F (i) and S-measure of each, then the mean over images of
``saliency_mean`` (the plain mean of the raw map, what the extractor reports)
with luma input minus with RGB input.

    .venv/bin/python benchmarks/luma_cost.py --model-path models/u2netp_mirror_v1.onnx \\
        --sidecar src/vmafx_saliency/models/u2netp_mirror_v1.sidecar.json --limit 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vmafx_saliency.science.evaluate import DatasetMetrics, pair_dataset
from vmafx_saliency.science.evaluate.dataset import load_pair
from vmafx_saliency.science.evaluate.protocols import (
    deployment_input,
    deployment_output,
    upstream_input,
    upstream_output,
)
from vmafx_saliency.video.job import ModelChoice, load_model

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "data" / "pascal-s"
INPUTS = {"RGB": upstream_input, "luma": deployment_input}
OUTPUTS = {"min-max": upstream_output, "raw": deployment_output}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    metrics = {(i, o): DatasetMetrics() for i in INPUTS for o in OUTPUTS}
    shift = []
    pairs = pair_dataset(args.dataset, limit=args.limit)
    for pair in pairs:
        loaded_pair = load_pair(pair)
        hw = loaded_pair.mask.shape
        raw_means = {}
        for input_name, to_input in INPUTS.items():
            tensor = to_input(loaded_pair.image, pre)
            (saliency,) = loaded.session.run(["saliency_map"], {"input": tensor})
            plane = saliency[0, 0]
            raw_means[input_name] = float(np.mean(plane, dtype=np.float64))
            for output_name, to_output in OUTPUTS.items():
                metrics[input_name, output_name].step(to_output(plane, hw), loaded_pair.mask)
        shift.append(raw_means["luma"] - raw_means["RGB"])
    print(f"{args.model_path.name} on the first {len(pairs)} pairs of {args.dataset.name}")
    print(f"{'input':6} {'map':8} {'max F (i)':>10} {'S-measure':>10}")
    for (input_name, output_name), accumulator in metrics.items():
        figures, _ = accumulator.get_results()
        print(
            f"{input_name:6} {output_name:8} {figures['max_f']:10.4f} {figures['s_measure']:10.4f}"
        )
    print(f"saliency_mean, luma minus RGB, mean over images: {np.mean(shift):+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
