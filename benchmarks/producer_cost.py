"""What the extractor's producer thread costs per frame: decoding and pre-processing.

Decodes a clip fully (PyAV, the extractor's own reader), then pre-processes
every frame as the extractor does (``extract.preprocess``: resize of the raw
luma to the model's size, range, scaling, tiling), timing each stage in
milliseconds per frame of wall and of process CPU time (all threads). With
a fast model these are what the two cores share with inference. Then it times
``resize_plane`` alone on random 8-bit luma planes of the common video sizes
(to 320x320), in each pass order, so the order ``resize_plane`` picks can be
checked against both.

    .venv/bin/python benchmarks/producer_cost.py                       # the 720p clip
    .venv/bin/python benchmarks/producer_cost.py --clip ../shared/data/videos/foreman_cif.mp4
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from vmafx_saliency.supply.registry import Sidecar, sidecar_beside
from vmafx_saliency.video.extract import preprocess
from vmafx_saliency.video.frames import open_video
from vmafx_saliency.video.resize import _resize_axis, resize_plane

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bigbuckbunny_720p.mp4"
STUDENT = ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--repeats", type=int, default=3, help="passes; the fastest is printed")
    args = parser.parse_args()
    if not args.clip.is_file():
        print(f"skipped: {args.clip} not found")
        return 0
    sidecar_path = sidecar_beside(STUDENT)
    assert sidecar_path is not None, (
        "src/vmafx_saliency/models/saliency_student_v2.sidecar.json is missing"
    )
    pre = Sidecar.load(sidecar_path).preprocessing
    size = pre.inference_size or (320, 320)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        with open_video(args.clip) as video:
            frames = list(video)
            color_range = video.info.color_range
        n = len(frames)
        decode = ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)
        wall, cpu = time.perf_counter(), time.process_time()
        for frame in frames:
            preprocess(
                frame.luma, bit_depth=frame.bit_depth, color_range=color_range, pre=pre, size=size
            )
        prep = ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)
        for name, value in (("decode", decode), ("preprocess", prep)):
            if name not in best or value[0] < best[name][0]:
                best[name] = value
    print(f"{args.clip.name}: {n} frames, {frames[0].luma.shape[1]}x{frames[0].luma.shape[0]}")
    for name, (w, c) in best.items():
        print(f"  {name:<11} {w * 1e3:6.2f} ms/frame wall, {c * 1e3:6.2f} ms/frame CPU")
    print(f"resize_plane to {size[1]}x{size[0]}, ms per plane (fastest of {args.repeats}):")
    rng = np.random.default_rng(0)
    for width, height in ((1280, 720), (1920, 1080), (3840, 2160)):
        plane = rng.integers(16, 236, (height, width), dtype=np.uint8)
        times = {
            name: _best_ms(partial(run, plane), args.repeats)
            for name, run in (
                ("chosen", partial(resize_plane, size=size)),
                ("horizontal first", partial(_two_passes, size=size, axes=(1, 0))),
                ("vertical first", partial(_two_passes, size=size, axes=(0, 1))),
            )
        }
        print(f"  {width}x{height}: " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
    return 0


def _two_passes(plane: np.ndarray, *, size: tuple[int, int], axes: tuple[int, int]) -> np.ndarray:
    """Both passes in a fixed order (axis 1: the horizontal pass, axis 0: the vertical)."""
    out = plane
    for axis in axes:
        out = _resize_axis(out, size[axis], axis=axis)
    return out


def _best_ms(run: Callable[[], object], repeats: int, calls: int = 20) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


if __name__ == "__main__":
    raise SystemExit(main())
