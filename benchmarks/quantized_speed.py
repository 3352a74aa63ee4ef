"""A float model against its INT8 model, in one run: bare loop and extractor frames/s.

Rounds alternate between the two models so that machine noise hits both
alike; the medians and their ratio (int8 / fp32) are printed with the CPU.
The bare loop is ``session.run`` on pre-processed real frames (the best of
the sequential and parallel plans of ``extract_throughput.py``); the
extractor is ``run_job`` (decode, pre-process, infer, reduce, write JSON).

    .venv/bin/python benchmarks/quantized_speed.py \\
        --fp32 src/vmafx_saliency/models/saliency_student_v2.onnx \\
        --int8 src/vmafx_saliency/models/saliency_student_v2_int8.onnx
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from extract_throughput import VIDEOS, _tensors, bare_fps, default_session, extractor_fps
from scan_worst_case import _cpu

from vmafx_saliency.supply.registry import Sidecar, sidecar_beside
from vmafx_saliency.video.extract import default_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fp32", type=Path, required=True)
    parser.add_argument("--int8", type=Path, required=True)
    parser.add_argument("--clip", default="foreman_cif.mp4", help="a clip in ../shared/data/videos")
    parser.add_argument("--frames", type=int, default=120, help="frames of the extractor run")
    parser.add_argument("--bare-frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    threads = default_threads()
    clip = VIDEOS / args.clip
    models = {"fp32": args.fp32, "int8": args.int8}
    sidecar = sidecar_beside(args.fp32)
    if sidecar is None:
        raise SystemExit(f"{args.fp32}: no sidecar beside it")
    tensors = _tensors(clip, Sidecar.load(sidecar).preprocessing, args.bare_frames)
    sessions = {name: default_session(path, threads) for name, path in models.items()}
    bare: dict[str, list[float]] = {name: [] for name in models}
    extractor: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, path in models.items():
            best = max(
                bare_fps(sessions[name], tensors, args.repeats),
                bare_fps(sessions[name], tensors, args.repeats, jobs=threads),
            )
            bare[name].append(best)
            extractor[name].append(extractor_fps(clip, path, args.frames, threads)[1])
    print(f"{clip.name}, {threads} threads, {args.rounds} rounds; {_cpu()}")
    for label, figures in (("bare loop", bare), ("extractor", extractor)):
        fp32, int8 = (statistics.median(figures[n]) for n in ("fp32", "int8"))
        pairs = zip(figures["fp32"], figures["int8"], strict=True)
        rounds = " ".join(f"{a:.1f}/{b:.1f}" for a, b in pairs)
        print(
            f"{label:>10}: fp32 {fp32:7.1f} frames/s, int8 {int8:7.1f} frames/s, "
            f"int8/fp32 {int8 / fp32:.2f}  (rounds fp32/int8: {rounds})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
