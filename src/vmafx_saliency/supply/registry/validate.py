"""Validating a registry file: its structure, then every file each entry names.

The structure is the document's (:mod:`.documents`). Then each entry's files:
present, the ONNX's sha256 equal to the pin, the sidecar schema-valid and
matching the entry, the licence file, a declared Sigstore bundle that signs
the pinned model, verification keys and the export manifest. The model checks
(op-allowlist scan, then the deployment contract) import numpy and ONNX
Runtime only when a model is checked, so this module stays importable where
they are not installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vmafx_saliency._util import read_capped, sha256_bytes
from vmafx_saliency.errors import RegistryError, SidecarError, SignatureError
from vmafx_saliency.supply.registry.documents import _Document, _parse_document
from vmafx_saliency.supply.registry.entries import (
    Finding,
    ModelEntry,
    Sidecar,
    ValidationReport,
)
from vmafx_saliency.supply.registry.locations import (
    _is_committed,
    _same_file,
    committed_registry_path,
    overlay_registry_path,
)
from vmafx_saliency.supply.registry.schemas import _MAX_JSON_BYTES, _dig, _read_json

# The ONNX cap is the loader's; checked with stat before reading.
_MAX_MODEL_BYTES = 50 * 1024 * 1024


def validate_registry(path: Path, *, check_models: bool = True) -> ValidationReport:
    """Check one registry file and every file its entries name; collect all findings.

    Structure: schema, unique ids, one production default per extractor
    (exactly one in the committed registry), paths confined under the folder.
    Files: present, ONNX sha256 equal to the pin, sidecar schema-valid and
    matching the entry, licence file, declared bundle, verification keys and
    manifest. With ``check_models`` the ONNX is also scanned (op allowlist) and,
    only when the scan is clean, run through the deployment contract. A release
    asset whose binary is absent gives a warning, not an error.
    """
    try:
        doc = _read_json(path, what="registry", cap=_MAX_JSON_BYTES)
    except RegistryError as exc:
        return ValidationReport(path, (Finding("error", None, str(exc)),))
    committed = _is_committed(path)
    parsed = _parse_document(path, doc, committed=committed)
    findings = list(parsed.findings)
    if not committed and _same_file(path, overlay_registry_path()):
        findings.extend(_clashes_with_committed(parsed))
    for entry in parsed.entries:
        findings.extend(_check_entry(entry, check_models=check_models))
    findings.extend(_unlinked_variants(parsed, committed=committed))
    return ValidationReport(path, tuple(findings), parsed.ids)


def _unlinked_variants(parsed: _Document, *, committed: bool) -> list[Finding]:
    """A quantised entry's parent is registered (here or, for the overlay, committed)
    with the sha256 the variant was made from."""
    pins = {e.id: e.sha256 for e in parsed.entries}
    if not committed:
        pins.update({e.id: e.sha256 for e in _committed_document().entries})
    found = []
    for entry in parsed.entries:
        q = entry.quantization
        if q is None:
            continue
        if pins.get(q.parent_id) != q.parent_sha256:
            why = (
                f"is registered with sha256 {pins[q.parent_id]}"
                if q.parent_id in pins
                else "is not registered"
            )
            found.append(
                Finding(
                    "error",
                    entry.id,
                    f"is quantised from {q.parent_id!r} at sha256 {q.parent_sha256}, which "
                    f"{why}: register the parent, or quantise the registered one again",
                )
            )
    return found


def _committed_document() -> _Document:
    """The committed registry, parsed; empty when unreadable (its own validation says why)."""
    committed = committed_registry_path()
    try:
        doc = _read_json(committed, what="committed registry", cap=_MAX_JSON_BYTES)
    except RegistryError:
        return _Document(committed, (), (), ())
    return _parse_document(committed, doc, committed=True)


def _clashes_with_committed(overlay: _Document) -> list[Finding]:
    # Registry.load refuses an id defined in both files; say so when the
    # overlay is validated on its own, too.
    committed = committed_registry_path()
    ids = _committed_document().ids
    return [
        Finding(
            "error",
            model_id,
            f"is also defined in the committed registry {committed}: remove or rename the "
            f"overlay's entry in {overlay.path}",
        )
        for model_id in overlay.ids
        if model_id in ids
    ]


def _check_entry(entry: ModelEntry, *, check_models: bool) -> list[Finding]:
    # Release assets (the ONNX, its bundle, its manifest) are not committed, so
    # their absence in a checkout is expected. Once the binary is there, its
    # bundle and manifest must be too: a half-fetched asset is an error.
    check = _EntryCheck(entry, asset_absent=entry.release_asset and not entry.onnx.exists())

    if check.require_file(entry.onnx, "model", asset=True):
        check.findings.extend(_check_model_file(entry, check_models=check_models))
    if check.require_file(entry.sidecar, "sidecar"):
        _check_sidecar(check)
    check.require_file(entry.license_file, "licence file")
    if entry.sigstore_bundle is not None and check.require_file(
        entry.sigstore_bundle, "Sigstore bundle", asset=True
    ):
        why = _bundle_mismatch(entry.sigstore_bundle, entry.sha256, entry.sidecar_sha256)
        if why:
            check.error(f"{why}; replace the bundle with this model's ('vmafx-saliency sign')")
    if entry.verification is not None:
        for key_file in entry.verification.files():
            check.require_file(key_file, "verification file")
    if entry.manifest is not None and check.require_file(
        entry.manifest, "export manifest", asset=True
    ):
        _check_manifest(check, entry.manifest)
    _check_signing_declared(check)
    return check.findings


@dataclass(frozen=True)
class _EntryCheck:
    """The findings about one entry so far, and how a missing file is reported."""

    entry: ModelEntry
    asset_absent: bool  # a release asset whose binary is not fetched yet
    findings: list[Finding] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.findings.append(Finding("error", self.entry.id, message))

    def warning(self, message: str) -> None:
        self.findings.append(Finding("warning", self.entry.id, message))

    def require_file(self, path: Path, what: str, *, asset: bool = False) -> bool:
        """True when ``path`` is a regular file; else one finding saying why not."""
        if path.is_file():
            return True
        if path.exists():
            self.error(f"{what} {path} is not a regular file: replace it with the file itself")
        elif asset and self.asset_absent:
            self.warning(
                f"{what} {path} is absent: run 'vmafx-saliency export' or fetch the release asset"
            )
        else:
            self.error(
                f"{what} {path} does not exist: restore it, or fix the path in "
                f"{self.entry.registry}"
            )
        return False


def _check_sidecar(check: _EntryCheck) -> None:
    """The sidecar is pinned, reads, and is this model's, with the entry's opset."""
    entry = check.entry
    try:
        data = read_capped(entry.sidecar, what="sidecar", cap=_MAX_JSON_BYTES, error=SidecarError)
        sidecar = Sidecar._from_bytes(data, path=entry.sidecar)
    except SidecarError as exc:
        check.error(str(exc))
        return
    pin_problem = sidecar_pin_problem(entry, data)
    if pin_problem is not None:
        check.error(pin_problem)
    if sidecar.model_id != entry.id:
        check.error(
            f"sidecar {entry.sidecar} is for model {sidecar.model_id!r}, not {entry.id!r}: "
            "point the entry at this model's sidecar, or fix the sidecar's model_id"
        )
    if sidecar.opset != entry.opset:
        check.error(
            f"sidecar {entry.sidecar} declares opset {sidecar.opset}, the entry in "
            f"{entry.registry} says {entry.opset}: make them agree with the exported model"
        )


def sidecar_pin_problem(entry: ModelEntry, data: bytes) -> str | None:
    """Why the sidecar's bytes are not the ones the entry pins, or None."""
    if entry.sidecar_sha256 is None:
        return (
            f"entry {entry.id!r} in {entry.registry} pins no sidecar_sha256 (written before "
            "sidecars were pinned): register the model again with 'vmafx-saliency registry "
            "add ... --force'"
        )
    actual = sha256_bytes(data)
    if actual != entry.sidecar_sha256:
        return (
            f"sidecar {entry.sidecar} has sha256 {actual}, but the entry pins "
            f"{entry.sidecar_sha256}: it changed since the model was registered; restore it, "
            "or register the model again with 'vmafx-saliency registry add ... --force'"
        )
    return None


def _check_manifest(check: _EntryCheck, manifest: Path) -> None:
    """The export manifest reads, and describes the pinned ONNX when it names one."""
    entry = check.entry
    try:
        doc = _read_json(manifest, what="export manifest", cap=_MAX_JSON_BYTES)
    except RegistryError as exc:
        check.error(str(exc))
        return
    pinned = _dig(doc, "output", "sha256")
    if pinned is not None and pinned != entry.sha256:
        check.error(
            f"export manifest {manifest} describes sha256 {pinned}, the entry pins "
            f"{entry.sha256}: the manifest belongs to another export; replace it"
        )


def _check_signing_declared(check: _EntryCheck) -> None:
    # Signatures are checked by the loader; here only say when one cannot be.
    entry = check.entry
    if entry.release_asset and entry.sigstore_bundle is None:
        check.warning(
            "is a release asset without a Sigstore bundle: the loader verifies release assets, "
            "so sign it ('vmafx-saliency sign') and set sigstore_bundle and verification"
        )
    if entry.sigstore_bundle is not None and entry.verification is None:
        check.warning(
            "declares a Sigstore bundle but no verification (public key, certificate chain or "
            f"identity): the bundle cannot be checked; add one in {entry.registry}"
        )


def _bundle_mismatch(bundle: Path, sha256: str, sidecar_sha256: str | None) -> str | None:
    """Why ``bundle`` cannot sign the model pinned as ``sha256`` (and its sidecar), if it cannot.

    Only what the bundle claims is read (no keys needed); the loader verifies it.
    With a pinned sidecar the bundle must sign that sidecar with the model.
    """
    from vmafx_saliency.supply.signing import signed_digests

    try:
        signed, signed_sidecar = signed_digests(bundle)  # one read of the bundle
    except SignatureError as exc:
        return str(exc)
    if signed != sha256:
        return (
            f"Sigstore bundle {bundle} signs a model with sha256 {signed}, not the pinned "
            f"{sha256}: it is another model's bundle"
        )
    if sidecar_sha256 is not None and signed_sidecar is None:
        return (
            f"Sigstore bundle {bundle} signs the model alone, not its sidecar: the sidecar "
            "is unsigned; sign the model with its sidecar ('vmafx-saliency sign MODEL "
            "--sidecar SIDECAR')"
        )
    if sidecar_sha256 is not None and signed_sidecar != sidecar_sha256:
        return (
            f"Sigstore bundle {bundle} signs a sidecar with sha256 {signed_sidecar}, not the "
            f"pinned {sidecar_sha256}: it signs another sidecar"
        )
    return None


def _check_model_file(entry: ModelEntry, *, check_models: bool) -> list[Finding]:
    try:
        data = read_capped(entry.onnx, what="model", cap=_MAX_MODEL_BYTES, error=RegistryError)
    except RegistryError as exc:
        return [Finding("error", entry.id, str(exc))]
    actual = sha256_bytes(data)
    if actual != entry.sha256:
        # Bytes other than the pinned ones are not scanned or run: they are not
        # the model the registry describes.
        return [
            Finding(
                "error",
                entry.id,
                f"model {entry.onnx} has sha256 {actual}, {entry.registry} pins {entry.sha256}: "
                "restore the pinned file, or if this file is the intended model, re-add it "
                "('vmafx-saliency registry add --force') so the pin is recomputed",
            )
        ]
    if not check_models:
        return []
    problem = _model_problem(data, source=str(entry.onnx))
    return [Finding("error", entry.id, problem)] if problem else []


def _model_problem(data: bytes, *, source: str) -> str | None:
    """Scan, then (only when clean) check the contract; None when the model passes both."""
    from vmafx_saliency.supply import scan

    report = scan.scan_bounded(data, path=source)
    if not report.allowed:
        shown = "; ".join(f"[{v.kind}] {v.detail}" for v in report.violations[:3])
        more = len(report.violations) - 3 + report.omitted_violations
        return (
            f"model {source} fails the op-allowlist scan: {shown}"
            f"{f' (and {more} more)' if more > 0 else ''}"
        )
    try:
        from vmafx_saliency.supply import contract
    except ImportError as exc:
        return (
            f"model {source}: the contract check needs numpy and onnxruntime ({exc}): install "
            "the package's dependencies, or validate without the model checks"
        )
    from vmafx_saliency.errors import ContractError

    try:
        contract.check_contract_bytes(data, source=source)
    except ContractError as exc:
        return f"fails the deployment contract: {exc}"
    return None
