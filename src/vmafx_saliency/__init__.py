"""vmafx-saliency: saliency models for video-quality work.

The public API, importable from here (loaded on first use, so ``import
vmafx_saliency`` stays cheap):

- features and maps of a video: :func:`extract_features` (a :class:`Features`
  of :class:`FrameFeatures`, :class:`PooledStats` and :class:`RunInfo`),
  :func:`saliency_maps`,
  :class:`RawVideo` for headerless YUV;
- the model supply chain: :func:`load_model` (through the loader's gate: a
  :class:`LoadedModel`, which ``extract_features(model=...)`` runs as loaded),
  :func:`scan_file` (the op-allowlist scanner), :func:`verify_model` with a
  :class:`Verifier` (Sigstore bundles), :class:`Registry` (the committed
  registry and the overlay);
- :class:`VmafxSaliencyError`, the base of every error raised on purpose, and
  the module :mod:`vmafx_saliency.errors` with the rest of the hierarchy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it.
_HOMES = {
    "Features": "vmafx_saliency.api",
    "FrameFeatures": "vmafx_saliency.api",
    "PooledStats": "vmafx_saliency.api",
    "RawVideo": "vmafx_saliency.api",
    "RunInfo": "vmafx_saliency.api",
    "extract_features": "vmafx_saliency.api",
    "load_model": "vmafx_saliency.api",
    "saliency_maps": "vmafx_saliency.api",
    "LoadedModel": "vmafx_saliency.supply.loader",
    "Registry": "vmafx_saliency.supply.registry",
    "scan_file": "vmafx_saliency.supply.scan",
    "Verifier": "vmafx_saliency.supply.signing",
    "verify_model": "vmafx_saliency.supply.signing",
    "VmafxSaliencyError": "vmafx_saliency.errors",
    "errors": "vmafx_saliency.errors",
}

__all__ = ["__version__", *sorted(_HOMES)]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vmafx_saliency' has no attribute {name!r}")
    module = importlib.import_module(home)
    value = module if name == "errors" else getattr(module, name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value


# This module's own imports, not the package's API: left out of dir().
_PLUMBING = frozenset({"annotations", "importlib", "TYPE_CHECKING", "Any"})


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES} - _PLUMBING)


if TYPE_CHECKING:
    from vmafx_saliency import errors as errors
    from vmafx_saliency.api import Features as Features
    from vmafx_saliency.api import FrameFeatures as FrameFeatures
    from vmafx_saliency.api import PooledStats as PooledStats
    from vmafx_saliency.api import RawVideo as RawVideo
    from vmafx_saliency.api import RunInfo as RunInfo
    from vmafx_saliency.api import extract_features as extract_features
    from vmafx_saliency.api import load_model as load_model
    from vmafx_saliency.api import saliency_maps as saliency_maps
    from vmafx_saliency.errors import VmafxSaliencyError as VmafxSaliencyError
    from vmafx_saliency.supply.loader import LoadedModel as LoadedModel
    from vmafx_saliency.supply.registry import Registry as Registry
    from vmafx_saliency.supply.scan import scan_file as scan_file
    from vmafx_saliency.supply.signing import Verifier as Verifier
    from vmafx_saliency.supply.signing import verify_model as verify_model
