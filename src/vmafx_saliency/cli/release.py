"""The ``release`` commands: stage a model's release assets, verify a staged release."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmafx_saliency.cli.options import (
    Subparsers,
    add_action_group,
    add_command,
    add_verifier_flags,
    verifier_from,
)


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
