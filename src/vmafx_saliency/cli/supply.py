"""The supply-chain commands: scan, contract, export, card, registry, signing, load, release."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from vmafx_saliency.cli.options import (
    Subparsers,
    add_action_group,
    add_command,
    add_verifier_flags,
)
from vmafx_saliency.errors import InputFileError, UsageError

# --- scan -------------------------------------------------------------------


def _cmd_scan(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import scan as onnxscan

    reports = [onnxscan.scan_file(Path(p), max_bytes=args.max_bytes) for p in args.models]
    if args.json:
        doc = {"files": [r.to_json() for r in reports], "allowed": all(r.allowed for r in reports)}
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for report in reports:
            print(report.render())
    return 0 if all(r.allowed for r in reports) else 1


# --- contract ---------------------------------------------------------------


def _cmd_contract(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import contract

    report = contract.check_contract_file(Path(args.model))
    print(report.render())
    return 0


# --- export -----------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import export

    result = export.export_mirror(
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        upstream_dir=Path(args.upstream_dir) if args.upstream_dir else None,
        output=Path(args.output),
        manifest_out=Path(args.manifest_out) if args.manifest_out else None,
        commit=args.commit,
        images_dir=Path(args.images_dir) if args.images_dir else None,
        strict=not args.non_strict,
        force=args.force,
    )
    print(result.render())
    return 0


# --- card -------------------------------------------------------------------


def _cmd_card(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import card

    if args.manifest is not None:
        what = "figures"
        result = card.update_card(
            manifest=Path(args.manifest), card=Path(args.card), check=args.check
        )
    else:
        what = "evaluation"
        result = card.update_evaluation(
            report=Path(args.report), card=Path(args.card), check=args.check
        )
    if args.check:
        print(f"{result.card}: {what} up to date")
    else:
        print(f"{result.card}: {f'{what} updated' if result.changed else 'already up to date'}")
    return 0


# --- registry ---------------------------------------------------------------


def _cmd_registry_list(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.registry import Registry

    reg = Registry.load()
    entries = reg.entries()
    if not entries:
        print("no models registered")
        return 0
    print(f"{'id':<24} {'extractor':<10} {'status':<11} {'default':<7} {'source':<15} file")
    for e in entries:
        default = reg.default_or_none(e.extractor)
        mark = "yes" if default is not None and default.id == e.id else ""
        present = "" if e.onnx.is_file() else "  (absent)"
        print(
            f"{e.id:<24} {e.extractor:<10} {e.status:<11} {mark:<7} {e.source.type:<15} "
            f"{e.onnx}{present}"
        )
    return 0


def _cmd_registry_show(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.registry import Registry

    entry = Registry.load().get(args.model_id)
    for name, value in dataclasses.asdict(entry).items():
        shown = value if isinstance(value, str | int | None) else json.dumps(value, default=str)
        print(f"{name:<16} {shown}")
    return 0


def _cmd_registry_validate(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.registry import committed_registry_path, validate_registry

    path = Path(args.path) if args.path else committed_registry_path()
    report = validate_registry(path, check_models=not args.no_models)
    print(report.render())
    return 0 if report.ok else 1


def _verification_from(args: argparse.Namespace) -> Any:
    from vmafx_saliency.supply.registry import Verification

    chain = tuple(Path(p) for p in args.certificate_chain or ())
    if not (args.public_key or chain or args.identity or args.identity_regexp or args.oidc_issuer):
        return None
    return Verification(
        public_key=Path(args.public_key) if args.public_key else None,
        certificate_chain=chain,
        identity=args.identity,
        identity_regexp=args.identity_regexp,
        oidc_issuer=args.oidc_issuer,
    )


def _manifest_model_id(manifest: Path) -> str:
    try:
        model_id = json.loads(manifest.read_text(encoding="utf-8")).get("model_id")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputFileError(
            f"{manifest}: cannot read the model id from the export manifest ({exc}): "
            "pass --id, or the manifest 'vmafx-saliency export' wrote"
        ) from exc
    if not isinstance(model_id, str):
        raise InputFileError(f"{manifest}: the export manifest has no model_id: pass --id")
    return model_id


def _cmd_registry_add(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import registry

    manifest = Path(args.manifest) if args.manifest else None
    if args.source == "upstream-mirror":
        if manifest is None:
            raise UsageError("--source upstream-mirror needs --manifest (the export manifest)")
        source = registry.source_from_manifest(manifest)
    else:
        source = registry.Source(
            type="fork-trained", repo=None, commit=None, checkpoint_sha256=None
        )
    model_id = args.id
    if model_id is None:
        if manifest is None:
            raise UsageError("give --id, or --manifest to take the model id from it")
        model_id = _manifest_model_id(manifest)
    entry = registry.add_model(
        onnx=Path(args.model),
        model_id=model_id,
        sidecar=Path(args.sidecar),
        status=args.status,
        license=args.license,
        license_file=Path(args.license_file),
        source=source,
        sigstore_bundle=Path(args.bundle) if args.bundle else None,
        verification=_verification_from(args),
        release_asset=args.release_asset,
        manifest=manifest,
        force=args.force,
    )
    print(f"registered {entry.id} ({entry.status}) in {entry.registry}")
    return 0


def _cmd_registry_promote(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.registry import promote

    result = promote(
        args.model_id,
        report=Path(args.report),
        metric=args.metric,
        registry=Path(args.registry) if args.registry else None,
    )
    print(f"promoted {result.candidate} to default: {result.render()}")
    return 0


# --- signing ----------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.signing import generate_key_pair

    pair = generate_key_pair(
        Path(args.private_key), public_key=Path(args.public_key) if args.public_key else None
    )
    print(f"private key {pair.private_key} (mode 0600)\npublic key  {pair.public_key}")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.signing import sign_model

    bundle = sign_model(
        Path(args.model),
        private_key=Path(args.private_key),
        bundle=Path(args.bundle) if args.bundle else None,
        signing_certificate=Path(args.signing_certificate) if args.signing_certificate else None,
        certificate_chain=tuple(Path(p) for p in args.certificate_chain or ()),
        force=args.force,
    )
    print(f"signed {args.model} -> {bundle}")
    return 0


def _verifier_from(args: argparse.Namespace) -> Any:
    from vmafx_saliency.supply.signing import Verifier

    chosen = [
        bool(args.public_key),
        bool(args.certificate_chain),
        bool(args.identity or args.identity_regexp or args.oidc_issuer),
    ]
    if sum(chosen) != 1:
        raise UsageError(
            "verify with exactly one of --public-key, --certificate-chain, or "
            "--identity/--identity-regexp with --oidc-issuer"
        )
    if args.public_key:
        return Verifier.from_public_key(Path(args.public_key))
    if args.certificate_chain:
        return Verifier.from_certificate_chain(tuple(Path(p) for p in args.certificate_chain))
    return Verifier.keyless(
        identity=args.identity,
        identity_regexp=args.identity_regexp,
        oidc_issuer=args.oidc_issuer,
        trust_config=Path(args.trust_config) if args.trust_config else None,
        use_staging=args.staging,
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.signing import bundle_path_for, verify_model

    model = Path(args.model)
    bundle = Path(args.bundle) if args.bundle else bundle_path_for(model)
    report = verify_model(model, bundle=bundle, verifier=_verifier_from(args))
    print(
        f"{model}: signature OK ({report.method}; signer {report.signer}; sha256 {report.sha256})"
    )
    return 0


# --- load -------------------------------------------------------------------


def _cmd_load(args: argparse.Namespace) -> int:
    import numpy as np

    from vmafx_saliency.supply import loader
    from vmafx_saliency.supply.registry import Registry

    if args.size < 1:
        raise UsageError(f"--size must be a positive number of pixels, got {args.size}")
    if args.model_path:
        if args.signed:
            raise UsageError(
                "--signed needs a registered model: an ad-hoc --model-path has no pin or bundle"
            )
        loaded = loader.load_ad_hoc(Path(args.model_path))
    else:
        reg = Registry.load()
        entry = reg.get(args.model) if args.model else reg.default_for("mobilesal")
        policy = loader.Policy.SIGNED if args.signed else loader.Policy.PINNED
        loaded = loader.load_entry(entry, policy=policy)
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(1, 3, args.size, args.size)).astype(np.float32)
    try:
        (out,) = loaded.session.run(["saliency_map"], {"input": probe})
    except Exception as exc:  # ONNX Runtime's errors are untyped
        raise UsageError(
            f"{loaded.path}: the model loaded, but one inference at {args.size}x{args.size} "
            f"failed ({exc}): try another --size"
        ) from exc
    layers = [
        "path",
        "identity" if loaded.entry else None,
        "signature" if loaded.signature else None,
    ]
    passed = ", ".join(x for x in [*layers, "content", "contract"] if x)
    print(f"{loaded.model_id or loaded.path}: loaded ({loaded.policy.value}; passed {passed})")
    print(f"  sha256 {loaded.sha256}")
    print(f"  one inference at {args.size}x{args.size}: mean saliency {float(out.mean()):.4f}")
    return 0


# --- release ----------------------------------------------------------------


def _cmd_release_stage(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import release

    print(release.stage(args.model_id, out=Path(args.out)).render())
    return 0


def _cmd_release_verify(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import release

    flags = (
        args.public_key,
        args.certificate_chain,
        args.identity,
        args.identity_regexp,
        args.oidc_issuer,
        args.trust_config,
        args.staging,
    )
    verifier = _verifier_from(args) if any(flags) else None
    result = release.verify(Path(args.folder), verifier=verifier)
    print(result.render())
    return 0 if result.ok else 1


# --- parsers ------------------------------------------------------------------


def register_model_tools(sub: Subparsers) -> None:
    """scan, contract, export and card."""
    p = add_command(
        sub,
        "scan",
        help="scan ONNX files against the op allowlist (wire format, no onnx import)",
        example="vmafx-saliency scan --json models/u2netp_mirror_v1.onnx",
        handler=_cmd_scan,
    )
    p.add_argument("models", nargs="+", metavar="MODEL.onnx")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help="size cap in bytes (default: 50 MiB)",
    )

    p = add_command(
        sub,
        "contract",
        help="check an ONNX model against the deployment contract (names, shapes, range)",
        example="vmafx-saliency contract models/saliency_student_v2.onnx",
        handler=_cmd_contract,
    )
    p.add_argument("model", metavar="MODEL.onnx")

    p = add_command(
        sub,
        "export",
        help="export the upstream u2netp checkpoint to the u2netp_mirror_v1 ONNX model",
        example="vmafx-saliency export --checkpoint ../shared/fixtures/u2netp/"
        "u2netp_bnfold_fp16.pth --output models/u2netp_mirror_v1.onnx",
        handler=_cmd_export,
    )
    p.add_argument("--checkpoint", metavar="PATH", help="u2netp state_dict (.pth)")
    p.add_argument(
        "--upstream-dir",
        metavar="DIR",
        help="audited local checkout of github.com/xuebinqin/U-2-Net to take U2NETP from",
    )
    p.add_argument("--output", default="models/u2netp_mirror_v1.onnx", metavar="PATH")
    p.add_argument(
        "--manifest-out", metavar="PATH", help="default: the output path + .manifest.json"
    )
    p.add_argument(
        "--commit", default="ac7e1c81", help="upstream commit pin (default: %(default)s)"
    )
    p.add_argument(
        "--images-dir",
        metavar="DIR",
        help="real images for the parity check (default: ../shared/data/images when present)",
    )
    p.add_argument(
        "--non-strict", action="store_true", help="allow missing/unexpected checkpoint keys"
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")

    p = add_command(
        sub,
        "card",
        help="rewrite a model card's figures (or evaluation) block from a manifest (or summary)",
        example="vmafx-saliency card --manifest models/u2netp_mirror_v1.onnx.manifest.json "
        "--card docs/models/u2netp_mirror.md\n"
        "  vmafx-saliency card --report docs/models/reports/pascal-s-deployment.summary.json "
        "--card docs/models/saliency_student_v2.md",
        handler=_cmd_card,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--manifest", metavar="PATH", help="an export manifest: rewrite the figures block"
    )
    source.add_argument(
        "--report", metavar="PATH", help="an eval summary.json: rewrite the evaluation block"
    )
    p.add_argument("--card", required=True, metavar="PATH")
    p.add_argument(
        "--check", action="store_true", help="only check; exit non-zero if the card is stale"
    )


def register_trust(sub: Subparsers) -> None:
    """registry, keygen, sign, verify, load and release."""
    rsub = add_action_group(
        sub,
        "registry",
        help="list, show, validate, add and promote registered models",
        example="vmafx-saliency registry list",
    )
    add_command(
        rsub,
        "list",
        help="list the models of the committed registry and the overlay",
        example="vmafx-saliency registry list",
        handler=_cmd_registry_list,
    )
    p = add_command(
        rsub,
        "show",
        help="show one registry entry",
        example="vmafx-saliency registry show u2netp_mirror_v1",
        handler=_cmd_registry_show,
    )
    p.add_argument("model_id", metavar="ID")
    p = add_command(
        rsub,
        "validate",
        help="validate a registry file: schema, files, pins, sidecars, scan and contract",
        example="vmafx-saliency registry validate models/registry.json",
        handler=_cmd_registry_validate,
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="default: models/registry.json")
    p.add_argument("--no-models", action="store_true", help="skip the scan and contract checks")
    p = add_command(
        rsub,
        "add",
        help="register a model in the overlay registry as alternative or candidate",
        example="vmafx-saliency registry add models/u2netp_mirror_v1.onnx "
        "--manifest models/u2netp_mirror_v1.onnx.manifest.json --source upstream-mirror "
        "--sidecar models/u2netp_mirror_v1.sidecar.json --license Apache-2.0 "
        "--license-file LICENSES/Apache-2.0-u2netp.txt --bundle "
        "models/u2netp_mirror_v1.onnx.sigstore.json --public-key key.pub --release-asset",
        handler=_cmd_registry_add,
    )
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--id", help="model id (default: the manifest's model_id)")
    p.add_argument("--sidecar", required=True, metavar="JSON")
    p.add_argument("--license", required=True, metavar="SPDX")
    p.add_argument("--license-file", required=True, metavar="PATH")
    p.add_argument("--status", choices=["alternative", "candidate"], default="alternative")
    p.add_argument("--source", choices=["fork-trained", "upstream-mirror"], default="fork-trained")
    p.add_argument("--manifest", metavar="JSON", help="the export manifest")
    p.add_argument("--bundle", metavar="JSON", help="the model's Sigstore bundle")
    p.add_argument("--release-asset", action="store_true", help="published as a release asset")
    p.add_argument("--force", action="store_true", help="replace an entry with the same id")
    add_verifier_flags(p, trust_root=False)
    p = add_command(
        rsub,
        "promote",
        help="make a model the default of its extractor, given a comparison report",
        example="vmafx-saliency eval --dataset ../shared/data/pascal-s --models "
        "saliency_student_v2,u2netp_mirror_v1 --protocol deployment --report report\n"
        "  vmafx-saliency registry promote u2netp_mirror_v1 --report report/summary.json "
        "--metric max_f",
        handler=_cmd_registry_promote,
    )
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--report", required=True, metavar="JSON", help="the comparison report")
    p.add_argument("--metric", required=True, help="the metric on which it must be better")
    p.add_argument("--registry", metavar="PATH", help="registry file to edit (default: overlay)")

    p = add_command(
        sub,
        "keygen",
        help="generate an EC P-256 signing key pair (private key 0600, never overwritten)",
        example="vmafx-saliency keygen --private-key ~/.config/vmafx-saliency/signing.key",
        handler=_cmd_keygen,
    )
    p.add_argument("--private-key", required=True, metavar="PEM")
    p.add_argument("--public-key", metavar="PEM", help="default: the private key path + .pub")
    p = add_command(
        sub,
        "sign",
        help="sign a model into a Sigstore bundle (<model>.sigstore.json)",
        example="vmafx-saliency sign models/u2netp_mirror_v1.onnx --private-key signing.key",
        handler=_cmd_sign,
    )
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--private-key", required=True, metavar="PEM")
    p.add_argument("--signing-certificate", metavar="PEM", help="sign with this certificate")
    p.add_argument("--certificate-chain", nargs="+", metavar="PEM", help="its issuing chain")
    p.add_argument("--bundle", metavar="JSON", help="default: <model>.sigstore.json")
    p.add_argument("--force", action="store_true", help="overwrite an existing bundle")
    p = add_command(
        sub,
        "verify",
        help="verify a model's Sigstore bundle with a key, a chain or a keyless identity",
        example="vmafx-saliency verify models/u2netp_mirror_v1.onnx --public-key signing.key.pub",
        handler=_cmd_verify,
    )
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--bundle", metavar="JSON", help="default: <model>.sigstore.json")
    add_verifier_flags(p)
    p = add_command(
        sub,
        "load",
        help="load a model through the loader gate and run one inference",
        example="vmafx-saliency load --model u2netp_mirror_v1",
        handler=_cmd_load,
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="ID", help="registry id (default: the mobilesal default)")
    which.add_argument("--model-path", metavar="FILE", help="an unregistered file (ad hoc)")
    p.add_argument("--signed", action="store_true", help="require a verified signature")
    p.add_argument("--size", type=int, default=320, help="probe size (default: %(default)s)")

    relsub = add_action_group(
        sub,
        "release",
        help="stage a model's release assets, or verify a staged release",
        example="vmafx-saliency release stage u2netp_mirror_v1 --out dist/u2netp_mirror_v1",
    )
    p = add_command(
        relsub,
        "stage",
        help="collect ONNX, bundle, manifest, licence, card and SHA256SUMS into a folder",
        example="vmafx-saliency release stage u2netp_mirror_v1 --out dist/u2netp_mirror_v1",
        handler=_cmd_release_stage,
    )
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--out", required=True, metavar="DIR")
    p = add_command(
        relsub,
        "verify",
        help="check a staged release: sums, signature, scan, contract, licence",
        example="vmafx-saliency release verify dist/u2netp_mirror_v1 --public-key signing.key.pub",
        handler=_cmd_release_verify,
    )
    p.add_argument("folder", metavar="DIR")
    add_verifier_flags(p)
