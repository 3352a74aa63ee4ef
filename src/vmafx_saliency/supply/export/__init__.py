"""Upstream u2netp checkpoint -> ``u2netp_mirror_v1`` ONNX model + manifest.

The export is an export plus a check: the graph is written only after
``onnx.checker`` accepts it and ONNX Runtime reproduces PyTorch's fused map
``d0`` on real images at three sizes (one of them odd) within
:data:`PARITY_TOLERANCE`. Both outputs are written atomically at the end, so a
failed run leaves nothing behind, and they are byte-identical across runs with
the same inputs (no timestamps, no absolute paths).

torch, onnx and Pillow are imported lazily (the ``export`` extra, see
:mod:`.lazy`), so this package imports without them. Its modules:
:mod:`.checkpoints` (state_dict loading), :mod:`.upstream` (the audited
upstream checkout), :mod:`.images` (pre-processing and the parity inputs),
:mod:`.onnx` (export to bytes, op counts, the parity check) and :mod:`.mirror`
(:func:`export_mirror` and its manifest). The helpers
:func:`export_onnx_bytes`, :func:`parity_check`, :func:`load_state_dict_file`,
:func:`count_ops` and :func:`preprocess_upstream` are meant for reuse (the
student export).
"""

from __future__ import annotations

from vmafx_saliency.supply.export.checkpoints import load_state_dict_file, load_state_dict_into
from vmafx_saliency.supply.export.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PARITY_SIZES,
    ParityInput,
    preprocess_upstream,
    synthetic_image,
)
from vmafx_saliency.supply.export.mirror import (
    ATTRIBUTION,
    CHANGES_STATEMENT,
    EXPORTER,
    LICENSE_SPDX,
    MANIFEST_SCHEMA,
    METADATA_KEYS,
    MODEL_ID,
    PARITY_TOLERANCE,
    PRODUCER_NAME,
    SELECTED_OUTPUT,
    ExportResult,
    export_mirror,
)
from vmafx_saliency.supply.export.onnx import (
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    ParityFigure,
    count_ops,
    export_onnx_bytes,
    parity_check,
)
from vmafx_saliency.supply.export.upstream import (
    DEFAULT_COMMIT,
    UPSTREAM_CHECKPOINT,
    UPSTREAM_MODEL_FILE,
    UPSTREAM_REPO,
    UpstreamCheckout,
    audit_upstream_checkout,
    load_upstream_class,
)

__all__ = [
    "ATTRIBUTION",
    "CHANGES_STATEMENT",
    "DEFAULT_COMMIT",
    "EXPORTER",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_NAME",
    "LICENSE_SPDX",
    "MANIFEST_SCHEMA",
    "METADATA_KEYS",
    "MODEL_ID",
    "OPSET",
    "OUTPUT_NAME",
    "PARITY_SIZES",
    "PARITY_TOLERANCE",
    "PRODUCER_NAME",
    "SELECTED_OUTPUT",
    "UPSTREAM_CHECKPOINT",
    "UPSTREAM_MODEL_FILE",
    "UPSTREAM_REPO",
    "ExportResult",
    "ParityFigure",
    "ParityInput",
    "UpstreamCheckout",
    "audit_upstream_checkout",
    "count_ops",
    "export_mirror",
    "export_onnx_bytes",
    "load_state_dict_file",
    "load_state_dict_into",
    "load_upstream_class",
    "parity_check",
    "preprocess_upstream",
    "synthetic_image",
]
