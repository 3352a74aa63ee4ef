"""Stage a model's publishable files into one release folder.

``stage`` collects the ONNX, its sidecar, its Sigstore bundle, its export
manifest, the licence file, the model card and a ``SHA256SUMS`` into one folder,
and with a signing key signs all of them into ``release.sigstore.json``. Without
a key it is idempotent: staging the same model again gives the same bytes. When the binary
is absent (a release asset not exported or fetched here) it says so and writes
nothing: a missing file is a fast no-op.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmafx_saliency._util import (
    NOT_A_CHECKOUT,
    PROJECT_ROOT,
    check_inputs_spared,
    own_temporary_folder,
    refuse_dash,
    sha256_file,
)
from vmafx_saliency.errors import OutputExistsError, ReleaseError
from vmafx_saliency.supply.release.folder import (
    RELEASE_BUNDLE,
    RELEASE_JSON,
    RELEASE_SCHEMA,
    RESERVED,
    SUMS,
    named_files,
    read_release_doc,
    read_sums,
)

if TYPE_CHECKING:
    from vmafx_saliency.supply.registry import ModelEntry, Registry

# The model cards of the checkout; installed, there are none to release with.
CARDS = PROJECT_ROOT / "docs" / "models" if PROJECT_ROOT is not None else None


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


def card_for(model_id: str) -> Path | None:
    """The model card: docs/models/<id>.md, or without a trailing _vN version; an INT8
    variant's is its float parent's (``<id>_int8``: the parent's card has its section)."""
    if CARDS is None:
        return None
    parent = re.sub(r"_int8$", "", model_id)
    for name in dict.fromkeys((model_id, parent, re.sub(r"_v\d+$", "", parent))):
        path = CARDS / f"{name}.md"
        if path.is_file():
            return path
    return None


@dataclass(frozen=True, kw_only=True)
class ReleaseSigner:
    """The key (or key and certificate with its chain) that signs a staged release."""

    private_key: Path
    signing_certificate: Path | None = None
    certificate_chain: tuple[Path, ...] = ()


def stage(
    model_id: str,
    *,
    out: Path,
    registry: Registry | None = None,
    signer: ReleaseSigner | None = None,
    force: bool = False,
) -> StageResult:
    """Stage ``model_id``'s release assets into ``out``; a no-op when its binary is absent.

    With ``signer`` every staged file (release.json and SHA256SUMS included) is
    signed into ``release.sigstore.json``, which ``verify`` requires. The set is
    built in a temporary folder beside ``out`` and swapped in, so a failure
    leaves the previous staging (or nothing) in place. ``out`` must be new,
    empty, or (with ``force``) an earlier staging of the same model that holds
    nothing else.
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
    assets = _gather_assets(model_id, entry)
    release_doc = _describe_release(model_id, entry, assets)
    reads: list[tuple[str, Path | None]] = [("a release asset", p) for p in assets.sources.values()]
    if signer is not None:
        reads += [("--private-key", signer.private_key)]
        reads += [("--signing-certificate", signer.signing_certificate)]
        reads += [("--certificate-chain", path) for path in signer.certificate_chain]
    _check_out(out, model_id, reads=reads, force=force)
    _write_staging(
        model_id,
        entry,
        assets.sources,
        release_doc,
        out=out,
        signer=signer,
        # Again before the swap: another run may have staged there, or someone put a file.
        recheck=lambda: _check_out(out, model_id, reads=reads, force=force),
    )
    staged_files = tuple(sorted(p.name for p in out.iterdir()))
    return StageResult(
        model_id, out, staged_files, f"{model_id}: staged {len(staged_files)} files in {out}"
    )


@dataclass(frozen=True)
class _Assets:
    """What a staging copies, checked: each file by its name in the release."""

    bundle: Path
    card: Path
    sidecar_name: str
    sources: dict[str, Path]


def _gather_assets(model_id: str, entry: ModelEntry) -> _Assets:
    """The model's bundle, card, licence and manifest, refused before anything is written."""
    # The card first: installed, there is none, and signing first would lead nowhere.
    card = card_for(model_id)
    if card is None:
        if CARDS is None:
            raise ReleaseError(
                f"{model_id}: no model card ({NOT_A_CHECKOUT}): write docs/models/"
                f"{model_id}.md in a checkout and stage the release there"
            )
        raise ReleaseError(f"{model_id}: no model card under {CARDS}: write {model_id}.md there")
    bundle = entry.sigstore_bundle
    if bundle is None or not bundle.is_file():
        raise ReleaseError(
            f"{model_id}: no Sigstore bundle to release with {entry.onnx.name}: sign it with "
            "'vmafx-saliency sign' and register the bundle"
        )
    if entry.manifest is not None and not entry.manifest.is_file():
        raise ReleaseError(
            f"{model_id}: the export manifest {entry.manifest} named by the registry is absent: "
            "restore it (it is written beside the ONNX by 'vmafx-saliency export')"
        )
    # The sidecar is staged under the name 'vmafx-saliency verify' finds beside the model.
    sidecar_name = f"{entry.onnx.stem}.sidecar.json"
    files: list[tuple[str, Path, str]] = [
        ("model", entry.onnx, entry.onnx.name),
        ("sidecar", entry.sidecar, sidecar_name),
        ("Sigstore bundle", bundle, bundle.name),
        ("licence file", entry.license_file, entry.license_file.name),
        ("model card", card, card.name),
    ]
    if entry.manifest is not None:
        files.append(("export manifest", entry.manifest, entry.manifest.name))
    return _Assets(bundle, card, sidecar_name, _by_release_name(model_id, files))


def _by_release_name(model_id: str, files: list[tuple[str, Path, str]]) -> dict[str, Path]:
    """Each (what, path, name) by the name it gets in the release: regular files, no name twice."""
    sources: dict[str, Path] = {}
    for what, src, name in files:
        if not src.is_file():
            raise ReleaseError(f"{model_id}: the {what} {src} is not a regular file: restore it")
        if name in sources or name in RESERVED:
            raise ReleaseError(
                f"{model_id}: the {what} {src} would be staged as {name!r}, a name another "
                f"release file takes: rename it"
            )
        sources[name] = src
    return sources


def _describe_release(model_id: str, entry: ModelEntry, assets: _Assets) -> dict[str, Any]:
    """The release.json document: which staged file is which, and under which licence."""
    return {
        "schema": RELEASE_SCHEMA,
        "model_id": model_id,
        "onnx": entry.onnx.name,
        "sidecar": assets.sidecar_name,
        "sigstore_bundle": assets.bundle.name,
        "license_file": entry.license_file.name,
        "license": entry.license,
        "card": assets.card.name,
        "manifest": entry.manifest.name if entry.manifest is not None else None,
        "source": entry.source.type,
    }


def _write_staging(
    model_id: str,
    entry: ModelEntry,
    sources: dict[str, Path],
    release_doc: dict[str, Any],
    *,
    out: Path,
    signer: ReleaseSigner | None,
    recheck: Callable[[], None],
) -> None:
    """Build the release in a temporary folder beside ``out``, then, once ``recheck``
    passes, swap it in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = own_temporary_folder(out.parent, out.name, suffix=".staging", sweep=(".staging", ".old"))
    try:
        for name, src in sorted(sources.items()):
            shutil.copyfile(src, tmp / name)
        # The pins are checked on the copies: the bytes that get published.
        staged = sha256_file(tmp / entry.onnx.name)
        if staged != entry.sha256:
            raise ReleaseError(
                f"{model_id}: {entry.onnx} has sha256 {staged}, the registry pins {entry.sha256}: "
                "the binary is not the registered model; restore it or re-register it"
            )
        side = sha256_file(tmp / f"{entry.onnx.stem}.sidecar.json")
        if side != entry.sidecar_sha256:
            raise ReleaseError(
                f"{model_id}: the sidecar {entry.sidecar} has sha256 {side}, the registry pins "
                f"{entry.sidecar_sha256}: restore it, or register the model again"
            )
        (tmp / RELEASE_JSON).write_text(json.dumps(release_doc, indent=2, sort_keys=True) + "\n")
        names = sorted(p.name for p in tmp.iterdir())
        (tmp / SUMS).write_text("".join(f"{sha256_file(tmp / n)}  {n}\n" for n in names))
        if signer is not None:
            _sign_release(tmp, signer, model_id)
        # mkdtemp makes the folder 0700; a release folder is for publishing.
        tmp.chmod(stat.S_IMODE(out.stat().st_mode) if out.is_dir() else 0o755)
        recheck()
        _swap_in(tmp, out)
    except OSError as exc:
        raise ReleaseError(
            f"{model_id}: cannot stage into {out} ({exc}): nothing changed there; check the "
            "folder and its permissions"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sign_release(tmp: Path, signer: ReleaseSigner, model_id: str) -> None:
    """Sign every file of the private staging folder into its release.sigstore.json."""
    from vmafx_saliency.supply.signing import sign_folder

    data = sign_folder(
        tmp,
        private_key=signer.private_key,
        bundle=tmp / RELEASE_BUNDLE,
        signing_certificate=signer.signing_certificate,
        certificate_chain=signer.certificate_chain,
        subject=model_id,
    )
    (tmp / RELEASE_BUNDLE).write_bytes(data)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` onto ``out``; a previous staging there is put back if that fails."""
    if not out.exists():
        tmp.replace(out)
        return
    # The previous staging while it is being replaced.
    old = own_temporary_folder(out.parent, out.name, suffix=".old", sweep=())
    restored = False
    try:
        out.replace(old)  # rename(2) replaces the empty folder mkdtemp made
        try:
            tmp.replace(out)
        except BaseException:  # an interrupt too: the previous staging is put back
            old.replace(out)
            restored = True
            raise
    finally:
        if not restored:
            shutil.rmtree(old, ignore_errors=True)


def _check_out(
    out: Path, model_id: str, *, reads: list[tuple[str, Path | None]], force: bool
) -> None:
    """Refuse an ``out`` that staging would clobber: only new, empty, or (``force``) our
    own staging holding nothing else, and none that holds one of its ``reads`` (a key
    kept there would go with the old set)."""
    refuse_dash(out, kind="folder", flag="--out")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ReleaseError(
            f"{out} exists and is not a folder (or is a symlink): choose an empty or new folder"
        )
    check_inputs_spared(reads, folders=[("--out", out)])
    if not out.exists() or not any(out.iterdir()):
        return
    marker = out / RELEASE_JSON
    if not marker.is_file():
        raise ReleaseError(
            f"{out} exists and is not a staged release: choose an empty or new folder"
        )
    try:
        doc = read_release_doc(out)
        previous = doc.get("model_id")
    except ReleaseError as exc:
        raise ReleaseError(
            f"{out} holds an unreadable {RELEASE_JSON} ({exc}): choose an empty or new folder"
        ) from exc
    if previous != model_id:
        raise ReleaseError(
            f"{out} holds the staged release of {previous!r}, not {model_id!r}: choose another "
            "folder, or remove that one first"
        )
    if not force:
        raise OutputExistsError(
            f"{out} already holds the staged release of {model_id!r}: pass --force to stage "
            "it again (the folder is replaced whole), or choose another folder"
        )
    _check_nothing_else(out, doc)


def _check_nothing_else(out: Path, doc: dict[str, Any]) -> None:
    """A staging is replaced whole: a file it did not stage there would be lost. Its
    files are those its release.json names and its sums list, if they are still
    readable (a damaged staging is what --force repairs)."""
    staged = named_files(doc)
    with contextlib.suppress(ReleaseError):
        staged |= set(read_sums(out))
    others = sorted(p.name for p in out.iterdir() if p.name not in staged)
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ReleaseError(
            f"{out} holds {listed} beside its staged release, which a new staging would "
            "delete with the folder: move them out first"
        )
