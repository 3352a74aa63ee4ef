"""Cost of subnormal float32 weights in ONNX Runtime: a student ONNX as given against flushed.

`train.flush_subnormal_weights` sets weights below 1.2e-38 (left by folding
BatchNorms with tiny gammas) to zero at export. This counts them in a model,
times one-thread inference of the file as given and of a flushed copy in
alternating rounds (a load on the shared machine hits both alike), and gives
the largest difference between the two maps on real frames.

    .venv/bin/python benchmarks/subnormal_weights.py \\
        --model src/vmafx_saliency/models/saliency_student_v2.onnx

Times are wall-clock on a shared machine: compare within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from vmafx_saliency.science import train
from vmafx_saliency.supply.contract import make_session

ROOT = Path(__file__).resolve().parents[1]


def _ms_per_frame(session: Any, x: np.ndarray, frames: int) -> float:
    start = time.perf_counter()
    for _ in range(frames):
        session.run(None, {"input": x})
    return (time.perf_counter() - start) / frames * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx",
    )
    parser.add_argument("--frames", type=int, default=20, help="frames per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    given = args.model.read_bytes()
    model = onnx.load_from_string(given)
    count = train.flush_subnormal_weights(model)
    flushed = model.SerializeToString(deterministic=True)
    print(f"{args.model}: {count} subnormal weights", flush=True)
    sessions = {
        name: make_session(data, source=f"{args.model} ({name})", threads=1)
        for name, data in (("as given", given), ("flushed", flushed))
    }
    inputs = [p.array for p in train.parity_inputs()]
    diff = max(
        float(
            np.abs(
                sessions["as given"].run(None, {"input": x})[0]
                - sessions["flushed"].run(None, {"input": x})[0]
            ).max()
        )
        for x in inputs
    )
    x = inputs[0]
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.rounds):
        for name, session in sessions.items():
            _ms_per_frame(session, x, 3)  # warm
            times[name].append(_ms_per_frame(session, x, args.frames))
    given_ms, flushed_ms = (statistics.median(times[name]) for name in sessions)
    print(
        f"one thread, {x.shape[2]}x{x.shape[3]}: as given {given_ms:.2f} ms/frame, "
        f"flushed {flushed_ms:.2f} ms/frame ({given_ms / flushed_ms:.2f}x); "
        f"max |map difference| on {len(inputs)} real inputs {diff:.2e}",
        flush=True,
    )


if __name__ == "__main__":
    main()
