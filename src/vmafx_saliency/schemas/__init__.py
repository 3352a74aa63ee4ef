"""The JSON Schemas of the documents the product writes and reads, and their validators.

``registry``, ``sidecar``, ``eval-summary``, ``comparison``, ``features`` (the
extractor's JSON output, described in ``docs/output.md``) and ``export-manifest``
(what ``export`` and ``train`` write beside a model): each is package data,
``<name>.schema.json`` beside this module, so a pipeline can validate against
the very file the product checks with (:func:`path`).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["NAMES", "path", "problems", "schema", "validator"]

NAMES = ("registry", "sidecar", "eval-summary", "comparison", "features", "export-manifest")


def path(name: str) -> Path:
    """The schema file ``name`` (one of :data:`NAMES`), as installed."""
    if name not in NAMES:
        raise ValueError(f"no schema {name!r}: use one of {', '.join(NAMES)}")
    return Path(str(resources.files(__name__).joinpath(f"{name}.schema.json")))


@functools.cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path(name).read_text(encoding="utf-8"))
    return loaded


@functools.cache
def validator(name: str) -> Any:
    """A Draft 2020-12 validator of the schema (jsonschema imported when first needed)."""
    import jsonschema

    return jsonschema.Draft202012Validator(schema(name))


def problems(name: str, doc: Any, *, limit: int = 200) -> list[str]:
    """``"where: what"`` for every violation of the schema, in document order."""
    errors = sorted(
        validator(name).iter_errors(doc),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or 'document'}: {err.message[:limit]}"
        for err in errors
    ]
