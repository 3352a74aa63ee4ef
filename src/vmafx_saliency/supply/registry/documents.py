"""One registry file as a document: its paths confined, its rules checked, its entries built.

Both registry files follow ``schemas/registry.schema.json``. Parsing a document
collects every finding instead of stopping at the first: the schema, unique
ids, one production default per extractor (exactly one in the committed
registry), and every path relative to the file's folder and still under it
after symlinks are resolved, so a registry cannot point the loader at
arbitrary files. Writing goes the other way: entries dumped with sorted keys
for stable diffs, and refused before any byte is written when the edited
document would not parse cleanly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from vmafx_saliency.errors import InvalidRegistryError
from vmafx_saliency.supply.registry.entries import (
    Finding,
    ModelEntry,
    Quantization,
    Source,
    ValidationReport,
    Verification,
)
from vmafx_saliency.supply.registry.locations import _root_of
from vmafx_saliency.supply.registry.schemas import (
    _MAX_JSON_BYTES,
    REGISTRY_SCHEMA,
    _field_name,
    _read_json,
    _schema_problems,
)

_ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
# Paths a registry entry may hold (verification paths are handled apart).
_PATH_FIELDS = ("onnx", "license_file", "sidecar", "sigstore_bundle", "manifest")
# Shown with "add"/"promote" refusals so the user knows the next command.
_PROMOTE_HINT = "'vmafx-saliency registry promote MODEL --report REPORT --metric METRIC'"


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


def is_model_id(text: str) -> bool:
    """A registry id: lowercase letters, digits, '_', '.', '-', from a letter or digit,
    at most 128 characters (the registry schema's pattern)."""
    return bool(_ID_RE.fullmatch(text)) and len(text) <= 128


MODEL_ID_RULE = "use lowercase letters, digits, '_', '.', '-', starting with a letter or digit"


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
        sidecar_sha256=raw.get("sidecar_sha256"),
        quantization=Quantization(**raw["quantization"]) if raw.get("quantization") else None,
    )


def _parse_document(path: Path, doc: Any, *, committed: bool) -> _Document:
    """Check a registry document's schema and rules; collect every finding."""
    findings, per_entry = _schema_findings(path, doc)
    raws = doc.get("models") if isinstance(doc, dict) else None
    if findings or not isinstance(raws, list):
        return _Document(path, (), tuple(findings), ())

    root = _root_of(path)
    ids = [_entry_id(raw) for raw in raws]
    findings.extend(_entry_schema_findings(path, ids, per_entry))
    # Only entries that match the schema are checked further and built.
    valid = [(index, raw) for index, raw in enumerate(raws) if index not in per_entry]
    findings.extend(_duplicate_id_findings(path, ids))
    findings.extend(_default_findings(path, [raw for _, raw in valid], committed=committed))

    entries = []
    for index, raw in valid:
        try:
            entries.append(_build_entry(raw, path=path, root=root))
        except _PathProblem as exc:
            findings.append(
                Finding("error", ids[index], f"{exc} (entry models[{index}] in {path})")
            )
    return _Document(
        path,
        tuple(entries),
        tuple(findings),
        tuple(model_id for model_id in ids if model_id is not None),
    )


def _schema_findings(path: Path, doc: Any) -> tuple[list[Finding], dict[int, list[str]]]:
    """The schema's findings about the document itself, and its problems per entry index.

    An entry's problems become findings in :func:`_entry_schema_findings`, once
    the entry's label (its id, when it has a valid one) is known.
    """
    findings: list[Finding] = []
    per_entry: dict[int, list[str]] = {}
    for where, message in _schema_problems("registry", doc):
        if len(where) >= 2 and where[0] == "models" and isinstance(where[1], int):
            field = _field_name(where[2:])
            per_entry.setdefault(where[1], []).append(
                f"{'field ' + repr(field) + ': ' if field else ''}{message}"
            )
        else:
            findings.append(
                Finding(
                    "error",
                    None,
                    f"{_field_name(where) or 'the document'}: {message}: fix {path} to match "
                    f"{REGISTRY_SCHEMA} (vmafx_saliency/schemas/registry.schema.json)",
                )
            )
    return findings, per_entry


def _entry_schema_findings(
    path: Path, ids: Sequence[str | None], per_entry: Mapping[int, Sequence[str]]
) -> list[Finding]:
    """One finding per schema problem of an entry, in entry order, labelled by its id."""
    return [
        Finding(
            "error",
            ids[index] or f"models[{index}]",
            f"{problem}: fix entry models[{index}] in {path} "
            "(schema: vmafx_saliency/schemas/registry.schema.json)",
        )
        for index in range(len(ids))
        for problem in per_entry.get(index, ())
    ]


def _duplicate_id_findings(path: Path, ids: Sequence[str | None]) -> list[Finding]:
    # Ids are unique within a file; a clash across files is Registry.load's.
    positions: dict[str, list[int]] = {}
    for index, model_id in enumerate(ids):
        if model_id is not None:
            positions.setdefault(model_id, []).append(index)
    findings = []
    for model_id, indices in positions.items():
        if len(indices) > 1:
            places = ", ".join(f"models[{i}]" for i in indices)
            findings.append(
                Finding(
                    "error",
                    model_id,
                    f"id {model_id!r} appears {len(indices)} times in {path} ({places}): "
                    "ids must be unique; rename or remove all but one",
                )
            )
    return findings


def _default_findings(
    path: Path, raws: Sequence[Mapping[str, Any]], *, committed: bool
) -> list[Finding]:
    """One default per extractor, and the default is in production.

    The committed registry needs exactly one for each extractor it lists; an
    overlay may add alternatives without a default of its own.
    """
    what = "committed registry" if committed else "registry"
    findings = []
    by_extractor: dict[str, list[Mapping[str, Any]]] = {}
    for raw in raws:
        by_extractor.setdefault(raw["extractor"], []).append(raw)
    for extractor, raws_for in by_extractor.items():
        defaults = [raw for raw in raws_for if raw["default"]]
        if len(defaults) > 1:
            names = ", ".join(repr(raw["id"]) for raw in defaults)
            findings.append(
                Finding(
                    "error",
                    None,
                    f"extractor {extractor!r} has {len(defaults)} defaults in {path} ({names}): "
                    "keep exactly one 'default': true per extractor; change the others with "
                    f"{_PROMOTE_HINT} or set them to false",
                )
            )
        elif not defaults and committed:
            findings.append(
                Finding(
                    "error",
                    None,
                    f"extractor {extractor!r} has no default in the {what} {path}: set "
                    "'default': true on its production model (exactly one per extractor)",
                )
            )
        findings.extend(
            Finding(
                "error",
                raw["id"],
                f"is the default for {extractor!r} but has status {raw['status']!r} in "
                f"{path}: a default must be 'production'; use {_PROMOTE_HINT}, which sets both",
            )
            for raw in defaults
            if raw["status"] != "production"
        )
    return findings


def _load_document(path: Path, *, committed: bool) -> _Document:
    what = "committed registry" if committed else "overlay registry"
    doc = _read_json(path, what=what, cap=_MAX_JSON_BYTES)
    parsed = _parse_document(path, doc, committed=committed)
    ValidationReport(path, parsed.findings, parsed.ids).raise_for_errors()
    return parsed


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
