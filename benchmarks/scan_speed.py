"""Time the wire-format scanner against ``onnx.load`` on the same file.

Both are run N times, interleaved so that machine noise hits them alike, and
the medians are compared in one run (DESIGN section 6: ratios, not absolute
times, on this shared machine).

    .venv/bin/python benchmarks/scan_speed.py --model models/u2netp_mirror_v1.onnx --repeat 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_MODEL = Path("models/u2netp_mirror_v1.onnx")


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, metavar="PATH")
    parser.add_argument("--repeat", type=int, default=20, metavar="N")
    args = parser.parse_args(argv)

    model: Path = args.model
    if not model.is_file():
        print(
            f"{model} not found: create it with\n"
            f"  vmafx-saliency export --checkpoint ../shared/fixtures/u2netp/"
            f"u2netp_bnfold_fp16.pth --output {model}\n"
            "or pass --model PATH",
        )
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    import onnx

    from vmafx_saliency.supply.scan import scan_file

    report = scan_file(model)  # warm-up, and the op table for context
    onnx.load(str(model))
    scan_times: list[float] = []
    load_times: list[float] = []
    for i in range(args.repeat):
        # Alternate which one goes first so neither always gets the warm cache.
        pair = [
            (scan_times, lambda: scan_file(model)),
            (load_times, lambda: onnx.load(str(model))),
        ]
        if i % 2:
            pair.reverse()
        for sink, fn in pair:
            sink.append(_time(fn))

    scan_median = statistics.median(scan_times)
    load_median = statistics.median(load_times)
    size = model.stat().st_size
    print(f"model:      {model} ({size / 2**20:.2f} MiB, {sum(report.ops.values())} nodes)")
    print(f"verdict:    {'ALLOWED' if report.allowed else 'REJECTED'}")
    print(f"repeats:    {args.repeat} (interleaved, medians)")
    print(f"scan_file:  {scan_median * 1e3:9.2f} ms")
    print(f"onnx.load:  {load_median * 1e3:9.2f} ms")
    print(f"ratio scan/onnx.load: {scan_median / load_median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
