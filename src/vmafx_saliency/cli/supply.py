"""The supply-chain commands: scan, contract, export, card, registry, signing, load, release."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vmafx_saliency.cli.options import (
    MODEL_ID_HELP,
    Subparsers,
    add_command,
)
from vmafx_saliency.errors import UsageError

# --- scan -------------------------------------------------------------------


def _cmd_scan(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import scan

    reports = [scan.scan_file(Path(p), max_bytes=args.max_bytes) for p in args.models]
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


# --- load -------------------------------------------------------------------


def _cmd_load(args: argparse.Namespace) -> int:
    import numpy as np

    from vmafx_saliency.supply import loader
    from vmafx_saliency.supply.registry import Registry
    from vmafx_saliency.supply.runs import run_map
    from vmafx_saliency.video.extract import MAX_INFER_SIDE

    if not 1 <= args.size <= MAX_INFER_SIDE:
        raise UsageError(
            f"--size {args.size}: give 1 to {MAX_INFER_SIDE} pixels a side (the extractor's "
            "limit too); a larger probe fills the memory"
        )
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
    what = f"{loaded.path}: the model loaded, but one inference"
    out = run_map(loaded.session, probe, what=what, advice="try another --size")
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
        example="vmafx-saliency contract models/u2netp_mirror_v1.onnx",
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


def register_load(sub: Subparsers) -> None:
    """load: a model through the loader gate and one inference."""
    p = add_command(
        sub,
        "load",
        help="load a model through the loader gate and run one inference",
        example="vmafx-saliency load --model saliency_student_v2_int8",
        handler=_cmd_load,
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--model",
        metavar="ID",
        help=MODEL_ID_HELP,
    )
    which.add_argument("--model-path", metavar="FILE", help="an unregistered file (ad hoc)")
    p.add_argument("--signed", action="store_true", help="require a verified signature")
    p.add_argument("--size", type=int, default=320, help="probe size (default: %(default)s)")
