"""Sigstore bundle signing and verification through model_signing (offline)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("model_signing")

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests._onnx_models import conv_sigmoid_model
from tests._trust import Pki, make_pki
from tests._trust import make_cert as _cert
from vmafx_saliency.errors import (
    BundleInvalidError,
    BundleMissingError,
    InputFileError,
    ModelTamperedError,
    OutputExistsError,
    SignatureError,
    SignatureMismatchError,
    SigningKeyError,
    TrustRootError,
    UsageError,
)
from vmafx_saliency.supply import signing
from vmafx_saliency.supply.signing import (
    Verifier,
    bundle_path_for,
    generate_key_pair,
    sign_model,
    verify_model,
)

# Sigstore's OIDC issuer extension (v1: the raw issuer URL as bytes).
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1"


# --- fixtures ---------------------------------------------------------------


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


def _statement(bundle: Path) -> dict[str, Any]:
    doc = json.loads(bundle.read_text(encoding="utf-8"))
    payload: dict[str, Any] = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return payload


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- keys -------------------------------------------------------------------


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


# --- sign + verify ----------------------------------------------------------


def test_bundle_path_for() -> None:
    assert bundle_path_for(Path("dir/m.onnx")) == Path("dir/m.onnx.sigstore.json")


def test_key_round_trip_and_statement_digest(
    model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    assert signed == bundle_path_for(model)
    report = verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))
    digest = _sha256(model)
    assert report.sha256 == digest
    assert report.method == "public-key"
    assert report.model == model and report.bundle == signed
    public = serialization.load_pem_public_key(keys.public_key.read_bytes())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert report.signer == f"public key sha256:{hashlib.sha256(der).hexdigest()}"
    assert "signature OK" in report.render()

    # The in-toto statement model_signing writes for one file: resource "."
    # with the file's plain sha256; subject = file name, digest over digests.
    statement = _statement(signed)
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["predicate"]["resources"] == [
        {"name": ".", "algorithm": "sha256", "digest": digest}
    ]
    assert statement["subject"][0]["name"] == "model.onnx"
    root = hashlib.sha256(bytes.fromhex(digest)).hexdigest()
    assert statement["subject"][0]["digest"] == {"sha256": root}


def test_expected_sha256_matching_passes(model: Path, keys: signing.KeyPair, signed: Path) -> None:
    report = verify_model(
        model,
        bundle=signed,
        verifier=Verifier.from_public_key(keys.public_key),
        expected_sha256=_sha256(model).upper(),
    )
    assert report.sha256 == _sha256(model)


def test_verifies_after_copy_to_another_directory(
    tmp_path: Path, model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    staged = tmp_path / "release" / "v1"
    staged.mkdir(parents=True)
    shutil.copy2(model, staged / model.name)
    shutil.copy2(signed, staged / signed.name)
    model.unlink()  # nothing may depend on the original location
    report = verify_model(
        staged / model.name,
        bundle=bundle_path_for(staged / model.name),
        verifier=Verifier.from_public_key(keys.public_key),
    )
    assert report.sha256 == _sha256(staged / model.name)


def test_renamed_copy_and_symlink_still_verify(
    tmp_path: Path, model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    # model_signing names the single resource "." and treats the subject name
    # as informative, so the signature covers bytes, not the file name.
    renamed = tmp_path / "renamed.onnx"
    shutil.copy2(model, renamed)
    verifier = Verifier.from_public_key(keys.public_key)
    assert verify_model(renamed, bundle=signed, verifier=verifier).sha256 == _sha256(model)
    link = tmp_path / "link.onnx"
    link.symlink_to(model)
    assert verify_model(link, bundle=signed, verifier=verifier).sha256 == _sha256(model)


def test_sign_refuses_to_overwrite_without_force(
    model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    before = signed.read_bytes()
    with pytest.raises(OutputExistsError, match=r"sigstore\.json already exists: pass --force"):
        sign_model(model, private_key=keys.private_key)
    assert signed.read_bytes() == before
    assert sign_model(model, private_key=keys.private_key, force=True) == signed
    verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_sign_to_explicit_bundle_path(tmp_path: Path, model: Path, keys: signing.KeyPair) -> None:
    out = tmp_path / "sigs" / "x.json"
    assert sign_model(model, private_key=keys.private_key, bundle=out) == out
    assert not bundle_path_for(model).exists()
    verify_model(model, bundle=out, verifier=Verifier.from_public_key(keys.public_key))


def test_certificate_chain_round_trip(tmp_path: Path, model: Path, pki: Pki) -> None:
    bundle = sign_model(
        model,
        private_key=pki.leaf_key,
        signing_certificate=pki.leaf,
        certificate_chain=[pki.intermediate],
    )
    # Trust anchored at the root only: the intermediate travels in the bundle.
    report = verify_model(
        model, bundle=bundle, verifier=Verifier.from_certificate_chain([pki.root])
    )
    assert report.method == "certificate-chain"
    assert report.signer == "certificate CN=Acme model signer"
    assert report.sha256 == _sha256(model)


# --- what each failure raises ----------------------------------------------


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


def test_wrong_public_key(tmp_path: Path, model: Path, signed: Path) -> None:
    other = generate_key_pair(tmp_path / "other.pem")
    with pytest.raises(
        SignatureMismatchError,
        match=r"signature does not verify with .*other\.pem\.pub: the bundle was signed by "
        "another key",
    ):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(other.public_key))


def test_forged_key_hint_still_fails_on_the_signature(
    tmp_path: Path, model: Path, signed: Path
) -> None:
    # The key id in the bundle is unsigned: claiming another key's id must not
    # help, the signature check still runs (cryptography's InvalidSignature).
    other = generate_key_pair(tmp_path / "other.pem")
    public = serialization.load_pem_public_key(other.public_key.read_bytes())
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    doc = json.loads(signed.read_text(encoding="utf-8"))
    doc["verificationMaterial"]["publicKey"]["hint"] = hashlib.sha256(pem).hexdigest()
    signed.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SignatureMismatchError, match="the signature is not valid"):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(other.public_key))


def test_payload_swapped_from_another_bundle(
    tmp_path: Path, model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    other_model = tmp_path / "other.onnx"
    other_model.write_bytes(conv_sigmoid_model(seed=1))
    other_bundle = sign_model(
        other_model, private_key=generate_key_pair(tmp_path / "o").private_key
    )
    doc = json.loads(signed.read_text(encoding="utf-8"))
    doc["dsseEnvelope"]["payload"] = json.loads(other_bundle.read_text(encoding="utf-8"))[
        "dsseEnvelope"
    ]["payload"]
    signed.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SignatureMismatchError, match="the signature is not valid"):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_certificate_chain_from_another_ca(model: Path, pki: Pki, other_pki: Pki) -> None:
    bundle = sign_model(
        model,
        private_key=pki.leaf_key,
        signing_certificate=pki.leaf,
        certificate_chain=[pki.intermediate],
    )
    with pytest.raises(
        SignatureMismatchError, match=r"the signing certificate does not chain to .*Other-root"
    ):
        verify_model(
            model, bundle=bundle, verifier=Verifier.from_certificate_chain([other_pki.root])
        )


def test_flipped_byte_in_model(model: Path, keys: signing.KeyPair, signed: Path) -> None:
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(
        ModelTamperedError,
        match=r"the model's sha256 differs from the digest the bundle signs .*: the file was "
        "modified after signing; re-fetch or re-export it",
    ):
        verify_model(model, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_expected_sha256_mismatch(model: Path, keys: signing.KeyPair, signed: Path) -> None:
    with pytest.raises(ModelTamperedError, match=f"the bytes read have sha256 {'0' * 64}"):
        verify_model(
            model,
            bundle=signed,
            verifier=Verifier.from_public_key(keys.public_key),
            expected_sha256="0" * 64,
        )


def test_expected_sha256_malformed(model: Path, keys: signing.KeyPair, signed: Path) -> None:
    with pytest.raises(UsageError, match="not a sha256 hex digest"):
        verify_model(
            model,
            bundle=signed,
            verifier=Verifier.from_public_key(keys.public_key),
            expected_sha256="abc",
        )


def test_bundle_for_another_model(
    tmp_path: Path, model: Path, keys: signing.KeyPair, signed: Path
) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(conv_sigmoid_model(seed=1))
    with pytest.raises(
        ModelTamperedError,
        match=r"sha256 differs .*: the bundle was made for 'model\.onnx', a different model; "
        r"pass the bundle that belongs to other\.onnx",
    ):
        verify_model(other, bundle=signed, verifier=Verifier.from_public_key(keys.public_key))


def test_key_bundle_checked_against_certificate_chain(model: Path, signed: Path, pki: Pki) -> None:
    with pytest.raises(
        SignatureMismatchError,
        match="signed with a private key, but verification asked for certificate chain",
    ):
        verify_model(model, bundle=signed, verifier=Verifier.from_certificate_chain([pki.root]))


def test_missing_model_and_public_key(tmp_path: Path, keys: signing.KeyPair, signed: Path) -> None:
    with pytest.raises(InputFileError, match=r"nothing\.onnx: no model file there"):
        verify_model(
            tmp_path / "nothing.onnx",
            bundle=signed,
            verifier=Verifier.from_public_key(keys.public_key),
        )
    with pytest.raises(
        SigningKeyError, match=r"key .*absent\.pub: no such file: pass the public key"
    ):
        verify_model(
            signed.with_name("model.onnx"),
            bundle=signed,
            verifier=Verifier.from_public_key(tmp_path / "absent.pub"),
        )


# --- signing errors ---------------------------------------------------------


def test_sign_missing_model(tmp_path: Path, keys: signing.KeyPair) -> None:
    with pytest.raises(InputFileError, match=r"gone\.onnx: no model file there"):
        sign_model(tmp_path / "gone.onnx", private_key=keys.private_key)


def test_sign_directory_is_refused(tmp_path: Path, keys: signing.KeyPair) -> None:
    with pytest.raises(InputFileError, match="not a regular file: signing takes one model file"):
        sign_model(tmp_path, private_key=keys.private_key, bundle=tmp_path / "b.json")


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


def test_sign_certificate_without_chain(model: Path, pki: Pki) -> None:
    with pytest.raises(UsageError, match=r"pass --certificate-chain with the CA certificate"):
        sign_model(model, private_key=pki.leaf_key, signing_certificate=pki.leaf)
    assert not signing.bundle_path_for(model).exists()


def test_sign_chain_without_certificate(model: Path, keys: signing.KeyPair, pki: Pki) -> None:
    with pytest.raises(UsageError, match="pass --signing-certificate CERT too"):
        sign_model(model, private_key=keys.private_key, certificate_chain=[pki.root])


# --- Verifier arguments -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "public-key"}, "public-key verification needs pass --public-key"),
        ({"method": "certificate-chain"}, "needs pass --certificate-chain ROOT.pem"),
        (
            {"method": "public-key", "public_key": Path("k.pub"), "identity": "x"},
            "public-key verification does not take --identity",
        ),
        (
            {
                "method": "keyless",
                "public_key": Path("k.pub"),
                "identity": "x",
                "oidc_issuer": ISSUER,
            },
            "keyless verification does not take --public-key",
        ),
        ({"method": "keyless", "oidc_issuer": ISSUER}, "exactly one of --identity ID and"),
        (
            {"method": "keyless", "identity": "a", "identity_regexp": "b", "oidc_issuer": ISSUER},
            "exactly one of --identity ID and --identity-regexp REGEXP",
        ),
        ({"method": "keyless", "identity": "a"}, "needs --oidc-issuer URL"),
        (
            {"method": "keyless", "identity_regexp": "(", "oidc_issuer": ISSUER},
            "is not a valid regular expression",
        ),
        (
            {
                "method": "keyless",
                "identity": "a",
                "oidc_issuer": ISSUER,
                "trust_config": Path("t.json"),
                "use_staging": True,
            },
            "either --trust-config FILE or --staging",
        ),
        ({"method": "gpg"}, "unknown verification method 'gpg'"),
    ],
)
def test_verifier_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Verifier(**kwargs)


def test_verifier_constructors() -> None:
    assert Verifier.from_public_key(Path("k.pub")).public_key == Path("k.pub")
    chain = Verifier.from_certificate_chain([Path("a.crt"), Path("b.crt")])
    assert chain.certificate_chain == (Path("a.crt"), Path("b.crt"))
    keyless = Verifier.keyless(identity_regexp=r"https://github\.com/org/.*", oidc_issuer=ISSUER)
    assert keyless.method == "keyless" and keyless.identity is None
    with pytest.raises(UsageError, match="needs --oidc-issuer"):
        Verifier.keyless(identity="me@example.com", oidc_issuer=None)


# --- keyless, offline -------------------------------------------------------


def test_keyless_verifier_on_key_bundle_fails_fast(model: Path, signed: Path) -> None:
    # Decided from the bundle's verification material: no network.
    verifier = Verifier.keyless(identity="me@example.com", oidc_issuer=ISSUER)
    with pytest.raises(
        SignatureMismatchError,
        match="signed with a private key, but verification asked for keyless",
    ):
        verify_model(model, bundle=signed, verifier=verifier)


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


def test_keyless_identity_goes_to_model_signing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import model_signing

    seen: dict[str, Any] = {}

    def record(self: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return self

    monkeypatch.setattr(model_signing.verifying.Config, "use_sigstore_verifier", record)
    trust = tmp_path / "trust.json"
    signing._model_signing_config(
        model_signing,
        Verifier.keyless(identity=WORKFLOW, oidc_issuer=ISSUER, trust_config=trust),
    )
    assert seen == {
        "identity": WORKFLOW,
        "oidc_issuer": ISSUER,
        "use_staging": False,
        "trust_config": trust,
    }
    seen.clear()
    signing._model_signing_config(
        model_signing, Verifier.keyless(identity=WORKFLOW, oidc_issuer=ISSUER, use_staging=True)
    )
    assert seen["use_staging"] is True and seen["trust_config"] is None


def test_keyless_bad_trust_config_is_reported(tmp_path: Path) -> None:
    trust = tmp_path / "trust.json"
    trust.write_text("{}", encoding="utf-8")
    verifier = Verifier.keyless(identity_regexp=".*", oidc_issuer=ISSUER, trust_config=trust)
    with pytest.raises(InputFileError, match=r"trust\.json: not a Sigstore client trust config"):
        signing._client_trust_config(verifier)


def test_identity_regexp_policy() -> None:
    from sigstore.errors import VerificationError

    cert = _fulcio_like_cert(identity=WORKFLOW, issuer=ISSUER)
    policy = signing._IdentityRegexpPolicy(
        regexp=re.compile(r"https://github\.com/org/repo/.*"), issuer=ISSUER
    )
    policy.verify(cert)
    assert policy.matched == WORKFLOW

    wrong_issuer = signing._IdentityRegexpPolicy(regexp=re.compile(".*"), issuer="https://x")
    with pytest.raises(VerificationError, match="does not match"):
        wrong_issuer.verify(cert)
    # Anchored: a prefix pattern must not match an identity that only contains it.
    evil = _fulcio_like_cert(identity="https://evil.example/?" + WORKFLOW, issuer=ISSUER)
    anchored = signing._IdentityRegexpPolicy(
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

    monkeypatch.setattr(signing, "_sigstore_verify_dsse", stub)
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


def test_every_error_is_a_signature_error() -> None:
    for cls in (
        BundleMissingError,
        BundleInvalidError,
        SignatureMismatchError,
        ModelTamperedError,
        SigningKeyError,
        TrustRootError,
    ):
        assert issubclass(cls, SignatureError)


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
    ms: Any = importlib.import_module("model_signing")  # untyped: as signing.py takes it
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
