"""Running the CLI as an attacker's victim: a real process, its time and peak memory measured.

:func:`attack` runs the CLI in a subprocess. Its peak memory is measured by the
process itself at exit (``VmHWM`` of its own address space, and the largest
child it waited for: the scan and probe children), because the ``ru_maxrss``
that ``wait4`` reports starts at the forking test process's size, which Linux
carries across ``exec``. A wall-clock timer kills it past ``timeout``, so a
hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The CLI's entry point, with an exit hook that writes the peak memory in KiB.
_LAUNCH = """
import atexit, os, resource

def _peak():
    with open("/proc/self/status") as status:
        own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(os.environ["VMAFX_TEST_PEAK_FILE"], "w") as out:
        out.write(str(max(own, children)))

atexit.register(_peak)
from vmafx_saliency.cli.main import entry
entry()
"""


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str
    seconds: float
    peak_mib: float  # the largest resident set of the process tree

    def error(self, command: str) -> str:
        """The one stderr line of a refusal, without its prefix (an ad-hoc warning aside)."""
        lines = [line for line in self.err.strip().splitlines() if not line.startswith("WARNING")]
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err, self.err
        prefix = f"vmafx-saliency {command}: error: "
        assert lines[0].startswith(prefix), lines[0]
        return lines[0][len(prefix) :]


def attack(
    *argv: str | Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Outcome:
    """Run the CLI on ``argv`` in ``cwd`` with ``env`` added; measure it."""
    measured = tempfile.TemporaryDirectory(prefix="vmafx-attack-")
    peak_file = Path(measured.name) / "peak"
    environment = {**os.environ, **(env or {}), "VMAFX_TEST_PEAK_FILE": str(peak_file)}
    # -P: as the installed console script, the working folder is not on the import path.
    command = [sys.executable, "-P", "-c", _LAUNCH, *(str(a) for a in argv)]
    with measured, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(
            command, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=environment
        )
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status = os.waitpid(process.pid, 0)
        finally:
            timer.cancel()
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Outcome(
            code=process.returncode,
            out=out.read().decode(errors="replace"),
            err=err.read().decode(errors="replace"),
            seconds=seconds,
            # No figure when killed before its exit hook: infinite, so a bound fails.
            peak_mib=int(peak_file.read_text()) / 1024 if peak_file.exists() else float("inf"),
        )


def files_under(*folders: Path) -> dict[str, int]:
    """Every file and folder under ``folders`` (hidden ones too), with its size."""
    found: dict[str, int] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            found[str(path)] = path.lstat().st_size if not path.is_dir() else -1
    return found
