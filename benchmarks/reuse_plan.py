"""A model loaded once (``load_model``) and run over a video: how its frames should go.

For the shipped INT8 student on one clip (foreman by default), in one process,
alternating over ``--rounds`` rounds, the extractor's frame loop
(``extract.extract``) in frames/s with:

- ``default, one at a time``: ``load_model()`` (ONNX Runtime's default threads),
  one frame at a time;
- ``default, side by side``: the same session, ``--threads`` frames at once;
- ``one thread, side by side``: ``load_model(threads=1)``, ``--threads`` frames
  at once (the extractor's own plan for a small model).

``video.job.ReadyModel.plan`` picks side by side for a small model whichever
way it was loaded; this is the measurement behind that.

    .venv/bin/python benchmarks/reuse_plan.py

Wall-clock on a shared machine: compare within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from vmafx_saliency import LoadedModel, load_model
from vmafx_saliency.video import extract
from vmafx_saliency.video.extract import default_threads
from vmafx_saliency.video.frames import open_video, select_frames
from vmafx_saliency.video.job import ReadyModel

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def frame_loop_fps(clip: Path, model: LoadedModel, *, frames: int, jobs: int) -> float:
    ready = ReadyModel.of(model)
    with open_video(clip) as source:
        result = extract.extract(
            select_frames(source, end=frames),
            model,
            pre=ready.pre,
            color_range=source.info.color_range,
            jobs=jobs,
        )
    return result.fps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=VIDEOS / "foreman_cif.mp4")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    if not args.clip.is_file():
        print(f"skipped: {args.clip} not found")
        return 0
    default, single = load_model(), load_model(threads=1)
    ways = {
        "default, one at a time": (default, 1),
        "default, side by side": (default, args.threads),
        "one thread, side by side": (single, args.threads),
    }
    got: dict[str, list[float]] = {name: [] for name in ways}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for name, (model, jobs) in ways.items():
            got[name].append(frame_loop_fps(args.clip, model, frames=args.frames, jobs=jobs))
    print(
        f"{args.clip.name}, {default.model_id}, {args.frames} frames, {args.threads} threads, "
        f"{args.rounds} rounds ({time.perf_counter() - started:.0f} s)"
    )
    for name, figures in got.items():
        each = ", ".join(f"{f:.1f}" for f in figures)
        print(f"  {name:<26} {statistics.median(figures):7.1f} frames/s ({each})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
