"""Shared builders for the trust tests: registries, sidecars, keys, bundles, CA chains.

The registry builders need only onnx; the certificate builders import
``cryptography`` when called, so importing this module does not need the
``sign`` extra.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from onnx import TensorProto, helper

from tests._onnx_models import conv_sigmoid_model
from vmafx_saliency._util import sha256_bytes

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from vmafx_saliency.supply.signing import KeyPair

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "src" / "vmafx_saliency" / "models" / "registry.json"
MIRROR_SIDECAR = ROOT / "src" / "vmafx_saliency" / "models" / "u2netp_mirror_v1.sidecar.json"
MIRROR_LICENCE = ROOT / "src" / "vmafx_saliency" / "models" / "Apache-2.0-u2netp.txt"
MIRROR_CARD = ROOT / "docs" / "models" / "u2netp_mirror.md"

TINY = conv_sigmoid_model()
# Conv 3x3 from 3 to 1 channels: 27 weights + 1 bias.
TINY_PARAMS = 28
# Long enough for the release check of a non-Apache licence text (>= 200 characters).
BSD_TEXT = (
    "BSD-3-Clause-Plus-Patent licence of a test model.\n"
    + "Redistribution and use in source and binary forms, with or without modification, "
    "are permitted provided that the conditions of this licence are met.\n" * 3
)

Json = dict[str, Any]


# --- registry documents -------------------------------------------------------------


def sidecar_doc(model_id: str, *, opset: int = 17) -> Json:
    return {
        "schema": "vmafx-saliency/sidecar/v1",
        "model_id": model_id,
        "contract": {
            "input": {"name": "input", "dtype": "float32", "shape": [1, 3, "H", "W"]},
            "output": {"name": "saliency_map", "dtype": "float32", "shape": [1, 1, "H", "W"]},
            "opset": opset,
            "output_range": [0.0, 1.0],
        },
        "preprocessing": {
            "colour_mode": "luma_tile",
            "inference_size": [320, 320],
            "scaling": "divide_by_max",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "luma_range": "auto",
        },
    }


def write_json(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def write_model(
    folder: Path,
    model_id: str,
    *,
    data: bytes = TINY,
    default: bool = True,
    status: str = "production",
) -> Json:
    """Write a model's files under ``folder/<model_id>/``; return its registry entry."""
    sub = folder / model_id
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "model.onnx").write_bytes(data)
    sidecar = write_json(sub / "sidecar.json", sidecar_doc(model_id))
    (sub / "LICENSE.txt").write_text("licence text\n")
    return {
        "id": model_id,
        "kind": "nr",
        "extractor": "mobilesal",
        "onnx": f"{model_id}/model.onnx",
        "sha256": sha256_bytes(data),
        "opset": 17,
        "params": TINY_PARAMS,
        "license": "BSD-3-Clause",
        "license_file": f"{model_id}/LICENSE.txt",
        "source": {"type": "fork-trained"},
        "sidecar": f"{model_id}/sidecar.json",
        "sidecar_sha256": sha256_bytes(sidecar.read_bytes()),
        "sigstore_bundle": None,
        "verification": None,
        "release_asset": False,
        "status": status,
        "default": default,
    }


def write_registry(path: Path, entries: list[Json]) -> Path:
    return write_json(path, {"schema": "vmafx-saliency/registry/v1", "models": entries})


def isolate_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Point the committed registry (empty) and the overlay (absent) into tmp."""
    from vmafx_saliency.supply import registry as reg

    committed = write_registry(tmp_path / "committed" / "registry.json", [])
    overlay = tmp_path / "overlay" / "registry.json"
    monkeypatch.setenv(reg.ENV_COMMITTED, str(committed))
    monkeypatch.setenv(reg.ENV_OVERLAY, str(overlay))
    return committed, overlay


def report_doc(rows: dict[str, dict[str, float]]) -> Json:
    """A comparison report as 'registry promote' reads it."""
    return {
        "schema": "vmafx-saliency/comparison/v1",
        "models": [{"id": mid, "metrics": m} for mid, m in rows.items()],
    }


# --- models the gates refuse ---------------------------------------------------------


def single_op_model(op: str, *, domain: str = "") -> bytes:
    """input -> one ``op`` node -> saliency_map; contract-shaped, so only the op is wrong."""
    node = helper.make_node(op, ["input"], ["saliency_map"], domain=domain)
    graph = helper.make_graph(
        [node],
        "one_op",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "h", "w"])],
    )
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return bytes(model.SerializeToString())


def custom_domain_model() -> bytes:
    return single_op_model("Evil", domain="com.evil")


def flip_byte(path: Path, *, at: int | None = None) -> None:
    """Flip one bit of ``path`` (in the middle by default: weights, not framing)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x01
    path.write_bytes(bytes(data))


# --- keys and bundles ------------------------------------------------------------------


def key_and_bundle(model: Path, keys: Path, *, sidecar: Path | None = None) -> tuple[KeyPair, Path]:
    """A fresh P-256 key pair under ``keys`` and ``model``'s bundle signed with it.

    The model is signed with ``sidecar``, by default the one beside it
    (``x.sidecar.json`` as ``vmafx-saliency sign`` finds it, or write_model's
    ``sidecar.json``) when there is one.
    """
    from vmafx_saliency.supply.registry import sidecar_beside
    from vmafx_saliency.supply.signing import generate_key_pair, sign_model

    pair = generate_key_pair(keys / "signing.pem")
    loose = model.with_name("sidecar.json")
    chosen = sidecar or sidecar_beside(model) or (loose if loose.is_file() else None)
    return pair, sign_model(model, private_key=pair.private_key, sidecar=chosen)


def _name(cn: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    *,
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    ca: bool,
    code_signing: bool = True,
    extra: list[x509.ExtensionType] | None = None,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer or subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # CAs must be valid when model_signing checks the leaf (at its notBefore).
        .not_valid_before(now - dt.timedelta(days=2 if ca else 1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage),
            critical=True,
        )
    elif code_signing:
        # What model_signing's certificate verifier accepts: keyUsage
        # digitalSignature (checked first) or extendedKeyUsage codeSigning.
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    for ext in extra or []:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


@dataclass(frozen=True)
class Pki:
    root: Path
    intermediate: Path
    leaf: Path
    leaf_key: Path


def make_pki(directory: Path, name: str, *, code_signing: bool = True) -> Pki:
    """root CA -> intermediate CA -> leaf signing certificate, all P-256."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from vmafx_saliency.supply.signing import generate_key_pair

    directory.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert(subject=f"{name} root", key=root_key, ca=True)
    inter = make_cert(
        subject=f"{name} intermediate",
        key=inter_key,
        issuer=f"{name} root",
        issuer_key=root_key,
        ca=True,
    )
    pair = generate_key_pair(directory / f"{name}-leaf.pem")
    leaf_public = serialization.load_pem_public_key(pair.public_key.read_bytes())
    assert isinstance(leaf_public, ec.EllipticCurvePublicKey)
    leaf_private = serialization.load_pem_private_key(pair.private_key.read_bytes(), None)
    assert isinstance(leaf_private, ec.EllipticCurvePrivateKey)
    leaf = make_cert(
        subject=f"{name} model signer",
        key=leaf_private,
        issuer=f"{name} intermediate",
        issuer_key=inter_key,
        ca=False,
        code_signing=code_signing,
    )
    return Pki(
        root=write_pem(directory / f"{name}-root.crt", root),
        intermediate=write_pem(directory / f"{name}-intermediate.crt", inter),
        leaf=write_pem(directory / f"{name}-leaf.crt", leaf),
        leaf_key=pair.private_key,
    )


# --- registered, signed models --------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    """A model registered in the overlay with its bundle and the key that verifies it."""

    model_id: str
    inputs: Path  # the loose files add_model copied: model.onnx, sidecar.json, LICENSE.txt
    public_key: Path


def register_tiny(
    tmp_path: Path, model_id: str = "tiny", *, data: bytes = TINY, signed: bool = True
) -> Registered:
    """Write a tiny model's inputs under tmp/in/<id>/, sign it and add it to the overlay."""
    from vmafx_saliency.supply import registry as reg

    write_model(tmp_path / "in", model_id, data=data)
    inputs = tmp_path / "in" / model_id
    (inputs / "LICENSE.txt").write_text(BSD_TEXT)
    pair, bundle = key_and_bundle(inputs / "model.onnx", tmp_path / "keys" / model_id)
    reg.add_model(
        onnx=inputs / "model.onnx",
        model_id=model_id,
        sidecar=inputs / "sidecar.json",
        license="BSD-3-Clause",
        license_file=inputs / "LICENSE.txt",
        source=reg.Source(type="fork-trained"),
        sigstore_bundle=bundle if signed else None,
        verification=reg.Verification(public_key=pair.public_key) if signed else None,
    )
    return Registered(model_id, inputs, pair.public_key)


def card_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *model_ids: str) -> Path:
    """Point release.staging.CARDS at tmp/cards, with a card for each model id."""
    from vmafx_saliency.supply.release import staging

    cards = tmp_path / "cards"
    cards.mkdir(exist_ok=True)
    for model_id in model_ids:
        (cards / f"{model_id}.md").write_text(f"# {model_id}\n\nA model card.\n")
    monkeypatch.setattr(staging, "CARDS", cards)
    return cards
