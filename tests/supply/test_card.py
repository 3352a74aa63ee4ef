from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vmafx_saliency.cli.main import main
from vmafx_saliency.errors import (
    InputFileError,
    StaleCardError,
)
from vmafx_saliency.supply.card import BEGIN, END, update_card

ROOT = Path(__file__).resolve().parents[2]
MIRROR_CARD = ROOT / "docs" / "models" / "u2netp_mirror.md"


def _manifest(mirror_onnx: Path) -> Path:
    return Path(f"{mirror_onnx}.manifest.json")


def test_update_then_check_round_trip(tmp_path: Path, mirror_onnx: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"# title\n\n{BEGIN}\nold figures\n{END}\n\ntail\n")
    assert update_card(manifest=_manifest(mirror_onnx), card=card).changed
    text = card.read_text()
    assert text.startswith("# title\n") and text.endswith("\ntail\n")
    assert "old figures" not in text
    assert "| parameters | 1,131,181 |" in text
    # A second run changes nothing, and check mode agrees.
    assert not update_card(manifest=_manifest(mirror_onnx), card=card).changed
    update_card(manifest=_manifest(mirror_onnx), card=card, check=True)


def test_check_mode_refuses_a_stale_card(tmp_path: Path, mirror_onnx: Path) -> None:
    card = tmp_path / "card.md"
    original = f"{BEGIN}\nparameters: 42\n{END}\n"
    card.write_text(original)
    with pytest.raises(StaleCardError, match=r"figures differ .*run 'vmafx-saliency card"):
        update_card(manifest=_manifest(mirror_onnx), card=card, check=True)
    assert card.read_text() == original


def test_card_errors(tmp_path: Path, mirror_onnx: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text("no block here\n")
    with pytest.raises(InputFileError, match=r"no figures block"):
        update_card(manifest=_manifest(mirror_onnx), card=card)
    with pytest.raises(InputFileError, match=r"no such manifest: run 'vmafx-saliency export'"):
        update_card(manifest=tmp_path / "absent.json", card=card)
    not_manifest = tmp_path / "x.json"
    not_manifest.write_text("[1, 2]")
    with pytest.raises(InputFileError, match=r"not an export manifest"):
        update_card(manifest=not_manifest, card=card)
    with pytest.raises(InputFileError, match=r"no such model card"):
        update_card(manifest=_manifest(mirror_onnx), card=tmp_path / "absent.md")


def test_committed_mirror_card_matches_a_fresh_export(mirror_onnx: Path) -> None:
    """The card's figures are the export's, not typed: sha256s, parameters, op table."""
    manifest = json.loads(_manifest(mirror_onnx).read_text())
    card = MIRROR_CARD.read_text()
    assert f"| parameters | {manifest['params']:,} |" in card
    assert f"`{manifest['upstream']['checkpoint']['sha256']}`" in card
    assert f"| ONNX sha256 | `{manifest['output']['sha256']}` |" in card
    card_ops = dict(re.findall(r"^\| ([A-Z]\w+) \| (\d+) \|$", card, flags=re.MULTILINE))
    assert {op: int(n) for op, n in card_ops.items()} == manifest["op_types"]


def test_cli_card(tmp_path: Path, mirror_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.md"
    card.write_text(f"{BEGIN}\n{END}\n")
    manifest = str(_manifest(mirror_onnx))
    assert main(["card", "--manifest", manifest, "--card", str(card), "--check"]) == 2
    assert "figures differ" in capsys.readouterr().err
    assert main(["card", "--manifest", manifest, "--card", str(card)]) == 0
    assert main(["card", "--manifest", manifest, "--card", str(card), "--check"]) == 0
