from __future__ import annotations

import argparse
import errno
import io
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from vmafx_saliency.cli import main as main_module
from vmafx_saliency.cli.main import Terminated, build_parser, install_signal_handlers, main


def _subcommands() -> list[str]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return sorted(action.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_help_shows_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out
    assert f"vmafx-saliency {command}" in out


def _examples() -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of every example line in every parser's help, comments dropped."""
    stack = [build_parser()]
    while stack:
        parser = stack.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
        for line in (parser.epilog or "").splitlines()[1:]:
            for command in line.split("#")[0].split("&&"):
                argv = shlex.split(command)
                if argv and argv[0] == "vmafx-saliency":
                    yield parser.prog, argv[1:]


def test_every_example_parses(capsys: pytest.CaptureFixture[str]) -> None:
    # An example a user copies is at least a command line the parser takes.
    examples = list(_examples())
    assert len(examples) > 30
    for where, argv in examples:
        if argv[-1:] == ["--help"]:
            continue
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: its example {argv} does not parse: {capsys.readouterr().err}")


def test_subcommand_names_are_full_words() -> None:
    # "roi" is the encoders' own word (region of interest), not an abbreviation of ours.
    acronyms = {"roi"}
    assert all(len(name) >= 4 or name in acronyms for name in _subcommands())


def test_console_entry_point_runs_as_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vmafx_saliency", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("vmafx-saliency ")


def test_failure_is_one_line_without_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contract", "/nonexistent/model.onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("vmafx-saliency contract: error: model /nonexistent/model.onnx")


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "contract", "/nonexistent/model.onnx"],
        ["contract", "-v", "/nonexistent/model.onnx"],
        ["contract", "/nonexistent/model.onnx", "--verbose"],
        ["registry", "show", "no_such_model", "-v"],
    ],
)
def test_verbose_before_or_after_the_subcommand_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "vmafx-saliency " in err.splitlines()[-1]


def test_without_verbose_after_the_subcommand_the_top_level_flag_stands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    assert parser.parse_args(["-v", "scan", "x.onnx"]).verbose is True
    assert parser.parse_args(["scan", "x.onnx"]).verbose is False
    assert parser.parse_args(["registry", "list", "-v"]).verbose is True


def test_a_closed_pipe_ends_quietly() -> None:
    """`vmafx-saliency scan ... | head`: no traceback when the reader goes away."""
    code = (
        "import vmafx_saliency.cli.main as cli\n"
        "def closed(argv=None):\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "cli.main = closed\n"
        "cli.entry()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 141
    assert done.stderr == ""


@pytest.mark.parametrize("group", ["registry", "release", "roi", "views"])
def test_a_command_group_alone_prints_its_actions(
    group: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([group]) == 2
    out = capsys.readouterr().out
    assert f"usage: vmafx-saliency {group}" in out
    assert "ACTION" in out and "example:" in out


@pytest.fixture
def saved_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, old in saved.items():
            signal.signal(signum, old)


@pytest.mark.usefixtures("saved_handlers")
def test_signal_handlers_keep_a_signal_the_parent_ignores() -> None:
    """Under nohup SIGHUP is ignored and must stay so; SIGTERM is then ours to unwind."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    install_signal_handlers()
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    with pytest.raises(Terminated) as raised:
        handler(signal.SIGTERM, None)
    assert (raised.value.signum, raised.value.what) == (signal.SIGTERM, "terminated")


@pytest.mark.usefixtures("saved_handlers")
def test_only_the_first_stopping_signal_unwinds_the_run() -> None:
    """A hangup often comes twice; a second exception would cut the cleanup short."""
    install_signal_handlers()
    handler = signal.getsignal(signal.SIGHUP)
    assert callable(handler)
    with pytest.raises(Terminated) as raised:
        handler(signal.SIGHUP, None)
    assert (raised.value.signum, raised.value.what) == (signal.SIGHUP, "hung up")
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        assert signal.getsignal(signum) is handler
        handler(signum, None)  # while the first one unwinds: nothing more is raised
    install_signal_handlers()  # a new run starts afresh
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)


def test_a_message_to_a_terminal_that_is_gone_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Gone(io.StringIO):
        def write(self, _: str) -> int:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sys, "stderr", Gone())

    def hung_up(_: object) -> int:
        raise Terminated(signal.SIGHUP)

    monkeypatch.setattr(main_module, "build_parser", lambda: _parser_running(hung_up))
    assert main(["extract", "x.mp4"]) == 128 + signal.SIGHUP


def _parser_running(handler: Callable[[object], int]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("rest", nargs="*")
    parser.set_defaults(handler=handler, verbose=False)
    return parser


@pytest.mark.parametrize(
    ("argv", "prog", "said"),
    [
        (["extract", "x.mp4", "--provider", "foo"], "vmafx-saliency extract", r"--provider: inv"),
        (["extract", "x.mp4", "--threads", "abc"], "vmafx-saliency extract", r"invalid int value"),
        (["roi", "map"], "vmafx-saliency roi map", r"the following arguments are required: VIDEO"),
        (["frobnicate"], "vmafx-saliency", r"argument COMMAND: invalid choice: 'frobnicate'"),
        (
            ["extract", "x.mp4", "--bogus"],
            "vmafx-saliency extract",
            r"unrecognized arguments: --bo",
        ),
        (["registry", "list", "--bogus"], "vmafx-saliency registry list", r"unrecognized argum"),
    ],
)
def test_a_mistake_argparse_catches_is_one_line_too(
    argv: list[str], prog: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: ")
    assert re.search(said, lines[0]), lines[0]
    assert lines[0].endswith(f"(see '{prog} --help')")


def test_a_signal_after_the_work_is_done_ends_with_the_works_outcome() -> None:
    """Not 130 after a finished run (a retrying script would redo it), nor ignored."""
    code = (
        "import os, signal, sys, time\n"
        "from vmafx_saliency.cli import main\n"
        "main.install_signal_handlers()\n"
        "print('done')\n"
        "main._exit_on_signal_with(3)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(30)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "done\n", "")


def test_the_model_help_names_the_committed_default() -> None:
    from vmafx_saliency.cli.options import MODEL_ID_HELP
    from vmafx_saliency.supply.registry import Registry

    shipped = Registry.load_committed().default_for("mobilesal").id
    assert f"{shipped} as shipped" in MODEL_ID_HELP


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [
        (Terminated(signal.SIGTERM), 128 + signal.SIGTERM, "terminated"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_a_signal_while_the_parser_is_built_ends_as_one_later_does(
    stop: BaseException,
    code: int,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def building() -> argparse.ArgumentParser:
        raise stop

    monkeypatch.setattr(main_module, "build_parser", building)
    assert main(["extract", "x.mp4"]) == code
    assert capsys.readouterr().err == f"vmafx-saliency: {said}\n"  # no traceback


def test_a_stopping_signal_ends_a_run_stuck_inside_onnx_runtime() -> None:
    """One frame at a time (--threads 1, a large model) too: the run is in a worker, so
    the signal reaches this thread, whose handler ends the run (runs.stop_runs)."""
    import os
    import threading
    import time

    import numpy as np

    from tests._onnx_models import endless_loop_model
    from vmafx_saliency.supply.contract import make_session
    from vmafx_saliency.video.extract import inferred

    session = make_session(endless_loop_model(), source="endless")
    before = {s: signal.getsignal(s) for s in main_module._STOP_SIGNALS}
    install_signal_handlers()
    try:
        threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
        start = time.monotonic()
        with pytest.raises(Terminated):
            list(inferred(session, iter([(0, np.zeros((1, 3, 8, 16), np.float32))]), jobs=1))
        assert time.monotonic() - start < 20  # not the 2^62 trips, nor the 600 s limit
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        main_module._STOPPING.clear()
