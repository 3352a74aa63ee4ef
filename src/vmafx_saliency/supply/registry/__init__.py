"""The model registry: pinned entries, sidecars, the operator overlay, promotion.

DESIGN section 5. Two files make one view:

* the **committed** registry, ``<project>/models/registry.json`` (tracked in git;
  ``$VMAFX_SALIENCY_COMMITTED_REGISTRY`` overrides its location, for tests);
* the **overlay**, a file in a user location (``$VMAFX_SALIENCY_REGISTRY``, else
  ``$XDG_DATA_HOME/vmafx-saliency/registry.json``), where operators add models
  without editing tracked files. A missing overlay is an empty one.

Both follow ``schemas/registry.schema.json``. Every path in an entry is relative
to the folder of the file that defines it and must stay under that folder after
symlinks are resolved, so a registry cannot point the loader at arbitrary files.
The effective default of an extractor is the overlay's default if the overlay
has one, else the committed one.

Each model has a sidecar JSON (``schemas/sidecar.schema.json``) that declares its
pre-processing, so the extractor never switches on a model's name.

Adding a model (:func:`add_model`) writes only to the overlay and never makes the
model the default; :func:`promote` makes it the default only when a comparison
report shows it is strictly better than the default it replaces. Adding and
flipping the default are never one step.

This module imports the standard library and ``jsonschema`` only: the scanner
and the contract check (numpy, ONNX Runtime) are imported when a model is
checked, so listing and looking up models works where they are not installed.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

import jsonschema

from vmafx_saliency._util import (
    PROJECT_ROOT,
    atomic_write_bytes,
    atomic_write_text,
    read_capped,
    require,
    sha256_bytes,
)
from vmafx_saliency.errors import (
    ComparisonReportError,
    InputFileError,
    InvalidRegistryError,
    NoDefaultModelError,
    PromotionRefusedError,
    RegistryError,
    SidecarError,
    SignatureError,
    UnknownModelError,
    UsageError,
)

__all__ = [
    "COMPARISON_SCHEMAS",
    "ENV_COMMITTED",
    "ENV_OVERLAY",
    "LOWER_IS_BETTER_NAMES",
    "LOWER_IS_BETTER_PREFIXES",
    "REGISTRY_SCHEMA",
    "SIDECAR_SCHEMA",
    "Comparison",
    "Finding",
    "ModelEntry",
    "Preprocessing",
    "Registry",
    "Sidecar",
    "Source",
    "ValidationReport",
    "Verification",
    "add_model",
    "committed_registry_path",
    "higher_is_better",
    "overlay_registry_path",
    "promote",
    "read_comparison_report",
    "source_from_manifest",
    "validate_registry",
]

REGISTRY_SCHEMA = "vmafx-saliency/registry/v1"
SIDECAR_SCHEMA = "vmafx-saliency/sidecar/v1"
# Report schemas whose core ({"models": [{"id", "metrics"}]}) promote can read;
# the eval command's summary.json (evaluate.SUMMARY_SCHEMA) is one.
COMPARISON_SCHEMAS = frozenset({"vmafx-saliency/comparison/v1", "vmafx-saliency/eval-summary/v1"})

ENV_OVERLAY = "VMAFX_SALIENCY_REGISTRY"
ENV_COMMITTED = "VMAFX_SALIENCY_COMMITTED_REGISTRY"

# Metric direction. Lower is better for errors and costs; every other metric
# (F-measure, S-measure, E-measure, correlation, agreement) is higher-is-better.
#   mae*            mean absolute error (mae, mae_vs_mirror, ...)
#   ms_per_image    latency
#   macs            multiply-accumulates per image
#   params          parameter count
LOWER_IS_BETTER_PREFIXES: tuple[str, ...] = ("mae",)
LOWER_IS_BETTER_NAMES: frozenset[str] = frozenset({"ms_per_image", "macs", "params"})

# Size caps checked with stat before reading: a registry, sidecar or manifest is
# a few KiB, so anything near these is the wrong file, not a big registry.
_MAX_JSON_BYTES = 4 * 1024 * 1024
_MAX_REPORT_BYTES = 64 * 1024 * 1024
# Licence texts, keys and bundles are small; the ONNX cap is the loader's.
_MAX_AUX_BYTES = 8 * 1024 * 1024
_MAX_MODEL_BYTES = 50 * 1024 * 1024

_ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{7,40}")
_DEFAULT_DOMAINS = ("", "ai.onnx")
# Paths a registry entry may hold (verification paths are handled apart).
_PATH_FIELDS = ("onnx", "license_file", "sidecar", "sigstore_bundle", "manifest")
# Shown with "add"/"promote" refusals so the user knows the next command.
_PROMOTE_HINT = "'vmafx-saliency registry promote MODEL --report REPORT --metric METRIC'"


# --- public data --------------------------------------------------------------


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


@dataclass(frozen=True)
class Comparison:
    """A candidate against the baseline on one metric, as a report states it.

    ``baseline`` is ``None`` when the extractor has no default yet: then the
    report only has to show the candidate was measured.
    """

    candidate: str
    baseline: str | None
    metric: str
    candidate_value: float
    baseline_value: float | None
    higher_is_better: bool

    @property
    def improves(self) -> bool:
        """True when the candidate is strictly better (ties do not promote)."""
        if self.baseline_value is None:
            return True
        if self.higher_is_better:
            return self.candidate_value > self.baseline_value
        return self.candidate_value < self.baseline_value

    def render(self) -> str:
        direction = "higher" if self.higher_is_better else "lower"
        if self.baseline is None:
            return (
                f"{self.metric} ({direction} is better): {self.candidate} "
                f"{self.candidate_value:.6g}; no current default to compare with"
            )
        return (
            f"{self.metric} ({direction} is better): {self.candidate} {self.candidate_value:.6g} "
            f"vs {self.baseline} {self.baseline_value:.6g}"
        )


# --- locations ------------------------------------------------------------------


def committed_registry_path() -> Path:
    """``$VMAFX_SALIENCY_COMMITTED_REGISTRY``, else ``<project root>/models/registry.json``."""
    named = os.environ.get(ENV_COMMITTED)
    if named:
        return Path(named).expanduser()
    return PROJECT_ROOT / "models" / "registry.json"


def overlay_registry_path() -> Path:
    """``$VMAFX_SALIENCY_REGISTRY``, else ``$XDG_DATA_HOME/vmafx-saliency/registry.json``."""
    named = os.environ.get(ENV_OVERLAY)
    if named:
        return Path(named).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "vmafx-saliency" / "registry.json"


def _same_file(a: Path, b: Path) -> bool:
    return a.absolute().resolve() == b.absolute().resolve()


def _root_of(registry: Path) -> Path:
    # Paths are relative to the folder the registry file is named in; resolving
    # that folder once lets confinement compare resolved paths only.
    return registry.absolute().parent.resolve()


# --- reading ----------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys silently; a second "sha256"
    # could then hide from a reviewer who reads the first.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _read_json(
    path: Path, *, what: str, cap: int, error: type[RegistryError] = RegistryError
) -> Any:
    data = read_capped(path, what=what, cap=cap, error=error)
    return _parse_json(data, path=path, what=what, error=error)


def _parse_json(
    data: bytes, *, path: Path, what: str, error: type[RegistryError] = RegistryError
) -> Any:
    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 ({exc.reason}): save it as UTF-8 JSON") from exc
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}): fix the file"
        ) from exc
    except ValueError as exc:
        raise error(f"{what} {path} is not valid JSON ({exc}): fix the file") from exc


# --- schemas ----------------------------------------------------------------------


@functools.cache
def _validator(name: str) -> Any:
    text = resources.files("vmafx_saliency").joinpath("schemas", f"{name}.schema.json")
    schema = json.loads(text.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _field_name(where: Sequence[str | int]) -> str:
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_problems(name: str, doc: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(path in the document, message) for every schema violation, in document order."""
    errors = sorted(
        _validator(name).iter_errors(doc),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    problems = []
    for err in errors:
        message = err.message if len(err.message) <= 240 else err.message[:240] + "..."
        schema = err.schema if isinstance(err.schema, dict) else {}
        # The schema's description says what a valid value looks like, which
        # the bare jsonschema message ("does not match '^[0-9a-f]{64}$'") does not.
        hint = schema.get("description")
        if hint and err.validator not in ("required", "additionalProperties"):
            message += f" (expected {hint})"
        problems.append((tuple(err.absolute_path), message))
    return problems


# --- paths ------------------------------------------------------------------------


class _PathProblem(Exception):
    pass


def _confine(root: Path, value: str, *, field: str) -> Path:
    """Resolve ``value`` under ``root``; refuse anything that could leave it."""
    where = f"{field} {value!r}"
    if "\\" in value:
        raise _PathProblem(
            f"{where} contains a backslash: write paths with forward slashes, "
            f"relative to the registry's folder {root}"
        )
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).drive:
        raise _PathProblem(
            f"{where} is an absolute path: give a path relative to the registry's folder {root} "
            "and keep the file under it"
        )
    if ".." in PurePosixPath(value).parts:
        raise _PathProblem(
            f"{where} contains '..': paths must stay under the registry's folder {root}; "
            "copy the file there ('vmafx-saliency registry add' does this)"
        )
    try:
        resolved = (root / value).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise _PathProblem(f"{where} cannot be resolved ({exc}): fix the path") from exc
    # Compare resolved paths structurally: a string prefix test would take
    # /x/models-evil/f for a file under /x/models.
    if not resolved.is_relative_to(root):
        raise _PathProblem(
            f"{where} resolves to {resolved}, outside the registry's folder {root} "
            "(through a symlink): replace the link with the file itself"
        )
    return resolved


# --- parsing a registry document ------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    path: Path
    entries: tuple[ModelEntry, ...]
    findings: tuple[Finding, ...]
    ids: tuple[str, ...]  # every string id in the file, valid entries or not


def _entry_id(raw: object) -> str | None:
    if isinstance(raw, dict):
        value = raw.get("id")
        if isinstance(value, str) and _ID_RE.fullmatch(value):
            return value
    return None


def _build_entry(raw: Mapping[str, Any], *, path: Path, root: Path) -> ModelEntry:
    """A schema-valid raw entry as a ModelEntry; raises _PathProblem(s) joined."""
    problems: list[str] = []

    def confine(value: str | None, field: str) -> Path | None:
        if value is None:
            return None
        try:
            return _confine(root, value, field=field)
        except _PathProblem as exc:
            problems.append(str(exc))
            return None

    paths = {name: confine(raw.get(name), name) for name in _PATH_FIELDS}
    verification: Verification | None = None
    ver = raw.get("verification")
    if ver is not None:
        chain = tuple(
            confine(p, f"verification.certificate_chain[{i}]")
            for i, p in enumerate(ver.get("certificate_chain", ()))
        )
        verification = Verification(
            public_key=confine(ver.get("public_key"), "verification.public_key"),
            certificate_chain=tuple(p for p in chain if p is not None),
            identity=ver.get("identity"),
            identity_regexp=ver.get("identity_regexp"),
            oidc_issuer=ver.get("oidc_issuer"),
        )
    if problems:
        raise _PathProblem("; ".join(problems))
    src = raw["source"]
    onnx, license_file, sidecar = paths["onnx"], paths["license_file"], paths["sidecar"]
    assert onnx is not None and license_file is not None and sidecar is not None  # required
    return ModelEntry(
        id=raw["id"],
        kind=raw["kind"],
        extractor=raw["extractor"],
        onnx=onnx,
        sha256=raw["sha256"],
        opset=int(raw["opset"]),
        params=int(raw["params"]),
        license=raw["license"],
        license_file=license_file,
        source=Source(
            type=src["type"],
            repo=src.get("repo"),
            commit=src.get("commit"),
            checkpoint_sha256=src.get("checkpoint_sha256"),
        ),
        sidecar=sidecar,
        sigstore_bundle=paths["sigstore_bundle"],
        verification=verification,
        release_asset=bool(raw["release_asset"]),
        status=raw["status"],
        default=bool(raw["default"]),
        registry=path,
        manifest=paths["manifest"],
    )


def _parse_document(path: Path, doc: Any, *, committed: bool) -> _Document:
    """Check a registry document's schema and rules; collect every finding."""
    findings: list[Finding] = []
    what = "committed registry" if committed else "registry"

    def error(model_id: str | None, message: str) -> None:
        findings.append(Finding("error", model_id, message))

    per_entry: dict[int, list[str]] = {}
    for where, message in _schema_problems("registry", doc):
        if len(where) >= 2 and where[0] == "models" and isinstance(where[1], int):
            field = _field_name(where[2:])
            per_entry.setdefault(where[1], []).append(
                f"{'field ' + repr(field) + ': ' if field else ''}{message}"
            )
        else:
            error(
                None,
                f"{_field_name(where) or 'the document'}: {message}: fix {path} to match "
                f"{REGISTRY_SCHEMA} (vmafx_saliency/schemas/registry.schema.json)",
            )
    raws = doc.get("models") if isinstance(doc, dict) else None
    if findings or not isinstance(raws, list):
        return _Document(path, (), tuple(findings), ())

    root = _root_of(path)
    ids = [_entry_id(raw) for raw in raws]
    valid: list[tuple[int, Mapping[str, Any]]] = []
    for index, raw in enumerate(raws):
        label = ids[index] or f"models[{index}]"
        if index in per_entry:
            for problem in per_entry[index]:
                error(
                    label,
                    f"{problem}: fix entry models[{index}] in {path} "
                    "(schema: vmafx_saliency/schemas/registry.schema.json)",
                )
        else:
            valid.append((index, raw))

    # Ids are unique within a file; a clash across files is Registry.load's.
    positions: dict[str, list[int]] = {}
    for index, model_id in enumerate(ids):
        if model_id is not None:
            positions.setdefault(model_id, []).append(index)
    for model_id, indices in positions.items():
        if len(indices) > 1:
            places = ", ".join(f"models[{i}]" for i in indices)
            error(
                model_id,
                f"id {model_id!r} appears {len(indices)} times in {path} ({places}): "
                "ids must be unique; rename or remove all but one",
            )

    # One default per extractor, and the default is in production. The
    # committed registry needs exactly one for each extractor it lists; an
    # overlay may add alternatives without a default of its own.
    by_extractor: dict[str, list[Mapping[str, Any]]] = {}
    for _, raw in valid:
        by_extractor.setdefault(raw["extractor"], []).append(raw)
    for extractor, raws_for in by_extractor.items():
        defaults = [raw for raw in raws_for if raw["default"]]
        if len(defaults) > 1:
            names = ", ".join(repr(raw["id"]) for raw in defaults)
            error(
                None,
                f"extractor {extractor!r} has {len(defaults)} defaults in {path} ({names}): "
                "keep exactly one 'default': true per extractor; change the others with "
                f"{_PROMOTE_HINT} or set them to false",
            )
        elif not defaults and committed:
            error(
                None,
                f"extractor {extractor!r} has no default in the {what} {path}: set "
                "'default': true on its production model (exactly one per extractor)",
            )
        for raw in defaults:
            if raw["status"] != "production":
                error(
                    raw["id"],
                    f"is the default for {extractor!r} but has status {raw['status']!r} in "
                    f"{path}: a default must be 'production'; use {_PROMOTE_HINT}, which sets both",
                )

    entries = []
    for index, raw in valid:
        try:
            entries.append(_build_entry(raw, path=path, root=root))
        except _PathProblem as exc:
            error(ids[index], f"{exc} (entry models[{index}] in {path})")
    return _Document(
        path,
        tuple(entries),
        tuple(findings),
        tuple(model_id for model_id in ids if model_id is not None),
    )


def _load_document(path: Path, *, committed: bool) -> _Document:
    what = "committed registry" if committed else "overlay registry"
    doc = _read_json(path, what=what, cap=_MAX_JSON_BYTES)
    parsed = _parse_document(path, doc, committed=committed)
    ValidationReport(path, parsed.findings, parsed.ids).raise_for_errors()
    return parsed


def _is_committed(path: Path) -> bool:
    return _same_file(path, committed_registry_path())


# --- the merged view -------------------------------------------------------------


class Registry:
    """The committed registry plus the overlay, as one read-only view."""

    def __init__(
        self,
        *,
        committed: Path,
        overlay: Path,
        committed_entries: Sequence[ModelEntry],
        overlay_entries: Sequence[ModelEntry],
    ) -> None:
        self.committed_path = committed
        self.overlay_path = overlay
        self._committed = tuple(committed_entries)
        self._overlay = tuple(overlay_entries)
        self._by_id = {entry.id: entry for entry in (*self._committed, *self._overlay)}

    @classmethod
    def load(cls, *, committed: Path | None = None, overlay: Path | None = None) -> Registry:
        """Load both files; ``None`` means the default location of each.

        A missing overlay is an empty overlay; a missing committed registry is
        an error (the package is not installed from a checkout).
        """
        committed_path = committed if committed is not None else committed_registry_path()
        overlay_path = overlay if overlay is not None else overlay_registry_path()
        if not committed_path.exists():
            raise RegistryError(
                f"committed registry {committed_path} does not exist: run from a checkout of "
                f"the project, or set {ENV_COMMITTED} to the path of models/registry.json"
            )
        base = _load_document(committed_path, committed=True)
        overlay_entries: tuple[ModelEntry, ...] = ()
        # Pointing the overlay at the committed file would double every entry.
        if not _same_file(overlay_path, committed_path):
            if os.path.lexists(overlay_path) and not overlay_path.exists():
                raise RegistryError(
                    f"overlay registry {overlay_path} is a broken symlink: fix the link, or "
                    f"remove it to start with an empty overlay (or set {ENV_OVERLAY})"
                )
            if overlay_path.exists():
                overlay_entries = _load_document(overlay_path, committed=False).entries
        committed_ids = {entry.id for entry in base.entries}
        clashes = sorted(e.id for e in overlay_entries if e.id in committed_ids)
        if clashes:
            raise RegistryError(
                f"model id{'s' if len(clashes) > 1 else ''} {', '.join(map(repr, clashes))} "
                f"defined in both the committed registry {committed_path} and the overlay "
                f"{overlay_path}: remove or rename the overlay's entry"
            )
        return cls(
            committed=committed_path,
            overlay=overlay_path,
            committed_entries=base.entries,
            overlay_entries=overlay_entries,
        )

    def entries(self) -> tuple[ModelEntry, ...]:
        """Committed entries first, then the overlay's, each in file order."""
        return (*self._committed, *self._overlay)

    def ids(self) -> tuple[str, ...]:
        return tuple(entry.id for entry in self.entries())

    def _files(self) -> str:
        return f"the committed registry {self.committed_path} and the overlay {self.overlay_path}"

    def get(self, model_id: str) -> ModelEntry:
        entry = self._by_id.get(model_id)
        if entry is not None:
            return entry
        known = self.ids()
        if not known:
            raise UnknownModelError(
                f"no model {model_id!r}: {self._files()} list no models: add one with "
                "'vmafx-saliency registry add'"
            )
        close = difflib.get_close_matches(model_id, known, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownModelError(
            f"no model {model_id!r} in {self._files()}{guess}; known ids: {', '.join(known)}: "
            "run 'vmafx-saliency registry list' to see them"
        )

    def default_or_none(self, extractor: str) -> ModelEntry | None:
        """The effective default: the overlay's if it has one, else the committed one."""
        for group in (self._overlay, self._committed):
            for entry in group:
                if entry.extractor == extractor and entry.default:
                    return entry
        return None

    def default_for(self, extractor: str) -> ModelEntry:
        entry = self.default_or_none(extractor)
        if entry is not None:
            return entry
        candidates = [e.id for e in self.entries() if e.extractor == extractor]
        have = (
            f"; models for it: {', '.join(candidates)}"
            if candidates
            else "; no model for it is registered"
        )
        raise NoDefaultModelError(
            f"no default model for extractor {extractor!r} in {self._files()}{have}: "
            "pass --model ID, or add a model with 'vmafx-saliency registry add' and make it "
            f"the default with {_PROMOTE_HINT}"
        )


# --- validation ---------------------------------------------------------------------


def validate_registry(path: Path, *, check_models: bool = True) -> ValidationReport:
    """Check one registry file and every file its entries name; collect all findings.

    Structure: schema, unique ids, one production default per extractor
    (exactly one in the committed registry), paths confined under the folder.
    Files: present, ONNX sha256 equal to the pin, sidecar schema-valid and
    matching the entry, licence file, declared bundle, verification keys and
    manifest. With ``check_models`` the ONNX is also scanned (op allowlist) and,
    only when the scan is clean, run through the deployment contract. A release
    asset whose binary is absent gives a warning, not an error.
    """
    try:
        doc = _read_json(path, what="registry", cap=_MAX_JSON_BYTES)
    except RegistryError as exc:
        return ValidationReport(path, (Finding("error", None, str(exc)),))
    committed = _is_committed(path)
    parsed = _parse_document(path, doc, committed=committed)
    findings = list(parsed.findings)
    if not committed and _same_file(path, overlay_registry_path()):
        findings.extend(_clashes_with_committed(parsed))
    for entry in parsed.entries:
        findings.extend(_check_entry(entry, check_models=check_models))
    return ValidationReport(path, tuple(findings), parsed.ids)


def _clashes_with_committed(overlay: _Document) -> list[Finding]:
    # Registry.load refuses an id defined in both files; say so when the
    # overlay is validated on its own, too.
    committed = committed_registry_path()
    try:
        doc = _read_json(committed, what="committed registry", cap=_MAX_JSON_BYTES)
    except RegistryError:
        return []  # the committed registry's own validation reports its problems
    ids = _parse_document(committed, doc, committed=True).ids
    return [
        Finding(
            "error",
            model_id,
            f"is also defined in the committed registry {committed}: remove or rename the "
            f"overlay's entry in {overlay.path}",
        )
        for model_id in overlay.ids
        if model_id in ids
    ]


def _check_entry(entry: ModelEntry, *, check_models: bool) -> list[Finding]:
    findings: list[Finding] = []

    def error(message: str) -> None:
        findings.append(Finding("error", entry.id, message))

    def warning(message: str) -> None:
        findings.append(Finding("warning", entry.id, message))

    fetch = "run 'vmafx-saliency export' or fetch the release asset"
    # Release assets (the ONNX, its bundle, its manifest) are not committed, so
    # their absence in a checkout is expected. Once the binary is there, its
    # bundle and manifest must be too: a half-fetched asset is an error.
    asset_absent = entry.release_asset and not entry.onnx.exists()

    def require_file(path: Path, what: str, *, asset: bool = False) -> bool:
        if path.is_file():
            return True
        if path.exists():
            error(f"{what} {path} is not a regular file: replace it with the file itself")
        elif asset and asset_absent:
            warning(f"{what} {path} is absent: {fetch}")
        else:
            error(f"{what} {path} does not exist: restore it, or fix the path in {entry.registry}")
        return False

    if require_file(entry.onnx, "model", asset=True):
        findings.extend(_check_model_file(entry, check_models=check_models))

    if require_file(entry.sidecar, "sidecar"):
        try:
            sidecar = Sidecar.load(entry.sidecar)
        except SidecarError as exc:
            error(str(exc))
        else:
            if sidecar.model_id != entry.id:
                error(
                    f"sidecar {entry.sidecar} is for model {sidecar.model_id!r}, not {entry.id!r}: "
                    "point the entry at this model's sidecar, or fix the sidecar's model_id"
                )
            if sidecar.opset != entry.opset:
                error(
                    f"sidecar {entry.sidecar} declares opset {sidecar.opset}, the entry in "
                    f"{entry.registry} says {entry.opset}: make them agree with the exported model"
                )

    require_file(entry.license_file, "licence file")
    if entry.sigstore_bundle is not None and require_file(
        entry.sigstore_bundle, "Sigstore bundle", asset=True
    ):
        why = _bundle_mismatch(entry.sigstore_bundle, entry.sha256)
        if why:
            error(f"{why}; replace the bundle with this model's ('vmafx-saliency sign')")
    if entry.verification is not None:
        for key_file in entry.verification.files():
            require_file(key_file, "verification file")
    if entry.manifest is not None and require_file(entry.manifest, "export manifest", asset=True):
        try:
            manifest = _read_json(entry.manifest, what="export manifest", cap=_MAX_JSON_BYTES)
        except RegistryError as exc:
            error(str(exc))
        else:
            pinned = _dig(manifest, "output", "sha256")
            if pinned is not None and pinned != entry.sha256:
                error(
                    f"export manifest {entry.manifest} describes sha256 {pinned}, the entry pins "
                    f"{entry.sha256}: the manifest belongs to another export; replace it"
                )

    # Signatures are checked by the loader; here only say when one cannot be.
    if entry.release_asset and entry.sigstore_bundle is None:
        warning(
            "is a release asset without a Sigstore bundle: the loader verifies release assets, "
            "so sign it ('vmafx-saliency sign') and set sigstore_bundle and verification"
        )
    if entry.sigstore_bundle is not None and entry.verification is None:
        warning(
            "declares a Sigstore bundle but no verification (public key, certificate chain or "
            f"identity): the bundle cannot be checked; add one in {entry.registry}"
        )
    return findings


def _bundle_mismatch(bundle: Path, sha256: str) -> str | None:
    """Why ``bundle`` cannot be the signature of the model pinned as ``sha256``, if it cannot.

    Only what the bundle claims is read (no keys needed); the loader verifies it.
    """
    from vmafx_saliency.supply.signing import signed_sha256

    try:
        signed = signed_sha256(bundle)
    except SignatureError as exc:
        return str(exc)
    if signed != sha256:
        return (
            f"Sigstore bundle {bundle} signs a model with sha256 {signed}, not the pinned "
            f"{sha256}: it is another model's bundle"
        )
    return None


def _check_model_file(entry: ModelEntry, *, check_models: bool) -> list[Finding]:
    try:
        data = read_capped(entry.onnx, what="model", cap=_MAX_MODEL_BYTES, error=RegistryError)
    except RegistryError as exc:
        return [Finding("error", entry.id, str(exc))]
    actual = sha256_bytes(data)
    if actual != entry.sha256:
        # Bytes other than the pinned ones are not scanned or run: they are not
        # the model the registry describes.
        return [
            Finding(
                "error",
                entry.id,
                f"model {entry.onnx} has sha256 {actual}, {entry.registry} pins {entry.sha256}: "
                "restore the pinned file, or if this file is the intended model, re-add it "
                "('vmafx-saliency registry add --force') so the pin is recomputed",
            )
        ]
    if not check_models:
        return []
    problem = _model_problem(data, source=str(entry.onnx))
    return [Finding("error", entry.id, problem)] if problem else []


def _model_problem(data: bytes, *, source: str) -> str | None:
    """Scan, then (only when clean) check the contract; None when the model passes both."""
    from vmafx_saliency.supply import scan as onnxscan

    report = onnxscan.scan_bytes(data, path=source)
    if not report.allowed:
        shown = "; ".join(f"[{v.kind}] {v.detail}" for v in report.violations[:3])
        more = len(report.violations) - 3 + report.omitted_violations
        return (
            f"model {source} fails the op-allowlist scan: {shown}"
            f"{f' (and {more} more)' if more > 0 else ''}"
        )
    try:
        from vmafx_saliency.supply import contract
    except ImportError as exc:
        return (
            f"model {source}: the contract check needs numpy and onnxruntime ({exc}): install "
            "the package's dependencies, or validate without the model checks"
        )
    from vmafx_saliency.errors import ContractError

    try:
        contract.check_contract_bytes(data, source=source)
    except ContractError as exc:
        return f"fails the deployment contract: {exc}"
    return None


def _dig(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


# --- writing ------------------------------------------------------------------------


def _refuse_on_errors(findings: Iterable[Finding], doing: str) -> None:
    errors = [f for f in findings if f.level == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidRegistryError(
            f"{doing}: {errors[0].render()}{more}; nothing was written: fix it and run the "
            "command again ('vmafx-saliency registry validate' lists every problem)",
            findings=errors,
        )


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _dump_registry(models: Iterable[Mapping[str, Any]]) -> str:
    # "schema" first for the reader; keys sorted within entries for stable diffs.
    doc = {"schema": REGISTRY_SCHEMA, "models": [_sorted(dict(m)) for m in models]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _raw_models(path: Path, *, committed: bool) -> list[dict[str, Any]]:
    """The raw entries of a registry file that passes the structural checks."""
    what = "committed registry" if committed else "overlay registry"
    doc = _read_json(path, what=what, cap=_MAX_JSON_BYTES)
    parsed = _parse_document(path, doc, committed=committed)
    ValidationReport(path, parsed.findings, parsed.ids).raise_for_errors()
    # The raw dicts, not the ModelEntry objects: edits keep every field as written.
    return [dict(raw) for raw in doc["models"]]


# --- add ----------------------------------------------------------------------------


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


def _figures_from_manifest(doc: Any, path: Path, *, sha256: str) -> tuple[int, int]:
    pinned = _dig(doc, "output", "sha256")
    if pinned is not None and pinned != sha256:
        raise RegistryError(
            f"export manifest {path} describes an ONNX with sha256 {pinned}, but the model "
            f"has {sha256}: pass the manifest written with this export"
        )
    opset, params = _dig(doc, "export", "opset"), _dig(doc, "params")
    for key, value in (("export.opset", opset), ("params", params)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RegistryError(
                f"export manifest {path}: key {key} is missing or not a count ({value!r}): "
                "pass the manifest that 'vmafx-saliency export' wrote, or leave it out to read "
                "the figures from the ONNX"
            )
    assert isinstance(opset, int) and isinstance(params, int)
    return opset, params


def _figures_from_onnx(data: bytes, *, source: str) -> tuple[int, int]:
    # Only after the scan passed: onnx's C++ parser sees checked bytes only.
    onnx = require(
        "onnx", purpose="reading the opset and parameter count of a model without a manifest"
    )
    model = onnx.load_model_from_string(data)
    opsets = [int(o.version) for o in model.opset_import if o.domain in _DEFAULT_DOMAINS]
    if not opsets:
        raise RegistryError(f"model {source} imports no default-domain opset: re-export it")
    params = sum(math.prod(int(d) for d in t.dims) for t in model.graph.initializer)
    return opsets[0], params


def _verification_raw(verification: Verification, names: Mapping[Path, str]) -> dict[str, object]:
    if verification.public_key is not None:
        return {"public_key": names[verification.public_key]}
    if verification.certificate_chain:
        return {"certificate_chain": [names[p] for p in verification.certificate_chain]}
    raw: dict[str, object] = {"oidc_issuer": verification.oidc_issuer}
    if verification.identity is not None:
        raw["identity"] = verification.identity
    else:
        raw["identity_regexp"] = verification.identity_regexp
    return raw


def add_model(
    *,
    onnx: Path,
    model_id: str,
    sidecar: Path,
    status: Literal["alternative", "candidate"] = "alternative",
    license: str,
    license_file: Path,
    source: Source,
    sigstore_bundle: Path | None = None,
    verification: Verification | None = None,
    release_asset: bool = False,
    manifest: Path | None = None,
    overlay: Path | None = None,
    force: bool = False,
) -> ModelEntry:
    """Register a model in the overlay (never the committed registry, never as default).

    The ONNX, sidecar, licence file, bundle, verification keys and manifest are
    copied into ``<overlay folder>/models/<model_id>/`` under their own names
    (a Sigstore bundle may name the file it signs), so every path of the entry
    stays under the overlay's folder. The model is scanned, contract-checked and
    its sidecar matched before anything is written; the overlay is replaced
    atomically.
    """
    if status not in ("alternative", "candidate"):
        raise RegistryError(
            f"cannot add {model_id!r} with status {status!r}: a new model enters as "
            "'alternative' or 'candidate'; make it the default later with "
            f"{_PROMOTE_HINT} and a comparison report that shows the benefit"
        )
    if not _ID_RE.fullmatch(model_id) or len(model_id) > 128:
        raise RegistryError(
            f"model id {model_id!r} is not valid: use lowercase letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    overlay_path = overlay if overlay is not None else overlay_registry_path()
    committed_path = committed_registry_path()
    if _same_file(overlay_path, committed_path):
        raise RegistryError(
            f"the overlay {overlay_path} is the committed registry: 'registry add' never edits "
            f"tracked files; set {ENV_OVERLAY} to a file outside the repository"
        )
    if committed_path.exists():
        committed_ids = _load_document(committed_path, committed=True).ids
        if model_id in committed_ids:
            raise RegistryError(
                f"model id {model_id!r} is in the committed registry {committed_path}: choose "
                "another id (an overlay cannot replace a committed model)"
            )
    existing = _raw_models(overlay_path, committed=False) if overlay_path.exists() else []
    for old in existing:
        if old["id"] != model_id:
            continue
        if not force:
            raise RegistryError(
                f"model {model_id!r} is already in the overlay {overlay_path}: pass --force "
                "(force=True) to replace it, or choose another id"
            )
        if old["default"]:
            raise RegistryError(
                f"model {model_id!r} is the overlay's default for {old['extractor']!r} in "
                f"{overlay_path}: promote another model first; replacing it would change the "
                "default and the binary in one step"
            )

    # Read every input once; checks and copies use the same bytes.
    data = read_capped(onnx, what="model", cap=_MAX_MODEL_BYTES, error=RegistryError)
    digest = sha256_bytes(data)
    problem = _model_problem(data, source=str(onnx))
    if problem:
        raise RegistryError(f"cannot add {model_id!r}: {problem}")

    sidecar_data = read_capped(sidecar, what="sidecar", cap=_MAX_JSON_BYTES, error=SidecarError)
    side = Sidecar._from_bytes(sidecar_data, path=sidecar)
    if side.model_id != model_id:
        raise RegistryError(
            f"sidecar {sidecar} is for model {side.model_id!r}, not {model_id!r}: pass this "
            "model's sidecar, or set its model_id"
        )
    manifest_data: bytes | None = None
    if manifest is not None:
        manifest_data = read_capped(
            manifest, what="export manifest", cap=_MAX_JSON_BYTES, error=RegistryError
        )
        opset, params = _figures_from_manifest(
            _parse_json(manifest_data, path=manifest, what="export manifest"),
            manifest,
            sha256=digest,
        )
    else:
        opset, params = _figures_from_onnx(data, source=str(onnx))
    if side.opset != opset:
        raise RegistryError(
            f"sidecar {sidecar} declares opset {side.opset}, the model {onnx} has opset "
            f"{opset}: fix the sidecar"
        )
    if verification is not None:
        why = verification._problem()
        if why:
            raise RegistryError(f"verification for {model_id!r}: {why}")
    if sigstore_bundle is not None:
        why = _bundle_mismatch(sigstore_bundle, digest)
        if why:
            raise RegistryError(
                f"cannot add {model_id!r}: {why}; pass the bundle that signs {onnx} "
                f"('vmafx-saliency sign {onnx} --private-key KEY')"
            )
        if verification is not None:
            _verify_before_adding(model_id, onnx, sigstore_bundle, verification, digest)

    # Destination names: the file's own name under models/<id>/.
    rel_dir = PurePosixPath("models") / model_id
    copies: dict[str, bytes] = {}
    names: dict[Path, str] = {}

    def stage(path: Path, what: str, blob: bytes | None = None, cap: int = _MAX_AUX_BYTES) -> str:
        rel = str(rel_dir / path.name)
        if rel in copies and names.get(path) != rel:
            raise RegistryError(
                f"two files to copy for {model_id!r} share the name {path.name!r} ({what} "
                f"{path}): rename one"
            )
        copies[rel] = (
            blob if blob is not None else read_capped(path, what=what, cap=cap, error=RegistryError)
        )
        names[path] = rel
        return rel

    raw: dict[str, Any] = {
        "id": model_id,
        "kind": "nr",
        "extractor": "mobilesal",
        "onnx": stage(onnx, "model", data),
        "sha256": digest,
        "opset": opset,
        "params": params,
        "license": license,
        "license_file": stage(license_file, "licence file"),
        "source": source.to_json(),
        "sidecar": stage(sidecar, "sidecar", sidecar_data),
        "sigstore_bundle": None
        if sigstore_bundle is None
        else stage(sigstore_bundle, "Sigstore bundle"),
        "verification": None,
        "release_asset": release_asset,
        "status": status,
        "default": False,
    }
    if verification is not None:
        for key_file in verification.files():
            stage(key_file, "verification file")
        raw["verification"] = _verification_raw(verification, names)
    if manifest is not None:
        raw["manifest"] = stage(manifest, "export manifest", manifest_data)

    models = [m for m in existing if m["id"] != model_id] + [raw]
    parsed = _parse_document(overlay_path, json.loads(_dump_registry(models)), committed=False)
    _refuse_on_errors(parsed.findings, f"cannot add {model_id!r} to {overlay_path}")

    root = overlay_path.absolute().parent
    for rel, blob in copies.items():
        atomic_write_bytes(root / rel, blob)
    atomic_write_text(overlay_path, _dump_registry(models))
    # The entry as parsed from the document just written: resolved, confined
    # paths, as Registry.load will return them.
    (entry,) = (e for e in parsed.entries if e.id == model_id)
    return entry


def _verify_before_adding(
    model_id: str, onnx: Path, bundle: Path, verification: Verification, sha256: str
) -> None:
    """The bundle must verify with the key or chain being registered beside it.

    Keyless (identity) verification needs the Sigstore trust root, fetched over
    the network: that is left to the loader, and only the signed digest (checked
    before this) is required of it here, so a model can be registered offline.
    """
    from vmafx_saliency.supply.signing import Verifier, verify_model

    try:
        if verification.public_key is not None:
            verifier = Verifier.from_public_key(verification.public_key)
        elif verification.certificate_chain:
            verifier = Verifier.from_certificate_chain(verification.certificate_chain)
        else:
            return
        verify_model(onnx, bundle=bundle, verifier=verifier, expected_sha256=sha256)
    except (SignatureError, UsageError, InputFileError) as exc:
        raise RegistryError(
            f"cannot add {model_id!r}: its Sigstore bundle does not verify with the "
            f"verification given ({exc})"
        ) from exc


# --- compare and promote ----------------------------------------------------------------


def higher_is_better(metric: str) -> bool:
    """Direction of a metric; see LOWER_IS_BETTER_* for the lower-is-better table."""
    name = metric.lower()
    return not (name in LOWER_IS_BETTER_NAMES or name.startswith(LOWER_IS_BETTER_PREFIXES))


def read_comparison_report(
    path: Path,
    *,
    candidate: str,
    baseline: str | None,
    metric: str,
    pins: Mapping[str, str] | None = None,
) -> Comparison:
    """The two models' values of ``metric`` in a comparison report.

    ``baseline`` ``None``: there is no default to compare with, and only the
    candidate must be in the report. ``pins`` (model id to registry sha256):
    a model the report names with another ``sha256`` was not the registered
    file (an ad-hoc path of the same name), and the report is refused.
    """
    doc = _read_json(
        path, what="comparison report", cap=_MAX_REPORT_BYTES, error=ComparisonReportError
    )
    problems = [
        f"{_field_name(where) or 'the document'}: {message}"
        for where, message in _schema_problems("comparison", doc)
    ]
    if problems:
        raise ComparisonReportError(
            f"comparison report {path} is malformed: {'; '.join(problems[:5])}: "
            "write it with the eval command"
        )
    if doc["schema"] not in COMPARISON_SCHEMAS:
        raise ComparisonReportError(
            f"comparison report {path} has schema {doc['schema']!r}; promote reads "
            f"{', '.join(sorted(COMPARISON_SCHEMAS))}: write it with the eval command"
        )
    by_id: dict[str, Mapping[str, Any]] = {}
    for model in doc["models"]:
        if model["id"] in by_id:
            raise ComparisonReportError(
                f"comparison report {path} lists model {model['id']!r} twice: "
                "keep one row per model"
            )
        by_id[model["id"]] = model["metrics"]
        pinned = (pins or {}).get(model["id"])
        measured = model.get("sha256")  # the eval command's reports give it
        if pinned is not None and isinstance(measured, str) and measured != pinned:
            raise ComparisonReportError(
                f"comparison report {path} measured {model['id']!r} with sha256 {measured}, "
                f"but the registry pins {pinned}: the report is about another file (an ad-hoc "
                f"path of that name?); evaluate the registered model, --models {model['id']}"
            )

    def value(model_id: str, role: str) -> float:
        metrics = by_id.get(model_id)
        if metrics is None:
            have = ", ".join(by_id) or "none"
            raise ComparisonReportError(
                f"comparison report {path} has no {role} model {model_id!r} (it has: {have}): "
                f"evaluate {model_id!r} and the other model in one report"
            )
        number = metrics.get(metric)
        if number is None:
            have = ", ".join(sorted(metrics)) or "none"
            raise ComparisonReportError(
                f"comparison report {path} has no metric {metric!r} for the {role} "
                f"{model_id!r} (it has: {have}): pick a metric both models were measured on"
            )
        number = float(number)
        if not math.isfinite(number):
            raise ComparisonReportError(
                f"comparison report {path}: {metric!r} of {model_id!r} is {number}, not a finite "
                "number: re-run the evaluation"
            )
        return number

    cand = value(candidate, "candidate")
    base = value(baseline, "baseline") if baseline is not None else None
    return Comparison(
        candidate=candidate,
        baseline=baseline,
        metric=metric,
        candidate_value=cand,
        baseline_value=base,
        higher_is_better=higher_is_better(metric),
    )


def _require_improvement(comparison: Comparison, report: Path) -> None:
    if comparison.improves:
        return
    direction = "higher" if comparison.higher_is_better else "lower"
    raise PromotionRefusedError(
        f"not promoting {comparison.candidate!r}: on {comparison.metric} ({direction} is "
        f"better) it scores {comparison.candidate_value:.6g} against "
        f"{comparison.baseline_value:.6g} for the default {comparison.baseline!r} in {report}; "
        "promotion needs a strictly better figure: improve the model or compare on the metric "
        "that shows its benefit"
    )


def _restore_committed_default(
    view: Registry, entry: ModelEntry, *, report: Path, metric: str
) -> Comparison:
    """Make the committed default ``entry`` the effective one again, in the overlay.

    The overlay's default for the extractor becomes an alternative, once the
    report shows ``entry`` strictly better than it on ``metric``.
    """
    overlay_path = overlay_registry_path()
    baseline = view.default_or_none(entry.extractor)
    if baseline is None or baseline.id == entry.id:
        raise PromotionRefusedError(
            f"model {entry.id!r} is already the default for {entry.extractor!r} (the "
            f"committed registry's, not overridden in {overlay_path}): nothing to promote"
        )
    comparison = read_comparison_report(
        report,
        candidate=entry.id,
        baseline=baseline.id,
        metric=metric,
        pins={entry.id: entry.sha256, baseline.id: baseline.sha256},
    )
    _require_improvement(comparison, report)
    models = _raw_models(overlay_path, committed=False)
    for raw in models:
        if raw["id"] == baseline.id:
            raw["default"], raw["status"] = False, "alternative"
    text = _dump_registry(models)
    parsed = _parse_document(overlay_path, json.loads(text), committed=False)
    _refuse_on_errors(parsed.findings, f"cannot promote {entry.id!r} in {overlay_path}")
    atomic_write_text(overlay_path, text)
    return comparison


def promote(
    model_id: str, *, report: Path, metric: str, registry: Path | None = None
) -> Comparison:
    """Make ``model_id`` the default of its extractor in the file that defines it.

    ``registry`` ``None`` edits the overlay, and refuses a model of the committed
    registry: that is a tracked file, edited only when its path is passed. The
    baseline is the default the promotion replaces, as users of that file see
    it: for the overlay, the effective default (the overlay's, else the
    committed one); for any other file, that file's own default. The candidate
    must be strictly better than the baseline on ``metric``; with no default
    yet, the report must only show the candidate's figure. On success the
    model becomes ``default: true, status: production`` and the file's previous
    default for the extractor becomes ``alternative``. The edited file is checked
    (structure, and the promoted model's files, scan and contract) before the
    atomic write, so a refusal leaves it untouched.
    """
    committed_path = committed_registry_path()
    overlay_path = overlay_registry_path()
    if registry is None:
        view = Registry.load()
        entry = view.get(model_id)
        if _same_file(entry.registry, committed_path):
            if entry.default:
                # The committed default, overridden in the overlay: promoting it back
                # means the overlay stops overriding, and no tracked file changes.
                return _restore_committed_default(view, entry, report=report, metric=metric)
            raise PromotionRefusedError(
                f"model {model_id!r} is in the committed registry {committed_path}, a tracked "
                f"file: pass its path explicitly (--registry {committed_path}) to edit it"
            )
        target = overlay_path
    else:
        target = registry
        if _same_file(target, committed_path) or _same_file(target, overlay_path):
            view = Registry.load()
        else:
            # Any other file is promoted within itself, as if it were the only one.
            doc = _load_document(target, committed=False)
            view = Registry(
                committed=target, overlay=target, committed_entries=doc.entries, overlay_entries=()
            )
        entry = view.get(model_id)
        if not _same_file(entry.registry, target):
            raise PromotionRefusedError(
                f"model {model_id!r} is defined in {entry.registry}, not in {target}: pass "
                f"--registry {entry.registry}, or leave it out for the overlay"
            )

    if _same_file(target, overlay_path) and not _same_file(target, committed_path):
        baseline = view.default_or_none(entry.extractor)
    else:
        baseline = next(
            (
                e
                for e in view.entries()
                if _same_file(e.registry, target) and e.extractor == entry.extractor and e.default
            ),
            None,
        )
    if baseline is not None and baseline.id == model_id:
        raise PromotionRefusedError(
            f"model {model_id!r} is already the default for {entry.extractor!r} in "
            f"{entry.registry}: nothing to promote"
        )
    pins = {entry.id: entry.sha256}
    if baseline is not None:
        pins[baseline.id] = baseline.sha256
    comparison = read_comparison_report(
        report,
        candidate=model_id,
        baseline=baseline.id if baseline else None,
        metric=metric,
        pins=pins,
    )
    _require_improvement(comparison, report)

    committed = _same_file(target, committed_path)
    models = _raw_models(target, committed=committed)
    for raw in models:
        if raw["id"] == model_id:
            raw["default"], raw["status"] = True, "production"
        elif raw["extractor"] == entry.extractor and raw["default"]:
            # The previous default stays available by id, as an alternative.
            raw["default"], raw["status"] = False, "alternative"
    text = _dump_registry(models)
    parsed = _parse_document(target, json.loads(text), committed=committed)
    findings = list(parsed.findings)
    for candidate in parsed.entries:
        if candidate.id == model_id:
            findings.extend(_check_entry(candidate, check_models=True))
    _refuse_on_errors(findings, f"cannot promote {model_id!r} in {target}")
    atomic_write_text(target, text)
    return comparison
