"""The scanner's worst case within its limits, in this process and in its budgeted child.

A model of ``--nodes`` Relu nodes with 1,000 empty attributes each stays
within every count limit of the scanner, yet makes its pure-Python walk visit
millions of fields. This times ``scan_bytes`` in this process, then
``scan_bounded`` (the child under ``$VMAFX_SALIENCY_SCAN_SECONDS``), and prints
the seconds and the verdicts with the machine's CPU kind (ratios, not
absolute times, are comparable across sessions).

    .venv/bin/python benchmarks/scan_worst_case.py --nodes 20000
    VMAFX_SALIENCY_SCAN_SECONDS=5 .venv/bin/python benchmarks/scan_worst_case.py --nodes 20000
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

from vmafx_saliency.supply import scan
from vmafx_saliency.supply.scan import ScanReport


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def worst_case_model(nodes: int, attributes: int = 1000) -> bytes:
    """ModelProto(ir_version 8, graph of ``nodes`` Relu nodes of empty attributes)."""
    node = _field(4, b"Relu") + _field(5, b"") * attributes
    return _varint(1 << 3) + _varint(8) + _field(7, _field(1, node) * nodes)


def _cpu() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else (platform.processor() or "unknown CPU")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20000, metavar="N")
    args = parser.parse_args(argv)
    data = worst_case_model(args.nodes)
    print(f"{len(data) / 2**20:.1f} MiB, {args.nodes:,} nodes x 1,000 attributes; {_cpu()}")
    runs: tuple[tuple[str, Callable[[], ScanReport]], ...] = (
        ("in this process", lambda: scan.scan_bytes(data, path="worst.onnx")),
        ("in the budgeted child", lambda: scan.scan_bounded(data, path="worst.onnx")),
    )
    for name, run in runs:
        started = time.perf_counter()
        report = run()
        kinds = sorted({v.kind for v in report.violations}) or ["ALLOWED"]
        print(f"{name:>22}: {time.perf_counter() - started:6.1f} s  {', '.join(kinds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
