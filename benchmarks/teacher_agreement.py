"""How well a model on the deployment input (luma tiled to RGB) reproduces cached
teacher labels, folder by folder.

For each folder, a seeded sample of its images: the model runs on the image's
BT.601 luma through ``extract.preprocess`` with the model's sidecar, and its
map is compared with the teacher's cached label (``train``'s label cache):
mean F-measure (beta^2 = 0.3) with both maps binarised at 0.5, and MAE. With
the mirror itself as the model and the RGB labels, this measures how much of
the RGB teacher's output luma alone can reach; with the student, how well it
fits each kind of image.

    .venv/bin/python benchmarks/teacher_agreement.py \\
        --model src/vmafx_saliency/models/saliency_student_v2.onnx \\
        runs/views/clutter ../shared/data/msra-b/images
    .venv/bin/python benchmarks/teacher_agreement.py --model models/u2netp_mirror_v1.onnx \\
        --labels rgb runs/views/clutter

Labels must already be cached (a ``vmafx-saliency train`` run fills the cache).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from vmafx_saliency._util import sha256_file
from vmafx_saliency.science.train import (
    IMAGE_SUFFIXES,
    LABEL_SIZE,
    TEACHER_INPUTS,
    bt601_luma,
    load_rgb,
    png_to_label,
    shipped_label_cache,
)
from vmafx_saliency.supply.registry import Sidecar, sidecar_beside
from vmafx_saliency.video.extract import preprocess

ROOT = Path(__file__).resolve().parents[1]


def f_at_half(pred: np.ndarray, label: np.ndarray) -> float:
    """F-measure (beta^2 = 0.3, the salient-object convention) of pred >= 0.5 vs label >= 0.5."""
    p, g = pred >= 0.5, label >= 0.5
    tp = float((p & g).sum())
    if tp == 0.0:
        return 0.0
    precision, recall = tp / float(p.sum()), tp / float(g.sum())
    return 1.3 * precision * recall / (0.3 * precision + recall)


def main() -> int:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument(
        "--model",
        type=Path,
        default=ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx",
    )
    parser.add_argument("--labels", choices=TEACHER_INPUTS, default="rgb")
    parser.add_argument("--per-folder", type=int, default=150, help="images sampled per folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sidecar_path = sidecar_beside(args.model)
    if sidecar_path is None:
        print(f"{args.model}: no sidecar beside it")
        return 1
    pre = Sidecar.load(sidecar_path).preprocessing
    cache = shipped_label_cache(args.labels)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        args.model.read_bytes(), options, providers=["CPUExecutionProvider"]
    )
    print(f"{args.model.name} vs the teacher's {args.labels} labels ({cache})")
    for folder in args.folders:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        random.Random(args.seed).shuffle(files)
        scores: list[float] = []
        errors: list[float] = []
        for path in files:
            if len(scores) == args.per_folder:
                break
            label_path = cache / f"{sha256_file(path)}.png"
            if not label_path.is_file():
                continue
            x = preprocess(
                bt601_luma(load_rgb(path)),
                bit_depth=8,
                color_range="full",
                pre=pre,
                size=LABEL_SIZE,
            )
            pred = session.run(["saliency_map"], {"input": x})[0][0, 0]
            label = png_to_label(label_path)
            scores.append(f_at_half(pred, label))
            errors.append(float(np.abs(pred - label).mean()))
        if not scores:
            print(f"  {folder}: no cached labels")
            continue
        f_mean, mae = float(np.mean(scores)), float(np.mean(errors))
        print(f"  {folder}: {len(scores)} images, F@0.5 {f_mean:.4f}, MAE {mae:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
