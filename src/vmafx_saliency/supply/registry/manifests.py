"""What ``registry add`` takes from the manifests that ``export`` and ``quantize`` write.

An export manifest gives an upstream mirror's source (repository, commit,
checkpoint digest); a quantize manifest gives an INT8 variant's registry fields
(its parent and the budget it was kept within). Either may give the model id.
Each is read capped, as hostile JSON, and checked against the model it is
registered with.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vmafx_saliency._json import json_loads
from vmafx_saliency._util import read_capped, sha256_file
from vmafx_saliency.errors import InputFileError, RegistryError
from vmafx_saliency.supply.registry.entries import Quantization, Source
from vmafx_saliency.supply.registry.schemas import _MAX_JSON_BYTES, _dig, _read_json

QUANTIZATION_MANIFEST_SCHEMA = "vmafx-saliency/quantization/v1"
# A manifest is a few kilobytes of JSON.
_MAX_MANIFEST_BYTES = 1 << 20
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{7,40}")


def source_from_manifest(manifest: Path) -> Source:
    """The upstream-mirror source recorded in an export manifest."""
    doc = _read_json(manifest, what="export manifest", cap=_MAX_JSON_BYTES)
    repo = _dig(doc, "upstream", "repo")
    commit = _dig(doc, "upstream", "commit")
    checkpoint = _dig(doc, "upstream", "checkpoint", "sha256")
    checks = (
        ("upstream.repo", repo, None),
        ("upstream.commit", commit, _COMMIT_RE),
        ("upstream.checkpoint.sha256", checkpoint, _SHA256_RE),
    )
    for key, value, pattern in checks:
        if not isinstance(value, str) or not value or (pattern and not pattern.fullmatch(value)):
            raise RegistryError(
                f"export manifest {manifest}: key {key} is missing or malformed ({value!r}): "
                "pass the manifest that 'vmafx-saliency export' wrote beside the ONNX"
            )
    return Source(type="upstream-mirror", repo=repo, commit=commit, checkpoint_sha256=checkpoint)


def model_id_from_manifest(manifest: Path, *, command: str = "export") -> str:
    """The ``model_id`` of the manifest ``vmafx-saliency export`` (or ``quantize``) wrote."""
    what = f"{command} manifest"
    raw = read_capped(manifest, cap=_MAX_MANIFEST_BYTES, what=what)
    try:
        model_id = json_loads(raw.decode("utf-8")).get("model_id")
    except (ValueError, AttributeError) as exc:
        raise InputFileError(
            f"{manifest}: cannot read the model id from the {what} ({exc}): "
            f"pass --id, or the manifest 'vmafx-saliency {command}' wrote"
        ) from exc
    if not isinstance(model_id, str):
        raise InputFileError(f"{manifest}: the {what} has no model_id: pass --id")
    return model_id


def quantization_from_manifest(manifest: Path, *, model: Path) -> Quantization:
    """The registry's quantisation fields from the ``vmafx-saliency quantize`` manifest of
    ``model``: refused unless it is that model's own, kept within its budget."""
    raw = read_capped(manifest, cap=_MAX_MANIFEST_BYTES, what="quantisation manifest",
                      error=RegistryError)  # fmt: skip
    try:
        doc = json_loads(raw)
        _check_quantization_manifest(doc, manifest, model)
        return Quantization(
            quant_mode=str(doc["quant_mode"]),
            parent_id=str(doc["parent"]["id"]),
            parent_sha256=str(doc["parent"]["sha256"]),
            quant_calibration_set=str(doc["calibration"]["sha256"]),
            quant_accuracy_budget_plcc=float(doc["accuracy"]["budget"]["min_pearson"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegistryError(
            f"{manifest}: not a manifest of 'vmafx-saliency quantize' ({exc!r}): pass the "
            "<model>.onnx.manifest.json it wrote"
        ) from exc


def _check_quantization_manifest(doc: Any, manifest: Path, model: Path) -> None:
    if doc.get("schema") != QUANTIZATION_MANIFEST_SCHEMA:
        raise RegistryError(
            f"{manifest}: schema {doc.get('schema')!r} is not a quantize manifest's"
        )
    if doc["output"]["sha256"] != sha256_file(model):
        raise RegistryError(
            f"{manifest} describes a model with sha256 {doc['output']['sha256']}, not {model}: "
            "pass the manifest written beside this model"
        )
    if doc["accuracy"]["within_budget"] is not True:
        raise RegistryError(f"{manifest}: the model is not within its accuracy budget")
