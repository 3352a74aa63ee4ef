"""The signing commands: keygen, sign and verify (Sigstore bundles through model_signing)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmafx_saliency.cli.options import (
    Subparsers,
    add_command,
    add_signer_flags,
    add_verifier_flags,
    verifier_from,
)
from vmafx_saliency.errors import UsageError


def _cmd_keygen(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.signing import generate_key_pair

    pair = generate_key_pair(
        Path(args.private_key), public_key=Path(args.public_key) if args.public_key else None
    )
    print(f"private key {pair.private_key} (mode 0600)\npublic key  {pair.public_key}")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.registry import sidecar_beside
    from vmafx_saliency.supply.signing import sign_model

    model = Path(args.model)
    sidecar = Path(args.sidecar) if args.sidecar else sidecar_beside(model)
    if args.model_only:
        if args.sidecar:
            raise UsageError("give --sidecar or --model-only, not both")
        sidecar = None
    bundle = sign_model(
        model,
        private_key=Path(args.private_key),
        sidecar=sidecar,
        bundle=Path(args.bundle) if args.bundle else None,
        signing_certificate=Path(args.signing_certificate) if args.signing_certificate else None,
        certificate_chain=tuple(Path(p) for p in args.certificate_chain or ()),
        force=args.force,
    )
    with_sidecar = f" with its sidecar {sidecar}" if sidecar is not None else " (model alone)"
    print(f"signed {args.model}{with_sidecar} -> {bundle}")
    if sidecar is None and not args.model_only:
        print(
            f"note: no sidecar beside {model} ({model.stem}.sidecar.json): the bundle signs the "
            "model alone, which the registry and the loader refuse for a registered model; "
            "pass --sidecar JSON to sign the pair"
        )
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from vmafx_saliency.supply.registry import sidecar_beside
    from vmafx_saliency.supply.signing import bundle_path_for, verify_model

    model = Path(args.model)
    bundle = Path(args.bundle) if args.bundle else bundle_path_for(model)
    # A sidecar beside the model is verified with it unless --model-only says it
    # is not the model's: a bundle of the model alone then fails, not passes.
    sidecar = Path(args.sidecar) if args.sidecar else None
    if args.model_only:
        if sidecar is not None:
            raise UsageError("give --sidecar or --model-only, not both")
    elif sidecar is None:
        sidecar = sidecar_beside(model)
    report = verify_model(model, bundle=bundle, verifier=verifier_from(args), sidecar=sidecar)
    print(
        f"{model}: signature OK ({report.method}; signer {report.signer}; sha256 {report.sha256})"
    )
    if report.sidecar is not None:
        print(f"{report.sidecar}: signed with the model (sha256 {report.sidecar_sha256})")
    else:
        print(f"{model}: the bundle signs the model alone, without a sidecar")
    return 0


def register(sub: Subparsers) -> None:
    """keygen, sign and verify."""
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
        help="sign a model with its sidecar into a Sigstore bundle (<model>.sigstore.json)",
        example="vmafx-saliency sign MODEL.onnx --sidecar MODEL.sidecar.json "
        "--private-key signing.key",
        handler=_cmd_sign,
    )
    p.add_argument("model", metavar="MODEL.onnx")
    add_signer_flags(p, required=True, key_help=None)
    p.add_argument(
        "--sidecar",
        metavar="JSON",
        help="the model's sidecar, signed with it (default: <model>.sidecar.json when present)",
    )
    p.add_argument(
        "--model-only", action="store_true", help="sign the model alone, even with a sidecar beside"
    )
    p.add_argument("--bundle", metavar="JSON", help="default: <model>.sigstore.json")
    p.add_argument("--force", action="store_true", help="overwrite an existing bundle")
    p = add_command(
        sub,
        "verify",
        help="verify a model's Sigstore bundle with a key, a chain or a keyless identity",
        example="vmafx-saliency verify MODEL.onnx --sidecar MODEL.sidecar.json "
        "--public-key signing.key.pub",
        handler=_cmd_verify,
    )
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--bundle", metavar="JSON", help="default: <model>.sigstore.json")
    p.add_argument(
        "--sidecar",
        metavar="JSON",
        help="the sidecar signed with the model (default: <model>.sidecar.json); "
        "refused when the bundle signs the model alone",
    )
    p.add_argument(
        "--model-only",
        action="store_true",
        help="verify a bundle of the model alone, ignoring a sidecar beside it",
    )
    add_verifier_flags(p)
