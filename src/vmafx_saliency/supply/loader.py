"""The loader gate: the one way to get an ONNX Runtime session for a model.

Layers, in order, each failing closed with its own error (DESIGN section 4):

1. **path**: resolve symlinks, regular file only, optional directory jail
   (``$VMAFX_SALIENCY_MODEL_DIR``), size cap checked before reading;
2. **identity**: sha256 of the bytes equals the registry pin;
3. **signature**: the Sigstore bundle verifies (policy ``signed``, and always
   for entries published as release assets);
4. **content**: the wire-format op-allowlist scanner;
5. **contract**: names, dtypes, ranks, dynamic H/W and a probe run.

The file is read once; the scanner, the contract check and the session all see
those same bytes, so nothing can swap the file between a check and its use.
There is no switch that skips the scanner.
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmafx_saliency._util import open_regular, read_opened, sha256_bytes
from vmafx_saliency.errors import (
    ContentRefused,
    ContractError,
    ContractRefused,
    IdentityRefused,
    InputFileError,
    LoaderError,
    PathRefused,
    ScanError,
    SignatureError,
    SignatureRefused,
    UsageError,
)
from vmafx_saliency.supply import contract
from vmafx_saliency.supply.providers import DEFAULT_PROVIDER, provider_id
from vmafx_saliency.supply.scan import DEFAULT_MAX_BYTES, ScanReport, scan_bounded

if TYPE_CHECKING:
    from vmafx_saliency.supply.registry import ModelEntry, Sidecar
    from vmafx_saliency.supply.signing import SignatureReport, Verifier

log = logging.getLogger(__name__)

JAIL_ENV = "VMAFX_SALIENCY_MODEL_DIR"
# A sidecar is a kilobyte of JSON.
_MAX_SIDECAR_BYTES = 1 << 20


class Policy(enum.Enum):
    PINNED = "pinned"  # registry models: sha256 must equal the pin
    SIGNED = "signed"  # pin plus a verified Sigstore bundle
    AD_HOC = "ad-hoc"  # an unregistered file: scanned and contract-checked, never pinned


@dataclass(frozen=True)
class LoadedModel:
    """A session that passed every layer, with what each layer found."""

    session: Any
    path: Path
    sha256: str
    size: int
    policy: Policy
    model_id: str | None
    entry: ModelEntry | None
    sidecar: Sidecar | None
    scan: ScanReport
    contract: contract.ContractReport
    signature: SignatureReport | None
    provider: str = DEFAULT_PROVIDER  # the execution provider the session runs on


def _refuse(cls: type[LoaderError], path: Path | str, reason: str, fix: str) -> LoaderError:
    return cls(f"loader refused {path} at the {cls.layer} check: {reason}: {fix}")


def _jail() -> Path | None:
    named = os.environ.get(JAIL_ENV)
    return Path(named).resolve() if named else None


def _check_opened_in_jail(fd: int, path: Path, jail: Path) -> None:
    """The file actually opened must be in the jail, not only the path resolved before.

    O_NOFOLLOW guards the last component only: a folder on the way swapped for a
    symlink between the resolve and the open would lead outside. Linux names the
    opened file in /proc; where it does not, the resolve-time check stands alone.
    """
    try:
        opened = Path(f"/proc/self/fd/{fd}").readlink()
    except OSError:
        return
    if not opened.is_relative_to(jail):
        raise _refuse(
            PathRefused,
            path,
            f"the file opened is {opened}, outside the trusted model directory {jail}: a "
            "folder on its path changed while it was being opened",
            f"check who can write under {jail}",
        )


def _check_single_link(fd: int, path: Path, jail: Path) -> None:
    """In the jail, a model must have one name: a hard link is the same file under
    a second name, possibly outside, where whoever can write there can change it."""
    links = os.fstat(fd).st_nlink
    if links > 1:
        raise _refuse(
            PathRefused,
            path,
            f"it has {links} hard links, and another name may lie outside the trusted model "
            f"directory {jail}",
            f"copy the file into {jail} (cp, not ln) so that it has one name",
        )


def read_model_bytes(path: Path, *, max_bytes: int | None = None) -> tuple[Path, bytes]:
    """The path layer: resolve, jail, regular file, size cap; then read once."""
    cap = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError as exc:
        raise _refuse(
            PathRefused, path, "no such file", "check the path or the registry entry"
        ) from exc
    except (OSError, RuntimeError) as exc:  # symlink loops raise RuntimeError before 3.13
        raise _refuse(PathRefused, path, f"cannot resolve it ({exc})", "fix the path") from exc
    jail = _jail()
    # is_relative_to compares path components, so /models-evil is not under /models.
    if jail is not None and not resolved.is_relative_to(jail):
        via = f" (it resolves to {resolved})" if resolved != path.absolute() else ""
        raise _refuse(
            PathRefused,
            path,
            f"it is outside the trusted model directory {jail}{via}",
            f"move the model under {jail} or change ${JAIL_ENV}",
        )

    # The final component must not have become a symlink since it was resolved.
    def refused(message: str) -> PathRefused:
        return PathRefused(f"loader refused {message}")

    name = f"{path} at the path check"
    opened = open_regular(resolved, what="model", name=name, error=refused, symlinks=False)
    with opened as (fd, size):
        if jail is not None:
            _check_opened_in_jail(fd, path, jail)
            _check_single_link(fd, path, jail)
        if size > cap:
            raise _refuse(
                PathRefused,
                path,
                f"it is {size:,} bytes, over the {cap:,}-byte cap, and was not read",
                "check that this is the right file, or raise the cap explicitly",
            )
        data = read_opened(fd, size, name=name, error=refused)
    return resolved, data


# What to do, by the scanner's kind of refusal (others: the file is malformed or hostile).
_CONTENT_ADVICE = {
    "over-budget": "do not use the file unless you trust it",
    "disallowed-op": "the model uses something off the op allowlist; re-export it with "
    "allowlisted ops",
    "custom-domain": "the model uses something off the op allowlist; re-export it with "
    "allowlisted ops",
}


def _check_content(data: bytes, path: Path) -> ScanReport:
    report = scan_bounded(data, path=str(path))
    try:
        report.raise_for_violations()
    except ScanError as exc:
        advice = _CONTENT_ADVICE.get(exc.kind, "do not use the file as it is")
        raise _refuse(ContentRefused, path, str(exc), advice) from exc
    return report


def _check_contract(
    data: bytes, path: Path, threads: int | None, sidecar: Sidecar | None, provider: str
) -> tuple[Any, contract.ContractReport]:
    """The contract, probed in a budgeted child first (at the sidecar's inference
    size too); only then does this process build its own session of the bytes."""
    infer = sidecar.preprocessing.inference_size if sidecar is not None else None
    try:
        report = contract.check_contract_bytes(data, source=str(path), infer=infer)
        session = contract.make_session(data, source=str(path), threads=threads, provider=provider)
    except ContractError as exc:
        raise _refuse(
            ContractRefused, path, str(exc), "re-export the model to meet the deployment contract"
        ) from exc
    return session, report


def verifier_for_entry(entry: ModelEntry) -> Verifier:
    """The verifier a registry entry's ``verification`` block names; refuse when it cannot."""
    from vmafx_saliency.supply.signing import Verifier

    how = entry.verification
    if how is None:
        raise _refuse(
            SignatureRefused,
            entry.onnx,
            f"registry entry {entry.id!r} names no key, certificate chain or identity "
            "to verify with",
            "add a 'verification' block to the entry (registry add --public-key ...)",
        )
    try:
        if how.public_key is not None:
            return Verifier.from_public_key(how.public_key)
        if how.certificate_chain:
            return Verifier.from_certificate_chain(how.certificate_chain)
        return Verifier.keyless(
            identity=how.identity,
            identity_regexp=how.identity_regexp,
            oidc_issuer=how.oidc_issuer or "",
        )
    except UsageError as exc:
        # A hand-edited or older registry can hold a block the verifier cannot use.
        raise _refuse(
            SignatureRefused,
            entry.onnx,
            f"the verification block of registry entry {entry.id!r} in {entry.registry} is "
            f"unusable ({exc})",
            "fix the entry's 'verification' block and run 'vmafx-saliency registry validate'",
        ) from exc


def _check_signature(entry: ModelEntry, path: Path, sha256: str, policy: Policy) -> SignatureReport:
    from vmafx_saliency.supply.signing import verify_model

    why = "the signed policy" if policy is Policy.SIGNED else "a release asset (always verified)"
    if entry.sigstore_bundle is None:
        raise _refuse(
            SignatureRefused,
            path,
            f"{why} needs a Sigstore bundle and entry {entry.id!r} declares none",
            "sign it with 'vmafx-saliency sign' and register the bundle",
        )
    verifier = verifier_for_entry(entry)
    try:
        # The sidecar is signed with the model; its pin (checked on the bytes the
        # loader uses) must be the digest the signature covers.
        return verify_model(
            path,
            bundle=entry.sigstore_bundle,
            verifier=verifier,
            expected_sha256=sha256,
            sidecar=entry.sidecar,
            expected_sidecar_sha256=entry.sidecar_sha256,
        )
    except (SignatureError, InputFileError, UsageError) as exc:
        # InputFileError: the file vanished after it was read; fail closed all the same.
        raise _refuse(SignatureRefused, path, str(exc), "do not use this file") from exc


def needs_signature(entry: ModelEntry, policy: Policy) -> bool:
    # A release asset was fetched from elsewhere: its signature is always checked
    # (DESIGN section 4), whoever trained it.
    return policy is Policy.SIGNED or entry.release_asset


def _pinned_sidecar(entry: ModelEntry) -> Sidecar:
    """The entry's sidecar, read through the path layer, its bytes the pinned ones.

    A model and its pre-processing are one unit: other mean/std or another
    inference size give other numbers (or a thousand times the memory) from the
    same pinned ONNX.
    """
    from vmafx_saliency.supply.registry import Sidecar, sidecar_pin_problem

    path, data = read_model_bytes(entry.sidecar, max_bytes=_MAX_SIDECAR_BYTES)
    problem = sidecar_pin_problem(entry, data)
    if problem is not None:
        raise _refuse(IdentityRefused, path, problem, "the sidecar is part of the pinned model")
    sidecar = Sidecar._from_bytes(data, path=path)
    if sidecar.model_id != entry.id:
        raise _refuse(
            IdentityRefused,
            path,
            f"the sidecar is for model {sidecar.model_id!r}, not {entry.id!r}",
            "point the entry at this model's sidecar",
        )
    return sidecar


def load_entry(
    entry: ModelEntry,
    *,
    policy: Policy = Policy.PINNED,
    threads: int | None = None,
    max_bytes: int | None = None,
    provider: str = DEFAULT_PROVIDER,
) -> LoadedModel:
    """Load a registered model through every layer; its session on ``provider``.

    The contract probe runs on the CPU, in its budgeted child, whatever the provider.
    """
    if policy is Policy.AD_HOC:
        raise LoaderError("a registry entry is always pinned: use Policy.PINNED or Policy.SIGNED")
    provider_id(provider)  # an unknown or uninstalled provider fails before any work
    path, data = read_model_bytes(entry.onnx, max_bytes=max_bytes)
    sha256 = sha256_bytes(data)
    if sha256 != entry.sha256:
        raise _refuse(
            IdentityRefused,
            path,
            f"its sha256 {sha256} differs from the registry pin {entry.sha256} of {entry.id!r}",
            "the file changed since it was registered: re-export or re-fetch it; if the change "
            "is intended, register it again with 'vmafx-saliency registry add --force'",
        )
    signature = (
        _check_signature(entry, path, sha256, policy) if needs_signature(entry, policy) else None
    )
    scan = _check_content(data, path)
    sidecar = _pinned_sidecar(entry)
    session, report = _check_contract(data, path, threads, sidecar, provider)
    return LoadedModel(
        session=session,
        path=path,
        sha256=sha256,
        size=len(data),
        policy=Policy.SIGNED if signature is not None else policy,
        model_id=entry.id,
        entry=entry,
        sidecar=sidecar,
        scan=scan,
        contract=report,
        signature=signature,
        provider=provider,
    )


def load_ad_hoc(
    path: Path,
    *,
    sidecar: Sidecar | None = None,
    threads: int | None = None,
    max_bytes: int | None = None,
    provider: str = DEFAULT_PROVIDER,
) -> LoadedModel:
    """Load an unregistered file for evaluation: scanned and contract-checked, never pinned."""
    provider_id(provider)
    resolved, data = read_model_bytes(path, max_bytes=max_bytes)
    sha256 = sha256_bytes(data)
    scan = _check_content(data, resolved)
    session, report = _check_contract(data, resolved, threads, sidecar, provider)
    # Said once it is loaded, and of the path, not of the bytes: a registered model's
    # file given by path is loaded ad hoc all the same, without its pin or signature.
    log.warning(
        "%s was given by path: loaded ad hoc (scanned and contract-checked, not checked "
        "against a registry pin, sha256 %s); give its registry id instead of the path to "
        "load it pinned",
        path,
        sha256[:16],
    )
    return LoadedModel(
        session=session,
        path=resolved,
        sha256=sha256,
        size=len(data),
        policy=Policy.AD_HOC,
        model_id=None,
        entry=None,
        sidecar=sidecar,
        scan=scan,
        contract=report,
        signature=None,
        provider=provider,
    )
