"""The merged view: a real entry, committed plus overlay, defaults, unknown ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._trust import write_model, write_registry
from vmafx_saliency.errors import NoDefaultModelError, RegistryError, UnknownModelError
from vmafx_saliency.supply import registry as reg


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A registry in tmp/reg with one valid production default, 'tiny'."""
    folder = tmp_path / "reg"
    return write_registry(folder / "registry.json", [write_model(folder, "tiny")])


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


@pytest.mark.parametrize(
    ("model_id", "message"),
    [
        (  # a typo: the known ids, and the closest
            "basee",
            r"no model 'basee' .*did you mean 'base'.*known ids: base, local: "
            r"run 'vmafx-saliency registry list'",
        ),
        (  # the mirror, a release asset never shipped: how to get it
            "u2netp_mirror_v1",
            r"no model 'u2netp_mirror_v1' .*the u2netp mirror is a release asset, not shipped "
            r"in the package: register it with 'make demo' in a source checkout, or "
            r"'vmafx-saliency export' then 'vmafx-saliency registry add'",
        ),
    ],
)
def test_an_unknown_id_says_what_to_do(tmp_path: Path, model_id: str, message: str) -> None:
    committed, overlay = _two_files(tmp_path, overlay_default=False)
    view = reg.Registry.load(committed=committed, overlay=overlay)
    with pytest.raises(UnknownModelError, match=message):
        view.get(model_id)


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
