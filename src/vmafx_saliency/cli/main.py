"""The command line's entry point: the parser, error handling and signals.

Every subcommand lives in the module of its command group (``supply``,
``extract``, ``evaluate``, ``train``, ``roi``, ``materialize``); it parses its
arguments, calls one library function and prints the result. Failures the
library expects are :class:`VmafxSaliencyError`s: without ``-v`` they print as
one line on stderr with a non-zero exit; with ``-v`` the traceback is shown too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from vmafx_saliency import __version__
from vmafx_saliency.cli import (
    evaluate,
    extract,
    materialize,
    quantize,
    registry,
    release,
    roi,
    signing,
    supply,
    train,
)
from vmafx_saliency.cli.options import Handler
from vmafx_saliency.errors import VmafxSaliencyError


class _Parser(argparse.ArgumentParser):
    """argparse, whose mistakes print as one line as the product's errors do.

    Subcommands' parsers take this class too (argparse builds them as their
    parent's type); ``--help`` still shows the usage and an example.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
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

    supply.register_model_tools(sub)
    extract.register(sub)
    registry.register(sub)
    signing.register(sub)
    supply.register_load(sub)
    release.register(sub)
    evaluate.register(sub)
    train.register(sub)
    roi.register(sub)
    materialize.register(sub)
    quantize.register(sub)
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
    except Terminated as stop:
        print(f"vmafx-saliency: {stop.what}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("vmafx-saliency: interrupted", file=sys.stderr)
        return 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch system) or SIGHUP (the terminal or
    the ssh session closed), unwound as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.what = "hung up" if signum == signal.SIGHUP else "terminated"


def _terminate(signum: int, _frame: object) -> None:
    # Python's default for these is to die on the spot, leaving the hidden
    # temporary files and maps folders behind; raising runs every cleanup.
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind as Ctrl-C does; one the parent ignores (nohup) stays ignored."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _terminate)


def entry() -> None:
    install_signal_handlers()
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`... | head`): as other Unix tools, stop quietly.
        # Point stdout at devnull so the interpreter's final flush cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141  # 128 + SIGPIPE, what a shell reports for a killed writer
    sys.exit(code)


if __name__ == "__main__":
    entry()
