"""Fixtures of the signing tests: a model, a key pair, a signed model, two private PKIs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._onnx_models import conv_sigmoid_model
from tests._trust import Pki, make_pki
from vmafx_saliency.supply import signing
from vmafx_saliency.supply.signing import generate_key_pair, sign_model


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(conv_sigmoid_model())
    return path


@pytest.fixture
def keys(tmp_path: Path) -> signing.KeyPair:
    return generate_key_pair(tmp_path / "keys" / "signing.pem")


@pytest.fixture
def signed(model: Path, keys: signing.KeyPair) -> Path:
    return sign_model(model, private_key=keys.private_key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "Acme")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("other-pki"), "Other")
