"""Mixed precision for the u2netp mirror: keep in float the tensors INT8 hurts most.

Issue 38's recipe list names "mixed precision found by measuring each
layer's error". This quantises the mirror with the naive recipe (MinMax on
the first 32 MSRA-B images, QDQ, ``supply.quantize``), then measures each
activation's own quantisation error with ONNX Runtime's ``qdq_loss_debug``
(``qdq_err``: the signal-to-quantisation-noise ratio, in dB, of the tensor
before and after its QuantizeLinear/DequantizeLinear pair, on ``--probe``
calibration images). The tensors with the lowest ratio are kept in float,
with every node that writes or reads them (``QuantRecipe.keep_float``), for
each count in ``--keep``; each such model is measured as
``mirror_int8_recipes.py`` measures a recipe (the quantize command's budget
code, the first 100 PASCAL-S pairs, 60 frames of foreman, and a bare loop
against fp32 on six images, alternating, medians of three). One JSON line a
count. Needs the exported mirror (``make demo``).

    .venv/bin/python benchmarks/mirror_int8_sensitivity.py --keep 8 16 32 64
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

from vmafx_saliency.science import quantize as q
from vmafx_saliency.supply import contract, scan
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


def tensor_errors(parent: bytes, int8: bytes, probe: list[np.ndarray]) -> dict[str, float]:
    """Each quantised activation's own SQNR in dB (lower: INT8 loses more of it)."""
    from onnxruntime.quantization import qdq_loss_debug as dbg

    with tempfile.TemporaryDirectory(prefix="vmafx-sensitivity-") as tmp:
        paths = {}
        for name, data in (("float", parent), ("qdq", int8)):
            plain, augmented = Path(tmp) / f"{name}.onnx", Path(tmp) / f"{name}.aug.onnx"
            plain.write_bytes(data)
            dbg.modify_model_output_intermediate_tensors(str(plain), str(augmented))
            paths[name] = augmented
        float_acts = dbg.collect_activations(str(paths["float"]), _reader(probe))
        qdq_acts = dbg.collect_activations(str(paths["qdq"]), _reader(probe))
    matching = dbg.create_activation_matching(qdq_acts, float_acts)
    errors = dbg.compute_activation_error(matching)
    return {name: float(e["qdq_err"]) for name, e in errors.items() if "qdq_err" in e}


def nodes_touching(model: Any, tensors: list[str]) -> tuple[str, ...]:
    """The names of the nodes that write or read any of ``tensors``."""
    wanted = set(tensors)
    return tuple(
        node.name
        for node in model.graph.node
        if wanted.intersection(node.output) or wanted.intersection(node.input)
    )


def bare_fps(session: Any, images: list[np.ndarray]) -> float:
    run = session.run
    run(None, {"input": images[0]})
    start = time.perf_counter()
    for tensor in images:
        run(None, {"input": tensor})
    return len(images) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=int, nargs="+", default=[8, 16, 32, 64])
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
    naive = quantize_qdq(parent, tensors, recipe=QuantRecipe())
    errors = tensor_errors(parent, naive, tensors[: args.probe])
    ranked = sorted(errors, key=errors.__getitem__)
    print(json.dumps({"worst_tensors_db": {t: round(errors[t], 2) for t in ranked[:16]}}))
    check = q.BudgetCheck(
        dataset=DATA / "pascal-s",
        clips=(DATA / "videos" / "foreman_cif.mp4",),
        limit=100,
        video_frames=60,
        threads=2,
    )
    fp32 = contract.make_session(parent, source="fp32", threads=2)
    images = tensors[:6]
    for keep in args.keep:
        started = time.time()
        nodes = nodes_touching(model, ranked[:keep])
        data = quantize_qdq(parent, tensors, recipe=QuantRecipe(keep_float=nodes))
        int8 = contract.make_session(data, source="int8", threads=2)
        report = q.measure(fp32, int8, pre, check)
        rounds = [(bare_fps(fp32, images), bare_fps(int8, images)) for _ in range(3)]
        a, b = (float(np.median([r[i] for r in rounds])) for i in (0, 1))
        print(
            json.dumps(
                {
                    "keep_tensors": keep,
                    "float_nodes": len(nodes),
                    "of_nodes": len(model.graph.node),
                    "db_threshold": round(errors[ranked[keep - 1]], 2),
                    "scan_ok": scan.scan_bytes(data).allowed,
                    "figures": list(q.figures_table(report)),
                    "problems": report.problems(),
                    "fp32_fps": round(a, 2),
                    "int8_fps": round(b, 2),
                    "speedup": round(b / a, 2),
                    "seconds": round(time.time() - started),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
