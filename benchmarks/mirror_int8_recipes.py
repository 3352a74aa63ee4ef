"""INT8 recipes for the u2netp mirror, each measured against the fp32 mirror in one run.

For each recipe named on the command line (all when none): calibrate on the
first N MSRA-B images, quantise (QDQ, ``supply.quantize``), then measure with
the quantize command's own budget code (``science.quantize.measure``) on the
first 100 PASCAL-S pairs and 60 frames of foreman, and time a bare loop of
both models on six pre-processed images, alternating, medians of three.
Prints one JSON line per recipe. Needs the exported mirror (``make demo``).

    .venv/bin/python benchmarks/mirror_int8_recipes.py "A minmax, 32 images"

Entropy and percentile calibration hold every activation's histogram: with 64
images on the mirror they need more than this machine's 23 GiB (MemTotal in
/proc/meminfo: 24,683,772 kB). The sessions
are the product's (``contract.make_session``), which keep ONNX Runtime from
re-quantising the nodes a recipe leaves in float.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from vmafx_saliency.science import quantize as q
from vmafx_saliency.science.evaluate.dataset import Pair, load_pair
from vmafx_saliency.science.evaluate.protocols import deployment_input
from vmafx_saliency.supply import contract, scan
from vmafx_saliency.supply.quantize import QuantRecipe, quantize_qdq
from vmafx_saliency.supply.registry import Sidecar, packaged_models

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MIRROR = ROOT / "models" / "u2netp_mirror_v1.onnx"
# Where every recipe is measured: the first 100 PASCAL-S pairs and 60 frames of foreman.
CHECK = q.BudgetCheck(
    dataset=DATA / "pascal-s",
    clips=(DATA / "videos" / "foreman_cif.mp4",),
    limit=100,
    video_frames=60,
    threads=2,
)
FIRST, LAST = "/net/stage1/rebnconvin/conv_s1/Conv", "/net/outconv/Conv"


def recipes(sides: tuple[str, ...]) -> dict[str, tuple[QuantRecipe, int]]:
    return {
        "A minmax, 32 images": (QuantRecipe(), 32),
        "B entropy, 64 images": (QuantRecipe(method="entropy"), 64),
        "B8 entropy, 8 images": (QuantRecipe(method="entropy"), 8),
        "C percentile 99.99, 64 images": (QuantRecipe(method="percentile", percentile=99.99), 64),
        "C8 percentile 99.99, 8 images": (QuantRecipe(method="percentile", percentile=99.99), 8),
        "D minmax, 64 images, first/side/last convs float": (
            QuantRecipe(keep_float=(FIRST, LAST, *sides)),
            64,
        ),
        # The layers benchmarks/mirror_int8_sensitivity.py finds, worst first.
        "E1 minmax, 32 images, 1 layer float": (QuantRecipe(keep_float=_layers(1)), 32),
        "E2 minmax, 32 images, 2 layers float": (QuantRecipe(keep_float=_layers(2)), 32),
        "E4 minmax, 32 images, 4 layers float": (QuantRecipe(keep_float=_layers(4)), 32),
        "E1 minmax, 64 images, 1 layer float": (QuantRecipe(keep_float=_layers(1)), 64),
        "F1 percentile 99.99, 8 images, 1 layer float": (_percentile(99.99, 1), 8),
        "F1 percentile 99.99, 16 images, 1 layer float": (_percentile(99.99, 1), 16),
        "F1 percentile 99.999, 16 images, 1 layer float": (_percentile(99.999, 1), 16),
    }


# Where INT8 loses most, in the order mirror_int8_sensitivity.py found them: each
# a convolution and its Relu (the first alone lost 51.7 dB of SQNR).
WORST = (
    "/net/stage2d/rebnconv1d/",
    "/net/stage1d/rebnconv1d/",
    "/net/stage1/rebnconvin/",
    "/net/stage1/rebnconv2d/",
)


def _layers(count: int) -> tuple[str, ...]:
    return tuple(
        f"{layer}{node}" for layer in WORST[:count] for node in ("conv_s1/Conv", "relu_s1/Relu")
    )


def _percentile(percentile: float, layers: int) -> QuantRecipe:
    return QuantRecipe(method="percentile", percentile=percentile, keep_float=_layers(layers))


def bare_fps(session: Any, images: list[np.ndarray]) -> float:
    """Frames/s of one pass of ``session.run`` over the images, after a warm-up run."""
    run = session.run
    run(None, {"input": images[0]})
    start = time.perf_counter()
    for tensor in images:
        run(None, {"input": tensor})
    return len(images) / (time.perf_counter() - start)


def measure_recipe(
    fp32: Any, data: bytes, pre: Any, check: q.BudgetCheck, images: list[np.ndarray]
) -> dict[str, Any]:
    """An INT8 model's verdict: scan, the budget's figures, and its speed against fp32
    on ``images`` (the two alternating, medians of three rounds)."""
    int8 = contract.make_session(data, source="int8", threads=2)
    report = q.measure(fp32, int8, pre, check)
    rounds = [(bare_fps(fp32, images), bare_fps(int8, images)) for _ in range(3)]
    a, b = (statistics.median(r[i] for r in rounds) for i in (0, 1))
    return {
        "scan_ok": scan.scan_bytes(data).allowed,
        "figures": list(q.figures_table(report)),
        "problems": report.problems(),
        "fp32_fps": round(a, 2),
        "int8_fps": round(b, 2),
        "speedup": round(b / a, 2),
    }


def main(argv: list[str]) -> int:
    known = list(recipes(()))  # the keys do not depend on the mirror's side layers
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "recipe", nargs="*", choices=known, metavar="RECIPE", help="one of: " + "; ".join(known)
    )
    chosen = parser.parse_args(argv).recipe or known
    if not MIRROR.is_file():
        print(f"{MIRROR} is absent: run 'make demo' (or vmafx-saliency export) first")
        return 0
    parent = MIRROR.read_bytes()
    pre = Sidecar.load(packaged_models() / "u2netp_mirror_v1.sidecar.json").preprocessing
    names = [n.name for n in onnx.load(str(MIRROR)).graph.node]
    sides = tuple(n for n in names if "/side" in n and n.endswith("Conv"))
    table = recipes(sides)
    check = CHECK
    fp32 = contract.make_session(parent, source="fp32", threads=2)
    for key in chosen:
        recipe, count = table[key]
        started = time.time()
        cal = q.CalibrationSet.from_folder(
            DATA / "msra-b" / "images", count=count, exclude=DATA / "pascal-s"
        )
        data = quantize_qdq(parent, q.calibration_tensors(cal, pre), recipe=recipe)
        images = [deployment_input(load_pair(Pair(p.stem, p, p)).image, pre) for p in cal.files[:6]]
        line = {"recipe": key, **measure_recipe(fp32, data, pre, check, images)}
        line["seconds"] = round(time.time() - started)
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
