"""Strict JSON and the schemas: valid Draft 2020-12 schemas, duplicate keys refused."""

from __future__ import annotations

import json
from pathlib import Path

from tests._trust import ROOT
from vmafx_saliency.supply import registry as reg


def test_schemas_are_valid_draft_2020_12() -> None:
    import jsonschema

    from vmafx_saliency import schemas

    folder = ROOT / "src" / "vmafx_saliency" / "schemas"
    assert sorted(schemas.NAMES) == sorted(p.name[:-12] for p in folder.glob("*.schema.json"))
    for name in schemas.NAMES:
        path = folder / f"{name}.schema.json"
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text('{"schema": "vmafx-saliency/registry/v1", "models": [], "models": []}')
    report = reg.validate_registry(path)
    assert not report.ok
    assert "duplicate key 'models'" in report.render()


def test_the_export_manifest_id_is_the_schema_files() -> None:
    from vmafx_saliency import schemas
    from vmafx_saliency.supply.export import MANIFEST_SCHEMA

    assert schemas.schema("export-manifest")["properties"]["schema"]["const"] == MANIFEST_SCHEMA
