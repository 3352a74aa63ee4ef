"""Where a bundle lies, and what reading and parsing it refuses (offline)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import Pki
from vmafx_saliency.errors import BundleInvalidError, BundleMissingError
from vmafx_saliency.supply import signing
from vmafx_saliency.supply.signing import Verifier, bundle_path_for, verify_model


def test_bundle_path_for() -> None:
    assert bundle_path_for(Path("dir/m.onnx")) == Path("dir/m.onnx.sigstore.json")


def test_missing_bundle(model: Path, keys: signing.KeyPair) -> None:
    with pytest.raises(
        BundleMissingError,
        match=r"no Sigstore bundle at .*model\.onnx\.sigstore\.json: sign the model with "
        r"'vmafx-saliency sign .*--private-key KEY' or pass --bundle",
    ):
        verify_model(
            model,
            bundle=bundle_path_for(model),
            verifier=Verifier.from_public_key(keys.public_key),
        )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x00\x01 not json", "not JSON"),
        (b"[1, 2]", "the JSON is not an object"),
        (b'{"mediaType": "text/plain"}', "mediaType 'text/plain' is not a Sigstore bundle"),
        (
            b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", '
            b'"verificationMaterial": {}}',
            "no dsseEnvelope",
        ),
    ],
)
def test_corrupt_bundle(
    model: Path, keys: signing.KeyPair, signed: Path, content: bytes, why: str
) -> None:
    signed.write_bytes(content)
    with pytest.raises(
        BundleInvalidError, match=f"not a valid model signature bundle: {re.escape(why)}"
    ):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_bundle_with_unknown_field_is_invalid(
    model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    doc = json.loads(signed.read_text(encoding="utf-8"))
    doc["surprise"] = 1
    signed.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(BundleInvalidError, match="structure does not validate"):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


@pytest.mark.parametrize("module", ["sigstore_models", "cryptography"])
def test_reading_a_bundle_without_the_sign_extra_names_it(
    model: Path, pki: Pki, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a core install 'registry validate' and 'release verify' read bundles too.

    A certificate-chain bundle: its certificates are read with cryptography.
    """
    import sys

    from vmafx_saliency.errors import MissingDependencyError

    bundle = signing.sign_model(
        model,
        private_key=pki.leaf_key,
        signing_certificate=pki.leaf,
        certificate_chain=[pki.intermediate],
    )
    for name in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
        monkeypatch.setitem(sys.modules, name, None)  # None: importing it fails
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=rf"needs the Python package '{module}'.*"
                       r"run pip install 'vmafx-saliency\[sign\]'$"):  # fmt: skip
        signing.signed_digests(bundle)
