"""The deployment-contract probe, run in a child process under a budget.

ONNX Runtime builds a session and runs a graph in C++, where a hostile file
that passed the scanner can still ask for gigabytes (a Resize cascade), burn
CPU for minutes while ignoring signals, or never end. The probe therefore runs
in a child process with an address-space limit, a CPU-time limit and a
wall-clock deadline (:class:`Budget`): whatever the file does costs at most
that, and ends as one :class:`~vmafx_saliency.errors.ContractError`. The child
also runs the model once at its production inference size and reports its
peak memory, which must stay under the per-frame limit. Only then does the
caller build its own session from the same bytes (DESIGN section 4, layer 5).

The limits are environment variables an operator may raise for a model they
trust (``docs/operator.md``):

- ``VMAFX_SALIENCY_PROBE_MEMORY_MIB``: the child's address space (default 8192);
- ``VMAFX_SALIENCY_PROBE_CPU_SECONDS``: its CPU time (default 300);
- ``VMAFX_SALIENCY_PROBE_SECONDS``: its wall-clock time (default 120);
- ``VMAFX_SALIENCY_FRAME_MEMORY_MIB``: the peak resident memory of one frame at
  the inference size (default 3072).

Run as ``python -m vmafx_saliency.supply.probe`` it is the child: a JSON header
line, then the model's bytes, on standard input; one JSON line on standard
output.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vmafx_saliency._util import json_loads
from vmafx_saliency.errors import ContractError, UsageError

__all__ = ["ENV", "Budget", "Probed", "probe"]

ENV = {
    "memory_mib": "VMAFX_SALIENCY_PROBE_MEMORY_MIB",
    "cpu_seconds": "VMAFX_SALIENCY_PROBE_CPU_SECONDS",
    "wall_seconds": "VMAFX_SALIENCY_PROBE_SECONDS",
    "frame_mib": "VMAFX_SALIENCY_FRAME_MEMORY_MIB",
}
_MAX_HEADER = 4096


@dataclass(frozen=True, kw_only=True)
class Budget:
    """What probing one model may cost (see the module's documentation)."""

    memory_mib: int = 8192
    cpu_seconds: int = 300
    wall_seconds: int = 120
    frame_mib: int = 3072

    @classmethod
    def from_env(cls) -> Budget:
        values: dict[str, int] = {}
        for field, name in ENV.items():
            text = os.environ.get(name)
            if text is None:
                continue
            if not text.strip().isdigit() or int(text) < 1:
                raise UsageError(f"${name}={text!r}: give a whole number >= 1, or unset it")
            values[field] = int(text)
        return cls(**values)


@dataclass(frozen=True)
class Probed:
    """The child's verdict: every probe run, and its peak resident memory."""

    input_shape: tuple[int | str | None, ...]
    output_shape: tuple[int | str | None, ...]
    runs: tuple[tuple[int, int, tuple[int, ...], float, float], ...]
    peak_mib: float


# Verdicts of this process, by model bytes, sizes and budget: a model loaded
# again (a second run of a pipeline, the tests) is not probed again.
_VERDICTS: dict[tuple[str, tuple[tuple[int, int], ...], Budget], Probed] = {}


def probe(
    data: bytes,
    *,
    source: str,
    sizes: Sequence[tuple[int, int]],
    production: bool = False,
    budget: Budget | None = None,
) -> Probed:
    """Run the contract probe at ``sizes`` (H, W) on ``data`` in a budgeted child.

    ``production``: the last size is the model's production inference size,
    and the child's peak memory must stay under ``budget.frame_mib`` there.
    Raises ContractError.
    """
    chosen = budget or Budget.from_env()
    key = (hashlib.sha256(data).hexdigest(), tuple(sizes), chosen)
    if key not in _VERDICTS:
        _VERDICTS[key] = _run_child(data, source=source, sizes=tuple(sizes), budget=chosen)
    verdict = _VERDICTS[key]
    if production and verdict.peak_mib > chosen.frame_mib:
        height, width = sizes[-1]
        raise ContractError(
            f"{source}: one {width}x{height} frame takes {verdict.peak_mib:,.0f} MiB, over the "
            f"limit of {chosen.frame_mib:,} MiB: refused; an operator who trusts the model can "
            f"raise ${ENV['frame_mib']}"
        )
    return verdict


def _run_child(
    data: bytes, *, source: str, sizes: tuple[tuple[int, int], ...], budget: Budget
) -> Probed:
    from vmafx_saliency.supply import contract

    # The time one probe run may take, as this process has it (tests shorten it).
    run_seconds = contract.PROBE_SECONDS
    header = json.dumps(
        {"source": source, "sizes": sizes, "budget": asdict(budget), "run_seconds": run_seconds}
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "vmafx_saliency.supply.probe"],
            input=header.encode() + b"\n" + data,
            capture_output=True,
            timeout=budget.wall_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ContractError(
            f"{source}: probing the model did not end within {budget.wall_seconds} s "
            "(a saliency model takes a second or two): refused; an operator who trusts it "
            f"can raise ${ENV['wall_seconds']}"
        ) from None
    return _verdict(done, source=source, budget=budget)


def _verdict(done: subprocess.CompletedProcess[bytes], *, source: str, budget: Budget) -> Probed:
    lines = done.stdout.strip().splitlines()
    try:
        answer = json_loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # No verdict: killed by its CPU limit (SIGXCPU, SIGKILL) or out of memory.
        raise ContractError(
            f"{source}: the probe went over its budget ({budget.memory_mib:,} MiB of address "
            f"space, {budget.cpu_seconds} s of CPU) and was stopped (exit {done.returncode}): "
            f"refused; an operator who trusts the model can raise ${ENV['memory_mib']} or "
            f"${ENV['cpu_seconds']}"
        )
    if answer.get("budget") or (not answer.get("ok") and "message" not in answer):
        raise ContractError(
            f"{source}: the probe ran out of its {budget.memory_mib:,} MiB of address space: "
            f"refused; an operator who trusts the model can raise ${ENV['memory_mib']}"
        )
    if not answer.get("ok"):
        raise ContractError(str(answer["message"]))
    return Probed(
        input_shape=tuple(answer["input_shape"]),
        output_shape=tuple(answer["output_shape"]),
        runs=tuple((r[0], r[1], tuple(r[2]), r[3], r[4]) for r in answer["runs"]),
        peak_mib=float(answer["peak_mib"]),
    )


# --- the child ----------------------------------------------------------------------


def _limit(budget: dict[str, Any]) -> None:
    import resource

    memory = int(budget["memory_mib"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(budget["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))


def _child() -> dict[str, Any]:
    import resource

    from vmafx_saliency.supply import contract

    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline(_MAX_HEADER))
    _limit(header["budget"])
    data = stdin.read()
    source = str(header["source"])
    sizes = [(int(h), int(w)) for h, w in header["sizes"]]
    contract.PROBE_SECONDS = float(header["run_seconds"])
    session = contract.make_session(data, source=source, threads=1, arena=False)
    report = contract.check_contract_session(session, source=source, sizes=sizes)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "ok": True,
        "input_shape": list(report.input_shape),
        "output_shape": list(report.output_shape),
        "runs": [
            [r.height, r.width, list(r.output_shape), r.minimum, r.maximum] for r in report.runs
        ],
        "peak_mib": peak_kib / 1024,
    }


def main() -> int:
    try:
        answer = _child()
    except ContractError as exc:
        text = str(exc)
        # ONNX Runtime out of the address space reports bad_alloc or a failed allocation.
        out_of_memory = "bad_alloc" in text or "failed to allocate" in text.lower()
        answer = {"ok": False, "budget": True} if out_of_memory else {"ok": False, "message": text}
    except MemoryError:
        print(json.dumps({"ok": False, "budget": True}), flush=True)
        return 3
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
