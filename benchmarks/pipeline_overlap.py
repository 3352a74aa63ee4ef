"""Where the extractor's time goes: inference alone, then with each producer stage added.

On one clip, one model and N threads, in one process, each stage measured as
frames/s, process CPU time per frame and core utilisation (CPU time / wall
time / N):

1. ``bare``: N frames at once on pre-processed tensors (the benchmark's
   bare loop, ``extract_throughput.py``'s ``parallel``);
2. ``inferred``: the same tensors through ``extract.inferred`` (the
   extractor's inference loop and hand-over, without the reduction);
3. ``+ preprocess``: decoded frames pre-processed in the worker thread
   (``extract.pipelined``) feeding ``inferred``: decoding excluded;
4. ``+ decode``: the whole ``extract.extract`` on the open video;
5. ``producer alone``: pre-processing of the decoded frames, single-threaded.

When every stage runs at full utilisation, the frames/s of (4) over (1) is
about inference CPU / (inference + decoding + pre-processing CPU): the bound
on the extractor's share of the bare loop on a machine whose cores are all
busy with inference. CPU per frame in (3) and (4) above the sum of the
parts is what the threads cost each other (caches, switches).

    .venv/bin/python benchmarks/pipeline_overlap.py
    .venv/bin/python benchmarks/pipeline_overlap.py --clip ../shared/data/videos/foreman_cif.mp4

Times are wall-clock on a shared machine: compare within one run only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vmafx_saliency.video import extract
from vmafx_saliency.video.extract import default_threads, preprocess
from vmafx_saliency.video.frames import Frame, open_video, select_frames
from vmafx_saliency.video.job import ModelChoice, load_for_video

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bigbuckbunny_720p.mp4"
STUDENT = ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--model-path", type=Path, default=STUDENT)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--repeats", type=int, default=2, help="passes; each is printed")
    args = parser.parse_args()
    if not args.clip.is_file() or not args.model_path.is_file():
        print(f"skipped: {args.clip} or {args.model_path} not found")
        return 0
    choice = ModelChoice(model_path=args.model_path)
    loaded, pre, plan = load_for_video(choice, threads=args.threads)
    with open_video(args.clip) as source:
        frames = list(select_frames(source, end=args.frames))
        color_range = source.info.color_range
    size = pre.inference_size or (frames[0].luma.shape[0], frames[0].luma.shape[1])

    def prep(frame: Frame) -> tuple[int, np.ndarray]:
        tensor = preprocess(
            frame.luma, bit_depth=frame.bit_depth, color_range=color_range, pre=pre, size=size
        )
        return frame.index, tensor

    tensors = [prep(f) for f in frames]
    session = loaded.session

    def bare() -> int:
        with ThreadPoolExecutor(max_workers=plan.frames) as pool:
            for _ in pool.map(lambda t: session.run(["saliency_map"], {"input": t[1]}), tensors):
                pass
        return len(tensors)

    def inferred() -> int:
        return sum(1 for _ in extract.inferred(session, iter(tensors), jobs=plan.frames))

    def with_preprocess() -> int:
        stream = extract.pipelined(frames, prep)
        return sum(1 for _ in extract.inferred(session, stream, jobs=plan.frames))

    def with_decode() -> int:
        with open_video(args.clip) as src:
            result = extract.extract(
                select_frames(src, end=args.frames),
                loaded,
                pre=pre,
                color_range=src.info.color_range,
                jobs=plan.frames,
            )
        return len(result.features)

    def producer() -> int:
        for frame in frames:
            prep(frame)
        return len(frames)

    stages: tuple[tuple[str, Callable[[], int]], ...] = (
        ("bare", bare),
        ("inferred", inferred),
        ("+ preprocess (no decode)", with_preprocess),
        ("+ decode (extract)", with_decode),
        ("producer alone", producer),
    )
    print(
        f"{args.clip.name}, {args.model_path.name}, {args.threads} threads "
        f"({plan.frames} frame(s) at once, {plan.threads_per_frame} thread(s) each)"
    )
    for rep in range(args.repeats):
        base = 0.0
        for name, run in stages:
            wall, cpu = time.perf_counter(), time.process_time()
            n = run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            fps = n / wall
            base = base or fps
            print(
                f"  pass {rep + 1}  {name:<26} {fps:7.1f} frames/s ({fps / base:5.3f} of bare)  "
                f"CPU {cpu / n * 1e3:6.2f} ms/frame  utilisation {cpu / wall / args.threads:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
