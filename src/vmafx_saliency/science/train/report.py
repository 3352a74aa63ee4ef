"""How a training run reports itself: in its files and on its progress stream.

Every JSON file a run writes (label provenance, manifest, training record) has
one layout and names the versions of the libraries that made it; paths in them
are shown relative to the project, never under a home folder; the progress
lines of labelling and training say how long is left.
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

from vmafx_saliency import __version__
from vmafx_saliency._util import PROJECT_ROOT


def versions() -> dict[str, str]:
    """The versions of Python, this package and the libraries a run uses (those importable)."""
    found = {"vmafx_saliency": __version__, "python": platform.python_version()}
    for name in ("torch", "onnx", "onnxruntime", "numpy", "PIL"):
        module = sys.modules.get(name)
        if module is None:
            with contextlib.suppress(ImportError):
                module = __import__(name)
        if module is not None:
            found[name] = str(getattr(module, "__version__", "?"))
    return found


def dump_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def display(path: Path) -> str:
    """A path relative to the project root when it is under it or its parent (no home dirs)."""
    if PROJECT_ROOT is None:
        return str(path)
    resolved = path.resolve()
    for base, prefix in ((PROJECT_ROOT, ""), (PROJECT_ROOT.parent, "../")):
        with contextlib.suppress(ValueError):
            return prefix + str(resolved.relative_to(base))
    return str(path)


def time_left(done: int, total: int, seconds: float) -> str:
    """``", about N min left"`` at the pace of the first ``done`` of ``total`` items.

    Empty before the first item and after the last: a run of an hour or more
    (labelling, then training) should say when it will end.
    """
    if done <= 0 or done >= total:
        return ""
    left = seconds / done * (total - done)
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"


__all__ = [
    "display",
    "dump_json",
    "time_left",
    "versions",
]
