"""Where the two registry files are: the committed registry and the operator overlay.

The committed registry is ``vmafx_saliency/models/registry.json``, package data
beside the default model it names (tracked in git, installed with the package;
``$VMAFX_SALIENCY_COMMITTED_REGISTRY`` overrides its location, for tests). The
overlay is a file in a user location (``$VMAFX_SALIENCY_REGISTRY``, else
``$XDG_DATA_HOME/vmafx-saliency/registry.json``). Paths in an entry are relative
to the folder of the file that defines it (:func:`_root_of`).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

ENV_OVERLAY = "VMAFX_SALIENCY_REGISTRY"
ENV_COMMITTED = "VMAFX_SALIENCY_COMMITTED_REGISTRY"


def packaged_models() -> Path:
    """The folder of the package's own models: the registry, the default model, sidecars.

    A real folder: the registry's entries name files beside it, and ONNX
    Runtime and the loader read them by path.
    """
    folder = resources.files("vmafx_saliency").joinpath("models")
    return Path(str(folder))


def committed_registry_path() -> Path:
    """``$VMAFX_SALIENCY_COMMITTED_REGISTRY``, else the package's ``models/registry.json``."""
    named = os.environ.get(ENV_COMMITTED)
    if named:
        return Path(named).expanduser()
    return packaged_models() / "registry.json"


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


def sidecar_beside(model_path: Path) -> Path | None:
    """``x.onnx`` -> ``x.sidecar.json`` when it exists (the repository's convention)."""
    candidate = Path(model_path).with_name(f"{Path(model_path).stem}.sidecar.json")
    return candidate if candidate.is_file() else None
