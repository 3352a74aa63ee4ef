"""The registry's records: entries, their sources, verification and sidecars, and findings.

A :class:`ModelEntry` is one model as a registry file pins it, every path
absolute and confined under that file's folder; its :class:`Source` says where
the model comes from and its :class:`Verification` how its Sigstore bundle is
checked. A :class:`Sidecar` is the model's own JSON, declaring its
:class:`Preprocessing` and contract. A check reports :class:`Finding` objects,
gathered per file in a :class:`ValidationReport`. These are plain frozen
records: reading and checking them is the other modules' work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vmafx_saliency._util import read_capped
from vmafx_saliency.errors import InvalidRegistryError, SidecarError
from vmafx_saliency.supply.registry.schemas import (
    _MAX_JSON_BYTES,
    SIDECAR_SCHEMA,
    _field_name,
    _parse_json,
    _schema_problems,
)


@dataclass(frozen=True)
class Source:
    """Where a model comes from. ``upstream-mirror`` has repo, commit and checkpoint sha256."""

    type: str
    repo: str | None = None
    commit: str | None = None
    checkpoint_sha256: str | None = None

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"type": self.type}
        for key, value in (
            ("repo", self.repo),
            ("commit", self.commit),
            ("checkpoint_sha256", self.checkpoint_sha256),
        ):
            if value is not None:
                doc[key] = value
        return doc


@dataclass(frozen=True)
class Verification:
    """How to verify a model's Sigstore bundle: exactly one of the three ways.

    In a loaded entry the paths are absolute, resolved against the registry's
    folder; passed to :func:`add_model` they name the files to copy.
    """

    public_key: Path | None = None
    certificate_chain: tuple[Path, ...] = ()
    identity: str | None = None
    identity_regexp: str | None = None
    oidc_issuer: str | None = None

    @property
    def kind(self) -> Literal["public_key", "certificate_chain", "identity"]:
        if self.public_key is not None:
            return "public_key"
        if self.certificate_chain:
            return "certificate_chain"
        return "identity"

    def files(self) -> tuple[Path, ...]:
        """The key or certificate files this verification reads."""
        if self.public_key is not None:
            return (self.public_key,)
        return self.certificate_chain

    def _problem(self) -> str | None:
        ways = sum(
            (
                self.public_key is not None,
                bool(self.certificate_chain),
                self.identity is not None or self.identity_regexp is not None,
            )
        )
        if ways != 1:
            return (
                "give exactly one of: a public key, a certificate chain, or an identity "
                f"(or identity regexp) with its OIDC issuer; got {ways}"
            )
        if self.kind == "identity":
            if self.identity is not None and self.identity_regexp is not None:
                return "give an identity or an identity regexp, not both"
            if not self.oidc_issuer:
                return "a keyless identity needs its OIDC issuer"
        elif self.oidc_issuer is not None:
            return "an OIDC issuer goes with an identity, not with a key or certificate chain"
        return None


@dataclass(frozen=True)
class Preprocessing:
    """How frames become the model's input (DESIGN section 3)."""

    colour_mode: str  # "luma_tile" | "rgb"
    inference_size: tuple[int, int] | None  # (H, W); None = the frame's native size
    scaling: str  # "divide_by_max" | "unit_range"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    luma_range: str  # "full" | "limited" | "auto"


@dataclass(frozen=True)
class Sidecar:
    """A model's sidecar JSON: pre-processing and the contract it declares."""

    model_id: str
    preprocessing: Preprocessing
    output_range: tuple[float, float]
    opset: int
    notes: str | None = None

    @classmethod
    def load(cls, path: Path) -> Sidecar:
        """Read and schema-check a sidecar; errors name the file and the field."""
        return cls._from_bytes(
            read_capped(path, what="sidecar", cap=_MAX_JSON_BYTES, error=SidecarError), path=path
        )

    @classmethod
    def _from_bytes(cls, data: bytes, *, path: Path) -> Sidecar:
        doc = _parse_json(data, path=path, what="sidecar", error=SidecarError)
        problems = [
            f"{_field_name(where) or 'the document'}: {message}"
            for where, message in _schema_problems("sidecar", doc)
        ]
        if problems:
            raise SidecarError(
                f"sidecar {path} does not match {SIDECAR_SCHEMA}: {'; '.join(problems)}: "
                "fix the sidecar (schema: vmafx_saliency/schemas/sidecar.schema.json)"
            )
        contract = doc["contract"]
        pre = doc["preprocessing"]
        low, high = (float(v) for v in contract["output_range"])
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise SidecarError(
                f"sidecar {path}: field contract.output_range: [{low}, {high}] is not a range "
                "(low < high, finite): the contract says [0.0, 1.0]"
            )
        size = pre["inference_size"]
        mean = tuple(float(v) for v in pre["mean"])
        std = tuple(float(v) for v in pre["std"])
        return cls(
            model_id=doc["model_id"],
            preprocessing=Preprocessing(
                colour_mode=pre["colour_mode"],
                inference_size=None if size == "native" else (int(size[0]), int(size[1])),
                scaling=pre["scaling"],
                mean=(mean[0], mean[1], mean[2]),
                std=(std[0], std[1], std[2]),
                luma_range=pre["luma_range"],
            ),
            output_range=(low, high),
            opset=int(contract["opset"]),
            notes=doc.get("notes"),
        )

    def to_json(self) -> dict[str, object]:
        """The sidecar document, as :meth:`load` reads it."""
        pre = self.preprocessing
        doc: dict[str, object] = {
            "schema": SIDECAR_SCHEMA,
            "model_id": self.model_id,
            "contract": {
                "input": {"name": "input", "dtype": "float32", "shape": [1, 3, "H", "W"]},
                "output": {"name": "saliency_map", "dtype": "float32", "shape": [1, 1, "H", "W"]},
                "opset": self.opset,
                "output_range": list(self.output_range),
            },
            "preprocessing": {
                "colour_mode": pre.colour_mode,
                "inference_size": "native"
                if pre.inference_size is None
                else list(pre.inference_size),
                "scaling": pre.scaling,
                "mean": list(pre.mean),
                "std": list(pre.std),
                "luma_range": pre.luma_range,
            },
        }
        if self.notes is not None:
            doc["notes"] = self.notes
        return doc


@dataclass(frozen=True, kw_only=True)
class Quantization:
    """How a quantised entry was made from its float parent (the fork's fields)."""

    quant_mode: str  # static | dynamic | qat
    parent_id: str
    parent_sha256: str
    quant_calibration_set: str  # sha256 of the calibration set
    quant_accuracy_budget_plcc: float

    def to_json(self) -> dict[str, object]:
        return {
            "quant_mode": self.quant_mode,
            "parent_id": self.parent_id,
            "parent_sha256": self.parent_sha256,
            "quant_calibration_set": self.quant_calibration_set,
            "quant_accuracy_budget_plcc": self.quant_accuracy_budget_plcc,
        }


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry; every path is absolute and confined under ``registry``'s folder."""

    id: str
    kind: str
    extractor: str
    onnx: Path
    sha256: str
    opset: int
    params: int
    license: str
    license_file: Path
    source: Source
    sidecar: Path
    sigstore_bundle: Path | None
    verification: Verification | None
    release_asset: bool
    status: str
    default: bool
    registry: Path  # the registry file that defines this entry
    manifest: Path | None = None  # the export manifest, when the entry names one
    sidecar_sha256: str | None = None  # the sidecar's pin; None in entries written before it
    quantization: Quantization | None = None  # a quantised variant's link to its parent

    def load_sidecar(self) -> Sidecar:
        return Sidecar.load(self.sidecar)


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    model_id: str | None
    message: str

    def render(self) -> str:
        where = f"{self.model_id}: " if self.model_id else ""
        return f"{self.level}: {where}{self.message}"


@dataclass(frozen=True)
class ValidationReport:
    path: Path
    findings: tuple[Finding, ...]
    model_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warning")

    def render(self) -> str:
        counts = (
            f"{len(self.model_ids)} model{'s' if len(self.model_ids) != 1 else ''}, "
            f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}, "
            f"{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}"
        )
        lines = [f"{self.path}: {'OK' if self.ok else 'INVALID'} ({counts})"]
        lines.extend(f"  {finding.render()}" for finding in self.findings)
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        """Raise :class:`InvalidRegistryError` naming the first error; quiet when ok."""
        if self.ok:
            return
        errors = self.errors
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidRegistryError(
            f"registry {self.path} is invalid: {errors[0].render()}{more}: "
            f"run 'vmafx-saliency registry validate {self.path}' for the full list",
            findings=self.findings,
        )
