"""Option groups and helpers shared by the command modules.

:func:`add_command` makes a subcommand whose ``--help`` ends in an example;
:func:`add_action_group` a command whose actions are subcommands. The video and
model groups are those of every command that runs a model over video (extract,
roi); :func:`video_input` and :func:`model_choice` turn them into the library's
records.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from vmafx_saliency.errors import UsageError

if TYPE_CHECKING:
    from vmafx_saliency.video.job import ModelChoice, VideoInput

Handler = Callable[[argparse.Namespace], int]
# A string: argparse's action class is not subscriptable at run time.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# --model's help, wherever a command takes a registry id for the extractor's model.
MODEL_ID_HELP = "registry id (default: the registry's default, saliency_student_v2_int8 as shipped)"


def add_command(
    subparsers: Subparsers,
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
    # -v after the subcommand too, as ffmpeg users type it. SUPPRESS: a
    # subcommand without -v leaves the top level's value alone.
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show debug logs and tracebacks on failure",
    )
    parser.set_defaults(handler=handler)
    return parser


def _print_group_help(args: argparse.Namespace) -> int:
    args.group_parser.print_help()
    return 2


def add_action_group(subparsers: Subparsers, name: str, *, help: str, example: str) -> Subparsers:
    """A command whose actions are subcommands (``registry list``); alone it prints its help.

    Returns the group's subparsers.
    """
    group = add_command(subparsers, name, help=help, example=example, handler=_print_group_help)
    group.set_defaults(group_parser=group)
    return group.add_subparsers(dest=f"{name}_command", metavar="ACTION")


def add_video_arguments(
    p: argparse.ArgumentParser, *, subsample_help: str, fps: bool = True
) -> None:
    """VIDEO plus raw-YUV geometry, overrides and frame selection (extract, roi).

    ``fps``: offer --fps, for commands whose results depend on the frame rate
    (roi: zone lengths, encodes); the features of ``extract`` do not.
    """
    p.add_argument(
        "video",
        metavar="VIDEO",
        help="mp4/mkv/... (PyAV), .y4m, or raw .yuv; - reads standard input",
    )
    g = p.add_argument_group("raw YUV geometry and frame selection")
    g.add_argument("--width", type=int)
    g.add_argument("--height", type=int)
    g.add_argument(
        "--pixel-format", help="yuv420p (default), yuv422p, yuv444p, yuv400p, and *10le forms"
    )
    if fps:
        g.add_argument("--fps", type=float, help="frame rate, overriding the file's")
    g.add_argument(
        "--color-range",
        choices=["limited", "full"],
        help="luma range, overriding the file's (raw YUV: limited)",
    )
    g.add_argument(
        "--frames",
        metavar="START:END",
        help="frame range: START:END (END excluded), START:, :END or one frame N",
    )
    g.add_argument("--subsample", type=int, default=1, metavar="N", help=subsample_help)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Which model and how to run it, as the extractor takes them."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        metavar="ID",
        help=MODEL_ID_HELP,
    )
    g.add_argument(
        "--model-path",
        metavar="FILE",
        help="an unregistered ONNX file (ad hoc; also $VMAF_MOBILESAL_MODEL_PATH)",
    )
    g.add_argument("--sidecar", metavar="JSON", help="pre-processing for --model-path")
    g.add_argument("--signed", action="store_true", help="require a verified signature")
    g.add_argument(
        "--infer-size", metavar="native|WxH", help="inference size, overriding the sidecar"
    )
    g.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="inference threads, at most 256 (default: all cores); a small model such as "
        "the student infers N frames at once, one thread each",
    )
    add_provider_flag(g)


def add_provider_flag(g: argparse._ActionsContainer) -> None:
    """``--provider``: ONNX Runtime's execution provider, checked, never a silent fallback."""
    from vmafx_saliency.supply.providers import DEFAULT_PROVIDER, PROVIDERS

    g.add_argument(
        "--provider",
        choices=tuple(PROVIDERS),
        default=DEFAULT_PROVIDER,
        help="ONNX Runtime execution provider (default: %(default)s); one the installed "
        "onnxruntime lacks is an error, never a silent fallback to the CPU",
    )


def video_input(args: argparse.Namespace, path: str | None = None) -> VideoInput:
    """The video flags as a VideoInput, for ``args.video`` or the ``path`` given."""
    from vmafx_saliency.video.frames import parse_frame_range
    from vmafx_saliency.video.frames.stdin import video_path
    from vmafx_saliency.video.job import VideoInput

    start, end = parse_frame_range(args.frames) if args.frames else (0, None)
    return VideoInput(
        path=video_path(path if path is not None else args.video),
        width=args.width,
        height=args.height,
        pixel_format=args.pixel_format,
        fps=getattr(args, "fps", None),
        color_range=args.color_range,
        start=start,
        end=end,
        subsample=args.subsample,
    )


def model_choice(args: argparse.Namespace) -> ModelChoice:
    from vmafx_saliency.video.job import ModelChoice

    return ModelChoice(
        model_id=args.model,
        model_path=Path(args.model_path) if args.model_path else None,
        sidecar=Path(args.sidecar) if args.sidecar else None,
        signed=args.signed,
        provider=args.provider,
    )


def add_signer_flags(p: argparse.ArgumentParser, *, required: bool, key_help: str | None) -> None:
    """A private key, or a key with its signing certificate and chain (sign, release stage)."""
    p.add_argument("--private-key", required=required, metavar="PEM", help=key_help)
    p.add_argument("--signing-certificate", metavar="PEM", help="sign with this certificate")
    p.add_argument("--certificate-chain", nargs="+", metavar="PEM", help="its issuing chain")


def add_verifier_flags(p: argparse.ArgumentParser, *, trust_root: bool = True) -> None:
    p.add_argument("--public-key", metavar="PEM", help="verify with this public key")
    p.add_argument(
        "--certificate-chain", nargs="+", metavar="PEM", help="verify with this CA chain"
    )
    p.add_argument("--identity", help="keyless: the signer's identity (e.g. an e-mail)")
    p.add_argument("--identity-regexp", help="keyless: a regular expression for the identity")
    p.add_argument("--oidc-issuer", help="keyless: the identity's OIDC issuer URL")
    if trust_root:
        p.add_argument("--trust-config", metavar="JSON", help="keyless: a Sigstore trust config")
        p.add_argument("--staging", action="store_true", help="keyless: Sigstore staging instance")


def verifier_from(args: argparse.Namespace) -> Any:
    """The signature verifier the flags of :func:`add_verifier_flags` name (exactly one kind)."""
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
