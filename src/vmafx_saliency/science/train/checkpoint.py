"""Reading a ``checkpoint.pt`` that ``train`` wrote, without running code from it.

``--resume`` and ``--init-from`` both read one, and either may be handed any
file: every way it fails to be ours is said in our words, never torch's advice
to unpickle it unsafely.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from vmafx_saliency.errors import InputFileError
from vmafx_saliency.science.train.data import require_torch


def _unreadable_reason(exc: BaseException) -> str:
    """Why torch could not read a .pt, in our words.

    torch's own text advises ``weights_only=False`` (running the file's code),
    which is the one thing not to do with a file from elsewhere, so only the
    name of a refused global is kept from it.
    """
    if isinstance(exc, EOFError):
        return "empty or cut short"
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found:
            return f"it would call {found.group(1)} when read"
        return "not a PyTorch pickle"
    if isinstance(exc, RuntimeError):
        return "truncated, or not a PyTorch zip file"
    return "not a PyTorch file"


def load_checkpoint(path: Path, *, flag: str) -> dict[str, Any]:
    """A ``checkpoint.pt`` that ``train`` wrote, read without running code from it.

    A .pt file is a pickle, and unpickling one runs whatever callables it names;
    ours hold only tensors, numbers, strings and containers, so ``weights_only``
    loading reads them all and refuses anything else (an ``--init-from`` may be
    a file from elsewhere). ``flag`` names the option that gave the path.
    """
    # The hint names what the user can do from the option that gave the path.
    if flag.startswith("--resume"):
        hint = "start afresh without --resume, or with another --out"
    else:
        hint = "give a run's checkpoint.pt or a student ONNX"
    torch = require_torch()  # outside the try: a missing torch is its own, named error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        # Unreadable is not unparseable: the checkpoint may be fine.
        raise InputFileError(
            f"{flag} {path}: cannot be read ({exc.strerror or exc}): check its permissions"
        ) from exc
    except Exception as exc:
        # Any file may be given, and every way it fails to parse (a text file gives
        # KeyError, a zip of other things RuntimeError) is one answer: not ours.
        raise InputFileError(
            f"{flag} {path}: not a checkpoint that `vmafx-saliency train` wrote "
            f"({_unreadable_reason(exc)}); {hint}"
        ) from exc
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise InputFileError(
            f"{flag} {path}: a PyTorch file without a training config, not a checkpoint that "
            f"`vmafx-saliency train` wrote; {hint}"
        )
    return state


__all__ = [
    "load_checkpoint",
]
