"""Adding a model to the overlay: checked first, copied beside it, never the default.

:func:`add_model` writes only to the overlay and never makes the model the
default; :func:`.promote.promote` does that, with a comparison report as
evidence, so adding and flipping the default are never one step. The model is
scanned, contract-checked, its sidecar matched and its bundle checked before
anything is written; its files are copied under the overlay's folder so every
path of the entry stays confined there.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from vmafx_saliency._util import (
    UMASK,
    atomic_write_text,
    own_temporary_folder,
    read_capped,
    require,
    sha256_bytes,
)
from vmafx_saliency.errors import (
    InputFileError,
    RegistryError,
    SidecarError,
    SignatureError,
    UsageError,
)
from vmafx_saliency.supply.registry.documents import (
    _PROMOTE_HINT,
    MODEL_ID_RULE,
    _dump_registry,
    _load_document,
    _parse_document,
    _raw_models,
    _refuse_on_errors,
    is_model_id,
)
from vmafx_saliency.supply.registry.entries import (
    ModelEntry,
    Quantization,
    Sidecar,
    Source,
    Verification,
)
from vmafx_saliency.supply.registry.locations import (
    ENV_OVERLAY,
    _same_file,
    committed_registry_path,
    overlay_registry_path,
)
from vmafx_saliency.supply.registry.lock import writing
from vmafx_saliency.supply.registry.schemas import _MAX_JSON_BYTES, _dig, _parse_json
from vmafx_saliency.supply.registry.validate import (
    _MAX_MODEL_BYTES,
    _bundle_mismatch,
    _model_problem,
)

# Licence texts, keys and bundles are small; checked with stat before reading.
_MAX_AUX_BYTES = 8 * 1024 * 1024
_DEFAULT_DOMAINS = ("", "ai.onnx")


def _figures_from_manifest(doc: Any, path: Path, *, sha256: str) -> tuple[int, int]:
    pinned = _dig(doc, "output", "sha256")
    if pinned is not None and pinned != sha256:
        raise RegistryError(
            f"export manifest {path} describes an ONNX with sha256 {pinned}, but the model "
            f"has {sha256}: pass the manifest written with this export"
        )
    opset, params = _dig(doc, "export", "opset"), _dig(doc, "params")
    for key, value in (("export.opset", opset), ("params", params)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RegistryError(
                f"export manifest {path}: key {key} is missing or not a count ({value!r}): "
                "pass the manifest that 'vmafx-saliency export' wrote, or leave it out to read "
                "the figures from the ONNX"
            )
    assert isinstance(opset, int) and isinstance(params, int)
    return opset, params


def _figures_from_onnx(data: bytes, *, source: str) -> tuple[int, int]:
    # Only after the scan passed: onnx's C++ parser sees checked bytes only.
    onnx = require(
        "onnx",
        purpose="reading the opset and parameter count of a model without a manifest",
        extra="export",
    )
    model = onnx.load_model_from_string(data)
    opsets = [int(o.version) for o in model.opset_import if o.domain in _DEFAULT_DOMAINS]
    if not opsets:
        raise RegistryError(f"model {source} imports no default-domain opset: re-export it")
    params = sum(math.prod(int(d) for d in t.dims) for t in model.graph.initializer)
    return opsets[0], params


def _verification_raw(verification: Verification, names: Mapping[Path, str]) -> dict[str, object]:
    if verification.public_key is not None:
        return {"public_key": names[verification.public_key]}
    if verification.certificate_chain:
        return {"certificate_chain": [names[p] for p in verification.certificate_chain]}
    raw: dict[str, object] = {"oidc_issuer": verification.oidc_issuer}
    if verification.identity is not None:
        raw["identity"] = verification.identity
    else:
        raw["identity_regexp"] = verification.identity_regexp
    return raw


def add_model(  # noqa: PLR0913 -- the public API: one keyword per input of 'registry add'
    *,
    onnx: Path,
    model_id: str,
    sidecar: Path,
    status: Literal["alternative", "candidate"] = "alternative",
    license: str,
    license_file: Path,
    source: Source,
    sigstore_bundle: Path | None = None,
    verification: Verification | None = None,
    release_asset: bool = False,
    manifest: Path | None = None,
    quantization: Quantization | None = None,
    overlay: Path | None = None,
    force: bool = False,
) -> ModelEntry:
    """Register a model in the overlay (never the committed registry, never as default).

    The ONNX, sidecar, licence file, bundle, verification keys and manifest are
    copied into ``<overlay folder>/models/<model_id>/`` under their own names
    (a Sigstore bundle may name the file it signs), so every path of the entry
    stays under the overlay's folder. The model is scanned, contract-checked and
    its sidecar matched before anything is written; the overlay is replaced
    atomically. A quantised variant (``quantization``) needs its float parent
    registered with the sha256 it was made from.
    """
    new = _NewModel(
        model_id=model_id,
        onnx=onnx,
        sidecar=sidecar,
        status=status,
        license=license,
        license_file=license_file,
        source=source,
        sigstore_bundle=sigstore_bundle,
        verification=verification,
        release_asset=release_asset,
        manifest=manifest,
        quantization=quantization,
    )
    _refuse_status_or_id(new)
    _refuse_unloadable_release_asset(new)
    _refuse_unregistered_parent(new)
    overlay_path = overlay if overlay is not None else overlay_registry_path()
    _refuse_committed_clash(model_id, overlay_path)
    _overlay_models(model_id, overlay_path, force=force)  # refused before the slow checks
    read = _read_and_check(new)
    _check_signature(new, read.digest, sha256_bytes(read.sidecar_data))
    staging = _Staging(model_id)
    raw = _entry_raw(new, read, staging)
    with writing(overlay_path):
        # Read again under the lock: another add or promote may have written it since.
        existing = _overlay_models(model_id, overlay_path, force=force)
        return _write_overlay(overlay_path, existing, raw, staging)


@dataclass(frozen=True)
class _NewModel:
    """What :func:`add_model` was given: the files to check and copy, the entry's fields."""

    model_id: str
    onnx: Path
    sidecar: Path
    status: str
    license: str
    license_file: Path
    source: Source
    sigstore_bundle: Path | None
    verification: Verification | None
    release_asset: bool
    manifest: Path | None
    quantization: Quantization | None = None


@dataclass(frozen=True)
class _ReadModel:
    """The inputs read once, and the figures taken from them.

    Checks and copies use the same bytes, so the file checked is the file copied.
    """

    data: bytes
    digest: str
    sidecar_data: bytes
    manifest_data: bytes | None
    opset: int
    params: int


def _refuse_status_or_id(new: _NewModel) -> None:
    if new.status not in ("alternative", "candidate"):
        raise RegistryError(
            f"cannot add {new.model_id!r} with status {new.status!r}: a new model enters as "
            "'alternative' or 'candidate'; make it the default later with "
            f"{_PROMOTE_HINT} and a comparison report that shows the benefit"
        )
    if not is_model_id(new.model_id):
        raise RegistryError(f"model id {new.model_id!r} is not valid: {MODEL_ID_RULE}")


def _refuse_unloadable_release_asset(new: _NewModel) -> None:
    """The loader verifies a release asset on every load: without a bundle and a way to
    verify it, every load would fail (``registry validate`` warns of such an entry)."""
    if not new.release_asset:
        return
    missing = []
    if new.sigstore_bundle is None:
        missing.append("its Sigstore bundle (--bundle)")
    if new.verification is None:
        missing.append(
            "a way to verify it (--public-key, --certificate-chain, or --identity or "
            "--identity-regexp with --oidc-issuer)"
        )
    if missing:
        raise RegistryError(
            f"cannot add {new.model_id!r} as a release asset without {' and '.join(missing)}: "
            "a release asset is verified on every load; sign it ('vmafx-saliency sign') and "
            "pass both, or leave out --release-asset"
        )


def _refuse_committed_clash(model_id: str, overlay_path: Path) -> None:
    """The overlay is not the committed registry, and the id is not one of its."""
    committed_path = committed_registry_path()
    if _same_file(overlay_path, committed_path):
        raise RegistryError(
            f"the overlay {overlay_path} is the committed registry: 'registry add' never edits "
            f"tracked files; set {ENV_OVERLAY} to a file outside the repository"
        )
    if committed_path.exists():
        committed_ids = _load_document(committed_path, committed=True).ids
        if model_id in committed_ids:
            raise RegistryError(
                f"model id {model_id!r} is in the committed registry {committed_path}: choose "
                "another id (an overlay cannot replace a committed model)"
            )


def _overlay_models(model_id: str, overlay_path: Path, *, force: bool) -> list[dict[str, Any]]:
    """The overlay's raw entries; an entry of the same id is replaced only with ``force``."""
    existing = _raw_models(overlay_path, committed=False) if overlay_path.exists() else []
    for old in existing:
        if old["id"] != model_id:
            continue
        if not force:
            raise RegistryError(
                f"model {model_id!r} is already in the overlay {overlay_path}: pass --force "
                "(force=True) to replace it, or choose another id"
            )
        if old["default"]:
            raise RegistryError(
                f"model {model_id!r} is the overlay's default for {old['extractor']!r} in "
                f"{overlay_path}: promote another model first; replacing it would change the "
                "default and the binary in one step"
            )
    return existing


def _read_and_check(new: _NewModel) -> _ReadModel:
    """Read every input once: the model passes scan and contract, the sidecar is its own."""
    data = read_capped(new.onnx, what="model", cap=_MAX_MODEL_BYTES, error=RegistryError)
    digest = sha256_bytes(data)
    problem = _model_problem(data, source=str(new.onnx))
    if problem:
        raise RegistryError(f"cannot add {new.model_id!r}: {problem}")

    sidecar_data = read_capped(new.sidecar, what="sidecar", cap=_MAX_JSON_BYTES, error=SidecarError)
    side = Sidecar._from_bytes(sidecar_data, path=new.sidecar)
    if side.model_id != new.model_id:
        raise RegistryError(
            f"sidecar {new.sidecar} is for model {side.model_id!r}, not {new.model_id!r}: pass "
            "this model's sidecar, or set its model_id"
        )
    manifest_data, opset, params = _read_figures(new, data, digest=digest)
    if side.opset != opset:
        raise RegistryError(
            f"sidecar {new.sidecar} declares opset {side.opset}, the model {new.onnx} has opset "
            f"{opset}: fix the sidecar"
        )
    return _ReadModel(data, digest, sidecar_data, manifest_data, opset, params)


def _read_figures(new: _NewModel, data: bytes, *, digest: str) -> tuple[bytes | None, int, int]:
    """The manifest's bytes (when one is given), then the opset and parameter count.

    The figures come from the manifest when there is one, else from the ONNX.
    """
    if new.manifest is None:
        opset, params = _figures_from_onnx(data, source=str(new.onnx))
        return None, opset, params
    manifest_data = read_capped(
        new.manifest, what="export manifest", cap=_MAX_JSON_BYTES, error=RegistryError
    )
    opset, params = _figures_from_manifest(
        _parse_json(manifest_data, path=new.manifest, what="export manifest"),
        new.manifest,
        sha256=digest,
    )
    return manifest_data, opset, params


def _check_signature(new: _NewModel, digest: str, sidecar_digest: str) -> None:
    """One way of verification; a bundle signs this model with its sidecar and verifies."""
    if new.verification is not None:
        why = new.verification._problem()
        if why:
            raise RegistryError(f"verification for {new.model_id!r}: {why}")
    if new.sigstore_bundle is not None:
        why = _bundle_mismatch(new.sigstore_bundle, digest, sidecar_digest)
        if why:
            raise RegistryError(
                f"cannot add {new.model_id!r}: {why}; pass the bundle that signs {new.onnx} "
                f"with {new.sidecar} ('vmafx-saliency sign {new.onnx} --sidecar "
                f"{new.sidecar} --private-key KEY')"
            )
        if new.verification is not None:
            _verify_before_adding(new, new.sigstore_bundle, new.verification, digest)


@dataclass(frozen=True)
class _Staging:
    """The files to copy for one model, read once, each under its name in ``models/<id>/``."""

    model_id: str
    copies: dict[str, bytes] = field(default_factory=dict)  # relative name -> bytes
    names: dict[Path, str] = field(default_factory=dict)  # input path -> relative name

    def stage(
        self, path: Path, what: str, blob: bytes | None = None, cap: int = _MAX_AUX_BYTES
    ) -> str:
        """The relative name ``path`` is copied to; reads it unless its bytes are given."""
        # Destination names: the file's own name under models/<id>/.
        rel = str(PurePosixPath("models") / self.model_id / path.name)
        if rel in self.copies and self.names.get(path) != rel:
            raise RegistryError(
                f"two files to copy for {self.model_id!r} share the name {path.name!r} ({what} "
                f"{path}): rename one"
            )
        self.copies[rel] = (
            blob if blob is not None else read_capped(path, what=what, cap=cap, error=RegistryError)
        )
        self.names[path] = rel
        return rel


def _entry_raw(new: _NewModel, read: _ReadModel, staging: _Staging) -> dict[str, Any]:
    """The new entry as the overlay will hold it, staging each file it names."""
    raw: dict[str, Any] = {
        "id": new.model_id,
        "kind": "nr",
        "extractor": "mobilesal",
        "onnx": staging.stage(new.onnx, "model", read.data),
        "sha256": read.digest,
        "opset": read.opset,
        "params": read.params,
        "license": new.license,
        "license_file": staging.stage(new.license_file, "licence file"),
        "source": new.source.to_json(),
        "sidecar": staging.stage(new.sidecar, "sidecar", read.sidecar_data),
        "sidecar_sha256": sha256_bytes(read.sidecar_data),
        "sigstore_bundle": None
        if new.sigstore_bundle is None
        else staging.stage(new.sigstore_bundle, "Sigstore bundle"),
        "verification": None,
        "release_asset": new.release_asset,
        "status": new.status,
        "default": False,
    }
    if new.verification is not None:
        for key_file in new.verification.files():
            staging.stage(key_file, "verification file")
        raw["verification"] = _verification_raw(new.verification, staging.names)
    if new.manifest is not None:
        raw["manifest"] = staging.stage(new.manifest, "export manifest", read.manifest_data)
    if new.quantization is not None:
        raw["quantization"] = new.quantization.to_json()
    return raw


def _refuse_unregistered_parent(new: _NewModel) -> None:
    """A quantised variant's parent is registered, at the sha256 it was quantised from."""
    from vmafx_saliency.supply.registry.view import Registry

    q = new.quantization
    if q is None:
        return
    parent = Registry.load().get(q.parent_id)  # UnknownModelError names the registries
    if parent.sha256 != q.parent_sha256:
        raise RegistryError(
            f"cannot add {new.model_id!r}: it was quantised from {q.parent_id!r} at sha256 "
            f"{q.parent_sha256}, but the registry pins {parent.sha256}: quantise the "
            "registered model again"
        )


def _write_overlay(
    overlay_path: Path, existing: list[dict[str, Any]], raw: dict[str, Any], staging: _Staging
) -> ModelEntry:
    """Check the overlay with the new entry, then write the copies and the overlay."""
    model_id = staging.model_id
    models = [m for m in existing if m["id"] != model_id] + [raw]
    parsed = _parse_document(overlay_path, json.loads(_dump_registry(models)), committed=False)
    _refuse_on_errors(parsed.findings, f"cannot add {model_id!r} to {overlay_path}")

    root = overlay_path.absolute().parent
    try:
        _install_copies(
            root / "models" / model_id,
            staging.copies,
            commit=lambda: atomic_write_text(overlay_path, _dump_registry(models)),
        )
    except OSError as exc:
        raise RegistryError(
            f"cannot add {model_id!r} to {overlay_path}: writing failed "
            f"({exc.strerror or exc}): free some space or check the folder's permissions; "
            "the overlay is as it was"
        ) from exc
    # The entry as parsed from the document just written: resolved, confined
    # paths, as Registry.load will return them.
    (entry,) = (e for e in parsed.entries if e.id == model_id)
    return entry


def _install_copies(
    target: Path, copies: Mapping[str, bytes], *, commit: Callable[[], None]
) -> None:
    """Put the model's copies in ``target`` all at once, then ``commit`` (write the overlay).

    The copies are written into a hidden folder beside ``target`` and renamed
    into place; a folder they replace is kept aside until ``commit`` succeeds
    and put back if it fails. Whatever fails (a full disk, a signal), the
    overlay's folder holds the old copies or the new ones, never a mixture.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = own_temporary_folder(target.parent, target.name, suffix=".tmp", sweep=(".tmp", ".old"))
    aside: Path | None = None
    try:
        staged.chmod(0o777 & ~UMASK)  # mkdtemp made it 0700; a folder of copies is not private
        for rel, blob in copies.items():
            with (staged / PurePosixPath(rel).name).open("xb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
        if target.exists():
            aside = staged.with_name(staged.name.removesuffix(".tmp") + ".old")
            target.rename(aside)
        staged.rename(target)
        try:
            commit()
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            if aside is not None:
                aside.rename(target)
                aside = None
            raise
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _verify_before_adding(
    new: _NewModel, bundle: Path, verification: Verification, sha256: str
) -> None:
    """The bundle must verify with the key or chain being registered beside it.

    Keyless (identity) verification needs the Sigstore trust root, fetched over
    the network: that is left to the loader, and only the signed digest (checked
    before this) is required of it here, so a model can be registered offline.
    """
    from vmafx_saliency.supply.signing import Verifier, verify_model

    try:
        if verification.public_key is not None:
            verifier = Verifier.from_public_key(verification.public_key)
        elif verification.certificate_chain:
            verifier = Verifier.from_certificate_chain(verification.certificate_chain)
        else:
            return
        verify_model(
            new.onnx,
            bundle=bundle,
            verifier=verifier,
            expected_sha256=sha256,
            sidecar=new.sidecar,
        )
    except (SignatureError, UsageError, InputFileError) as exc:
        raise RegistryError(
            f"cannot add {new.model_id!r}: its Sigstore bundle does not verify with the "
            f"verification given ({exc})"
        ) from exc
