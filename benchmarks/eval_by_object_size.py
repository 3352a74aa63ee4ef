"""Per-image eval figures of each model, grouped by the size of the salient object.

Reads the ``per_image.csv`` of a ``vmafx-saliency eval`` report and the masks
of the dataset it ran on, bins the images by the fraction of mask pixels over
the eval's ground-truth threshold, and prints, per bin and model, the mean
per-image S-measure, MAE and mean saliency (beside the bin's mean salient
fraction). A model that fires on background where the object is small shows
a mean saliency well over the salient fraction in the small bins.

    .venv/bin/vmafx-saliency eval --dataset ../shared/data/pascal-s \\
        --models src/vmafx_saliency/models/saliency_student_v2.onnx,models/u2netp_mirror_v1.onnx \\
        --protocol deployment --jobs 2 --report runs/ev
    .venv/bin/python benchmarks/eval_by_object_size.py runs/ev ../shared/data/pascal-s
"""

from __future__ import annotations

import argparse
import csv
import itertools
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from vmafx_saliency.science.evaluate import GT_THRESHOLD, pair_dataset

EDGES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def salient_fraction(mask: Path, threshold: int) -> float:
    with Image.open(mask) as img:
        return float((np.asarray(img.convert("L")) > threshold).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="an eval report folder (holds per_image.csv)")
    parser.add_argument("dataset", type=Path, help="the dataset it ran on (holds masks/)")
    parser.add_argument(
        "--gt-threshold", type=int, default=GT_THRESHOLD, help=f"as eval's (default {GT_THRESHOLD})"
    )
    args = parser.parse_args()

    with (args.report / "per_image.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    # eval's own pairing: a mask is found by stem whatever its suffix
    masks = {pair.stem: pair.mask for pair in pair_dataset(args.dataset)}
    fractions = {
        stem: salient_fraction(masks[stem], args.gt_threshold)
        for stem in sorted({row["stem"] for row in rows})
    }
    by_model: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_model[row["model"]].append(row)

    header = f"{'salient fraction':>18} {'images':>6} {'mean':>6}"
    print(f"{header}  model: S-measure / MAE / mean saliency")
    for lo, hi in itertools.pairwise(EDGES):
        last = hi == EDGES[-1]
        stems = {s for s, f in fractions.items() if lo <= f < hi or (last and f == hi)}
        mean = float(np.mean([fractions[s] for s in stems])) if stems else float("nan")
        cells = []
        for model, model_rows in by_model.items():
            picked = [r for r in model_rows if r["stem"] in stems]
            s = np.mean([float(r["s_measure"]) for r in picked])
            mae = np.mean([float(r["mae"]) for r in picked])
            sal = np.mean([float(r["mean_saliency"]) for r in picked])
            cells.append(f"{model}: {s:.3f} / {mae:.3f} / {sal:.3f}")
        print(f"{lo:>8.2f} - {hi:<7.2f} {len(stems):>6} {mean:>6.3f}  " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
