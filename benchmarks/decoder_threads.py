"""FFmpeg's decoder threading in the extractor: automatic (frame and slice) against one thread.

On one clip (the 720p one by default) and one model, in one run, alternating
over ``--rounds`` rounds, for each decoder setting (``container.DECODER_THREADS``:
``AUTO``, FFmpeg's frame and slice threads, the extractor's setting; ``SLICE``,
slice threads only, one thread for a stream of one slice a frame as x264 writes
by default; ``NONE``, one thread):

- ``decode``: the CPU milliseconds a frame of decoding alone (the extractor's
  reader, every frame, nothing else running);
- ``extractor``: the extractor's frame loop (``run_job``) in frames/s;

and, once a round, the bare loop (``extract_throughput.py``'s ``parallel``: N
frames at once on pre-computed tensors). It prints the medians and each round's
figures, and each setting's frame loop over the bare loop.

    .venv/bin/python benchmarks/decoder_threads.py \\
        --model-path src/vmafx_saliency/models/saliency_student_v2.onnx

Wall and CPU times on a shared machine: compare within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from extract_throughput import VIDEOS, _tensors, bare_fps, extractor_fps

from vmafx_saliency.video.extract import default_threads
from vmafx_saliency.video.frames import container, open_video, select_frames
from vmafx_saliency.video.job import ModelChoice, load_model

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("AUTO", "SLICE", "NONE")


def decode_ms(clip: Path, frames: int) -> float:
    """CPU milliseconds a frame to decode ``frames`` frames with the extractor's reader."""
    cpu = time.process_time()
    with open_video(clip) as source:
        count = sum(1 for _ in select_frames(source, end=frames))
    return (time.process_time() - cpu) / count * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-path",
        type=Path,
        default=ROOT / "src" / "vmafx_saliency" / "models" / "saliency_student_v2.onnx",
    )
    parser.add_argument("--clip", type=Path, default=VIDEOS / "bigbuckbunny_720p.mp4")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    if not args.clip.is_file():
        print(f"skipped: {args.clip} not found")
        return 0
    loaded, pre = load_model(ModelChoice(model_path=args.model_path), threads=1)
    tensors = _tensors(args.clip, pre, 16)
    bare: list[float] = []
    figures: dict[str, dict[str, list[float]]] = {s: {"decode": [], "fps": []} for s in SETTINGS}
    try:
        for _ in range(args.rounds):
            bare.append(bare_fps(loaded.session, tensors, 4, jobs=args.threads))
            for setting in SETTINGS:
                container.DECODER_THREADS = setting
                figures[setting]["decode"].append(decode_ms(args.clip, args.frames))
                _, fps = extractor_fps(args.clip, args.model_path, args.frames, args.threads)
                figures[setting]["fps"].append(fps)
    finally:
        container.DECODER_THREADS = "AUTO"
    best = statistics.median(bare)
    print(f"{args.clip.name}, {args.model_path.name}, {args.threads} threads, {args.rounds} rounds")
    print(f"  bare loop {best:7.2f} frames/s ({', '.join(f'{b:.1f}' for b in bare)})")
    for setting, got in figures.items():
        decode, fps = statistics.median(got["decode"]), statistics.median(got["fps"])
        print(
            f"  {setting:<5}  decode {decode:5.2f} ms CPU/frame "
            f"({', '.join(f'{d:.2f}' for d in got['decode'])}); "
            f"extractor {fps:7.2f} frames/s ({', '.join(f'{f:.1f}' for f in got['fps'])}), "
            f"{fps / best:.3f} of the bare loop"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
