"""Where the two registry files are: the committed registry and the operator overlay.

The committed registry is ``<project>/models/registry.json`` (tracked in git;
``$VMAFX_SALIENCY_COMMITTED_REGISTRY`` overrides its location, for tests). The
overlay is a file in a user location (``$VMAFX_SALIENCY_REGISTRY``, else
``$XDG_DATA_HOME/vmafx-saliency/registry.json``). Paths in an entry are relative
to the folder of the file that defines it (:func:`_root_of`).
"""

from __future__ import annotations

import os
from pathlib import Path

from vmafx_saliency._util import PROJECT_ROOT

ENV_OVERLAY = "VMAFX_SALIENCY_REGISTRY"
ENV_COMMITTED = "VMAFX_SALIENCY_COMMITTED_REGISTRY"


def committed_registry_path() -> Path:
    """``$VMAFX_SALIENCY_COMMITTED_REGISTRY``, else ``<project root>/models/registry.json``."""
    named = os.environ.get(ENV_COMMITTED)
    if named:
        return Path(named).expanduser()
    return PROJECT_ROOT / "models" / "registry.json"


def overlay_registry_path() -> Path:
    """``$VMAFX_SALIENCY_REGISTRY``, else ``$XDG_DATA_HOME/vmafx-saliency/registry.json``."""
    named = os.environ.get(ENV_OVERLAY)
    if named:
        return Path(named).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "vmafx-saliency" / "registry.json"


def _same_file(a: Path, b: Path) -> bool:
    return a.absolute().resolve() == b.absolute().resolve()


def _root_of(registry: Path) -> Path:
    # Paths are relative to the folder the registry file is named in; resolving
    # that folder once lets confinement compare resolved paths only.
    return registry.absolute().parent.resolve()


def _is_committed(path: Path) -> bool:
    return _same_file(path, committed_registry_path())
