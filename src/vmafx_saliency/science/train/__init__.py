"""Train ``saliency_student_v2`` by distillation from the u2netp mirror.

One module a step of the recipe: :mod:`.labels` (the teacher labels every image
once, into a cache), :mod:`.data` (the images, their split, the student's luma
input and its augmentation), :mod:`.loop` (Adam, cosine schedule, selection on
a held-out split, a checkpoint every epoch) with :mod:`.step`, :mod:`.losses`,
:mod:`.checkpoint` and :mod:`.init_from`, :mod:`.export` (ONNX with the mirror's
checks, manifest, sidecar) and :mod:`.run`, the whole command. :mod:`.config`
holds :class:`TrainConfig` and the one copy of the training defaults.

Every module's ``__all__`` is available from this package, imported from its
module on first use (PEP 562): importing the package costs neither numpy nor
torch, so the CLI reads :mod:`.config` without loading the training library.
"""

# The star imports are for mypy only (under TYPE_CHECKING); at run time
# __getattr__ finds each name, so ruff cannot see where __all__'s names come from.
# ruff: noqa: F403, F405

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# What mypy sees as this package's attributes: the same names as the lookup below.
if TYPE_CHECKING:
    from vmafx_saliency.science.train.checkpoint import *
    from vmafx_saliency.science.train.config import *
    from vmafx_saliency.science.train.data import *
    from vmafx_saliency.science.train.export import *
    from vmafx_saliency.science.train.init_from import *
    from vmafx_saliency.science.train.labels import *
    from vmafx_saliency.science.train.loop import *
    from vmafx_saliency.science.train.losses import *
    from vmafx_saliency.science.train.report import *
    from vmafx_saliency.science.train.run import *
    from vmafx_saliency.science.train.step import *

# Looked through in this order, the lightest first: a name of .config costs no numpy.
MODULES = (
    "config",
    "report",
    "data",
    "losses",
    "labels",
    "step",
    "checkpoint",
    "export",
    "init_from",
    "loop",
    "run",
)

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        """The name from the first of :data:`MODULES` whose ``__all__`` has it, kept here."""
        if not name.startswith("__"):  # no module offers a dunder: probes import nothing
            for module_name in MODULES:
                module = importlib.import_module(f"{__name__}.{module_name}")
                if name in module.__all__:
                    value = getattr(module, name)
                    globals()[name] = value
                    return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_IMAGES",
    "MODEL_ID",
    "STUDENT_PREPROCESSING",
    "Arrays",
    "EpochRecord",
    "LabelStats",
    "Sample",
    "StudentExport",
    "Teacher",
    "TrainConfig",
    "TrainOutcome",
    "TrainResult",
    "bt601_luma",
    "collect_samples",
    "deployment_input",
    "ensure_labels",
    "export_student",
    "load_teacher",
    "luma_plane",
    "max_f_measure",
    "run_training",
    "split_samples",
    "train_student",
]
