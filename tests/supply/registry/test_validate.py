"""Validating a registry: schema, rules, confinement, and the files each entry names."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._onnx_models import conv_sigmoid_model
from tests._trust import (
    COMMITTED,
    TINY,
    Json,
    custom_domain_model,
    write_json,
    write_model,
    write_registry,
)
from vmafx_saliency._util import sha256_bytes
from vmafx_saliency.errors import InvalidRegistryError
from vmafx_saliency.supply import registry as reg

# The builders live in tests/_trust.py, shared with the loader, release and CLI tests.


def text_of(report: reg.ValidationReport) -> str:
    return report.render()


def test_committed_registry_is_valid() -> None:
    report = reg.validate_registry(COMMITTED)
    assert report.ok, report.render()
    assert report.findings == ()


# --- broken variants ----------------------------------------------------------------

Mutation = Callable[[Path, list[Json]], None]


def _set(key: str, value: object) -> Mutation:
    def mutate(folder: Path, entries: list[Json]) -> None:
        entries[0][key] = value

    return mutate


def _del(key: str) -> Mutation:
    def mutate(folder: Path, entries: list[Json]) -> None:
        del entries[0][key]

    return mutate


def _second(**fields: object) -> Mutation:
    def mutate(folder: Path, entries: list[Json]) -> None:
        entry = write_model(folder, "other", default=False, status="alternative")
        entry.update(fields)
        entries.append(entry)

    return mutate


def _absolute(folder: Path, entries: list[Json]) -> None:
    entries[0]["onnx"] = str(folder / "tiny" / "model.onnx")


def _symlink_escape(folder: Path, entries: list[Json]) -> None:
    outside = folder.parent / "outside"
    outside.mkdir()
    (outside / "model.onnx").write_bytes(TINY)
    (folder / "tiny" / "link.onnx").symlink_to(outside / "model.onnx")
    entries[0]["onnx"] = "tiny/link.onnx"


def _sibling_prefix(folder: Path, entries: list[Json]) -> None:
    # reg/sub -> ../reg-evil: a string-prefix test would take reg-evil/... as under reg.
    evil = folder.parent / f"{folder.name}-evil"
    evil.mkdir()
    (evil / "model.onnx").write_bytes(TINY)
    (folder / "sub").symlink_to(Path("..") / evil.name)
    entries[0]["onnx"] = "sub/model.onnx"


def _remove(rel: str) -> Mutation:
    def mutate(folder: Path, entries: list[Json]) -> None:
        (folder / rel).unlink()

    return mutate


def _edit_sidecar(change: Callable[[Json], None]) -> Mutation:
    def mutate(folder: Path, entries: list[Json]) -> None:
        path = folder / "tiny" / "sidecar.json"
        doc = json.loads(path.read_text())
        change(doc)
        write_json(path, doc)

    return mutate


def _model(data: bytes) -> Mutation:
    def mutate(folder: Path, entries: list[Json]) -> None:
        (folder / "tiny" / "model.onnx").write_bytes(data)
        entries[0]["sha256"] = sha256_bytes(data)

    return mutate


def _bundle(folder: Path, entries: list[Json]) -> None:
    entries[0]["sigstore_bundle"] = "tiny/model.onnx.sigstore.json"
    entries[0]["verification"] = {"public_key": "tiny/key.pub"}
    (folder / "tiny" / "key.pub").write_text("key\n")


def _modify(**changes: Any) -> Callable[[Json], None]:
    def change(doc: Json) -> None:
        for dotted, value in changes.items():
            *parents, last = dotted.split("__")
            target = doc
            for part in parents:
                target = target[part]
            target[last] = value

    return change


BROKEN: list[tuple[str, Mutation, str]] = [
    ("missing-field", _del("sha256"), r"'sha256' is a required property"),
    (
        "sha256-upper-case",
        _set("sha256", "ABC" + "0" * 61),
        r"field 'sha256': 'ABC0+' does not match .*lowercase hex",
    ),
    ("bad-status", _set("status", "beta"), r"field 'status': 'beta' is not one of"),
    (
        "mirror-without-commit",
        _set("source", {"type": "upstream-mirror", "repo": "r", "checkpoint_sha256": "a" * 64}),
        r"field 'source': 'commit' is a required property",
    ),
    ("bad-verification", _set("verification", {"public_key": 3}), r"field 'verification'"),
    ("duplicate-id", _second(id="tiny"), r"id 'tiny' appears 2 times .*models\[0\], models\[1\]"),
    (
        "two-defaults",
        _second(default=True, status="production"),
        r"extractor 'mobilesal' has 2 defaults .*'tiny', 'other'",
    ),
    (
        "default-not-production",
        _set("status", "candidate"),
        r"tiny: is the default for 'mobilesal' but has status 'candidate'.*must be 'production'",
    ),
    ("absolute-path", _absolute, r"onnx '/.*' is an absolute path"),
    (
        "dotdot-escape",
        _set("onnx", "../outside/model.onnx"),
        r"onnx '\.\./outside.*' contains '\.\.'",
    ),
    ("backslash", _set("onnx", r"tiny\model.onnx"), r"contains a backslash"),
    ("symlink-escape", _symlink_escape, r"resolves to .*outside.*outside the registry's folder"),
    ("sibling-prefix", _sibling_prefix, r"resolves to .*reg-evil.*outside the registry's folder"),
    (
        "missing-onnx",
        _remove("tiny/model.onnx"),
        r"error: tiny: model .*model\.onnx does not exist",
    ),
    ("sha256-mismatch", _set("sha256", "0" * 64), r"has sha256 [0-9a-f]{64}, .* pins 0{64}"),
    ("missing-sidecar", _remove("tiny/sidecar.json"), r"sidecar .*sidecar\.json does not exist"),
    (
        "sidecar-model-id",
        _edit_sidecar(_modify(model_id="other")),
        r"sidecar .* is for model 'other', not 'tiny'",
    ),
    (
        "sidecar-schema",
        _edit_sidecar(_modify(preprocessing__scaling="bogus")),
        r"sidecar .*: preprocessing\.scaling: 'bogus' is not one of",
    ),
    (
        "sidecar-opset",
        _edit_sidecar(_modify(contract__opset=18)),
        r"declares opset 18, the entry .* says 17",
    ),
    ("missing-licence", _remove("tiny/LICENSE.txt"), r"licence file .*LICENSE\.txt does not exist"),
    ("missing-bundle", _bundle, r"Sigstore bundle .*sigstore\.json does not exist"),
    (
        "scan-fails",
        _model(custom_domain_model()),
        r"fails the op-allowlist scan: \[custom-domain\]",
    ),
    (
        "contract-fails",
        _model(conv_sigmoid_model(output_name="d0")),
        r"fails the deployment contract: .*output is named 'd0'",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_registry_is_refused(tmp_path: Path, mutate: Mutation, message: str) -> None:
    folder = tmp_path / "reg"
    entries = [write_model(folder, "tiny")]
    mutate(folder, entries)
    path = write_registry(folder / "registry.json", entries)
    report = reg.validate_registry(path)
    assert not report.ok
    assert any(f.level == "error" for f in report.findings)
    text = text_of(report)
    assert "INVALID" in text
    assert re.search(message, text), text
    with pytest.raises(InvalidRegistryError, match=r"is invalid: .*registry validate"):
        report.raise_for_errors()


def test_all_findings_are_collected(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    entries = [write_model(folder, "tiny")]
    entries[0]["sha256"] = "0" * 64
    (folder / "tiny" / "LICENSE.txt").unlink()
    (folder / "tiny" / "sidecar.json").unlink()
    report = reg.validate_registry(write_registry(folder / "registry.json", entries))
    assert len(report.errors) == 3, report.render()


def test_release_asset_absent_is_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    entries = [write_model(folder, "tiny")]
    entries[0]["release_asset"] = True
    (folder / "tiny" / "model.onnx").unlink()
    report = reg.validate_registry(write_registry(folder / "registry.json", entries))
    assert report.ok, report.render()
    messages = [f.message for f in report.warnings]
    assert any(
        "absent: run 'vmafx-saliency export' or fetch the release asset" in m for m in messages
    )
    assert any("release asset without a Sigstore bundle" in m for m in messages)


def test_check_models_false_skips_scan_and_contract(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    entries = [write_model(folder, "tiny", data=custom_domain_model())]
    path = write_registry(folder / "registry.json", entries)
    assert not reg.validate_registry(path).ok
    assert reg.validate_registry(path, check_models=False).ok


def test_missing_registry_file_is_a_finding(tmp_path: Path) -> None:
    report = reg.validate_registry(tmp_path / "nope.json")
    assert not report.ok
    assert "no such file" in report.render()


def test_release_asset_present_needs_its_bundle(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    entries = [write_model(folder, "tiny")]
    entries[0]["release_asset"] = True
    _bundle(folder, entries)
    path = write_registry(folder / "registry.json", entries)
    # Binary present, bundle missing: a half-fetched asset is an error ...
    assert re.search(
        r"error: tiny: Sigstore bundle .* does not exist", text_of(reg.validate_registry(path))
    )
    # ... binary and bundle both absent: not fetched yet, a warning.
    (folder / "tiny" / "model.onnx").unlink()
    report = reg.validate_registry(path)
    assert report.ok, report.render()
    assert len(report.warnings) == 2


def test_manifest_of_another_export_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    entries = [write_model(folder, "tiny")]
    write_json(folder / "tiny" / "manifest.json", {"output": {"sha256": "1" * 64}})
    entries[0]["manifest"] = "tiny/manifest.json"
    report = reg.validate_registry(write_registry(folder / "registry.json", entries))
    assert re.search(r"describes sha256 1{64}, the entry pins", report.render())


def test_validating_the_overlay_reports_ids_of_the_committed_registry(tmp_path: Path) -> None:
    committed = reg.committed_registry_path()
    write_registry(committed, [write_model(committed.parent, "base")])
    overlay = reg.overlay_registry_path()
    write_registry(
        overlay, [write_model(overlay.parent, "base", default=False, status="alternative")]
    )
    report = reg.validate_registry(overlay)
    assert re.search(r"base: is also defined in the committed registry", report.render())
