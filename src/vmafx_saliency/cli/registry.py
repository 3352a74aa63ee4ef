"""The ``registry`` commands: list, show, validate, add and promote registered models."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from vmafx_saliency.cli.options import Subparsers, add_action_group, add_command, add_verifier_flags
from vmafx_saliency.errors import UsageError


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


def _model_id(args: argparse.Namespace, manifest: Path | None) -> str:
    from vmafx_saliency.supply import registry

    if args.id is not None:
        return str(args.id)
    if manifest is not None:
        return registry.model_id_from_manifest(manifest)
    if args.quantization_manifest is not None:
        return registry.model_id_from_manifest(Path(args.quantization_manifest), command="quantize")
    raise UsageError(
        "give --id, or --manifest (or --quantization-manifest) to take the model id from it"
    )


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
    entry = registry.add_model(
        onnx=Path(args.model),
        model_id=_model_id(args, manifest),
        sidecar=Path(args.sidecar),
        status=args.status,
        license=args.license,
        license_file=Path(args.license_file),
        source=source,
        sigstore_bundle=Path(args.bundle) if args.bundle else None,
        verification=_verification_from(args),
        release_asset=args.release_asset,
        manifest=manifest,
        quantization=(
            registry.quantization_from_manifest(
                Path(args.quantization_manifest), model=Path(args.model)
            )
            if args.quantization_manifest is not None
            else None
        ),
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


def register(sub: Subparsers) -> None:
    """registry list|show|validate|add|promote."""
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
        example="vmafx-saliency registry show saliency_student_v2_int8",
        handler=_cmd_registry_show,
    )
    p.add_argument("model_id", metavar="ID")
    p = add_command(
        rsub,
        "validate",
        help="validate a registry file: schema, files, pins, sidecars, scan and contract",
        example="vmafx-saliency registry validate ~/.local/share/vmafx-saliency/registry.json",
        handler=_cmd_registry_validate,
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="default: the package's registry")
    p.add_argument("--no-models", action="store_true", help="skip the scan and contract checks")
    p = add_command(
        rsub,
        "add",
        help="register a model in the overlay registry as alternative or candidate",
        example="M=$(python -c 'import vmafx_saliency.supply.registry as r; "
        "print(r.packaged_models())')   # the mirror's sidecar and licence ship there\n"
        "  vmafx-saliency registry add models/u2netp_mirror_v1.onnx "
        "--manifest models/u2netp_mirror_v1.onnx.manifest.json --source upstream-mirror "
        "--sidecar $M/u2netp_mirror_v1.sidecar.json --license Apache-2.0 "
        "--license-file $M/Apache-2.0-u2netp.txt --bundle "
        "models/u2netp_mirror_v1.onnx.sigstore.json --public-key key.pub --release-asset",
        handler=_cmd_registry_add,
    )
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--id", help="model id (default: the manifest's model_id)")
    p.add_argument("--sidecar", required=True, metavar="JSON")
    p.add_argument("--license", required=True, metavar="SPDX")
    p.add_argument("--license-file", required=True, metavar="PATH")
    p.add_argument("--status", choices=["alternative", "candidate"], default="alternative")
    p.add_argument(
        "--source",
        choices=["fork-trained", "upstream-mirror"],
        default="fork-trained",
        help="where the weights come from (default: fork-trained; upstream-mirror needs "
        "--manifest)",
    )
    p.add_argument("--manifest", metavar="JSON", help="the export manifest")
    p.add_argument(
        "--quantization-manifest",
        metavar="JSON",
        help="for an INT8 variant: the manifest 'vmafx-saliency quantize' wrote (links it to "
        "its registered float parent)",
    )
    p.add_argument("--bundle", metavar="JSON", help="the model's Sigstore bundle")
    p.add_argument("--release-asset", action="store_true", help="published as a release asset")
    p.add_argument("--force", action="store_true", help="replace an entry with the same id")
    add_verifier_flags(p, trust_root=False)
    p = add_command(
        rsub,
        "promote",
        help="make a model the default of its extractor, given a comparison report",
        example="vmafx-saliency eval --dataset ../shared/data/pascal-s --models "
        "saliency_student_v2_int8,u2netp_mirror_v1 --protocol deployment --report report\n"
        "  vmafx-saliency registry promote u2netp_mirror_v1 --report report/summary.json "
        "--metric max_f",
        handler=_cmd_registry_promote,
    )
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--report", required=True, metavar="JSON", help="the comparison report")
    p.add_argument("--metric", required=True, help="the metric on which it must be better")
    p.add_argument("--registry", metavar="PATH", help="registry file to edit (default: overlay)")
