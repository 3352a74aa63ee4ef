"""The command line's entry point: the parser, error handling and signals.

Every subcommand lives in the module of its command group (``supply``,
``extract``, ``evaluate``, ``train``, ``roi``, ``materialize``); it parses its
arguments, calls one library function and prints the result. Failures the
library expects are :class:`VmafxSaliencyError`s: without ``-v`` they print as
one line on stderr with a non-zero exit; with ``-v`` the traceback is shown too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
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
        epilog="example:\n  vmafx-saliency extract clip.mp4 --output clip.json   # the shipped "
        "default model\n  vmafx-saliency extract --help",
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
    # The whole run, parser included: a signal at start-up ends as one late does.
    try:
        return _run(argv)
    except Terminated as stop:
        _say(f"vmafx-saliency: {stop.what}")
        return 128 + stop.signum
    except KeyboardInterrupt:
        _say("vmafx-saliency: interrupted")
        return 130


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # As parse_args, but named by the command that was given, not the top level.
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
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
        # Named as argparse names its own mistakes: by the innermost command.
        print(f"{_command_parser(parser, args).prog}: error: {exc}", file=sys.stderr)
        return 2


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the innermost command given (``registry list``), found by walking
    the subcommand choices; the namespace stays free of it (reports record it)."""
    while True:
        action = next(
            (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        chosen = getattr(args, action.dest, None) if action else None
        if action is None or chosen not in action.choices:
            return parser
        parser = action.choices[chosen]


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except OSError:  # after a hangup the terminal is gone: there is no one to tell
        return


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch system) or SIGHUP (the terminal or
    the ssh session closed), unwound as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.what = "hung up" if signum == signal.SIGHUP else "terminated"


# Set by the first stopping signal: a hangup often comes twice (the kernel, then the
# shell), and a second exception raised inside the cleanup would cut it short.
_STOPPING = threading.Event()
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop(signum: int, _frame: object) -> None:
    # Python's default for SIGTERM and SIGHUP is to die on the spot, leaving the
    # hidden temporary files and maps folders behind; raising runs every cleanup.
    if _STOPPING.is_set():
        return
    _STOPPING.set()
    runs = sys.modules.get("vmafx_saliency.supply.runs")  # not imported: nothing runs
    if runs is not None:
        # The runs in worker threads end too: the unwinding waits for them.
        runs.stop_runs()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """Ctrl-C, SIGTERM and SIGHUP unwind the run once; later ones wait for the cleanup.

    A signal the parent ignores (nohup, a background job's SIGINT) stays ignored.
    """
    _STOPPING.clear()
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _stop)


def _exit_on_signal_with(code: int) -> None:
    def finish(_signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):  # a reader or terminal gone: nothing to flush to
            sys.stdout.flush()
        os._exit(code)

    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is _stop:
            signal.signal(signum, finish)


def _quiet_stdout() -> None:
    # Point stdout at devnull so the interpreter's final flush cannot raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def entry() -> None:
    install_signal_handlers()
    code = 1
    try:
        code = main()
        # The work is done and said: a signal from here on ends the process at once,
        # with the outcome the work had, not as a failure (nor is it ignored).
        _exit_on_signal_with(code)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`... | head`): as other Unix tools, stop quietly.
        _quiet_stdout()
        code = 141  # 128 + SIGPIPE, what a shell reports for a killed writer
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise
        _quiet_stdout()  # the terminal is gone (a hangup): the exit status still tells
    sys.exit(code)


if __name__ == "__main__":
    entry()
