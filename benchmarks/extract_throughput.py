"""Extractor throughput against bare ONNX Runtime loops, and memory vs video length.

In one run, on the same model, inference size and thread count N:

(a) bare loops of ``session.run`` on pre-computed input tensors (real frames of
    the clip, pre-processed beforehand), measured before and after each run of (b):
    - ``sequential``: one frame at a time on an N-thread intra-op pool, with ONNX
      Runtime's default settings (idle threads spin): the usual way to run a model;
    - ``parallel``: N frames at once, one thread each: the extractor's plan;
    the *best* of the two is the reference;
(b) the full extractor (``run_job``: decode, pre-process, infer, reduce, write
    JSON) on ``foreman_cif.mp4`` and on the 720p clip.

It prints frames/s of each (medians over ``--runs`` alternating rounds, with
every round's figure) and the ratio (b)/(best a): how close the extractor
stays to pure inference. Then it runs the extractor in fresh processes on 30
and on 130 frames of the 720p clip and prints each one's peak RSS: streaming
means the two are about the same.

    .venv/bin/python benchmarks/extract_throughput.py                   # the mirror
    .venv/bin/python benchmarks/extract_throughput.py \\
        --model-path src/vmafx_saliency/models/saliency_student_v2.onnx

Times are wall-clock on a shared machine: compare ratios within one run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency.supply.registry import Preprocessing
from vmafx_saliency.video.extract import default_threads, preprocess, resolve_size
from vmafx_saliency.video.frames import open_video, select_frames
from vmafx_saliency.video.job import ModelChoice, Outputs, VideoInput, load_model, run_job

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
CLIPS = ("foreman_cif.mp4", "bigbuckbunny_720p.mp4")


def _tensors(clip: Path, pre: Preprocessing, frames: int) -> list[np.ndarray]:
    out = []
    with open_video(clip) as source:
        for frame in select_frames(source, end=frames):
            hw = (frame.luma.shape[0], frame.luma.shape[1])
            size = resolve_size(pre, None, hw)
            out.append(
                preprocess(
                    frame.luma,
                    bit_depth=frame.bit_depth,
                    color_range=source.info.color_range,
                    pre=pre,
                    size=size,
                )
            )
    return out


def default_session(model_path: Path, threads: int) -> Any:
    """ONNX Runtime's defaults (idle threads spin) with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model_path.read_bytes(), options, providers=["CPUExecutionProvider"]
    )


def bare_fps(session: Any, tensors: list[np.ndarray], repeats: int, *, jobs: int = 1) -> float:
    """Frames/s of ``session.run`` over the tensors, ``jobs`` runs at once."""
    run = session.run
    run(["saliency_map"], {"input": tensors[0]})  # warm-up
    work = [t for _ in range(repeats) for t in tensors]
    start = time.perf_counter()
    if jobs == 1:
        for tensor in work:
            run(["saliency_map"], {"input": tensor})
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for _ in pool.map(lambda t: run(["saliency_map"], {"input": t}), work):
                pass
    return len(work) / (time.perf_counter() - start)


def extractor_fps(clip: Path, model_path: Path, frames: int, threads: int) -> tuple[float, float]:
    """(end to end including model load, the extractor's own frame loop) in frames/s."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        job = run_job(
            VideoInput(path=clip, end=frames),
            ModelChoice(model_path=model_path),
            Outputs(output=Path(tmp) / "out.json"),
            threads=threads,
        )
        seconds = time.perf_counter() - start
    # End to end includes the loader's one-off checks, which a short run exaggerates.
    return len(job.records) / seconds, job.extraction.fps


_PLANS = {"frames": "frames side by side", "threads": "one frame on intra-op threads"}


def child_rss(clip: Path, model_path: Path, frames: int, threads: int, plan: str = "auto") -> int:
    """Peak RSS (KiB) of a fresh process that extracts ``frames`` frames.

    ``plan`` ``auto`` runs ``run_job`` (the extractor's own plan); ``frames`` or
    ``threads`` forces one of the two plans of ``job.InferencePlan``. Read
    from the child's ``VmHWM`` (Linux): ``ru_maxrss`` survives ``exec``, so a
    child would report this (large) benchmark process's RSS at fork time.
    """
    if plan == "auto":
        job = (
            "from vmafx_saliency.video.job import ModelChoice, Outputs, VideoInput, run_job\n"
            "with tempfile.TemporaryDirectory() as tmp:\n"
            f"    run_job(VideoInput(path=Path({str(clip)!r}), end={frames}),\n"
            f"            ModelChoice(model_path=Path({str(model_path)!r})),\n"
            "            Outputs(output=Path(tmp) / 'o.json'),\n"
            f"            threads={threads})\n"
        )
    else:
        jobs, intra = (threads, 1) if plan == "frames" else (1, threads)
        job = (
            "from vmafx_saliency.video.extract import extract\n"
            "from vmafx_saliency.video.frames import open_video, select_frames\n"
            "from vmafx_saliency.video.job import ModelChoice, load_model\n"
            f"loaded, pre = load_model(ModelChoice(model_path=Path({str(model_path)!r})), "
            f"threads={intra})\n"
            f"with open_video(Path({str(clip)!r})) as src:\n"
            f"    extract(select_frames(src, end={frames}), loaded, pre=pre,\n"
            f"            color_range=src.info.color_range, jobs={jobs})\n"
        )
    code = (
        "import resource, tempfile\n"
        "from pathlib import Path\n" + job + "try:\n"
        "    status = Path('/proc/self/status').read_text()\n"
        "    print(next(l.split()[1] for l in status.splitlines() if l.startswith('VmHWM:')))\n"
        "except (OSError, StopIteration):\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-path", type=Path, default=ROOT / "models" / "u2netp_mirror_v1.onnx"
    )
    parser.add_argument("--frames", type=int, default=48, help="frames per clip for (b)")
    parser.add_argument("--bare-frames", type=int, default=16, help="distinct tensors for (a)")
    parser.add_argument("--repeats", type=int, default=2, help="passes over them for (a)")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument(
        "--runs", type=int, default=3, help="extractor runs per clip, each followed by (a)"
    )
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not args.model_path.is_file():
        print(f"{args.model_path} is absent: run 'make demo' (or vmafx-saliency export) first")
        return 0
    missing = [c for c in CLIPS if not (VIDEOS / c).is_file()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found under {VIDEOS}")
        return 0

    # The extractor's session: one intra-op thread, N frames at once.
    loaded, pre = load_model(ModelChoice(model_path=args.model_path), threads=1)
    sequential = default_session(args.model_path, args.threads)
    print(f"model {args.model_path.name}, {args.threads} threads")
    figures: dict[str, object] = {"model": args.model_path.name, "threads": args.threads}

    def bare(tensors: list[np.ndarray]) -> dict[str, float]:
        return {
            "sequential": bare_fps(sequential, tensors, args.repeats),
            "parallel": bare_fps(loaded.session, tensors, args.repeats, jobs=args.threads),
        }

    for clip_name in CLIPS:
        clip = VIDEOS / clip_name
        tensors = _tensors(clip, pre, args.bare_frames)
        size = tensors[0].shape[2:]
        # Bare loops and extractor runs alternate (bare, run, bare, run, ..., bare),
        # and medians are compared: a one-second run on a shared machine is noisy.
        bares = [bare(tensors)]
        runs: list[tuple[float, float]] = []
        for _ in range(args.runs):
            runs.append(extractor_fps(clip, args.model_path, args.frames, args.threads))
            bares.append(bare(tensors))
        loops = {k: statistics.median(b[k] for b in bares) for k in bares[0]}
        best = max(loops.values())
        in_loop = statistics.median(r[1] for r in runs)
        end_to_end = statistics.median(r[0] for r in runs)
        print(f"\n{clip_name} at {size[1]}x{size[0]}, medians of {len(bares)} bare loops "
              f"and {len(runs)} extractor runs:")  # fmt: skip
        for kind, fps in loops.items():
            each = ", ".join(f"{b[kind]:.1f}" for b in bares)
            print(f"  (a) bare loop, {kind:<10}     {fps:8.2f} frames/s ({each})")
        each = ", ".join(f"{r[1]:.1f}" for r in runs)
        print(f"  (b) extractor, frame loop      {in_loop:8.2f} frames/s ({each})")
        print(f"  (b) extractor, end to end      {end_to_end:8.2f} frames/s (incl. model load)")
        print(
            f"  ratio (b)/(best a): frame loop {in_loop / best:.3f}, "
            f"end to end {end_to_end / best:.3f}; against each bare loop: "
            + ", ".join(f"{k} {in_loop / v:.3f}" for k, v in loops.items())
        )
        figures[clip_name] = {
            "size": list(size),
            "bare_fps": loops,
            "best_bare_fps": best,
            "extractor_fps": in_loop,
            "end_to_end_fps": end_to_end,
            "ratio": in_loop / best,
            "ratio_end_to_end": end_to_end / best,
            "runs": args.runs,
        }
    if not args.skip_rss:
        clip = VIDEOS / "bigbuckbunny_720p.mp4"
        rss = {n: child_rss(clip, args.model_path, n, args.threads) for n in (30, 130)}
        print(
            f"\npeak RSS, {clip.name}: 30 frames {rss[30] / 1024:.1f} MiB, "
            f"130 frames {rss[130] / 1024:.1f} MiB (ratio {rss[130] / rss[30]:.3f})"
        )
        figures["peak_rss_kib"] = rss
        by_plan = {
            plan: child_rss(clip, args.model_path, 30, args.threads, plan) for plan in _PLANS
        }
        print(
            "peak RSS, 30 frames, by plan: "
            + ", ".join(f"{_PLANS[k]} {v / 1024:.1f} MiB" for k, v in by_plan.items())
        )
        figures["peak_rss_kib_by_plan"] = by_plan
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
