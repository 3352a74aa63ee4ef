"""Reading the registry's JSON files strictly and checking them against their schemas.

Registries, sidecars, export manifests and comparison reports are read with a
size cap checked before any byte, decoded as UTF-8 and parsed so that a
duplicate key or a ``NaN``/``Infinity`` constant is an error rather than a
silent last-one-wins or a non-finite number. The JSON schemas themselves live
in ``vmafx_saliency/schemas/``; :func:`_schema_problems` lists every violation
with the field it is in and what a valid value looks like.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmafx_saliency import schemas
from vmafx_saliency._json import json_loads
from vmafx_saliency._util import read_capped
from vmafx_saliency.errors import RegistryError

REGISTRY_SCHEMA = "vmafx-saliency/registry/v1"
SIDECAR_SCHEMA = "vmafx-saliency/sidecar/v1"

# Size cap checked with stat before reading: a registry, sidecar or manifest is
# a few KiB, so anything near this is the wrong file, not a big registry.
_MAX_JSON_BYTES = 4 * 1024 * 1024


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
        return json_loads(
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


def _field_name(where: Sequence[str | int]) -> str:
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_problems(name: str, doc: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(path in the document, message) for every schema violation, in document order."""
    errors = sorted(
        schemas.validator(name).iter_errors(doc),
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


def _dig(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc
