"""Cost of one training step of the student, float32 against bf16 autocast.

Times `train --precision fp32` and `--precision bf16` through
`train.optimizer_step`, the step `train_student` takes (NHWC, Adam, the
bce_iou loss on float32 logits), on a seeded random batch of 16, at the
stage-1 crop (224) and on whole planes (320), the two precisions back to
back at each size, so that a load on the shared machine hits both alike.
Augmentation is left out: it costs the same in both.

    .venv/bin/python benchmarks/train_step.py --threads 2
    .venv/bin/python benchmarks/train_step.py --threads 2 --side-weight 0.5
    .venv/bin/python benchmarks/train_step.py --threads 2 --crops 176,224
    .venv/bin/python benchmarks/train_step.py --threads 2 --stem-convs 2

With ``--compile`` it also times the float32 step with the net's forward
compiled by ``torch.compile`` (default inductor backend; the first steps,
which compile, are left out), against the eager one of the same net, with
``--stem-convs`` applied and without side heads whatever ``--side-weight`` is:

    .venv/bin/python benchmarks/train_step.py --threads 2 --stem-convs 3 --crops 224 --compile

With ``--crops`` it times those crop sides instead of 224 and 320 (attempt
19P's stage 1 trained on 176 crops).

With ``--side-weight W`` it also times the bf16 step with deep supervision
(`train --side-weight W`: the training-only side heads and their losses).

The baseline net has one 3x3 convolution in the stem (every attempt before
29). With ``--stem-convs N`` it also times the bf16 step of the net with N
(`train --stem-convs N`; attempt 29 used 2, attempt 30, the shipped net and
now the default, 3).

Times are wall-clock on a shared machine: compare within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vmafx_saliency.science import train


def _step_seconds(
    precision: str,
    crop: int,
    steps: int,
    side_weight: float = 0.0,
    stem_convs: int = 1,
    compiled: bool = False,
) -> float:
    torch.manual_seed(0)
    cfg = train.TrainConfig(precision=precision, side_weight=side_weight, stem_convs=stem_convs)
    net = train.build_student(cfg)
    sides = train.build_side_heads(cfg, net)
    net = net.to(memory_format=torch.channels_last)
    if compiled:
        # optimizer_step calls forward_logits: compile that, as a run would.
        net.forward_logits = torch.compile(net.forward_logits)
    optimizer = torch.optim.Adam(train.trained_parameters(net, sides), lr=1e-3)
    x = torch.rand(16, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    y = torch.rand(16, 1, crop, crop)
    times = []
    for _ in range(steps + 2):  # the first two warm oneDNN's kernel caches (and compile)
        start = time.perf_counter()
        train.optimizer_step(
            torch, net, optimizer, x, y, cfg, bf16=precision == "bf16", sides=sides
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--side-weight", type=float, default=0.0)
    parser.add_argument("--stem-convs", type=int, default=1)
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile (fp32, no side heads)"
    )
    parser.add_argument(
        "--crops", default="224,320", help="crop sides to time, comma-separated (default: 224,320)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"CPU: torch capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 {train.native_bf16(torch)}, {args.threads} threads",
        flush=True,
    )
    try:
        crops = [int(c) for c in args.crops.split(",")]
    except ValueError:
        parser.error(f"--crops {args.crops!r}: give crop sides in pixels, e.g. 176,224")
    for crop in crops:
        fp32 = _step_seconds("fp32", crop, args.steps)
        bf16 = _step_seconds("bf16", crop, args.steps)
        print(
            f"crop {crop}, one stem convolution: fp32 {fp32:.3f} s/step, bf16 {bf16:.3f} s/step, "
            f"bf16 costs {bf16 / fp32:.2f} of fp32",
            flush=True,
        )
        if args.side_weight:
            sided = _step_seconds("bf16", crop, args.steps, args.side_weight)
            print(
                f"crop {crop}: bf16 with side heads {sided:.3f} s/step, "
                f"{sided / bf16:.2f} of bf16 without",
                flush=True,
            )
        if args.stem_convs != 1:
            stem = _step_seconds("bf16", crop, args.steps, stem_convs=args.stem_convs)
            print(
                f"crop {crop}: bf16 with {args.stem_convs} stem convolutions {stem:.3f} s/step, "
                f"{stem / bf16:.2f} of bf16 with 1",
                flush=True,
            )
        if args.compile:
            eager = _step_seconds("fp32", crop, args.steps, stem_convs=args.stem_convs)
            fast = _step_seconds(
                "fp32", crop, args.steps, stem_convs=args.stem_convs, compiled=True
            )
            print(
                f"crop {crop}, {args.stem_convs} stem convolution(s), fp32: eager {eager:.3f} "
                f"s/step, torch.compile {fast:.3f} s/step, {fast / eager:.2f} of eager",
                flush=True,
            )


if __name__ == "__main__":
    main()
