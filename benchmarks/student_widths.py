"""Inference speed of candidate student widths against the mirror, before training one.

Builds ``StudentUNet`` at each ``--widths`` (seeded random weights: speed does
not depend on them), exports it as the student is exported (opset 17, dynamic
H and W), and times ONNX Runtime the way the extractor runs a small model:
N frames at once on single-threaded sessions, over the same random 320x320
inputs. The mirror is timed the same way in the same run, so the ratios
answer "how much slower per frame may the student get and stay N x the
mirror" on this machine.

    .venv/bin/python benchmarks/student_widths.py \
        --widths 8,24,32,32,40,40 --widths 16,32,32,32,40,40 --stem-convs 1

``--stem-convs`` (default: the architecture's, 3 since attempt 30) is the
stem of every candidate; the widths were chosen with 1.

Times are wall-clock on a shared machine: compare within one run only.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency.supply.contract import make_session
from vmafx_saliency.video.extract import default_threads

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT / "models" / "u2netp_mirror_v1.onnx"


def frames_per_second(session: Any, inputs: list[np.ndarray], jobs: int, repeats: int) -> float:
    session.run(None, {"input": inputs[0]})  # warm-up
    work = [x for _ in range(repeats) for x in inputs]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(lambda x: session.run(None, {"input": x}), work):
            pass
    return len(work) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--widths", action="append", required=True, help="stem and stage widths, e.g. 8,24,32"
    )
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument(
        "--stem-convs", type=int, default=None, help="3x3 convolutions in the stem (default: 3)"
    )
    args = parser.parse_args()
    import torch

    from vmafx_saliency.nets.student import (
        DEFAULT_STEM_CONVS,
        StudentUNet,
        count_macs,
        count_params,
    )
    from vmafx_saliency.supply.export import export_onnx_bytes

    stem_convs = DEFAULT_STEM_CONVS if args.stem_convs is None else args.stem_convs

    rng = np.random.default_rng(0)
    inputs = [rng.random((1, 3, 320, 320), dtype=np.float32) for _ in range(8)]
    mirror = None
    if MIRROR.is_file():
        session = make_session(MIRROR.read_bytes(), source=str(MIRROR), threads=1)
        mirror = frames_per_second(session, inputs, args.threads, 1)
        print(f"mirror {MIRROR.name}: {mirror:.2f} frames/s ({args.threads} frames at once)")
    else:
        print(f"{MIRROR} is absent (make demo exports it): no ratios")
    for text in args.widths:
        widths = tuple(int(w) for w in text.split(","))
        torch.manual_seed(0)
        net = StudentUNet(widths, stem_convs=stem_convs).eval()
        data = export_onnx_bytes(net, opset=17)
        session = make_session(data, source=text, threads=1)
        fps = frames_per_second(session, inputs, args.threads, args.repeats)
        ratio = f", {fps / mirror:.0f}x the mirror" if mirror else ""
        print(
            f"widths {text}, {stem_convs} stem convolutions: {count_params(net):,} parameters, "
            f"{count_macs(net) / 1e9:.3f} GMAC, "
            f"{fps:.1f} frames/s{ratio}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
