"""The upstream U-2-Net checkout: audited (Apache-2.0 licence, NOTICE), its U2NETP imported.

With ``--upstream-dir`` the mirror is exported from the checkout's own
``model/u2net.py``, loaded under a private module name, after its LICENSE is
checked to be the Apache License 2.0 text. Without it, the licence text shipped
with the weights is looked up beside the checkpoint, then in the project.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmafx_saliency._util import sha256_file
from vmafx_saliency.errors import InputFileError, MissingDependencyError, UpstreamCheckoutError
from vmafx_saliency.supply.export import lazy
from vmafx_saliency.supply.registry.locations import packaged_models

log = logging.getLogger(__name__)

UPSTREAM_REPO = "https://github.com/xuebinqin/U-2-Net"
DEFAULT_COMMIT = "ac7e1c81"

UPSTREAM_MODEL_FILE = "model/u2net.py"
UPSTREAM_CHECKPOINT = "saved_models/u2netp/u2netp.pth"
# The names a licence text beside a checkpoint may have, in the order they are looked for.
LICENSE_NAMES = ("LICENSE-U-2-Net.txt", "LICENSE", "LICENSE.txt")

# The licence text the project ships with the mirror, when none is beside the checkpoint.
_PROJECT_LICENSE = packaged_models() / "Apache-2.0-u2netp.txt"


@dataclass(frozen=True)
class UpstreamCheckout:
    """An audited local checkout of github.com/xuebinqin/U-2-Net."""

    root: Path
    model_file: Path
    license_file: Path
    notice_present: bool


def _is_apache_2(text: str) -> bool:
    flat = " ".join(text.split())
    return "Apache License" in flat and "Version 2.0, January 2004" in flat


def audit_upstream_checkout(root: Path) -> UpstreamCheckout:
    """Check that ``root`` looks like U-2-Net under Apache-2.0; record its NOTICE."""
    if not root.is_dir():
        raise UpstreamCheckoutError(
            f"upstream checkout {root} is not a directory: pass --upstream-dir with a "
            f"clone of {UPSTREAM_REPO}"
        )
    model_file = root / UPSTREAM_MODEL_FILE
    if not model_file.is_file():
        raise UpstreamCheckoutError(
            f"upstream checkout {root} has no {UPSTREAM_MODEL_FILE}: pass --upstream-dir "
            f"with the root of a clone of {UPSTREAM_REPO}"
        )
    license_file = root / "LICENSE"
    if not license_file.is_file():
        raise UpstreamCheckoutError(
            f"upstream checkout {root} has no LICENSE file: use a full clone of "
            f"{UPSTREAM_REPO}, whose LICENSE is Apache-2.0"
        )
    try:
        text = license_file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UpstreamCheckoutError(f"cannot read {license_file}: {exc}") from exc
    if not _is_apache_2(text):
        raise UpstreamCheckoutError(
            f"{license_file} is not the Apache License 2.0 text: the mirror is only "
            f"exported from an Apache-2.0 checkout of {UPSTREAM_REPO}; check the clone"
        )
    notice = any((root / name).is_file() for name in ("NOTICE", "NOTICE.txt", "NOTICE.md"))
    return UpstreamCheckout(root, model_file, license_file, notice)


@contextlib.contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    """Let upstream's unused ``from torchvision import models`` succeed.

    model/u2net.py imports torchvision but never uses it, and PyPI's torchvision
    does not import beside the pinned CPU torch. When torchvision is missing, an
    empty stand-in is registered for the duration of the import only.
    """
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    stub = types.ModuleType("torchvision")
    stub.models = types.ModuleType("torchvision.models")  # type: ignore[attr-defined]
    sys.modules["torchvision"] = stub
    try:
        yield
    finally:
        del sys.modules["torchvision"]


def load_upstream_class(checkout: UpstreamCheckout) -> Any:
    """Import ``U2NETP`` from the checkout's ``model/u2net.py``.

    The file is loaded under a private module name and not registered in
    ``sys.modules`` (no path edits), so it cannot shadow anything.
    """
    torch = lazy.torch()
    digest = sha256_file(checkout.model_file)[:16]
    spec = importlib.util.spec_from_file_location(
        f"_vmafx_upstream_u2net_{digest}", checkout.model_file
    )
    if spec is None or spec.loader is None:
        raise UpstreamCheckoutError(f"cannot load {checkout.model_file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        with _torchvision_stand_in():
            spec.loader.exec_module(module)
    except ImportError as exc:
        # Upstream's u2net.py imports torchvision, which the export extra lacks.
        raise MissingDependencyError(
            f"{checkout.model_file} imports {exc.name or 'a module'}, which is not "
            f"installed: install it for torch {torch.__version__} (e.g. pip install "
            "torchvision), or export without --upstream-dir"
        ) from exc
    except Exception as exc:
        raise UpstreamCheckoutError(
            f"{checkout.model_file} failed to import ({type(exc).__name__}: {exc}): "
            "check the checkout"
        ) from exc
    cls = getattr(module, "U2NETP", None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise UpstreamCheckoutError(
            f"{checkout.model_file} defines no torch.nn.Module class U2NETP: "
            f"check the checkout against {UPSTREAM_REPO}"
        )
    return cls


def resolve_license(checkout: UpstreamCheckout | None, checkpoint: Path) -> Path:
    """The licence text shipped with the weights used (section 4(a) receipt)."""
    if checkout is not None:
        return checkout.license_file
    for name in LICENSE_NAMES:
        candidate = checkpoint.parent / name
        if candidate.is_file():
            if _is_apache_2(candidate.read_text(encoding="utf-8", errors="replace")):
                return candidate
            log.warning("%s is not the Apache-2.0 text; not recording it", candidate)
    if _PROJECT_LICENSE.is_file():
        return _PROJECT_LICENSE
    raise InputFileError(
        f"no Apache-2.0 licence text found beside {checkpoint} nor at {_PROJECT_LICENSE}: "
        "put the upstream LICENSE beside the checkpoint or pass --upstream-dir"
    )
