"""A model's agreement with the teacher on training's validation images, by inference size.

For each size S, every image of the held-out MSRA-B validation split (the
split ``train`` selects on) and of an optional extra folder runs through
``extract.preprocess`` at S x S with the model's sidecar (the extractor's
path), and the map, resized back to the teacher's 320 x 320
(``resize.resize_plane``), is compared with the cached teacher label: mean
max-F against the label binarised at 0.5 and MAE, the figures ``train``
records per epoch. At 320 they equal the training record's last validation.
This picks an inference size on training data, never on PASCAL-S.

    .venv/bin/python benchmarks/inference_size.py \\
        --model src/vmafx_saliency/models/saliency_student_v2.onnx \\
        --sizes 320,352,384,416,448 --extra-val runs/frames_val

Labels must already be cached (a ``vmafx-saliency train`` run fills the cache).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vmafx_saliency._util import sha256_file
from vmafx_saliency.science.train import (
    IMAGE_SUFFIXES,
    LABEL_SIZE,
    TrainConfig,
    bt601_luma,
    collect_samples,
    default_images,
    load_rgb,
    max_f_measure,
    png_to_label,
    shipped_label_cache,
    split_samples,
)
from vmafx_saliency.supply.registry import Sidecar, sidecar_beside
from vmafx_saliency.video.extract import preprocess
from vmafx_saliency.video.resize import resize_plane

ROOT = Path(__file__).resolve().parents[1]


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> int:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx",
    )
    parser.add_argument("--sizes", type=_sizes, default=[320, 352, 384])
    parser.add_argument("--extra-val", type=Path, help="a folder of further held-out images")
    args = parser.parse_args()
    sidecar_path = sidecar_beside(args.model)
    if sidecar_path is None:
        print(f"{args.model}: no sidecar beside it")
        return 1
    pre = Sidecar.load(sidecar_path).preprocessing
    cache = shipped_label_cache()
    _, val = split_samples(
        collect_samples([default_images()]), val_fraction=TrainConfig().val_fraction, seed=0
    )
    sets = {"val": [s.path for s in val]}
    if args.extra_val is not None:
        sets["extra-val"] = sorted(
            p for p in args.extra_val.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        args.model.read_bytes(), options, providers=["CPUExecutionProvider"]
    )
    pairs = {}
    for name, paths in sets.items():
        labelled = [(p, cache / f"{sha256_file(p)}.png") for p in paths]
        missing = [p for p, label in labelled if not label.is_file()]
        if missing:
            print(f"{missing[0]}: no cached teacher label in {cache}; run `vmafx-saliency train`")
            return 1
        pairs[name] = [(bt601_luma(load_rgb(p)), png_to_label(label)) for p, label in labelled]
    print(
        f"{args.model} vs the teacher's labels; "
        + ", ".join(f"{k} {len(v)}" for k, v in pairs.items())
    )
    for size in args.sizes:
        figures = []
        for name, items in pairs.items():
            fs, maes = [], []
            for luma, label in items:
                x = preprocess(luma, bit_depth=8, color_range="full", pre=pre, size=(size, size))
                pred = session.run(["saliency_map"], {"input": x})[0][0, 0]
                if pred.shape != LABEL_SIZE:
                    pred = resize_plane(pred, LABEL_SIZE)
                fs.append(max_f_measure(pred, label > 0.5))
                maes.append(float(np.abs(pred - label).mean()))
            figures.append(f"{name} max-F {np.mean(fs):.4f} MAE {np.mean(maes):.4f}")
        print(f"  {size}x{size}: " + "; ".join(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
