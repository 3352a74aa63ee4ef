"""Registry: schema, rules, confinement, file checks, overlay, add, promote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._onnx_models import conv_sigmoid_model
from tests._trust import (
    COMMITTED,
    ROOT,
    TINY,
    TINY_PARAMS,
    Json,
    custom_domain_model,
    isolate_registry,
    key_and_bundle,
    sidecar_doc,
    write_json,
    write_model,
    write_registry,
)
from vmafx_saliency._util import sha256_bytes
from vmafx_saliency.errors import (
    ComparisonReportError,
    InvalidRegistryError,
    NoDefaultModelError,
    PromotionRefusedError,
    RegistryError,
    SidecarError,
    UnknownModelError,
)
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply.signing import generate_key_pair

# The builders live in tests/_trust.py, shared with the loader, release and CLI tests.


def text_of(report: reg.ValidationReport) -> str:
    return report.render()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point both default locations into tmp, so no test reads a user's overlay."""
    isolate_registry(tmp_path, monkeypatch)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A registry in tmp/reg with one valid production default, 'tiny'."""
    folder = tmp_path / "reg"
    return write_registry(folder / "registry.json", [write_model(folder, "tiny")])


def entries_of(path: Path) -> list[Json]:
    models: list[Json] = json.loads(path.read_text())["models"]
    return models


# --- the committed file and the schemas -----------------------------------------------


def test_committed_registry_is_valid() -> None:
    report = reg.validate_registry(COMMITTED)
    assert report.ok, report.render()
    assert report.findings == ()


def test_schemas_are_valid_draft_2020_12() -> None:
    import jsonschema

    for name in ("registry", "sidecar", "comparison"):
        path = ROOT / "src" / "vmafx_saliency" / "schemas" / f"{name}.schema.json"
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_import_needs_no_numpy_or_onnx() -> None:
    code = (
        "import sys, vmafx_saliency.supply.registry; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'onnx', 'onnxruntime', 'torch')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_valid_registry_with_a_real_entry(good: Path) -> None:
    report = reg.validate_registry(good)
    assert report.ok, report.render()
    assert report.findings == ()
    assert "OK (1 model, 0 errors, 0 warnings)" in report.render()

    view = reg.Registry.load(committed=good)
    entry = view.get("tiny")
    assert entry.onnx == (good.parent / "tiny" / "model.onnx").resolve()
    assert entry.onnx.is_absolute()
    assert entry.registry == good
    assert entry.source == reg.Source(type="fork-trained")
    assert view.default_for("mobilesal") is entry
    sidecar = entry.load_sidecar()
    assert sidecar.preprocessing.inference_size == (320, 320)
    assert sidecar.preprocessing.mean == (0.485, 0.456, 0.406)
    assert sidecar.output_range == (0.0, 1.0)
    assert sidecar.opset == 17


def test_sidecar_native_size_and_round_trip(tmp_path: Path) -> None:
    doc = sidecar_doc("m")
    doc["preprocessing"]["inference_size"] = "native"
    doc["notes"] = "why"
    loaded = reg.Sidecar.load(write_json(tmp_path / "s.json", doc))
    assert loaded.preprocessing.inference_size is None
    assert loaded.notes == "why"
    again = reg.Sidecar.load(write_json(tmp_path / "t.json", loaded.to_json()))
    assert again == loaded


def test_sidecar_errors_name_file_and_field(tmp_path: Path) -> None:
    doc = sidecar_doc("m")
    doc["preprocessing"]["std"] = [0.2, 0.0, 0.2]
    path = write_json(tmp_path / "s.json", doc)
    with pytest.raises(SidecarError, match=r"s\.json.*preprocessing\.std\[1\]"):
        reg.Sidecar.load(path)


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("std", "[0.2, 1e-300, 0.2]", r"preprocessing\.std\[1\]"),  # 0 in float32: NaN maps
        ("std", "[0.2, 1e400, 0.2]", r"preprocessing\.std\[1\]"),  # read as inf: a flat input
        ("mean", "[1e39, 0.4, 0.4]", r"preprocessing\.mean\[0\]"),  # inf in float32
        ("inference_size", "[1000000, 1000000]", r"preprocessing\.inference_size: "),
        ("inference_size", "[16, 320]", r"preprocessing\.inference_size: .*32\.\.4096 each"),
    ],
)
def test_sidecar_values_that_break_float32_or_memory_are_refused(
    tmp_path: Path, field: str, value: str, where: str
) -> None:
    doc = sidecar_doc("m")
    doc["preprocessing"][field] = "VALUE"
    path = tmp_path / "s.json"
    # The number as it would be typed: json reads 1e400 as inf (it refuses "Infinity").
    path.write_text(json.dumps(doc).replace('"VALUE"', value))
    with pytest.raises(SidecarError, match=rf"s\.json.*{where}"):
        reg.Sidecar.load(path)


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


def test_structural_errors_stop_registry_load(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    entries = [write_model(folder, "tiny")]
    entries[0]["license_file"] = "../LICENSE"
    path = write_registry(folder / "registry.json", entries)
    with pytest.raises(InvalidRegistryError, match=r"registry\.json is invalid: .*'\.\.'"):
        reg.Registry.load(committed=path)


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text('{"schema": "vmafx-saliency/registry/v1", "models": [], "models": []}')
    report = reg.validate_registry(path)
    assert not report.ok
    assert "duplicate key 'models'" in report.render()


def test_committed_registry_needs_a_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "reg"
    path = write_registry(
        folder / "registry.json", [write_model(folder, "tiny", default=False, status="alternative")]
    )
    # As an overlay, alternatives without a default are fine ...
    assert reg.validate_registry(path).ok
    # ... as the committed registry, an extractor with models needs exactly one default.
    monkeypatch.setenv(reg.ENV_COMMITTED, str(path))
    report = reg.validate_registry(path)
    assert re.search(r"extractor 'mobilesal' has no default in the committed", report.render())


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


# --- locations and the merged view ---------------------------------------------------------


def test_overlay_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(reg.ENV_OVERLAY, str(tmp_path / "o.json"))
    assert reg.overlay_registry_path() == tmp_path / "o.json"
    monkeypatch.delenv(reg.ENV_OVERLAY)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert reg.overlay_registry_path() == tmp_path / "xdg" / "vmafx-saliency" / "registry.json"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "vmafx-saliency" / "registry.json"
    assert reg.overlay_registry_path() == expected


def test_committed_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(reg.ENV_COMMITTED)
    assert reg.committed_registry_path() == COMMITTED


def _two_files(tmp_path: Path, *, overlay_default: bool) -> tuple[Path, Path]:
    cfolder, ofolder = tmp_path / "c", tmp_path / "o"
    committed = write_registry(cfolder / "registry.json", [write_model(cfolder, "base")])
    overlay = write_registry(
        ofolder / "registry.json",
        [
            write_model(
                ofolder,
                "local",
                default=overlay_default,
                status="production" if overlay_default else "alternative",
            )
        ],
    )
    return committed, overlay


def test_overlay_default_wins(tmp_path: Path) -> None:
    committed, overlay = _two_files(tmp_path, overlay_default=True)
    view = reg.Registry.load(committed=committed, overlay=overlay)
    assert [e.id for e in view.entries()] == ["base", "local"]
    assert view.default_for("mobilesal").id == "local"
    assert view.get("local").registry == overlay
    assert view.get("local").onnx == (overlay.parent / "local" / "model.onnx").resolve()


def test_committed_default_without_overlay_default(tmp_path: Path) -> None:
    committed, overlay = _two_files(tmp_path, overlay_default=False)
    view = reg.Registry.load(committed=committed, overlay=overlay)
    assert view.default_for("mobilesal").id == "base"


def test_default_locations_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed, overlay = _two_files(tmp_path, overlay_default=True)
    monkeypatch.setenv(reg.ENV_COMMITTED, str(committed))
    monkeypatch.setenv(reg.ENV_OVERLAY, str(overlay))
    assert reg.Registry.load().default_for("mobilesal").id == "local"


def test_missing_overlay_is_empty_and_missing_committed_is_an_error(tmp_path: Path) -> None:
    committed, _ = _two_files(tmp_path, overlay_default=False)
    view = reg.Registry.load(committed=committed, overlay=tmp_path / "none.json")
    assert view.ids() == ("base",)
    with pytest.raises(RegistryError, match=r"committed registry .*missing\.json does not exist"):
        reg.Registry.load(committed=tmp_path / "missing.json")


def test_id_in_both_files_is_an_error(tmp_path: Path) -> None:
    committed, _ = _two_files(tmp_path, overlay_default=False)
    ofolder = tmp_path / "o2"
    overlay = write_registry(
        ofolder / "registry.json",
        [write_model(ofolder, "base", default=False, status="alternative")],
    )
    with pytest.raises(
        RegistryError,
        match=r"'base' defined in both the committed registry .*c/registry\.json and the "
        r"overlay .*o2/registry\.json",
    ):
        reg.Registry.load(committed=committed, overlay=overlay)


def test_unknown_id_lists_known_ids(tmp_path: Path) -> None:
    committed, overlay = _two_files(tmp_path, overlay_default=False)
    view = reg.Registry.load(committed=committed, overlay=overlay)
    with pytest.raises(
        UnknownModelError,
        match=r"no model 'basee' .*did you mean 'base'.*known ids: base, local: "
        r"run 'vmafx-saliency registry list'",
    ):
        view.get("basee")


def test_no_default_says_what_to_do(tmp_path: Path) -> None:
    ofolder = tmp_path / "o"
    overlay = write_registry(
        ofolder / "registry.json",
        [write_model(ofolder, "local", default=False, status="alternative")],
    )
    view = reg.Registry.load(overlay=overlay)
    with pytest.raises(
        NoDefaultModelError,
        match=r"no default model for extractor 'mobilesal'.*models for it: local: pass --model "
        r"ID.*'vmafx-saliency registry add'.*'vmafx-saliency registry promote",
    ):
        view.default_for("mobilesal")


# --- add ---------------------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Loose input files for add_model in tmp/in: model.onnx, sidecar.json, LICENSE.txt."""
    folder = tmp_path / "in"
    write_model(folder, "new")
    return folder / "new"


def _add(inputs: Path, **kwargs: Any) -> reg.ModelEntry:
    args: dict[str, Any] = {
        "onnx": inputs / "model.onnx",
        "model_id": "new",
        "sidecar": inputs / "sidecar.json",
        "license": "BSD-3-Clause",
        "license_file": inputs / "LICENSE.txt",
        "source": reg.Source(type="fork-trained"),
    }
    args.update(kwargs)
    return reg.add_model(**args)


def test_add_writes_only_the_overlay(tmp_path: Path, inputs: Path) -> None:
    committed = reg.committed_registry_path()
    before = committed.read_bytes()
    entry = _add(inputs)
    overlay = reg.overlay_registry_path()
    assert committed.read_bytes() == before
    assert overlay.is_file()
    assert overlay.read_text().endswith("}\n")
    dest = overlay.parent / "models" / "new"
    assert sorted(p.name for p in dest.iterdir()) == ["LICENSE.txt", "model.onnx", "sidecar.json"]
    assert (dest / "model.onnx").read_bytes() == TINY
    assert entry.onnx == (dest / "model.onnx").resolve()
    assert (entry.sha256, entry.opset, entry.params) == (sha256_bytes(TINY), 17, TINY_PARAMS)
    assert (entry.status, entry.default, entry.registry) == ("alternative", False, overlay)
    assert entries_of(overlay)[0]["onnx"] == "models/new/model.onnx"
    assert reg.validate_registry(overlay).ok
    view = reg.Registry.load()
    assert view.get("new") == entry


def test_add_with_manifest_and_mirror_source(tmp_path: Path, inputs: Path) -> None:
    manifest = write_json(
        tmp_path / "in" / "model.onnx.manifest.json",
        {
            "export": {"opset": 17},
            "params": 1234,
            "output": {"sha256": sha256_bytes(TINY)},
            "upstream": {
                "repo": "https://github.com/xuebinqin/U-2-Net",
                "commit": "ac7e1c81",
                "checkpoint": {"sha256": "ab" * 32},
            },
        },
    )
    source = reg.source_from_manifest(manifest)
    assert source == reg.Source(
        "upstream-mirror", "https://github.com/xuebinqin/U-2-Net", "ac7e1c81", "ab" * 32
    )
    entry = _add(inputs, manifest=manifest, source=source, license="Apache-2.0")
    assert entry.params == 1234
    assert entry.manifest is not None and entry.manifest.name == "model.onnx.manifest.json"
    assert entries_of(reg.overlay_registry_path())[0]["source"]["commit"] == "ac7e1c81"
    assert reg.validate_registry(reg.overlay_registry_path()).ok

    wrong = write_json(tmp_path / "wrong.json", {"output": {"sha256": "0" * 64}})
    with pytest.raises(RegistryError, match=r"describes an ONNX with sha256 0{64}"):
        _add(inputs, manifest=wrong, force=True)


def test_add_copies_bundle_and_public_key(tmp_path: Path, inputs: Path) -> None:
    pair, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    entry = _add(
        inputs,
        sigstore_bundle=bundle,
        verification=reg.Verification(public_key=pair.public_key),
        release_asset=True,
    )
    dest = reg.overlay_registry_path().parent / "models" / "new"
    assert entry.sigstore_bundle == (dest / "model.onnx.sigstore.json").resolve()
    assert entry.verification is not None
    assert entry.verification.public_key == (dest / "signing.pem.pub").resolve()
    report = reg.validate_registry(reg.overlay_registry_path())
    assert report.ok and not report.warnings, report.render()


def _tampered_copy(inputs: Path, tmp_path: Path) -> Path:
    """Another model that passes every check but the bundle: other weights, other sha256."""
    other = tmp_path / "other" / "model.onnx"
    other.parent.mkdir()
    other.write_bytes(conv_sigmoid_model(weight_scale=0.2))
    assert other.read_bytes() != (inputs / "model.onnx").read_bytes()
    return other


def test_add_refuses_another_models_bundle(tmp_path: Path, inputs: Path) -> None:
    """The bundle of the original, given with a changed copy: refused, with or without a key."""
    pair, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    other = _tampered_copy(inputs, tmp_path)
    for verification in (reg.Verification(public_key=pair.public_key), None):
        with pytest.raises(
            RegistryError,
            match=r"cannot add 'new': Sigstore bundle .*model\.onnx\.sigstore\.json signs a "
            r"model with sha256 [0-9a-f]{64}, not the pinned [0-9a-f]{64}: it is another model's "
            r"bundle; pass the bundle that signs .*other/model\.onnx",
        ):
            _add(inputs, onnx=other, sigstore_bundle=bundle, verification=verification)
    assert not reg.overlay_registry_path().exists()


def test_add_refuses_a_bundle_that_does_not_verify_with_the_key_given(
    tmp_path: Path, inputs: Path
) -> None:
    _, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    stranger = generate_key_pair(tmp_path / "stranger" / "signing.pem")
    with pytest.raises(
        RegistryError,
        match=r"cannot add 'new': its Sigstore bundle does not verify with the verification "
        r"given \(.*",
    ):
        _add(
            inputs,
            sigstore_bundle=bundle,
            verification=reg.Verification(public_key=stranger.public_key),
        )
    assert not reg.overlay_registry_path().exists()


def test_validate_finds_a_bundle_of_another_model(tmp_path: Path, inputs: Path) -> None:
    pair, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys")
    entry = _add(
        inputs, sigstore_bundle=bundle, verification=reg.Verification(public_key=pair.public_key)
    )
    assert entry.sigstore_bundle is not None
    # The registered bundle swapped for one that signs another model.
    other = _tampered_copy(inputs, tmp_path)
    _, other_bundle = key_and_bundle(other, tmp_path / "other_keys")
    entry.sigstore_bundle.write_bytes(other_bundle.read_bytes())
    report = reg.validate_registry(reg.overlay_registry_path())
    assert not report.ok
    assert "signs a model with sha256" in report.render()
    assert "it is another model's bundle; replace the bundle with this model's" in report.render()


@pytest.mark.parametrize("status", ["production", "default"])
def test_add_refuses_production(inputs: Path, status: str) -> None:
    with pytest.raises(RegistryError, match=r"'alternative' or 'candidate'.*registry promote"):
        _add(inputs, status=status)
    assert not reg.overlay_registry_path().exists()


def test_add_refuses_an_existing_id_without_force(inputs: Path) -> None:
    _add(inputs)
    overlay = reg.overlay_registry_path()
    before = overlay.read_bytes()
    with pytest.raises(RegistryError, match=r"already in the overlay .*pass --force"):
        _add(inputs)
    assert overlay.read_bytes() == before
    _add(inputs, status="candidate", force=True)
    assert [(e["id"], e["status"]) for e in entries_of(overlay)] == [("new", "candidate")]


def test_add_refuses_an_id_of_the_committed_registry(tmp_path: Path, inputs: Path) -> None:
    folder = tmp_path / "committed"
    write_registry(folder / "registry.json", [write_model(folder, "new")])
    with pytest.raises(RegistryError, match=r"'new' is in the committed registry"):
        _add(inputs)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (custom_domain_model(), r"fails the op-allowlist scan: \[custom-domain\]"),
        (conv_sigmoid_model(output_name="d0"), r"fails the deployment contract.*'d0'"),
    ],
    ids=["scan", "contract"],
)
def test_add_refuses_a_bad_model(inputs: Path, data: bytes, message: str) -> None:
    _add(inputs)
    overlay = reg.overlay_registry_path()
    before = overlay.read_bytes()
    (inputs / "model.onnx").write_bytes(data)
    with pytest.raises(RegistryError, match=rf"cannot add 'new': .*{message}"):
        _add(inputs, force=True)
    assert overlay.read_bytes() == before
    assert (overlay.parent / "models" / "new" / "model.onnx").read_bytes() == TINY


def test_add_refuses_a_sidecar_of_another_model(inputs: Path) -> None:
    write_json(inputs / "sidecar.json", sidecar_doc("someone_else"))
    with pytest.raises(RegistryError, match=r"is for model 'someone_else', not 'new'"):
        _add(inputs)


# --- compare and promote ----------------------------------------------------------------------


def report_file(tmp_path: Path, rows: dict[str, dict[str, float]]) -> Path:
    return write_json(
        tmp_path / "report.json",
        {
            "schema": "vmafx-saliency/comparison/v1",
            "models": [{"id": mid, "metrics": m} for mid, m in rows.items()],
        },
    )


@pytest.fixture
def overlay_pair() -> Path:
    """The overlay holds 'old' (default) and 'new' (alternative)."""
    overlay = reg.overlay_registry_path()
    folder = overlay.parent
    write_registry(
        overlay,
        [
            write_model(folder, "old"),
            write_model(folder, "new", default=False, status="alternative"),
        ],
    )
    return overlay


def test_higher_is_better_table() -> None:
    for name in ("mae", "mae_vs_mirror", "ms_per_image", "macs", "params"):
        assert not reg.higher_is_better(name)
    for name in ("s_measure", "max_f", "e_measure", "pearson"):
        assert reg.higher_is_better(name)


def test_promote_better_flips_the_default(tmp_path: Path, overlay_pair: Path) -> None:
    report = report_file(tmp_path, {"old": {"s_measure": 0.70}, "new": {"s_measure": 0.75}})
    result = reg.promote("new", report=report, metric="s_measure")
    assert (result.candidate, result.baseline) == ("new", "old")
    assert (result.candidate_value, result.baseline_value) == (0.75, 0.70)
    assert result.improves and result.higher_is_better
    rows = {e["id"]: (e["default"], e["status"]) for e in entries_of(overlay_pair)}
    assert rows == {"old": (False, "alternative"), "new": (True, "production")}
    assert reg.Registry.load().default_for("mobilesal").id == "new"
    assert reg.validate_registry(overlay_pair).ok


@pytest.mark.parametrize("value", [0.65, 0.70], ids=["worse", "equal"])
def test_promote_refuses_no_benefit(tmp_path: Path, overlay_pair: Path, value: float) -> None:
    report = report_file(tmp_path, {"old": {"s_measure": 0.70}, "new": {"s_measure": value}})
    _promotion_refused(
        overlay_pair,
        report,
        PromotionRefusedError,
        rf"not promoting 'new': on s_measure \(higher is better\) it scores {value:g} "
        r"against 0\.7 for the default 'old'",
    )


def _promotion_refused(overlay: Path, report: Path, error: type[Exception], match: str) -> None:
    """Promoting 'new' on s_measure is refused with ``match``; the overlay is untouched."""
    before = overlay.read_bytes()
    with pytest.raises(error, match=match):
        reg.promote("new", report=report, metric="s_measure")
    assert overlay.read_bytes() == before


@pytest.mark.parametrize("who", ["new", "old"])
def test_promote_refuses_a_report_that_measured_another_file(
    tmp_path: Path, overlay_pair: Path, who: str
) -> None:
    """eval names an ad-hoc new.onnx 'new' too: its figures are not the registered model's."""
    pins = {e.id: e.sha256 for e in reg.Registry.load().entries()}
    rows = {"old": 0.70, "new": 0.75}
    report = write_json(
        tmp_path / "summary.json",
        {
            "schema": "vmafx-saliency/eval-summary/v1",
            "models": [
                {
                    "id": mid,
                    "sha256": "e" * 64 if mid == who else pins[mid],
                    "metrics": {"s_measure": value},
                }
                for mid, value in rows.items()
            ],
        },
    )
    _promotion_refused(
        overlay_pair,
        report,
        ComparisonReportError,
        rf"measured '{who}' with sha256 e{{64}}, but the registry pins {pins[who]}: the "
        rf"report is about another file .*evaluate the registered model, --models {who}",
    )
    # The same report with the pinned digests promotes.
    doc = json.loads(report.read_text())
    for row in doc["models"]:
        row["sha256"] = pins[row["id"]]
    write_json(report, doc)
    assert reg.promote("new", report=report, metric="s_measure").improves


def test_promote_lower_is_better(tmp_path: Path, overlay_pair: Path) -> None:
    worse = report_file(tmp_path, {"old": {"mae": 0.05}, "new": {"mae": 0.08}})
    with pytest.raises(PromotionRefusedError, match=r"lower is better.*0\.08 against 0\.05"):
        reg.promote("new", report=worse, metric="mae")
    better = report_file(tmp_path, {"old": {"mae": 0.08}, "new": {"mae": 0.05}})
    assert not reg.promote("new", report=better, metric="mae").higher_is_better
    assert reg.Registry.load().default_for("mobilesal").id == "new"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"new": {"s_measure": 0.9}}, r"has no baseline model 'old' \(it has: new\)"),
        ({"old": {"s_measure": 0.5}}, r"has no candidate model 'new'"),
        (
            {"old": {"s_measure": 0.5}, "new": {"max_f": 0.9}},
            r"no metric 's_measure' for the candidate 'new' \(it has: max_f\)",
        ),
    ],
    ids=["no-baseline", "no-candidate", "no-metric"],
)
def test_promote_refuses_an_incomplete_report(
    tmp_path: Path, overlay_pair: Path, rows: dict[str, dict[str, float]], message: str
) -> None:
    before = overlay_pair.read_bytes()
    with pytest.raises(ComparisonReportError, match=message):
        reg.promote("new", report=report_file(tmp_path, rows), metric="s_measure")
    assert overlay_pair.read_bytes() == before


def test_report_with_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", {"schema": "other/v9", "models": []})
    with pytest.raises(ComparisonReportError, match=r"has schema 'other/v9'"):
        reg.read_comparison_report(path, candidate="a", baseline="b", metric="mae")


def test_promote_without_a_default_needs_only_the_candidate(tmp_path: Path) -> None:
    overlay = reg.overlay_registry_path()
    write_registry(
        overlay, [write_model(overlay.parent, "new", default=False, status="alternative")]
    )
    result = reg.promote(
        "new", report=report_file(tmp_path, {"new": {"s_measure": 0.5}}), metric="s_measure"
    )
    assert result.baseline is None and result.baseline_value is None
    assert reg.Registry.load().default_for("mobilesal").id == "new"


def test_promote_in_the_committed_registry_needs_its_path(tmp_path: Path) -> None:
    committed = reg.committed_registry_path()
    folder = committed.parent
    write_registry(
        committed,
        [
            write_model(folder, "old"),
            write_model(folder, "new", default=False, status="alternative"),
        ],
    )
    report = report_file(tmp_path, {"old": {"mae": 0.2}, "new": {"mae": 0.1}})
    with pytest.raises(PromotionRefusedError, match=r"tracked file: pass its path explicitly"):
        reg.promote("new", report=report, metric="mae")
    reg.promote("new", report=report, metric="mae", registry=committed)
    rows = {e["id"]: (e["default"], e["status"]) for e in entries_of(committed)}
    assert rows == {"old": (False, "alternative"), "new": (True, "production")}
    assert reg.validate_registry(committed).ok


def test_promoting_the_committed_default_back_clears_the_overlays_override(
    tmp_path: Path,
) -> None:
    """Try the mirror as default in the overlay, then return to the shipped one: no edits
    to the tracked file, and the same evidence rule as any promotion."""
    committed = reg.committed_registry_path()
    write_registry(committed, [write_model(committed.parent, "shipped")])
    before = committed.read_bytes()
    overlay = reg.overlay_registry_path()
    write_registry(overlay, [write_model(overlay.parent, "trial", default=False)])
    tried = report_file(tmp_path, {"shipped": {"mae": 0.2}, "trial": {"mae": 0.1}})
    reg.promote("trial", report=tried, metric="mae")
    assert reg.Registry.load().default_for("mobilesal").id == "trial"

    worse = report_file(tmp_path, {"shipped": {"mae": 0.3}, "trial": {"mae": 0.1}})
    with pytest.raises(PromotionRefusedError, match=r"not promoting 'shipped': on mae"):
        reg.promote("shipped", report=worse, metric="mae")
    better = report_file(tmp_path, {"shipped": {"mae": 0.05}, "trial": {"mae": 0.1}})
    result = reg.promote("shipped", report=better, metric="mae")
    assert (result.candidate, result.baseline) == ("shipped", "trial")
    assert reg.Registry.load().default_for("mobilesal").id == "shipped"
    assert {e["id"]: (e["default"], e["status"]) for e in entries_of(overlay)} == {
        "trial": (False, "alternative")
    }
    assert committed.read_bytes() == before
    with pytest.raises(PromotionRefusedError, match=r"'shipped' is already the default"):
        reg.promote("shipped", report=better, metric="mae")


def test_promote_refuses_the_current_default(tmp_path: Path, overlay_pair: Path) -> None:
    report = report_file(tmp_path, {"old": {"mae": 0.2}})
    with pytest.raises(PromotionRefusedError, match=r"already the default"):
        reg.promote("old", report=report, metric="mae")


def test_written_files_are_sorted_json(inputs: Path) -> None:
    _add(inputs)
    text = reg.overlay_registry_path().read_text()
    doc = json.loads(text)
    assert list(doc) == ["schema", "models"]
    assert list(doc["models"][0]) == sorted(doc["models"][0])
    assert text == json.dumps(doc, indent=2) + "\n"


# --- more edges ----------------------------------------------------------------------------


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


def test_add_refuses_an_invalid_entry_and_writes_nothing(inputs: Path) -> None:
    with pytest.raises(
        InvalidRegistryError,
        match=r"cannot add 'new' to .*'commit' is a required property.*nothing was written",
    ):
        _add(
            inputs, source=reg.Source(type="upstream-mirror", repo="r", checkpoint_sha256="a" * 64)
        )
    overlay = reg.overlay_registry_path()
    assert not overlay.exists()
    assert not (overlay.parent / "models").exists()


def test_add_refuses_two_verification_ways(tmp_path: Path, inputs: Path) -> None:
    key = inputs / "k.pub"
    key.write_text("k\n")
    both = reg.Verification(public_key=key, identity="me@example.org", oidc_issuer="https://x")
    with pytest.raises(RegistryError, match=r"exactly one of.*got 2"):
        _add(inputs, verification=both)


def test_add_refuses_a_model_that_reads_no_file(tmp_path: Path, inputs: Path) -> None:
    with pytest.raises(RegistryError, match=r"model .*absent\.onnx: no such file"):
        _add(inputs, onnx=tmp_path / "absent.onnx")
