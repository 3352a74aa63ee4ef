"""The Sigstore bundle of a model (with its sidecar): where it lies, reading it, parsing it.

A bundle ``<model>.sigstore.json`` is a Sigstore bundle (media type
``application/vnd.dev.sigstore.bundle.v0.3+json``) whose DSSE envelope carries an
in-toto statement with the predicate ``https://model_signing/signature/v1.0``.
For one model *file* (not a directory) model_signing records:

* one resource named ``"."`` (the file's path relative to itself) whose digest
  is the plain sha256 of the file's bytes: the digest ``SignatureReport.sha256``
  reports and ``verify_model`` compares with ``expected_sha256``;
* one subject named after the file (``model.onnx``) whose digest is the sha256
  over the resource digests. model_signing treats the name as informative only.

A model signed with its sidecar is signed as model_signing signs a folder: the
two files under the fixed names ``model.onnx`` and ``sidecar.json`` (so a
renamed copy still verifies), one subject named after the model file. A release
folder is signed the same way under its files' own names (``folder=True``).

:func:`_parse_bundle` checks the shape and reads the signed statement, which is
not trusted until ``verify_model`` has verified the signature;
:func:`signed_sha256` hands out the claimed digest for consistency checks. The
model side lives here too: the model as one regular file, and the error raised
when its bytes differ from the digest its bundle signs.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vmafx_saliency._json import json_loads
from vmafx_saliency._util import read_capped, require
from vmafx_saliency.errors import (
    BundleInvalidError,
    BundleMissingError,
    InputFileError,
    ModelTamperedError,
)
from vmafx_saliency.supply.signing.keys import _EC_CURVES

BUNDLE_SUFFIX = ".sigstore.json"

Method = Literal["public-key", "certificate-chain", "keyless"]
METHODS: tuple[Method, ...] = ("public-key", "certificate-chain", "keyless")

# The format model_signing 1.x writes for key and certificate signing.
_PB_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
# model_signing names the only resource of a single-file model after the file's
# path relative to itself.
_FILE_RESOURCE = "."
# A model signed with its sidecar is signed as a folder of these two names (the
# files' own names may differ: the statement stays valid for a renamed copy).
MODEL_RESOURCE = "model.onnx"
SIDECAR_RESOURCE = "sidecar.json"
# A release folder holds a handful of files; a statement of thousands is not ours.
_MAX_RESOURCES = 64
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}\Z")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# A real bundle is a few KiB; refuse to read something huge (a model passed as
# --bundle by mistake) into memory.
_MAX_BUNDLE_BYTES = 8 << 20
# The largest model the scanner reads (supply.scan.DEFAULT_MAX_BYTES), and a
# sidecar (a kilobyte of JSON) with room to spare: what signing reads is capped.
MAX_MODEL_BYTES = 50 << 20
MAX_SIDECAR_BYTES = 1 << 20


# --- where the model and its bundle lie -------------------------------------


def bundle_path_for(model: Path) -> Path:
    """The default bundle path: ``m.onnx`` -> ``m.onnx.sigstore.json`` beside it."""
    model = Path(model)
    return model.with_name(model.name + BUNDLE_SUFFIX)


def _model_file(model: Path, *, doing: str) -> Path:
    """The model as a resolved regular file.

    model_signing refuses symbolic links and would hash a whole directory, so
    both are settled here with a clear message.
    """
    try:
        resolved = model.resolve(strict=True)
    except FileNotFoundError as exc:
        raise InputFileError(f"{model}: no model file there: check the path") from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise InputFileError(f"{model}: cannot resolve the path ({exc}): check it") from exc
    if not resolved.is_file():
        raise InputFileError(
            f"{model}: not a regular file: {doing} takes one model file such as model.onnx"
        )
    return resolved


# --- reading and parsing a bundle -------------------------------------------


def signed_digests(bundle: Path) -> tuple[str, str | None]:
    """The (model, sidecar) digests a bundle *claims* to sign, read without verifying
    anything; the sidecar's is None for a model signed alone.

    For consistency checks (a registry entry's bundle against its pins) that need
    no keys and no ``sign`` extra; trust comes only from :func:`verify_model`.
    """
    bundle = Path(bundle)
    parsed = _parse_bundle(bundle, _read_bundle(bundle, bundle))
    return parsed.sha256, parsed.sidecar_sha256


def signed_sha256(bundle: Path) -> str:
    """The model digest a bundle *claims* to sign (see :func:`signed_digests`)."""
    return signed_digests(bundle)[0]


def signed_sidecar_sha256(bundle: Path) -> str | None:
    """The sidecar digest a bundle *claims* to sign with its model; None for a model alone."""
    return signed_digests(bundle)[1]


def signed_names(bundle: Path) -> frozenset[str]:
    """The file names a folder's bundle *claims* to sign, read without verifying anything.

    For a check before any of those files is read: a folder of other files is
    refused without reading them.
    """
    bundle = Path(bundle)
    return frozenset(dict(_parse_bundle(bundle, _read_bundle(bundle, bundle), folder=True).files))


def _read_bundle(model: Path, bundle: Path) -> bytes:
    if not bundle.exists():
        raise BundleMissingError(
            f"{model}: no Sigstore bundle at {bundle}: sign the model with "
            f"'vmafx-saliency sign {model} --private-key KEY' or pass --bundle"
        )
    return read_capped(bundle, cap=_MAX_BUNDLE_BYTES, what="bundle", error=BundleInvalidError)


@dataclass(frozen=True)
class _ParsedBundle:
    kind: Method
    files: tuple[tuple[str, str], ...]  # (name, sha256) of each signed file, as signed
    subject: str  # the model's (or folder's) name when it was signed
    key_hint: str | None  # public-key bundles
    certificates: tuple[bytes, ...]  # DER, leaf first (certificate-chain bundles)

    @property
    def digests(self) -> dict[str, str]:
        return dict(self.files)

    @property
    def sha256(self) -> str:
        """The model's digest in a model bundle (one file, or model.onnx beside sidecar.json)."""
        digests = self.digests
        return digests.get(_FILE_RESOURCE) or digests[MODEL_RESOURCE]

    @property
    def sidecar_sha256(self) -> str | None:
        """The sidecar's digest, when the model was signed with its sidecar."""
        return self.digests.get(SIDECAR_RESOURCE)


def _invalid(bundle: Path, why: str) -> BundleInvalidError:
    return BundleInvalidError(
        f"{bundle}: not a valid model signature bundle: {why}: re-sign the model with "
        "'vmafx-saliency sign' or fetch its bundle again"
    )


def _parse_bundle(bundle: Path, raw: bytes, *, folder: bool = False) -> _ParsedBundle:
    """Check the bundle's shape and read the signed statement (not yet trusted).

    A model bundle (the default) signs one model, or a model and its sidecar;
    ``folder`` accepts any flat folder of files (a release).

    Everything model_signing would trip over while *reading* is checked here,
    so that whatever it raises later is about the signature or the model.
    """
    try:
        doc = json_loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _invalid(bundle, f"not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _invalid(bundle, "the JSON is not an object")
    media_type = doc.get("mediaType")
    if not isinstance(media_type, str) or not media_type.startswith(
        "application/vnd.dev.sigstore.bundle"
    ):
        raise _invalid(bundle, f"mediaType {media_type!r} is not a Sigstore bundle type")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise _invalid(bundle, "no verificationMaterial")
    payload = _envelope_payload(bundle, doc.get("dsseEnvelope"))
    files, subject = _parse_statement(bundle, payload)
    if not folder:
        _model_layout(bundle, files)

    present = [
        name for name in ("publicKey", "x509CertificateChain", "certificate") if name in material
    ]
    if len(present) != 1:
        raise _invalid(bundle, "verificationMaterial must hold exactly one key or certificate")
    tlog = material.get("tlogEntries", [])
    if not isinstance(tlog, list):
        raise _invalid(bundle, "tlogEntries is not a list")

    kind: Method
    key_hint: str | None = None
    certificates: tuple[bytes, ...] = ()
    if present == ["publicKey"]:
        kind = "public-key"
        public_key = material["publicKey"]
        hint = public_key.get("hint") if isinstance(public_key, dict) else None
        if not isinstance(hint, str) or not hint:
            # model_signing < 1.0 wrote no key id and verifies those bundles
            # through a legacy path that prints to stdout; such bundles are not
            # ours, so refuse them.
            raise _invalid(bundle, "the public key has no key id (a pre-1.0 model_signing bundle)")
        key_hint = hint
    elif tlog or present == ["certificate"]:
        # Sigstore keyless: a Fulcio certificate plus a transparency log entry;
        # sigstore-python parses the rest.
        kind = "keyless"
    else:
        kind = "certificate-chain"
        certificates = _chain_certificates(bundle, material["x509CertificateChain"])

    if kind != "keyless":
        if media_type != _PB_BUNDLE_MEDIA_TYPE:
            raise _invalid(bundle, f"mediaType {media_type!r} is not {_PB_BUNDLE_MEDIA_TYPE}")
        _validate_like_model_signing(bundle, doc)
    return _ParsedBundle(
        kind=kind, files=files, subject=subject, key_hint=key_hint, certificates=certificates
    )


def _envelope_payload(bundle: Path, envelope: object) -> bytes:
    """The DSSE envelope's payload: in-toto, with exactly one signature."""
    if not isinstance(envelope, dict):
        raise _invalid(bundle, "no dsseEnvelope (it does not sign a model_signing statement)")
    if envelope.get("payloadType") != _IN_TOTO_PAYLOAD_TYPE:
        raise _invalid(bundle, f"payloadType {envelope.get('payloadType')!r} is not in-toto")
    signatures = envelope.get("signatures")
    if (
        not isinstance(signatures, list)
        or len(signatures) != 1
        or not isinstance(signatures[0], dict)
        or not isinstance(signatures[0].get("sig"), str)
    ):
        raise _invalid(bundle, "the envelope must hold exactly one signature")
    return _b64(bundle, envelope.get("payload"), "the envelope payload")


def _b64(bundle: Path, value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise _invalid(bundle, f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error
        raise _invalid(bundle, f"{what} is not base64 ({exc})") from exc


def _chain_certificates(bundle: Path, chain: object) -> tuple[bytes, ...]:
    x509 = require("cryptography.x509", purpose="reading a bundle's certificates", extra="sign")
    ec = require(
        "cryptography.hazmat.primitives.asymmetric.ec",
        purpose="reading a bundle's certificates",
        extra="sign",
    )

    entries = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(entries, list) or not entries:
        raise _invalid(bundle, "the certificate chain is empty")
    ders: list[bytes] = []
    for i, entry in enumerate(entries):
        raw = entry.get("rawBytes") if isinstance(entry, dict) else None
        der = _b64(bundle, raw, f"certificate {i}")
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise _invalid(bundle, f"certificate {i} is not DER X.509 ({exc})") from exc
        if i == 0:
            leaf_key = cert.public_key()
            if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or (
                leaf_key.curve.name not in _EC_CURVES
            ):
                raise _invalid(
                    bundle, "the signing certificate does not hold an EC P-256/384/521 key"
                )
        ders.append(der)
    return tuple(ders)


def _validate_like_model_signing(bundle: Path, doc: dict[str, Any]) -> None:
    """Parse the bundle the way model_signing's reader does, to map its errors here.

    model_signing fills in two fields older writers omitted and drops two it
    does not model, then validates strictly (pydantic); the same is done on a
    copy so a malformed bundle is a BundleInvalidError, not a ValueError from
    deep inside verification.
    """
    bundle_v1 = require(
        "sigstore_models.bundle.v1", purpose="checking a Sigstore bundle", extra="sign"
    )

    adjusted = copy.deepcopy(doc)
    material = adjusted["verificationMaterial"]
    material.setdefault("tlogEntries", [])
    if isinstance(material.get("publicKey"), dict):
        material["publicKey"].setdefault("hint", None)
        for key in ("rawBytes", "keyDetails"):
            material["publicKey"].pop(key, None)
    try:
        bundle_v1.Bundle.from_dict(adjusted)
    except ValueError as exc:  # pydantic.ValidationError
        raise _invalid(bundle, f"its structure does not validate ({exc})") from exc


def _parse_statement(bundle: Path, payload: bytes) -> tuple[tuple[tuple[str, str], ...], str]:
    """Read the in-toto statement: ((file name, sha256) of each signed file, subject name)."""
    try:
        statement = json_loads(payload)
    except ValueError as exc:
        raise _invalid(bundle, f"the payload is not JSON ({exc})") from exc
    if not isinstance(statement, dict) or statement.get("_type") != _STATEMENT_TYPE:
        raise _invalid(bundle, f"the payload is not an in-toto statement ({_STATEMENT_TYPE})")
    predicate_type = statement.get("predicateType")
    if predicate_type == _LEGACY_PREDICATE_TYPE:
        raise _invalid(bundle, "it uses the pre-1.0 model_signing predicate")
    if predicate_type != _PREDICATE_TYPE:
        raise _invalid(bundle, f"predicateType {predicate_type!r} is not {_PREDICATE_TYPE}")

    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise _invalid(bundle, "the statement must have exactly one subject")
    subject = subjects[0]
    name = subject.get("name")
    digest = subject.get("digest")
    root = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(name, str) or not isinstance(root, str):
        raise _invalid(bundle, "the subject lacks a name or a sha256 digest")

    predicate = statement.get("predicate")
    serialization = predicate.get("serialization") if isinstance(predicate, dict) else None
    resources = predicate.get("resources") if isinstance(predicate, dict) else None
    if not isinstance(serialization, dict) or not isinstance(resources, list):
        raise _invalid(bundle, "the predicate lacks serialization or resources")
    _check_serialization(bundle, serialization)

    files = _resource_digests(bundle, resources)
    # model_signing's subject digest is sha256 over the resource digests in
    # order; a mismatch means the statement was not written by model_signing.
    joined = b"".join(bytes.fromhex(digest) for _, digest in files)
    if hashlib.sha256(joined).hexdigest() != root:
        raise _invalid(bundle, "the subject digest does not match the file digests")
    return files, name


def _resource_digests(bundle: Path, resources: list[Any]) -> tuple[tuple[str, str], ...]:
    """The statement's (file name, sha256) pairs, checked; a bounded count of plain names."""
    if not 1 <= len(resources) <= _MAX_RESOURCES:
        raise _invalid(bundle, f"it signs {len(resources)} files, not 1 to {_MAX_RESOURCES}")
    files: list[tuple[str, str]] = []
    for resource in resources:
        name = resource.get("name") if isinstance(resource, dict) else None
        digest = resource.get("digest") if isinstance(resource, dict) else None
        if not isinstance(name, str) or (name != _FILE_RESOURCE and not _PLAIN_NAME.match(name)):
            raise _invalid(bundle, f"a signed file's name {name!r} is not a plain file name")
        if resource.get("algorithm") != "sha256" or not isinstance(digest, str):
            raise _invalid(bundle, f"the digest of {name!r} is not sha256")
        if not _SHA256_HEX.fullmatch(digest):
            raise _invalid(bundle, f"the digest of {name!r} ({digest!r}) is not 64 hex digits")
        files.append((name, digest))
    if len({name for name, _ in files}) != len(files):
        raise _invalid(bundle, "it names one file twice")
    return tuple(files)


def _model_layout(bundle: Path, files: tuple[tuple[str, str], ...]) -> None:
    """A model bundle signs one model file, or the pair model.onnx and sidecar.json."""
    names = tuple(name for name, _ in files)
    if names in ((_FILE_RESOURCE,), (MODEL_RESOURCE, SIDECAR_RESOURCE)):
        return
    if len(names) == 1:
        raise _invalid(
            bundle, f"it signs the file {names[0]!r} inside a directory, not one model file"
        )
    raise _invalid(
        bundle,
        f"it signs {len(names)} files ({', '.join(names[:4])}), not one model file or a "
        f"model with its sidecar ({MODEL_RESOURCE}, {SIDECAR_RESOURCE})",
    )


def _check_serialization(bundle: Path, serialization: dict[str, Any]) -> None:
    """The predicate's serialization must be model_signing's per-file sha256 one."""
    method = serialization.get("method")
    if method != "files":
        raise _invalid(bundle, f"the model was serialized by {method!r}, not per file")
    if serialization.get("hash_type") != "sha256":
        raise _invalid(bundle, f"hash_type {serialization.get('hash_type')!r} is not sha256")
    if not isinstance(serialization.get("allow_symlinks"), bool):
        raise _invalid(bundle, "serialization.allow_symlinks is missing")
    ignore_paths = serialization.get("ignore_paths", [])
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        raise _invalid(bundle, "serialization.ignore_paths is not a list of paths")


# --- the model against the digest its bundle signs --------------------------


def _tampered(
    model: Path,
    bundle: Path,
    parsed: _ParsedBundle,
    actual: Mapping[str, str],
    sidecar: Path | None = None,
) -> ModelTamperedError:
    """The error for bytes whose digest differs from the one the bundle signs.

    ``actual`` holds the digests of the bytes read, by resource name.
    """
    signed = parsed.digests
    for name, digest in actual.items():
        if signed.get(name) == digest:
            continue
        if name == SIDECAR_RESOURCE and sidecar is not None:
            return ModelTamperedError(
                f"{sidecar}: the sidecar's sha256 differs from the digest the bundle signs "
                f"({digest} != {signed.get(name)}, bundle {bundle}): the sidecar was edited "
                "after signing, or belongs to another model; restore it or re-sign the pair"
            )
        if parsed.subject not in (model.name, Path(model).resolve().name):
            why = (
                f"the bundle was made for '{parsed.subject}', a different model; "
                f"pass the bundle that belongs to {model.name}"
            )
        else:
            why = "the file was modified after signing; re-fetch or re-export it"
        return ModelTamperedError(
            f"{model}: the model's sha256 differs from the digest the bundle signs "
            f"({digest} != {parsed.sha256}, bundle {bundle}): {why}"
        )
    return ModelTamperedError(f"{model}: the bytes differ from what bundle {bundle} signs")
