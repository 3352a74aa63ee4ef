"""The ``release`` commands: stage a model's release assets, verify a staged release."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmafx_saliency.cli.options import (
    Subparsers,
    add_action_group,
    add_command,
    add_signer_flags,
    add_verifier_flags,
    verifier_from,
)
from vmafx_saliency.errors import UsageError


def _cmd_release_stage(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply import release

    signer = None
    if args.private_key:
        signer = release.ReleaseSigner(
            private_key=Path(args.private_key),
            signing_certificate=Path(args.signing_certificate)
            if args.signing_certificate
            else None,
            certificate_chain=tuple(Path(p) for p in args.certificate_chain or ()),
        )
    elif args.signing_certificate or args.certificate_chain:
        raise UsageError("a signing certificate goes with its key: pass --private-key PEM too")
    result = release.stage(args.model_id, out=Path(args.out), signer=signer, force=args.force)
    print(result.render())
    if signer is None and result.out is not None:
        print(
            f"note: {result.out} is not signed, and 'release verify' will say so: stage it "
            "with --private-key KEY to sign release.json, the sums, the card and the licence"
        )
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
    verifier = verifier_from(args) if any(flags) else None
    result = release.verify(Path(args.folder), verifier=verifier)
    print(result.render())
    return 0 if result.ok else 1


def register(sub: Subparsers) -> None:
    """release stage|verify."""
    relsub = add_action_group(
        sub,
        "release",
        help="stage a model's release assets, or verify a staged release",
        example="vmafx-saliency release stage u2netp_mirror_v1 --out dist/u2netp_mirror_v1",
    )
    p = add_command(
        relsub,
        "stage",
        help="collect ONNX, sidecar, bundle, manifest, licence, card and SHA256SUMS into a "
        "folder, and sign them all",
        example="vmafx-saliency release stage u2netp_mirror_v1 --out dist/u2netp_mirror_v1 "
        "--private-key signing.key",
        handler=_cmd_release_stage,
    )
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument(
        "--force",
        action="store_true",
        help="stage again into --out when it holds this model's earlier staging (and nothing else)",
    )
    add_signer_flags(
        p,
        required=False,
        key_help="sign every staged file into release.sigstore.json (verify needs it)",
    )
    p = add_command(
        relsub,
        "verify",
        help="check a staged release: sums, signatures, pins, scan, contract, licence",
        example="vmafx-saliency release verify dist/u2netp_mirror_v1 --public-key signing.key.pub",
        handler=_cmd_release_verify,
    )
    p.add_argument("folder", metavar="DIR")
    add_verifier_flags(p)
