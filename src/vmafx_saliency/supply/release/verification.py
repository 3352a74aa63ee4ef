"""Verify a staged release folder, one verdict line per check.

``verify`` checks a staged folder: the sums, the model's signature (with its
sidecar), the release's signature over every file, the registry's pins,
the export manifest, the scan, the contract and the licence text with its
attribution block. Each check is a small function that returns its detail or
raises a :class:`~vmafx_saliency.errors.VmafxSaliencyError`, which becomes a
FAIL verdict: one broken asset never hides the verdicts on the others.
"""

from __future__ import annotations

import functools
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmafx_saliency._json import json_loads
from vmafx_saliency._util import read_capped, sha256_bytes
from vmafx_saliency.errors import RegistryError, ReleaseError, VmafxSaliencyError
from vmafx_saliency.supply.release.folder import (
    MAX_TEXT_BYTES,
    RELEASE_BUNDLE,
    RELEASE_JSON,
    SUMS,
    parse_release_doc,
    parse_sums,
    read_small,
)

if TYPE_CHECKING:
    from vmafx_saliency.supply.registry import ModelEntry, Registry
    from vmafx_saliency.supply.signing import Verifier

# The other assets (bundle, manifest, licence, card, release.json) are text of
# kilobytes; a cap far above them keeps a hostile folder from filling memory.
_MAX_ASSET_BYTES = 16 << 20


@dataclass(frozen=True)
class Verdict:
    asset: str
    ok: bool
    detail: str

    def render(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'}  {self.asset}: {self.detail}"


@dataclass(frozen=True)
class VerifyResult:
    folder: Path
    verdicts: tuple[Verdict, ...]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def render(self) -> str:
        lines = [v.render() for v in self.verdicts]
        lines.append(f"{self.folder}: {'release verified' if self.ok else 'release NOT verified'}")
        return "\n".join(lines)


def _attempt(asset: str, check: Callable[[], str]) -> Verdict:
    try:
        return Verdict(asset, True, check())
    except VmafxSaliencyError as exc:
        return Verdict(asset, False, str(exc))


def _registered_entry(model_id: str, registry: Registry | None) -> ModelEntry | None:
    """This registry's entry for ``model_id``; None when the model is not registered here."""
    from vmafx_saliency.supply.registry import Registry

    try:
        reg = registry if registry is not None else Registry.load()
        return reg.get(model_id)
    except VmafxSaliencyError:
        # Not registered here (a release is verified before it is registered), or no
        # usable registry at all: there is no pin to compare, and the signature decides.
        return None


@dataclass(frozen=True)
class _Staged:
    """A staged folder as its release.json and SHA256SUMS describe it."""

    folder: Path
    doc: dict[str, Any]
    sums: dict[str, str]
    named: frozenset[str]  # the files release.json names, itself included
    present: frozenset[str]  # the files in the folder, SHA256SUMS aside

    @classmethod
    def read(cls, folder: Path) -> _Staged:
        """Read the two descriptive files; a folder without them is no staged release."""
        if not (folder / RELEASE_JSON).is_file() or not (folder / SUMS).is_file():
            raise ReleaseError(
                f"{folder}: not a staged release (no {RELEASE_JSON} or {SUMS}): "
                "create one with 'vmafx-saliency release stage MODEL_ID --out DIR'"
            )
        # Read once: the bytes parsed here are the bytes the signature verdict judges.
        raw_doc = read_small(folder / RELEASE_JSON, cap=MAX_TEXT_BYTES, what=RELEASE_JSON)
        raw_sums = read_small(folder / SUMS, cap=MAX_TEXT_BYTES, what=SUMS)
        doc = parse_release_doc(folder, raw_doc)
        sums = parse_sums(folder, raw_sums)
        named = {
            RELEASE_JSON,
            doc["onnx"],
            doc["sigstore_bundle"],
            doc["license_file"],
            doc["card"],
        }
        for optional in ("manifest", "sidecar"):
            if doc.get(optional) is not None:
                named.add(doc[optional])
        try:
            present = {p.name for p in folder.iterdir()} - {SUMS, RELEASE_BUNDLE}
        except OSError as exc:
            raise ReleaseError(f"{folder}: cannot list the folder ({exc}): check it") from exc
        staged = cls(folder, doc, sums, frozenset(named), frozenset(present))
        staged._read.update({RELEASE_JSON: raw_doc, SUMS: raw_sums})
        return staged

    @functools.cached_property
    def _read(self) -> dict[str, bytes]:
        return {}

    def bytes_of(self, name: str) -> bytes:
        """A file's bytes, read once (plain file, capped): every verdict judges the same bytes."""
        if name == self.doc["onnx"]:
            return self.onnx_bytes
        if name not in self._read:
            self._read[name] = read_small(self.folder / name, cap=_MAX_ASSET_BYTES, what=name)
        return self._read[name]

    @property
    def onnx_path(self) -> Path:
        path: Path = self.folder / self.doc["onnx"]
        return path

    @functools.cached_property
    def onnx_bytes(self) -> bytes:
        """The model's bytes, read once (plain file, capped) for every verdict on it.

        The sum, the signature, the pin, the manifest, the scan and the contract
        all judge these bytes: a file swapped during verification cannot pass one
        check as itself and another as its replacement.
        """
        from vmafx_saliency.supply.scan import DEFAULT_MAX_BYTES

        return read_small(self.onnx_path, cap=DEFAULT_MAX_BYTES, what="model")

    @functools.cached_property
    def onnx_sha256(self) -> str:
        """The file's own digest; not the listed sum, which whoever swapped the file can rewrite."""
        try:
            return sha256_bytes(self.onnx_bytes)
        except ReleaseError as exc:  # missing, a folder, a pipe: the sums verdict says which
            raise ReleaseError(f"cannot read {self.doc['onnx']} to compare ({exc})") from exc


def verify(
    folder: Path, *, verifier: Verifier | None = None, registry: Registry | None = None
) -> VerifyResult:
    """Check a staged release; ``verifier`` defaults to the registry entry's.

    One verdict per check, in this order: a sum per file, the signature, the
    registry's pin (when the model is registered here), the export manifest
    (when there is one), the scan, the contract, the licence.
    """
    staged = _Staged.read(folder)
    doc = staged.doc
    onnx = doc["onnx"]
    verdicts = [
        _attempt(f"{name} (sum)", functools.partial(_check_sum, staged, name))
        for name in sorted(staged.present | set(staged.sums) | staged.named)
    ]
    verdicts.append(
        _attempt(
            f"{onnx} (signature)",
            functools.partial(_check_signature, staged, verifier=verifier, registry=registry),
        )
    )
    verdicts.append(
        _attempt(
            f"{RELEASE_BUNDLE} (signature)",
            functools.partial(_check_release_signature, staged, verifier, registry),
        )
    )
    entry = _registered_entry(doc["model_id"], registry)
    if entry is not None:
        verdicts.append(_attempt(f"{onnx} (pin)", functools.partial(_check_pin, staged, entry)))
        verdicts.append(
            _attempt(f"{RELEASE_JSON} (registry)", functools.partial(_check_terms, staged, entry))
        )
    if doc.get("manifest") is not None:
        verdicts.append(
            _attempt(f"{doc['manifest']} (manifest)", functools.partial(_check_manifest, staged))
        )
    verdicts.extend(_scan_and_contract(staged))
    verdicts.append(
        _attempt(f"{doc['license_file']} (licence)", functools.partial(_check_licence, staged))
    )
    return VerifyResult(folder, tuple(verdicts))


def _check_sum(staged: _Staged, name: str) -> str:
    """A file named in release.json, listed in SHA256SUMS, present, plain, and as listed."""
    if name not in staged.sums:
        if name in staged.named:
            raise ReleaseError(f"named in {RELEASE_JSON} but not listed in {SUMS}")
        raise ReleaseError(f"not listed in {SUMS}: an unexpected file")
    if name not in staged.named:
        # SHA256SUMS is not signed: listing a file there vouches for nothing.
        raise ReleaseError(f"not named in {RELEASE_JSON}: an unexpected file")
    if name not in staged.present:
        raise ReleaseError(f"listed in {SUMS} but missing")
    path = staged.folder / name
    if not stat.S_ISREG(path.lstat().st_mode):
        raise ReleaseError(
            "not a regular file (a symlink or a folder): a release holds plain files only"
        )
    # Read as the ONNX is: no symlink, a size cap, never a pipe or a device.
    actual = sha256_bytes(staged.bytes_of(name))
    if actual != staged.sums[name]:
        raise ReleaseError(f"sha256 {actual} differs from {SUMS} ({staged.sums[name]})")
    return f"sha256 {actual[:16]}… matches"


def _check_signature(
    staged: _Staged, *, verifier: Verifier | None, registry: Registry | None
) -> str:
    """The Sigstore bundle signs the model, by ``verifier`` or the registry entry's."""
    from vmafx_saliency.supply import signing

    chosen = verifier if verifier is not None else _entry_verifier(staged, registry)
    sidecar = staged.doc.get("sidecar")
    report = signing.verify_model(
        staged.onnx_path,
        bundle=staged.folder / staged.doc["sigstore_bundle"],
        verifier=chosen,
        expected_sha256=staged.onnx_sha256,
        sidecar=None if sidecar is None else staged.folder / sidecar,
        expected_sidecar_sha256=None if sidecar is None else sha256_bytes(staged.bytes_of(sidecar)),
    )
    with_sidecar = " with its sidecar" if report.sidecar is not None else ""
    return f"Sigstore bundle verifies{with_sidecar} ({report.method}, signer {report.signer})"


def _check_release_signature(
    staged: _Staged, verifier: Verifier | None, registry: Registry | None
) -> str:
    """release.sigstore.json signs every other file: release.json, the sums, card, licence."""
    from vmafx_saliency.supply import signing

    bundle = staged.folder / RELEASE_BUNDLE
    if not bundle.exists() and not bundle.is_symlink():
        raise ReleaseError(
            f"absent: {RELEASE_JSON}, {SUMS}, the card and the licence are unsigned, and "
            "anyone could have changed them; stage the release with --private-key KEY"
        )
    if not stat.S_ISREG(bundle.lstat().st_mode):
        raise ReleaseError(
            "not a regular file (a symlink or a folder): a release holds plain files"
        )
    chosen = verifier if verifier is not None else _entry_verifier(staged, registry)
    names = staged.present | {SUMS}
    # Said before any file is read: a folder padded with large files costs nothing.
    problem = signing.coverage_problem(names, signing.signed_names(bundle))
    if problem is not None:
        raise ReleaseError(problem)
    files = {name: staged.bytes_of(name) for name in sorted(names)}
    signer = signing.verify_files(files, bundle=bundle, verifier=chosen)
    return f"signs all {len(files)} other files ({chosen.method}, signer {signer})"


def _entry_verifier(staged: _Staged, registry: Registry | None) -> Verifier:
    """The registry entry's verifier, for a release of a model registered here."""
    from vmafx_saliency.supply.loader import verifier_for_entry
    from vmafx_saliency.supply.registry import Registry

    reg = registry if registry is not None else Registry.load()
    try:
        entry = reg.get(staged.doc["model_id"])
    except RegistryError as exc:
        # A downloaded release is verified before it is registered.
        raise ReleaseError(
            f"{exc}; or, for a release not registered here, name the signer's key: "
            "--public-key PEM, --certificate-chain PEM or --identity ID"
        ) from exc
    return verifier_for_entry(entry)


def _check_pin(staged: _Staged, entry: ModelEntry) -> str:
    """The model and its sidecar are the files this registry pins for its id."""
    actual = staged.onnx_sha256
    if actual != entry.sha256:
        raise ReleaseError(
            f"has sha256 {actual}, but this registry pins {staged.doc['model_id']!r} at "
            f"{entry.sha256}: the release holds another binary than the registered one"
        )
    sidecar = staged.doc.get("sidecar")
    if sidecar is None:
        raise ReleaseError(
            f"{RELEASE_JSON} names no sidecar: the model's pre-processing is missing"
        )
    sidecar_sha256 = sha256_bytes(staged.bytes_of(sidecar))
    if sidecar_sha256 != entry.sidecar_sha256:
        raise ReleaseError(
            f"the sidecar {sidecar} has sha256 {sidecar_sha256}, but this registry pins "
            f"{entry.sidecar_sha256}: the release holds another pre-processing"
        )
    return f"the registry's pins for {staged.doc['model_id']!r} (model and sidecar)"


def _check_terms(staged: _Staged, entry: ModelEntry) -> str:
    """The licence and source the release states are the registry entry's.

    Beyond the signature: a release signed by a key the registry trusts still
    may not state another licence (MIT for Apache-2.0) or another source.
    """
    doc = staged.doc
    if doc["license"] != entry.license or doc["source"] != entry.source.type:
        raise ReleaseError(
            f"states licence {doc['license']!r} and source {doc['source']!r}, but this "
            f"registry's entry for {entry.id!r} says {entry.license!r} and "
            f"{entry.source.type!r}: the release was changed; do not use it"
        )
    theirs = staged.bytes_of(doc["license_file"])
    ours = read_capped(
        entry.license_file, cap=MAX_TEXT_BYTES, what="licence file", error=ReleaseError
    )
    if sha256_bytes(theirs) != sha256_bytes(ours):
        raise ReleaseError(
            f"the licence file {doc['license_file']} differs from the one registered with "
            f"{entry.id!r} ({entry.license_file}): the release was changed; do not use it"
        )
    return f"licence {entry.license} and source {entry.source.type}, as registered"


def _check_manifest(staged: _Staged) -> str:
    """The export manifest describes this model (its output.sha256), not another export."""
    onnx = staged.doc["onnx"]
    path = staged.folder / staged.doc["manifest"]
    raw = staged.bytes_of(path.name)
    try:
        described = json_loads(raw.decode("utf-8"))["output"]["sha256"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"not an export manifest with output.sha256 ({exc!r})") from exc
    actual = staged.onnx_sha256
    if described != actual:
        raise ReleaseError(
            f"describes an ONNX with sha256 {described}, but {onnx} has {actual}: "
            "the manifest belongs to another export; do not use this release"
        )
    return f"describes {onnx} (sha256 {actual[:16]}…)"


def _scan_and_contract(staged: _Staged) -> list[Verdict]:
    """The scan's verdict, then the contract's on the very bytes the scanner passed."""
    from vmafx_saliency.supply import scan

    onnx_path = staged.onnx_path
    scan_asset = f"{staged.doc['onnx']} (scan)"
    contract_asset = f"{staged.doc['onnx']} (contract)"
    try:
        data = staged.onnx_bytes
        report = scan.check_bytes(data, path=str(onnx_path))
    except VmafxSaliencyError as exc:
        # ONNX Runtime only ever gets bytes the scanner passed.
        return [
            Verdict(scan_asset, False, str(exc)),
            Verdict(contract_asset, False, "not run: the model did not pass the scan"),
        ]
    scanned = Verdict(
        scan_asset,
        True,
        f"scan ALLOWED ({sum(report.ops.values())} nodes, {len(report.ops)} op types)",
    )
    return [scanned, _attempt(contract_asset, functools.partial(_check_contract, data, onnx_path))]


def _check_contract(data: bytes, onnx_path: Path) -> str:
    from vmafx_saliency.supply import contract

    contract.check_contract_bytes(data, source=str(onnx_path))
    return "contract OK"


def _check_licence(staged: _Staged) -> str:
    """The licence file holds the licence text (and, for a mirror, the attribution block)."""
    doc = staged.doc
    raw = staged.bytes_of(doc["license_file"])
    text = raw.decode("utf-8", errors="replace")
    if doc["license"] == "Apache-2.0":
        if "Apache License" not in text or "Version 2.0" not in text:
            raise ReleaseError("the licence file lacks the Apache-2.0 text")
        if doc["source"] == "upstream-mirror" and "Attribution" not in text:
            raise ReleaseError("the licence file lacks the attribution block")
        return "Apache-2.0 text and attribution block present"
    if len(text.strip()) < 200:
        raise ReleaseError("the licence file is too short to hold a licence text")
    return f"{doc['license']} licence text present"
