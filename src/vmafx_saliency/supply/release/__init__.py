"""Release assets: stage a model's publishable files and verify a staged folder.

:func:`stage` (in :mod:`.staging`) collects a registered model's ONNX, Sigstore
bundle, sidecar, export manifest, licence file and model card with a
``release.json`` and a ``SHA256SUMS`` into one folder, signed as a whole with a
:class:`ReleaseSigner`; :func:`verify` (in :mod:`.verification`)
checks such a folder, one verdict line per asset. :mod:`.folder` names and reads
the two files that describe a staged folder.
"""

from __future__ import annotations

from vmafx_saliency.supply.release.folder import RELEASE_BUNDLE, RELEASE_JSON, RELEASE_SCHEMA, SUMS
from vmafx_saliency.supply.release.staging import (
    CARDS,
    ReleaseSigner,
    StageResult,
    card_for,
    stage,
)
from vmafx_saliency.supply.release.verification import Verdict, VerifyResult, verify

__all__ = [
    "CARDS",
    "RELEASE_BUNDLE",
    "RELEASE_JSON",
    "RELEASE_SCHEMA",
    "SUMS",
    "ReleaseSigner",
    "StageResult",
    "Verdict",
    "VerifyResult",
    "card_for",
    "stage",
    "verify",
]
