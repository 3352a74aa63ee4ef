"""``summary.json``: what an eval run found and how, and the schema it must meet.

Its core ``{"schema", "models": [{"id", "metrics"}]}`` is what ``registry promote``
reads; the rest (dataset, protocol, conventions, versions, curves) says how the
figures were made.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vmafx_saliency.science.evaluate.metrics import Curves, Distribution
from vmafx_saliency.science.evaluate.protocols import PROTOCOL_TEXT

SUMMARY_SCHEMA = "vmafx-saliency/eval-summary/v1"


@dataclass(frozen=True)
class DatasetInfo:
    path: str
    name: str
    count: int  # pairs evaluated
    pairs: int  # pairs in the folder
    limit: int | None
    grey_masks: int  # masks with values other than 0 and 255
    empty_masks: int  # masks with no salient pixel after binarisation
    pixels_at_threshold_plus_one: int  # mask pixels equal to gt_threshold + 1 (> 127 vs > 128)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # the fields, in their order

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DatasetInfo:
        return cls(
            path=str(doc["path"]),
            name=str(doc["name"]),
            count=int(doc["count"]),
            pairs=int(doc["pairs"]),
            limit=None if doc["limit"] is None else int(doc["limit"]),
            grey_masks=int(doc["grey_masks"]),
            empty_masks=int(doc["empty_masks"]),
            pixels_at_threshold_plus_one=int(doc["pixels_at_threshold_plus_one"]),
        )


@dataclass(frozen=True)
class ModelResult:
    id: str
    source: str  # "registry" | "ad-hoc"
    path: str
    sha256: str
    inference_size: tuple[int, int] | None  # (H, W); None: each image's own size
    metrics: Mapping[str, float | None]
    mean_saliency: Distribution
    curves: Curves
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "path": self.path,
            "sha256": self.sha256,
            "inference_size": None if self.inference_size is None else list(self.inference_size),
            "metrics": dict(self.metrics),
            "mean_saliency": self.mean_saliency.to_json(),
            "curves": self.curves.to_json(),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ModelResult:
        size = doc["inference_size"]
        return cls(
            id=str(doc["id"]),
            source=str(doc["source"]),
            path=str(doc["path"]),
            sha256=str(doc["sha256"]),
            inference_size=None if size is None else (int(size[0]), int(size[1])),
            metrics={k: None if v is None else float(v) for k, v in doc["metrics"].items()},
            mean_saliency=Distribution.from_json(doc["mean_saliency"]),
            curves=Curves.from_json(doc["curves"]),
            notes=tuple(str(n) for n in doc.get("notes", ())),
        )


@dataclass(frozen=True)
class EvalSummary:
    """``summary.json``: its core ``{"schema", "models": [{"id", "metrics"}]}`` is what
    ``registry promote`` reads; the rest says how the figures were made."""

    tool: str
    command: str
    dataset: DatasetInfo
    protocol: str
    gt_threshold: int
    conventions: Mapping[str, str]
    versions: Mapping[str, str]
    models: tuple[ModelResult, ...]
    schema: str = SUMMARY_SCHEMA

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "tool": self.tool,
            "command": self.command,
            "dataset": self.dataset.to_json(),
            "protocol": {"name": self.protocol, "description": PROTOCOL_TEXT[self.protocol]},
            "gt_threshold": self.gt_threshold,
            "conventions": dict(self.conventions),
            "versions": dict(self.versions),
            "models": [m.to_json() for m in self.models],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EvalSummary:
        return cls(
            schema=str(doc["schema"]),
            tool=str(doc["tool"]),
            command=str(doc["command"]),
            dataset=DatasetInfo.from_json(doc["dataset"]),
            protocol=str(doc["protocol"]["name"]),
            gt_threshold=int(doc["gt_threshold"]),
            conventions={str(k): str(v) for k, v in doc["conventions"].items()},
            versions={str(k): str(v) for k, v in doc["versions"].items()},
            models=tuple(ModelResult.from_json(m) for m in doc["models"]),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"


def validate_summary(doc: Any) -> list[str]:
    """Problems of a summary document against ``schemas/eval-summary.schema.json``."""
    from vmafx_saliency import schemas

    return schemas.problems("eval-summary", doc, limit=10_000)


def _versions() -> dict[str, str]:
    from importlib import metadata

    from vmafx_saliency import __version__

    out = {"python": sys.version.split()[0], "vmafx-saliency": __version__}
    for dist in ("numpy", "onnxruntime", "onnx", "pysodmetrics", "scipy", "pillow", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
