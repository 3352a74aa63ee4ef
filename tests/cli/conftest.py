"""Fixtures of the supply-chain command tests (registry, signing, load, release)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._trust import isolate_registry, write_model
from tests.cli._commands import Capture, run


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The committed registry (empty) and the overlay in tmp; returns the overlay path."""
    monkeypatch.delenv("VMAFX_SALIENCY_MODEL_DIR", raising=False)
    return isolate_registry(tmp_path, monkeypatch)[1]


@pytest.fixture
def signed_model(tmp_path: Path, capsys: Capture) -> tuple[Path, Path]:
    """A tiny model signed through the CLI; returns (model, public key)."""
    write_model(tmp_path / "in", "tiny")
    model = tmp_path / "in" / "tiny" / "model.onnx"
    key = tmp_path / "keys" / "signing.pem"
    assert run(capsys, "keygen", "--private-key", key)[0] == 0
    sidecar = model.with_name("sidecar.json")
    code, out, _ = run(capsys, "sign", model, "--sidecar", sidecar, "--private-key", key)
    assert code == 0
    assert out.strip() == f"signed {model} with its sidecar {sidecar} -> {model}.sigstore.json"
    return model, Path(f"{key}.pub")
