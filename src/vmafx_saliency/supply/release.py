"""Release assets: stage a model's publishable files and verify a staged folder.

``stage`` collects the ONNX, its Sigstore bundle, its export manifest, the
licence file, the model card and a ``SHA256SUMS`` into one folder. It is
idempotent: staging the same model again gives the same bytes. When the binary
is absent (a release asset not exported or fetched here) it says so and writes
nothing: a missing file is a fast no-op.

``verify`` checks a staged folder: the sums, the signature, the scan, the
contract and the licence text with its attribution block, one verdict line per
asset.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmafx_saliency._util import PROJECT_ROOT, read_capped, sha256_file
from vmafx_saliency.errors import RegistryError, ReleaseError, VmafxSaliencyError

if TYPE_CHECKING:
    from vmafx_saliency.supply.registry import Registry
    from vmafx_saliency.supply.signing import Verifier

CARDS = PROJECT_ROOT / "docs" / "models"
SUMS = "SHA256SUMS"
RELEASE_JSON = "release.json"
RELEASE_SCHEMA = "vmafx-saliency/release/v1"
# release.json, SHA256SUMS and licence texts are a few KiB.
_MAX_TEXT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class StageResult:
    model_id: str
    out: Path | None  # None: nothing staged (binary absent)
    files: tuple[str, ...]
    message: str

    def render(self) -> str:
        if self.out is None:
            return self.message
        return "\n".join([self.message, *(f"  {name}" for name in self.files)])


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


def card_for(model_id: str) -> Path | None:
    """The model card: docs/models/<id>.md, or without a trailing _vN version."""
    for name in (model_id, re.sub(r"_v\d+$", "", model_id)):
        path = CARDS / f"{name}.md"
        if path.is_file():
            return path
    return None


def stage(model_id: str, *, out: Path, registry: Registry | None = None) -> StageResult:
    """Stage ``model_id``'s release assets into ``out``; a no-op when its binary is absent.

    The set is built in a temporary folder beside ``out`` and swapped in, so a
    failure leaves the previous staging (or nothing) in place. ``out`` must be
    new, empty, or an earlier staging of the same model.
    """
    from vmafx_saliency.supply.registry import Registry

    reg = registry if registry is not None else Registry.load()
    entry = reg.get(model_id)
    if not entry.onnx.exists():
        return StageResult(
            model_id,
            None,
            (),
            f"{model_id}: binary {entry.onnx} is absent: nothing staged (export or fetch it first)",
        )
    if entry.sigstore_bundle is None or not entry.sigstore_bundle.is_file():
        raise ReleaseError(
            f"{model_id}: no Sigstore bundle to release with {entry.onnx.name}: sign it with "
            "'vmafx-saliency sign' and register the bundle"
        )
    card = card_for(model_id)
    if card is None:
        raise ReleaseError(
            f"{model_id}: no model card under {CARDS}: write docs/models/{model_id}.md"
        )
    if entry.manifest is not None and not entry.manifest.is_file():
        raise ReleaseError(
            f"{model_id}: the export manifest {entry.manifest} named by the registry is absent: "
            "restore it (it is written beside the ONNX by 'vmafx-saliency export')"
        )
    files: list[tuple[str, Path]] = [
        ("model", entry.onnx),
        ("Sigstore bundle", entry.sigstore_bundle),
        ("licence file", entry.license_file),
        ("model card", card),
    ]
    if entry.manifest is not None:
        files.append(("export manifest", entry.manifest))
    sources: dict[str, Path] = {}
    for what, src in files:
        if not src.is_file():
            raise ReleaseError(f"{model_id}: the {what} {src} is not a regular file: restore it")
        if src.name in sources or src.name in (RELEASE_JSON, SUMS):
            raise ReleaseError(
                f"{model_id}: the {what} {src} would be staged as {src.name!r}, a name another "
                f"release file takes: rename it"
            )
        sources[src.name] = src
    release_doc = {
        "schema": RELEASE_SCHEMA,
        "model_id": model_id,
        "onnx": entry.onnx.name,
        "sigstore_bundle": entry.sigstore_bundle.name,
        "license_file": entry.license_file.name,
        "license": entry.license,
        "card": card.name,
        "manifest": entry.manifest.name if entry.manifest is not None else None,
        "source": entry.source.type,
    }
    _check_out(out, model_id)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    old: Path | None = None  # the previous staging while it is being replaced
    try:
        for name, src in sorted(sources.items()):
            shutil.copyfile(src, tmp / name)
        # The pin is checked on the copy: the bytes that get published.
        staged = sha256_file(tmp / entry.onnx.name)
        if staged != entry.sha256:
            raise ReleaseError(
                f"{model_id}: {entry.onnx} has sha256 {staged}, the registry pins {entry.sha256}: "
                "the binary is not the registered model; restore it or re-register it"
            )
        (tmp / RELEASE_JSON).write_text(json.dumps(release_doc, indent=2, sort_keys=True) + "\n")
        names = sorted(p.name for p in tmp.iterdir())
        (tmp / SUMS).write_text("".join(f"{sha256_file(tmp / n)}  {n}\n" for n in names))
        # mkdtemp makes the folder 0700; a release folder is for publishing.
        tmp.chmod(stat.S_IMODE(out.stat().st_mode) if out.is_dir() else 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            out.replace(old)  # rename(2) replaces the empty folder mkdtemp made
            try:
                tmp.replace(out)
            except OSError:
                old.replace(out)  # put the previous staging back
                old = None
                raise
        else:
            tmp.replace(out)
    except OSError as exc:
        raise ReleaseError(
            f"{model_id}: cannot stage into {out} ({exc}): nothing changed there; check the "
            "folder and its permissions"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    staged_files = tuple(sorted(p.name for p in out.iterdir()))
    return StageResult(
        model_id, out, staged_files, f"{model_id}: staged {len(staged_files)} files in {out}"
    )


def _check_out(out: Path, model_id: str) -> None:
    """Refuse an ``out`` that staging would clobber: only new, empty, or our own staging."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ReleaseError(
            f"{out} exists and is not a folder (or is a symlink): choose an empty or new folder"
        )
    if not out.exists() or not any(out.iterdir()):
        return
    marker = out / RELEASE_JSON
    if not marker.is_file():
        raise ReleaseError(
            f"{out} exists and is not a staged release: choose an empty or new folder"
        )
    try:
        previous = _release_doc(out).get("model_id")
    except ReleaseError as exc:
        raise ReleaseError(
            f"{out} holds an unreadable {RELEASE_JSON} ({exc}): choose an empty or new folder"
        ) from exc
    if previous != model_id:
        raise ReleaseError(
            f"{out} holds the staged release of {previous!r}, not {model_id!r}: choose another "
            "folder, or remove that one first"
        )


def _plain_name(value: object) -> bool:
    """A file name in the release folder itself: no folders, no '..', nothing hidden."""
    return (
        isinstance(value, str)
        and bool(value)
        and not value.startswith(".")
        and not any(c in value for c in "/\\\0\n")
    )


def _read_small(path: Path, *, cap: int, what: str) -> bytes:
    """A release holds plain files only: symlinks are refused."""
    return read_capped(path, cap=cap, what=what, error=ReleaseError, symlinks=False)


def _release_doc(folder: Path) -> dict[str, Any]:
    raw = _read_small(folder / RELEASE_JSON, cap=_MAX_TEXT_BYTES, what="release description")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{folder / RELEASE_JSON} is not UTF-8 JSON ({exc})") from exc
    problems = []
    if not isinstance(doc, dict):
        raise ReleaseError(f"{folder / RELEASE_JSON} is not a JSON object")
    if doc.get("schema") != RELEASE_SCHEMA:
        problems.append(f"schema is {doc.get('schema')!r}, not {RELEASE_SCHEMA!r}")
    for key in ("model_id", "license", "source"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            problems.append(f"{key} is not a string")
    for key in ("onnx", "sigstore_bundle", "license_file", "card"):
        if not _plain_name(doc.get(key)) or doc[key] in (RELEASE_JSON, SUMS):
            problems.append(f"{key} {doc.get(key)!r} is not a file name in the folder")
    manifest = doc.get("manifest")
    if manifest is not None and (not _plain_name(manifest) or manifest in (RELEASE_JSON, SUMS)):
        problems.append(f"manifest {manifest!r} is not a file name in the folder")
    if problems:
        raise ReleaseError(
            f"{folder / RELEASE_JSON} is malformed: {'; '.join(problems)}: stage the release "
            "again with 'vmafx-saliency release stage'"
        )
    return doc


def _read_sums(folder: Path) -> dict[str, str]:
    text = _read_small(folder / SUMS, cap=_MAX_TEXT_BYTES, what="checksum list").decode(
        "utf-8", errors="replace"
    )
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not match or not _plain_name(match.group(2)):
            raise ReleaseError(f"{folder / SUMS}:{number}: not a sha256sum line: {line!r}")
        if match.group(2) in sums:
            raise ReleaseError(f"{folder / SUMS}:{number}: lists {match.group(2)!r} twice")
        sums[match.group(2)] = match.group(1)
    return sums


def _attempt(asset: str, check: Callable[[], str]) -> Verdict:
    try:
        return Verdict(asset, True, check())
    except VmafxSaliencyError as exc:
        return Verdict(asset, False, str(exc))


def _registered_sha256(model_id: str, registry: Registry | None) -> str | None:
    """This registry's pin for ``model_id``; None when the model is not registered here."""
    from vmafx_saliency.supply.registry import Registry

    try:
        reg = registry if registry is not None else Registry.load()
        return reg.get(model_id).sha256
    except VmafxSaliencyError:
        # Not registered here (a release is verified before it is registered), or no
        # usable registry at all: there is no pin to compare, and the signature decides.
        return None


def verify(
    folder: Path, *, verifier: Verifier | None = None, registry: Registry | None = None
) -> VerifyResult:
    """Check a staged release; ``verifier`` defaults to the registry entry's."""
    from vmafx_saliency.supply import contract, signing
    from vmafx_saliency.supply import scan as onnxscan

    if not (folder / RELEASE_JSON).is_file() or not (folder / SUMS).is_file():
        raise ReleaseError(
            f"{folder}: not a staged release (no {RELEASE_JSON} or {SUMS}): "
            "create one with 'vmafx-saliency release stage MODEL_ID --out DIR'"
        )
    doc = _release_doc(folder)
    sums = _read_sums(folder)
    named = {RELEASE_JSON, doc["onnx"], doc["sigstore_bundle"], doc["license_file"], doc["card"]}
    if doc.get("manifest") is not None:
        named.add(doc["manifest"])
    present = {p.name for p in folder.iterdir()} - {SUMS}
    verdicts: list[Verdict] = []
    for name in sorted(present | set(sums) | named):

        def check_sum(name: str = name) -> str:
            if name not in sums:
                if name in named:
                    raise ReleaseError(f"named in {RELEASE_JSON} but not listed in {SUMS}")
                raise ReleaseError(f"not listed in {SUMS}: an unexpected file")
            if name not in named:
                # SHA256SUMS is not signed: listing a file there vouches for nothing.
                raise ReleaseError(f"not named in {RELEASE_JSON}: an unexpected file")
            if name not in present:
                raise ReleaseError(f"listed in {SUMS} but missing")
            path = folder / name
            if not stat.S_ISREG(path.lstat().st_mode):
                raise ReleaseError(
                    "not a regular file (a symlink or a folder): a release holds plain files only"
                )
            actual = sha256_file(path)
            if actual != sums[name]:
                raise ReleaseError(f"sha256 {actual} differs from {SUMS} ({sums[name]})")
            return f"sha256 {actual[:16]}… matches"

        verdicts.append(_attempt(f"{name} (sum)", check_sum))

    onnx_path = folder / doc["onnx"]
    scanned: list[bytes] = []

    def check_signature() -> str:
        chosen = verifier
        if chosen is None:
            from vmafx_saliency.supply.loader import verifier_for_entry
            from vmafx_saliency.supply.registry import Registry

            reg = registry if registry is not None else Registry.load()
            try:
                entry = reg.get(doc["model_id"])
            except RegistryError as exc:
                # A downloaded release is verified before it is registered.
                raise ReleaseError(
                    f"{exc}; or, for a release not registered here, name the signer's key: "
                    "--public-key PEM, --certificate-chain PEM or --identity ID"
                ) from exc
            chosen = verifier_for_entry(entry)
        report = signing.verify_model(
            onnx_path,
            bundle=folder / doc["sigstore_bundle"],
            verifier=chosen,
            expected_sha256=sums.get(doc["onnx"]),
        )
        return f"Sigstore bundle verifies ({report.method}, signer {report.signer})"

    def check_scan() -> str:
        data = _read_small(onnx_path, cap=onnxscan.DEFAULT_MAX_BYTES, what="model")
        report = onnxscan.check_bytes(data, path=str(onnx_path))
        scanned.append(data)
        return f"scan ALLOWED ({sum(report.ops.values())} nodes, {len(report.ops)} op types)"

    def check_contract() -> str:
        if not scanned:
            # ONNX Runtime only ever gets bytes the scanner passed.
            raise ReleaseError("not run: the model did not pass the scan")
        contract.check_contract_bytes(scanned[0], source=str(onnx_path))
        return "contract OK"

    def check_licence() -> str:
        raw = _read_small(folder / doc["license_file"], cap=_MAX_TEXT_BYTES, what="licence file")
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

    @functools.cache
    def onnx_sha256() -> str:
        # The file's own digest, read once for every verdict that needs it; not the
        # listed sum, which whoever swapped the file can rewrite.
        try:
            return sha256_file(onnx_path)
        except OSError as exc:  # missing, or a folder: the sums verdict says which
            raise ReleaseError(f"cannot read {doc['onnx']} to compare ({exc.strerror})") from exc

    def check_manifest() -> str:
        path = folder / doc["manifest"]
        raw = _read_small(path, cap=_MAX_TEXT_BYTES, what="export manifest")
        try:
            described = json.loads(raw.decode("utf-8"))["output"]["sha256"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ReleaseError(f"not an export manifest with output.sha256 ({exc!r})") from exc
        actual = onnx_sha256()
        if described != actual:
            raise ReleaseError(
                f"describes an ONNX with sha256 {described}, but {doc['onnx']} has {actual}: "
                "the manifest belongs to another export; do not use this release"
            )
        return f"describes {doc['onnx']} (sha256 {actual[:16]}…)"

    def check_pin(entry_sha256: str) -> str:
        actual = onnx_sha256()
        if actual != entry_sha256:
            raise ReleaseError(
                f"has sha256 {actual}, but this registry pins {doc['model_id']!r} at "
                f"{entry_sha256}: the release holds another binary than the registered one"
            )
        return f"the registry's pin for {doc['model_id']!r}"

    verdicts.append(_attempt(f"{doc['onnx']} (signature)", check_signature))
    pinned = _registered_sha256(doc["model_id"], registry)
    if pinned is not None:
        verdicts.append(_attempt(f"{doc['onnx']} (pin)", lambda: check_pin(pinned)))
    if doc.get("manifest") is not None:
        verdicts.append(_attempt(f"{doc['manifest']} (manifest)", check_manifest))
    verdicts.append(_attempt(f"{doc['onnx']} (scan)", check_scan))
    verdicts.append(_attempt(f"{doc['onnx']} (contract)", check_contract))
    verdicts.append(_attempt(f"{doc['license_file']} (licence)", check_licence))
    return VerifyResult(folder, tuple(verdicts))
