"""Mixed precision for the u2netp mirror: keep in float the layers where INT8 breaks it.

Issue 38's recipe list names "mixed precision found by measuring each
layer's error". Each step quantises the mirror (MinMax on the first 32
MSRA-B images, QDQ, ``supply.quantize``, the layers kept so far in float),
runs the float and the INT8 model on ``--probe`` calibration images with
every activation as an output (ONNX Runtime's ``qdq_loss_debug``), and takes
each activation's signal-to-quantisation-noise ratio against the float
model's (``xmodel_err``, in dB). The layer whose output ratio falls furthest
below its inputs' worst is where INT8 loses the most; it is kept in float
(a convolution with the Relu after it) for the next step. Each step's model
is measured as ``mirror_int8_recipes.py`` measures a recipe (``measure_recipe``: the quantize
command's budget code, the first 100 PASCAL-S pairs, 60 frames of foreman,
and a bare loop against fp32 on six images, alternating, medians of three).
One JSON line a step. Needs the exported mirror (``make demo``).

    .venv/bin/python benchmarks/mirror_int8_sensitivity.py --steps 4

The local error of a tensor (``qdq_err``, before and after its own Q/DQ pair)
is no guide here: the quantiser drops each Relu and lets the uint8
QuantizeLinear clip the negatives, so every Relu output shows a ratio near
0 dB that is no loss at all.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from mirror_int8_recipes import CHECK, measure_recipe

from vmafx_saliency.science import quantize as q
from vmafx_saliency.supply import contract
from vmafx_saliency.supply.quantize import QuantRecipe, quantize_qdq
from vmafx_saliency.supply.registry import Sidecar, packaged_models

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MIRROR = ROOT / "models" / "u2netp_mirror_v1.onnx"
CALIBRATION_IMAGES = 32


def _reader(tensors: list[np.ndarray]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(tensors)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._it, None)
            return None if tensor is None else {"input": tensor}

    return Reader()


def activations(data: bytes, probe: list[np.ndarray], tmp: Path, name: str) -> Any:
    """Every activation of the model on the probe inputs (``collect_activations``)."""
    from onnxruntime.quantization import qdq_loss_debug as dbg

    plain, augmented = tmp / f"{name}.onnx", tmp / f"{name}.aug.onnx"
    plain.write_bytes(data)
    dbg.modify_model_output_intermediate_tensors(str(plain), str(augmented))
    return dbg.collect_activations(str(augmented), _reader(probe))


def worst_layer(
    model: Any, float_acts: Any, int8_acts: Any, kept: list[str]
) -> tuple[float, str, list[str], float]:
    """(dB lost, output tensor, nodes to keep in float, output ratio of saliency_map)."""
    from onnxruntime.quantization import qdq_loss_debug as dbg

    errors = dbg.compute_activation_error(dbg.create_activation_matching(int8_acts, float_acts))
    sqnr = {t: float(e["xmodel_err"]) for t, e in errors.items() if "xmodel_err" in e}
    producer = {out: node for node in model.graph.node for out in node.output}
    worst: tuple[float, str, list[str]] | None = None
    for node in model.graph.node:
        for out in (o for o in node.output if o in sqnr):
            layer = [node]
            if node.op_type == "Relu" and node.input[0] in producer:
                layer = [producer[node.input[0]], node]  # a Conv's Relu: judge the pair
            inputs = [sqnr[i] for i in layer[0].input if i in sqnr]
            if not inputs or layer[0].name in kept:
                continue
            lost = min(inputs) - sqnr[out]
            if worst is None or lost > worst[0]:
                worst = (lost, out, [n.name for n in layer])
    assert worst is not None, "no activation was matched"
    return (*worst, sqnr.get("saliency_map", float("nan")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="layers to keep in float, one a step")
    parser.add_argument("--probe", type=int, default=2, help="images for the SQNR measurement")
    args = parser.parse_args()
    if not MIRROR.is_file() or not (DATA / "pascal-s").is_dir():
        print(f"skipped: {MIRROR} (make demo) or {DATA / 'pascal-s'} is absent")
        return 0
    parent = MIRROR.read_bytes()
    model = onnx.load_from_string(parent)
    pre = Sidecar.load(packaged_models() / "u2netp_mirror_v1.sidecar.json").preprocessing
    cal = q.CalibrationSet.from_folder(
        DATA / "msra-b" / "images", count=CALIBRATION_IMAGES, exclude=DATA / "pascal-s"
    )
    tensors = list(q.calibration_tensors(cal, pre))
    fp32 = contract.make_session(parent, source="fp32", threads=2)
    kept: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vmafx-sensitivity-") as tmp:
        float_acts = activations(parent, tensors[: args.probe], Path(tmp), "float")
        for step in range(args.steps + 1):
            started = time.time()
            data = quantize_qdq(parent, tensors, recipe=QuantRecipe(keep_float=tuple(kept)))
            int8_acts = activations(data, tensors[: args.probe], Path(tmp), "int8")
            lost, where, layer, out_db = worst_layer(model, float_acts, int8_acts, kept)
            line = {
                "step": step,
                "float_nodes": list(kept),
                "saliency_map_sqnr_db": round(out_db, 2),
                "next_worst": {"tensor": where, "lost_db": round(lost, 2)},
                **measure_recipe(fp32, data, pre, CHECK, tensors[:6]),
                "seconds": round(time.time() - started),
            }
            print(json.dumps(line), flush=True)
            kept.extend(layer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
