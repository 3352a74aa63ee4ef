"""Command-line interface: a thin layer over the library.

Every subcommand parses its arguments, calls one library function and prints
the result. Failures the library expects are :class:`VmafxSaliencyError`s:
without ``-v`` they print as one line on stderr with a non-zero exit; with
``-v`` the traceback is shown too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from vmafx_saliency import __version__
from vmafx_saliency.errors import VmafxSaliencyError

log = logging.getLogger("vmafx_saliency")

Handler = Callable[[argparse.Namespace], int]


def _add(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    example: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


# --- scan -------------------------------------------------------------------


def _cmd_scan(args: argparse.Namespace) -> int:
    from vmafx_saliency import onnxscan

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
    from vmafx_saliency import contract

    report = contract.check_contract_file(Path(args.model))
    print(report.render())
    return 0


# --- export -----------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    from vmafx_saliency import export

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
    from vmafx_saliency import card

    result = card.update_card(manifest=Path(args.manifest), card=Path(args.card), check=args.check)
    if args.check:
        print(f"{result.card}: figures up to date")
    else:
        print(f"{result.card}: {'figures updated' if result.changed else 'already up to date'}")
    return 0


# --- parser -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmafx-saliency",
        description="Saliency models for video-quality work.",
        epilog="example:\n  vmafx-saliency export --checkpoint u2netp.pth && "
        "vmafx-saliency scan models/u2netp_mirror_v1.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show debug logs and tracebacks on failure"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _add(
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

    p = _add(
        sub,
        "contract",
        help="check an ONNX model against the deployment contract (names, shapes, range)",
        example="vmafx-saliency contract models/saliency_student_v2.onnx",
        handler=_cmd_contract,
    )
    p.add_argument("model", metavar="MODEL.onnx")

    p = _add(
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

    p = _add(
        sub,
        "card",
        help="rewrite a model card's figures block from an export manifest",
        example="vmafx-saliency card --manifest models/u2netp_mirror_v1.onnx.manifest.json "
        "--card docs/models/u2netp_mirror.md",
        handler=_cmd_card,
    )
    p.add_argument("--manifest", required=True, metavar="PATH")
    p.add_argument("--card", required=True, metavar="PATH")
    p.add_argument(
        "--check", action="store_true", help="only check; exit non-zero if the card is stale"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except VmafxSaliencyError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"vmafx-saliency {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vmafx-saliency: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
