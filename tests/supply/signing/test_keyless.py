"""Keyless verification, offline: sigstore-python's path, its policy, the trust root."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("model_signing")

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests._trust import make_cert as _cert
from tests.supply.signing._common import ISSUER, WORKFLOW, _sha256
from vmafx_saliency.errors import (
    BundleInvalidError,
    InputFileError,
    ModelTamperedError,
    SignatureMismatchError,
)
from vmafx_saliency.supply.signing import Verifier, keyless, verify_model

# Sigstore's OIDC issuer extension (v1: the raw issuer URL as bytes).
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


def _fake_keyless_bundle(signed: Path, cert: x509.Certificate) -> Path:
    """A key bundle re-dressed as keyless: a certificate, no log entry."""
    doc = json.loads(signed.read_text(encoding="utf-8"))
    der = cert.public_bytes(serialization.Encoding.DER)
    doc["verificationMaterial"] = {
        "certificate": {"rawBytes": base64.b64encode(der).decode()},
        "tlogEntries": [],
    }
    out = signed.with_name("keyless.sigstore.json")
    out.write_text(json.dumps(doc), encoding="utf-8")
    return out


def _fulcio_like_cert(*, identity: str, issuer: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return _cert(
        subject="sigstore",
        key=key,
        ca=False,
        extra=[
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
            x509.UnrecognizedExtension(OIDC_ISSUER_OID, issuer.encode()),
        ],
    )


@pytest.mark.parametrize(
    "verifier",
    [
        Verifier.keyless(identity=WORKFLOW, oidc_issuer=ISSUER),
        Verifier.keyless(identity_regexp=r"https://github\.com/org/.*", oidc_issuer=ISSUER),
    ],
)
def test_malformed_keyless_bundle_fails_offline(
    model: Path, signed: Path, verifier: Verifier
) -> None:
    fake = _fake_keyless_bundle(signed, _fulcio_like_cert(identity=WORKFLOW, issuer=ISSUER))
    with pytest.raises(BundleInvalidError, match="not a Sigstore keyless bundle"):
        verify_model(model, bundle=fake, verifier=verifier)


def test_keyless_bad_trust_config_is_reported(tmp_path: Path) -> None:
    trust = tmp_path / "trust.json"
    trust.write_text("{}", encoding="utf-8")
    verifier = Verifier.keyless(identity_regexp=".*", oidc_issuer=ISSUER, trust_config=trust)
    with pytest.raises(InputFileError, match=r"trust\.json: not a Sigstore client trust config"):
        keyless._client_trust_config(verifier)


def test_identity_regexp_policy() -> None:
    from sigstore.errors import VerificationError

    cert = _fulcio_like_cert(identity=WORKFLOW, issuer=ISSUER)
    policy = keyless._IdentityRegexpPolicy(
        regexp=re.compile(r"https://github\.com/org/repo/.*"), issuer=ISSUER
    )
    policy.verify(cert)
    assert policy.matched == WORKFLOW

    wrong_issuer = keyless._IdentityRegexpPolicy(regexp=re.compile(".*"), issuer="https://x")
    with pytest.raises(VerificationError, match="does not match"):
        wrong_issuer.verify(cert)
    # Anchored: a prefix pattern must not match an identity that only contains it.
    evil = _fulcio_like_cert(identity="https://evil.example/?" + WORKFLOW, issuer=ISSUER)
    anchored = keyless._IdentityRegexpPolicy(
        regexp=re.compile(r"https://github\.com/org/.*"), issuer=ISSUER
    )
    with pytest.raises(VerificationError, match="in full"):
        anchored.verify(evil)


def test_keyless_regexp_flow_with_stubbed_sigstore(
    monkeypatch: pytest.MonkeyPatch, model: Path, signed: Path
) -> None:
    """Everything but the network: policy check, digest check, report."""
    cert = _fulcio_like_cert(identity=WORKFLOW, issuer=ISSUER)
    fake = _fake_keyless_bundle(signed, cert)
    payload = base64.b64decode(
        json.loads(fake.read_text(encoding="utf-8"))["dsseEnvelope"]["payload"]
    )

    def stub(raw: bytes, *, bundle: Path, verifier: Verifier, policy: Any) -> tuple[str, bytes]:
        from sigstore.errors import VerificationError

        try:
            policy.verify(cert)
        except VerificationError as exc:
            raise SignatureMismatchError(f"{bundle}: {exc}") from exc
        return "application/vnd.in-toto+json", payload

    monkeypatch.setattr(keyless, "_sigstore_verify_dsse", stub)
    good = Verifier.keyless(identity_regexp=r"https://github\.com/org/repo/.*", oidc_issuer=ISSUER)
    report = verify_model(model, bundle=fake, verifier=good)
    assert report.method == "keyless"
    assert report.signer == f"{WORKFLOW} (OIDC issuer {ISSUER})"
    assert report.sha256 == _sha256(model)

    other = Verifier.keyless(identity_regexp=r"https://github\.com/other/.*", oidc_issuer=ISSUER)
    with pytest.raises(SignatureMismatchError, match="in full"):
        verify_model(model, bundle=fake, verifier=other)

    model.write_bytes(model.read_bytes() + b"\x00")
    with pytest.raises(ModelTamperedError, match="modified after signing"):
        verify_model(model, bundle=fake, verifier=good)
