"""Where the extractor's CPU goes per frame, measured inside the extractor itself.

``benchmarks/producer_cost.py`` times decoding and pre-processing alone; in
the extractor they share two cores (and their caches) with inference, and
every part costs more. This runs ``run_job`` on a clip and, with thread CPU
timers wrapped around ``extract._run`` (one inference), ``extract.preprocess``
and ``extract._reduce``, splits the process's CPU time per frame into
inference, pre-processing, the reduction to features, and the rest (decoding,
the hand-overs between threads, Python), over the frame loop only
(``extract.extract``: not the model's loading checks). Then it times the same
inference alone: two threads running a single-threaded session on
pre-computed tensors (the bare loop of ``extract_throughput.py``'s parallel
plan), and the extractor's reader alone (decoding, the luma plane copied
out): since every frame is decoded on the same cores, inference / (inference
+ decoding) is the most of the bare loop any split of the cores can keep.

    .venv/bin/python benchmarks/extract_cpu_split.py \\
        --model-path src/vmafx_saliency/models/saliency_student_v2.onnx

CPU times, not wall: the machine is shared, so compare figures within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency.supply.contract import make_session
from vmafx_saliency.video import extract
from vmafx_saliency.video.job import ModelChoice, Outputs, VideoInput, run_job

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bigbuckbunny_720p.mp4"
PARTS = ("inference", "pre-processing", "reduction")


@dataclass
class _Clock:
    """Thread CPU seconds per part, summed over every thread that ran it."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                with self.lock:
                    self.seconds[part] += spent

        return wrapper


@contextmanager
def _instrumented(clock: _Clock) -> Iterator[None]:
    names = {"inference": "_run", "pre-processing": "preprocess", "reduction": "_reduce"}
    saved = {part: getattr(extract, name) for part, name in names.items()}
    try:
        for part, name in names.items():
            setattr(extract, name, clock.timed(part, saved[part]))
        yield
    finally:
        for part, name in names.items():
            setattr(extract, name, saved[part])


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def split_once(clip: Path, model: Path, frames: int, threads: int) -> dict[str, float]:
    """ms of CPU per frame: each part, the rest, the total; and the frame loop's fps."""
    clock = _Clock()
    loop_cpu: list[float] = []
    frame_loop = extract.extract

    def measured(*args: Any, **kwargs: Any) -> extract.ExtractionResult:
        # The frame loop only: not the model's loading checks nor the writing.
        before = _process_cpu()
        try:
            return frame_loop(*args, **kwargs)
        finally:
            loop_cpu.append(_process_cpu() - before)

    with tempfile.TemporaryDirectory() as tmp, _instrumented(clock):
        extract.extract = measured
        try:
            job = run_job(
                VideoInput(path=clip, end=frames),
                ModelChoice(model_path=model),
                Outputs(output=Path(tmp) / "out.json"),
                threads=threads,
            )
        finally:
            extract.extract = frame_loop
    (total,) = loop_cpu
    n = len(job.records)
    ms = {part: 1e3 * clock.seconds[part] / n for part in PARTS}
    ms["rest"] = 1e3 * total / n - sum(ms.values())
    ms["total"] = 1e3 * total / n
    ms["fps"] = job.extraction.fps
    return ms


def bare_inference_ms(model: Path, threads: int, runs: int = 200) -> float:
    """Median thread CPU of one inference, ``threads`` single-threaded runs at once."""
    session = make_session(model.read_bytes(), source=str(model), threads=1)
    tensor = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)

    def one(_: int) -> float:
        start = time.thread_time()
        session.run(["saliency_map"], {"input": tensor})
        return time.thread_time() - start

    one(0)  # warm-up
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return 1e3 * statistics.median(pool.map(one, range(runs)))


def decoding_ms(clip: Path, frames: int, runs: int = 3) -> float:
    """Median process CPU a frame of the extractor's reader alone (decode, luma copied out)."""
    from vmafx_saliency.video.frames import open_video, select_frames

    each = []
    for _ in range(runs):
        before = _process_cpu()
        with open_video(clip) as source:
            n = sum(1 for _ in select_frames(source, end=frames))
        each.append(1e3 * (_process_cpu() - before) / n)
    return statistics.median(each)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-path",
        type=Path,
        default=ROOT / "src/vmafx_saliency/models/saliency_student_v2.onnx",
    )
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=extract.default_threads())
    args = parser.parse_args()
    if not args.clip.is_file():
        parser.exit(0, f"skipped: {args.clip} is not there (see ../shared/data/README.md)\n")
    splits = [
        split_once(args.clip, args.model_path, args.frames, args.threads) for _ in range(args.runs)
    ]
    print(f"{args.clip.name}, {args.frames} frames, {args.threads} threads, {args.runs} runs")
    print("ms of CPU per frame inside the extractor (median; every run):")
    for key in (*PARTS, "rest", "total"):
        values = [s[key] for s in splits]
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {key:15s} {statistics.median(values):6.2f}  ({shown})")
    fps = [s["fps"] for s in splits]
    print(f"  frame loop {statistics.median(fps):.1f} frames/s")
    alone = bare_inference_ms(args.model_path, args.threads)
    print(f"one inference alone (bare, {args.threads} at once): {alone:.2f} ms of CPU")
    decode = decoding_ms(args.clip, args.frames)
    print(f"decoding alone (the extractor's reader): {decode:.2f} ms of CPU a frame")
    # Every frame must be decoded on the same cores: no split of them beats this.
    print(
        f"ceiling of (extractor / bare loop) while decoding on the same cores: "
        f"{alone:.2f} / ({alone:.2f} + {decode:.2f}) = {alone / (alone + decode):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
