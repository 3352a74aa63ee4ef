"""Key pairs, and the keys and certificates signing loads and checks (offline)."""

from __future__ import annotations

import importlib
import stat
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("model_signing")

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests._trust import Pki, make_pki
from vmafx_saliency.errors import OutputExistsError, SignatureMismatchError, SigningKeyError
from vmafx_saliency.supply import signing
from vmafx_saliency.supply.signing import (
    Verifier,
    bundle_path_for,
    generate_key_pair,
    sign_model,
    verify_model,
)

# --- keygen -----------------------------------------------------------------


def test_generate_key_pair_writes_private_0600_and_p256_public(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path / "k" / "release.pem")
    assert pair.private_key == tmp_path / "k" / "release.pem"
    assert pair.public_key == tmp_path / "k" / "release.pem.pub"
    assert stat.S_IMODE(pair.private_key.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(pair.private_key.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pair.public_key.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.public_key() == public
    assert b"BEGIN PRIVATE KEY" in pair.private_key.read_bytes()  # PKCS8, unencrypted
    # No temporary files left behind.
    assert sorted(p.name for p in pair.private_key.parent.iterdir()) == [
        "release.pem",
        "release.pem.pub",
    ]


def test_generate_key_pair_public_key_path(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path / "a.pem", public_key=tmp_path / "pub" / "b.pem")
    assert pair.public_key.is_file()
    assert not (tmp_path / "a.pem.pub").exists()


def test_generate_key_pair_never_overwrites_private_key(tmp_path: Path) -> None:
    existing = tmp_path / "k.pem"
    existing.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match=r"k\.pem already exists: key files are never"):
        generate_key_pair(existing)
    assert existing.read_bytes() == b"precious"
    assert not (tmp_path / "k.pem.pub").exists()


def test_generate_key_pair_never_overwrites_public_key(tmp_path: Path) -> None:
    existing = tmp_path / "k.pem.pub"
    existing.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match=r"k\.pem\.pub already exists"):
        generate_key_pair(tmp_path / "k.pem")
    assert existing.read_bytes() == b"precious"
    assert not (tmp_path / "k.pem").exists()  # nothing written before the check


# --- loading the signing key and certificate --------------------------------


def test_sign_missing_key(tmp_path: Path, model: Path) -> None:
    with pytest.raises(
        SigningKeyError,
        match=r"private key .*nokey\.pem: no such file: create a key pair with "
        r"'vmafx-saliency keygen --private-key .*nokey\.pem'",
    ):
        sign_model(model, private_key=tmp_path / "nokey.pem")
    assert not bundle_path_for(model).exists()


def test_sign_garbage_key(tmp_path: Path, model: Path) -> None:
    key = tmp_path / "garbage.pem"
    key.write_text("not a key\n", encoding="utf-8")
    with pytest.raises(SigningKeyError, match=r"garbage\.pem: not a PEM private key"):
        sign_model(model, private_key=key)


def test_sign_encrypted_key(tmp_path: Path, model: Path) -> None:
    key = tmp_path / "enc.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(SigningKeyError, match="the private key is encrypted"):
        sign_model(model, private_key=key)


def test_sign_rsa_key(tmp_path: Path, model: Path) -> None:
    key = tmp_path / "rsa.pem"
    key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match="not an elliptic-curve key"):
        sign_model(model, private_key=key)


def test_sign_certificate_for_another_key(model: Path, pki: Pki, other_pki: Pki) -> None:
    with pytest.raises(SigningKeyError, match="the certificate is for another key"):
        sign_model(model, private_key=other_pki.leaf_key, signing_certificate=pki.leaf)


def test_sign_certificate_without_signing_usage(tmp_path: Path, model: Path) -> None:
    weak = make_pki(tmp_path / "weak", "Weak", code_signing=False)
    with pytest.raises(SigningKeyError, match="the certificate may not sign"):
        sign_model(model, private_key=weak.leaf_key, signing_certificate=weak.leaf)


# --- which certificates may sign --------------------------------------------


def test_a_tls_certificate_from_the_trusted_ca_may_not_sign_models(
    tmp_path: Path, model: Path
) -> None:
    """keyUsage digitalSignature, extendedKeyUsage serverAuth only: a web server's
    certificate from the same CA signs nothing here (RFC 5280 4.2.1.12)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from tests._trust import make_cert, write_pem

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = write_pem(tmp_path / "root.crt", make_cert(subject="Corp root", key=root_key, ca=True))
    pair = signing.generate_key_pair(tmp_path / "web.pem")
    web_key = serialization.load_pem_private_key(pair.private_key.read_bytes(), None)
    assert isinstance(web_key, ec.EllipticCurvePrivateKey)
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"),
        False,
    )
    web = make_cert(
        subject="intranet-web.corp.example",
        key=web_key,
        issuer="Corp root",
        issuer_key=root_key,
        ca=False,
        code_signing=False,
        extra=[
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ],
    )
    leaf = write_pem(tmp_path / "web.crt", web)
    with pytest.raises(SigningKeyError, match="the certificate may not sign"):
        sign_model(
            model, private_key=pair.private_key, signing_certificate=leaf, certificate_chain=[root]
        )
    # Signed with model_signing itself, which takes it: verification refuses it.
    bundle = tmp_path / "web.sigstore.json"
    ms: Any = importlib.import_module("model_signing")  # untyped: as the signing package takes it
    config = ms.signing.Config()
    config.use_certificate_signer(
        private_key=pair.private_key, signing_certificate=leaf, certificate_chain=[root]
    )
    config.sign(model, bundle)
    with pytest.raises(
        SignatureMismatchError,
        match=r"the signing certificate \(CN=intranet-web\.corp\.example\) may not sign models",
    ):
        verify_model(model, bundle=bundle, verifier=Verifier.from_certificate_chain([root]))


def test_a_certificate_for_any_purpose_but_no_signing_usage_may_not_sign(
    tmp_path: Path, model: Path
) -> None:
    """extendedKeyUsage anyExtendedKeyUsage alone: model_signing's verifier would refuse
    it (no digitalSignature, no codeSigning), so signing refuses it first."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from tests._trust import make_cert, write_pem

    pair = signing.generate_key_pair(tmp_path / "any.pem")
    key = serialization.load_pem_private_key(pair.private_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = make_cert(
        subject="any purpose",
        key=key,
        ca=False,
        code_signing=False,
        extra=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])],
    )
    leaf = write_pem(tmp_path / "any.crt", cert)
    with pytest.raises(SigningKeyError, match="the certificate may not sign"):
        sign_model(model, private_key=pair.private_key, signing_certificate=leaf)
