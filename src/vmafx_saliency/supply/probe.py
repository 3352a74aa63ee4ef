"""The scan and the deployment-contract probe, run in a child process under a budget.

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

The scanner runs in such a child too (:func:`scan_in_child`), with its own
deadline, ``VMAFX_SALIENCY_SCAN_SECONDS`` (default 60): pure Python, it is
bounded by the size cap and its count limits, but a file of millions of small
fields can still make it walk for tens of seconds.

Run as ``python -m vmafx_saliency.supply.probe`` it is the child: a JSON header
line (its task: ``scan`` or ``contract``), then the model's bytes, on standard
input; one JSON line on standard output.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from vmafx_saliency._json import json_loads
from vmafx_saliency.errors import ContractError, UsageError

if TYPE_CHECKING:
    from vmafx_saliency.supply.scan_report import ScanReport

__all__ = ["ENV", "Budget", "Probed", "probe", "scan_in_child"]

ENV = {
    "memory_mib": "VMAFX_SALIENCY_PROBE_MEMORY_MIB",
    "cpu_seconds": "VMAFX_SALIENCY_PROBE_CPU_SECONDS",
    "wall_seconds": "VMAFX_SALIENCY_PROBE_SECONDS",
    "frame_mib": "VMAFX_SALIENCY_FRAME_MEMORY_MIB",
    "scan_seconds": "VMAFX_SALIENCY_SCAN_SECONDS",
}
# The header carries a custom allowlist when there is one: a few KiB of op names.
_MAX_HEADER = 1 << 20
# Seconds or MiB past which a setting is a typo (and past which timeouts overflow).
_MAX_SETTING = 1_000_000


@dataclass(frozen=True, kw_only=True)
class Budget:
    """What probing one model may cost (see the module's documentation)."""

    memory_mib: int = 8192
    cpu_seconds: int = 300
    wall_seconds: int = 120
    frame_mib: int = 3072
    scan_seconds: int = 60

    @classmethod
    def from_env(cls) -> Budget:
        values: dict[str, int] = {}
        for field, name in ENV.items():
            text = os.environ.get(name)
            if text is None:
                continue
            digits = text.strip()
            if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= _MAX_SETTING:
                raise UsageError(
                    f"${name}={text!r}: give a whole number from 1 to {_MAX_SETTING:,}, or unset it"
                )
            values[field] = int(digits)
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


# Scan reports of this process, by model bytes, name, allowlist and budget.
_SCANS: dict[tuple[str, str | None, tuple[str, ...] | None, Budget], ScanReport] = {}


def scan_in_child(
    data: bytes,
    *,
    path: str | None,
    allowlist: frozenset[str] | None = None,
    budget: Budget | None = None,
) -> ScanReport:
    """The scanner's report on ``data``, computed in a child under ``budget``.

    A child stopped by its budget gives a report with the violation
    ``over-budget`` naming the limit to raise; the report never raises.
    """
    from vmafx_saliency.supply.scan import over_budget

    chosen = budget or Budget.from_env()
    ops = None if allowlist is None else tuple(sorted(allowlist))
    key = (hashlib.sha256(data).hexdigest(), path, ops, chosen)
    if key in _SCANS:
        return _SCANS[key]
    header = {"task": "scan", "path": path, "allowlist": ops, "budget": asdict(chosen)}
    seconds = chosen.scan_seconds
    raise_it = (
        f"an operator who trusts the file can raise ${ENV['scan_seconds']} or ${ENV['memory_mib']}"
    )
    try:
        done = _spawn(header, data, timeout=seconds + 5)
    except subprocess.TimeoutExpired:
        return over_budget(path, len(data), f"scanning did not end within {seconds} s: {raise_it}")
    answer = _answer(done)
    if answer is None or not answer.get("ok"):
        why = (
            f"scanning went over its budget ({chosen.memory_mib:,} MiB of address space, "
            f"{seconds} s of CPU) and was stopped (exit {done.returncode}): {raise_it}"
        )
        return over_budget(path, len(data), why)
    try:
        report = _report_from(answer["report"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return over_budget(path, len(data), f"the scan's child gave no usable report: {raise_it}")
    _SCANS[key] = report
    return report


def _report_from(doc: dict[str, Any]) -> ScanReport:
    from vmafx_saliency.supply.scan_report import ScanReport, Violation

    return ScanReport(
        doc["path"],
        int(doc["size"]),
        {str(op): int(count) for op, count in doc["ops"].items()},
        tuple(Violation(v["kind"], v["detail"], v["offset"]) for v in doc["violations"]),
        int(doc["omitted_violations"]),
    )


def _spawn(
    header: dict[str, Any], data: bytes, *, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """Run the child on a header and the model's bytes; TimeoutExpired past ``timeout``."""
    # -P: the working folder is not put on the child's import path, so a folder
    # holding a vmafx_saliency/ of its own (a downloaded release) cannot stand in
    # for the scanner or the probe.
    return subprocess.run(
        [sys.executable, "-P", "-m", "vmafx_saliency.supply.probe"],
        input=json.dumps(header).encode() + b"\n" + data,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def _answer(done: subprocess.CompletedProcess[bytes]) -> dict[str, Any] | None:
    """The child's one JSON line; None when it printed none (killed by a limit)."""
    lines = done.stdout.strip().splitlines()
    try:
        answer = json_loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _run_child(
    data: bytes, *, source: str, sizes: tuple[tuple[int, int], ...], budget: Budget
) -> Probed:
    from vmafx_saliency.supply import contract

    # The time one probe run may take, as this process has it (tests shorten it).
    run_seconds = contract.PROBE_SECONDS
    header = {
        "task": "contract",
        "source": source,
        "sizes": sizes,
        "budget": asdict(budget),
        "run_seconds": run_seconds,
    }
    try:
        done = _spawn(header, data, timeout=budget.wall_seconds)
    except subprocess.TimeoutExpired:
        raise ContractError(
            f"{source}: probing the model did not end within {budget.wall_seconds} s "
            "(a saliency model takes a second or two): refused; an operator who trusts it "
            f"can raise ${ENV['wall_seconds']}"
        ) from None
    return _verdict(done, source=source, budget=budget)


def _verdict(done: subprocess.CompletedProcess[bytes], *, source: str, budget: Budget) -> Probed:
    answer = _answer(done)
    if answer is None:
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
    try:
        return Probed(
            input_shape=tuple(answer["input_shape"]),
            output_shape=tuple(answer["output_shape"]),
            runs=tuple((r[0], r[1], tuple(r[2]), r[3], r[4]) for r in answer["runs"]),
            peak_mib=float(answer["peak_mib"]),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ContractError(f"{source}: the probe's child gave no usable verdict: refused") from exc


# --- the child ----------------------------------------------------------------------


def _limit(budget: dict[str, Any], *, cpu_seconds: int) -> None:
    import resource

    memory = int(budget["memory_mib"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))


def _child() -> dict[str, Any]:
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline(_MAX_HEADER))
    budget = header["budget"]
    if header["task"] == "scan":
        _limit(budget, cpu_seconds=int(budget["scan_seconds"]))
        return _scan_child(header, stdin.read())
    _limit(budget, cpu_seconds=int(budget["cpu_seconds"]))
    return _contract_child(header, stdin.read())


def _scan_child(header: dict[str, Any], data: bytes) -> dict[str, Any]:
    from vmafx_saliency.supply.scan import scan_bytes

    ops = header["allowlist"]
    allowlist = None if ops is None else frozenset(ops)
    report = scan_bytes(data, path=header["path"], allowlist=allowlist)
    return {"ok": True, "report": report.to_json()}


def _contract_child(header: dict[str, Any], data: bytes) -> dict[str, Any]:
    import resource

    from vmafx_saliency.supply import contract

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
