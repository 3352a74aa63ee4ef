"""Checkpoints: a PyTorch ``state_dict`` read safely and loaded into a net, mismatches named.

Only ``torch.load(..., weights_only=True)`` is used, so a checkpoint cannot run
code. Wrapped state_dicts (``{"state_dict": ...}``, DataParallel's
``module.`` prefixes) are unwrapped; a key or shape mismatch with U2NETP(3, 1)
is a :class:`~vmafx_saliency.errors.CheckpointError` naming the first key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vmafx_saliency.errors import CheckpointError, InputFileError
from vmafx_saliency.supply.export import lazy
from vmafx_saliency.supply.export.upstream import UPSTREAM_CHECKPOINT

log = logging.getLogger(__name__)


def load_state_dict_file(path: Path) -> dict[str, Any]:
    """Read a checkpoint as a flat ``state_dict``.

    Accepts a plain state_dict, ``{"state_dict": ...}`` and DataParallel
    ``module.`` prefixes. Only ``torch.load(..., weights_only=True)`` is used, so
    a checkpoint cannot run code.
    """
    torch = lazy.torch()
    if not path.is_file():
        raise InputFileError(
            f"checkpoint {path} not found or not a file: pass --checkpoint with the path "
            f"of u2netp.pth (or --upstream-dir with a checkout holding {UPSTREAM_CHECKPOINT})"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint with weights_only=True "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
            "pass a state_dict saved with torch.save(model.state_dict(), ...)"
        ) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a non-empty state_dict: "
            "pass a state_dict (or {'state_dict': ...}) saved with torch.save"
        )
    state: dict[str, Any] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor: "
                "pass a plain state_dict of tensors"
            )
        state[key] = value
    # DataParallel / DistributedDataParallel save every key under "module.".
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def load_state_dict_into(
    module: Any, state: Mapping[str, Any], *, strict: bool = True, source: str = "checkpoint"
) -> tuple[list[str], list[str]]:
    """Load ``state`` into ``module``; return the (missing, unexpected) keys.

    With ``strict`` any mismatch raises :class:`CheckpointError` naming the
    first missing and the first unexpected key; without it the common keys are
    loaded and the mismatch is logged.
    """
    expected = list(module.state_dict())
    expected_set = set(expected)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected_set]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), first {unexpected[0]!r}")
        summary = "; ".join(parts)
        if strict:
            raise CheckpointError(
                f"{source} does not match the U2NETP(3, 1) layout: {summary}: pass the "
                "upstream u2netp.pth (not u2net.pth), or --non-strict to load the common keys"
            )
        log.warning("%s: loading non-strictly: %s", source, summary)
    try:
        module.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:
        # Shape mismatches raise even with strict=False.
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"{source} has tensors of the wrong shape for U2NETP(3, 1) ({first}): "
            "pass the upstream u2netp.pth"
        ) from exc
    return missing, unexpected
