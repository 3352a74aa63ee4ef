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

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmafx_saliency._util import sha256_file
from vmafx_saliency.errors import ReleaseError, VmafxSaliencyError

if TYPE_CHECKING:
    from vmafx_saliency.registry import Registry
    from vmafx_saliency.signing import Verifier

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "docs" / "models"
SUMS = "SHA256SUMS"
RELEASE_JSON = "release.json"
RELEASE_SCHEMA = "vmafx-saliency/release/v1"


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
    from vmafx_saliency.registry import Registry

    reg = registry if registry is not None else Registry.load()
    entry = reg.get(model_id)
    if not entry.onnx.is_file():
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
    sources: dict[str, Path] = {
        entry.onnx.name: entry.onnx,
        entry.sigstore_bundle.name: entry.sigstore_bundle,
        entry.license_file.name: entry.license_file,
        card.name: card,
    }
    manifest = entry.manifest if entry.manifest is not None and entry.manifest.is_file() else None
    if manifest is not None:
        sources[manifest.name] = manifest
    if len(sources) != 4 + (manifest is not None):
        raise ReleaseError(f"{model_id}: two release files share a name: {sorted(sources)}")
    release_doc = {
        "schema": RELEASE_SCHEMA,
        "model_id": model_id,
        "onnx": entry.onnx.name,
        "sigstore_bundle": entry.sigstore_bundle.name,
        "license_file": entry.license_file.name,
        "license": entry.license,
        "card": card.name,
        "manifest": manifest.name if manifest else None,
        "source": entry.source.type,
    }
    if out.exists() and not (out / RELEASE_JSON).is_file() and any(out.iterdir()):
        raise ReleaseError(
            f"{out} exists and is not a staged release: choose an empty or new folder"
        )
    # Build the whole set in a sibling temp folder, then swap it in: a failure
    # leaves the previous staging (or nothing) in place.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, src in sorted(sources.items()):
            shutil.copyfile(src, tmp / name)
        (tmp / RELEASE_JSON).write_text(json.dumps(release_doc, indent=2, sort_keys=True) + "\n")
        names = sorted(p.name for p in tmp.iterdir())
        sums = "".join(f"{sha256_file(tmp / n)}  {n}\n" for n in names)
        (tmp / SUMS).write_text(sums)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            out.replace(old)
            tmp.replace(out)
            shutil.rmtree(old)
        else:
            tmp.replace(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    files = tuple(sorted(p.name for p in out.iterdir()))
    return StageResult(model_id, out, files, f"{model_id}: staged {len(files)} files in {out}")


def _read_sums(folder: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for number, line in enumerate((folder / SUMS).read_text().splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *]([^/\\]+)", line)
        if not match:
            raise ReleaseError(f"{folder / SUMS}:{number}: not a sha256sum line: {line!r}")
        sums[match.group(2)] = match.group(1)
    return sums


def _attempt(asset: str, check: Callable[[], str]) -> Verdict:
    try:
        return Verdict(asset, True, check())
    except VmafxSaliencyError as exc:
        return Verdict(asset, False, str(exc))


def verify(
    folder: Path, *, verifier: Verifier | None = None, registry: Registry | None = None
) -> VerifyResult:
    """Check a staged release; ``verifier`` defaults to the registry entry's."""
    from vmafx_saliency import contract, onnxscan, signing

    if not (folder / RELEASE_JSON).is_file() or not (folder / SUMS).is_file():
        raise ReleaseError(
            f"{folder}: not a staged release (no {RELEASE_JSON} or {SUMS}): "
            "create one with 'vmafx-saliency release stage MODEL_ID --out DIR'"
        )
    doc = json.loads((folder / RELEASE_JSON).read_text())
    sums = _read_sums(folder)
    verdicts: list[Verdict] = []
    present = {p.name for p in folder.iterdir()} - {SUMS}
    for name in sorted(present | set(sums)):

        def check_sum(name: str = name) -> str:
            if name not in sums:
                raise ReleaseError(f"not listed in {SUMS}: an unexpected file")
            if name not in present:
                raise ReleaseError(f"listed in {SUMS} but missing")
            actual = sha256_file(folder / name)
            if actual != sums[name]:
                raise ReleaseError(f"sha256 {actual} differs from {SUMS} ({sums[name]})")
            return f"sha256 {actual[:16]}… matches"

        verdicts.append(_attempt(f"{name} (sum)", check_sum))

    onnx_path = folder / doc["onnx"]
    data = onnx_path.read_bytes() if onnx_path.is_file() else b""

    def check_signature() -> str:
        chosen = verifier
        if chosen is None:
            from vmafx_saliency.loader import verifier_for_entry
            from vmafx_saliency.registry import Registry

            reg = registry if registry is not None else Registry.load()
            chosen = verifier_for_entry(reg.get(doc["model_id"]))
        report = signing.verify_model(
            onnx_path,
            bundle=folder / doc["sigstore_bundle"],
            verifier=chosen,
            expected_sha256=sums.get(doc["onnx"]),
        )
        return f"Sigstore bundle verifies ({report.method}, signer {report.signer})"

    def check_scan() -> str:
        report = onnxscan.check_bytes(data, path=str(onnx_path))
        return f"scan ALLOWED ({sum(report.ops.values())} nodes, {len(report.ops)} op types)"

    def check_contract() -> str:
        contract.check_contract_bytes(data, source=str(onnx_path))
        return "contract OK"

    def check_licence() -> str:
        text = (folder / doc["license_file"]).read_text(encoding="utf-8", errors="replace")
        if doc["license"] == "Apache-2.0":
            if "Apache License" not in text or "Version 2.0" not in text:
                raise ReleaseError("the licence file lacks the Apache-2.0 text")
            if doc["source"] == "upstream-mirror" and "Attribution" not in text:
                raise ReleaseError("the licence file lacks the attribution block")
            return "Apache-2.0 text and attribution block present"
        if len(text.strip()) < 200:
            raise ReleaseError("the licence file is too short to hold a licence text")
        return f"{doc['license']} licence text present"

    verdicts.append(_attempt(f"{doc['onnx']} (signature)", check_signature))
    verdicts.append(_attempt(f"{doc['onnx']} (scan)", check_scan))
    verdicts.append(_attempt(f"{doc['onnx']} (contract)", check_contract))
    verdicts.append(_attempt(f"{doc['license_file']} (licence)", check_licence))
    return VerifyResult(folder, tuple(verdicts))
