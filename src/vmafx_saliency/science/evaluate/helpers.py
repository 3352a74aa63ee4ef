"""Small helpers shared by the evaluation modules: PIL on demand, finite floats, short lists.

Also the one-line progress bar that eval draws on a terminal. Nothing here imports
numpy or the other modules of the package, so every one of them may use these.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from vmafx_saliency._util import require


def _pil() -> Any:
    return require("PIL.Image", purpose="eval (image loading)", extra="eval")


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _listed(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


class _Progress:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, *, total: int, unit: str, enabled: bool, stream: TextIO | None = None):
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.done = 0
        self._last = 0.0

    def update(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.2 and self.done < self.total):
            return
        self._last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        bar = "#" * int(30 * self.done / max(self.total, 1))
        self.stream.write(
            f"\r[{bar:<30}] {self.done}/{self.total} {self.unit} {rate:5.1f}/s ETA {eta:4.0f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
