"""The one capped read of a regular file that every reader of models, sidecars and keys uses."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmafx_saliency._util import (
    PROJECT_ROOT,
    atomic_write_bytes,
    atomic_writer,
    check_can_write,
    check_inputs_spared,
    checkout_root,
    decode_image,
    open_image,
    open_regular,
    read_capped,
    read_opened,
    require,
    shown,
    sweep_stale_temporaries,
    walk_files,
)
from vmafx_saliency.errors import (
    InputFileError,
    MissingDependencyError,
    OutputError,
    OutputExistsError,
    RegistryError,
    UsageError,
)


def test_reads_a_regular_file_up_to_and_at_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"x" * 100)
    assert read_capped(path, cap=100, what="model") == b"x" * 100  # the cap is inclusive
    assert read_capped(path, cap=1 << 20, what="model") == b"x" * 100


def test_an_empty_file_is_read_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    assert read_capped(path, cap=10, what="sidecar") == b""


def test_a_missing_file_names_itself_and_the_advice(tmp_path: Path) -> None:
    with pytest.raises(
        InputFileError, match=r"^sidecar .*nope\.json: no such file: check the path$"
    ):
        read_capped(tmp_path / "nope.json", cap=10, what="sidecar")
    with pytest.raises(InputFileError, match=r"no such file: run keygen first$"):
        read_capped(tmp_path / "k.pem", cap=10, what="key", missing="run keygen first")


def test_over_the_cap_is_refused_before_any_byte_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.onnx"
    path.write_bytes(b"x" * 101)

    def no_read(fd: int, n: int) -> bytes:
        raise AssertionError("read a file over the cap")

    monkeypatch.setattr(os, "read", no_read)
    with pytest.raises(
        InputFileError, match=r"big\.onnx: 101 bytes, over the cap of 100, and was not read"
    ):
        read_capped(path, cap=100, what="model")


def test_a_folder_and_a_named_pipe_are_refused_without_blocking(tmp_path: Path) -> None:
    folder = r": a directory, not a regular file: pass the model file itself"
    with pytest.raises(InputFileError, match=folder):
        read_capped(tmp_path, cap=10, what="model")
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)  # no writer: a blocking open would hang here
    with pytest.raises(InputFileError, match=r"pipe\.onnx: a named pipe, not a regular file"):
        read_capped(fifo, cap=10, what="model")


def test_a_pipe_or_a_device_is_refused_before_it_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening a pipe wakes its writer and opening a device can act on it: stat first.
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.onnx"
    zero.symlink_to("/dev/zero")

    def no_open(*args: object, **kwargs: object) -> int:
        raise AssertionError("opened a pipe or a device")

    monkeypatch.setattr(os, "open", no_open)
    with pytest.raises(InputFileError, match=r"pipe\.onnx: a named pipe, not a regular file"):
        read_capped(fifo, cap=10, what="model")
    with pytest.raises(InputFileError, match=r"zero\.onnx: a device or socket, not a regular"):
        read_capped(zero, cap=10, what="model")


def test_a_path_that_cannot_be_opened_says_why(tmp_path: Path) -> None:
    loop = tmp_path / "loop.onnx"
    loop.symlink_to(loop)
    with pytest.raises(InputFileError, match=r"loop\.onnx: a loop of symlinks: fix the path$"):
        read_capped(loop, cap=10, what="model")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InputFileError, match=r"a folder on its path is a file: check the path$"):
        read_capped(tmp_path / "file" / "m.onnx", cap=10, what="model")


def test_symlinks_are_followed_unless_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_bytes(b"{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert read_capped(link, cap=10, what="sidecar") == b"{}"
    with pytest.raises(InputFileError, match=r"link\.json: a symlink, not a regular file"):
        read_capped(link, cap=10, what="sidecar", symlinks=False)


def test_the_error_is_the_callers_class(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"^registry .*absent\.json: no such file"):
        read_capped(tmp_path / "absent.json", cap=10, what="registry", error=RegistryError)


def test_a_file_that_grew_or_shrank_while_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"abcdef")
    with open_regular(path, what="model") as (fd, size):
        assert size == 6
        path.write_bytes(b"abcdefgh")  # same inode, now longer than fstat said
        with pytest.raises(InputFileError, match=r"m\.onnx: changed size while it was read"):
            read_opened(fd, size, name=f"model {path}")
    with open_regular(path, what="model") as (fd, size):
        path.write_bytes(b"ab")
        with pytest.raises(InputFileError, match="changed size while it was read: pass a file"):
            read_opened(fd, size, name=f"model {path}")


def test_the_descriptor_is_closed_after_use_and_after_a_refusal(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"abc")
    before = sum(1 for _ in Path("/proc/self/fd").iterdir())
    read_capped(path, cap=10, what="model")
    with pytest.raises(InputFileError):
        read_capped(path, cap=1, what="model")
    with pytest.raises(InputFileError):
        read_capped(tmp_path, cap=1, what="model")
    assert sum(1 for _ in Path("/proc/self/fd").iterdir()) == before


def test_the_project_root_holds_the_committed_registry() -> None:
    assert PROJECT_ROOT == ROOT
    assert (ROOT / "pyproject.toml").is_file()
    assert (ROOT / "src" / "vmafx_saliency" / "models" / "registry.json").is_file()


def test_an_installed_package_has_no_checkout(tmp_path: Path) -> None:
    # site-packages/vmafx_saliency/_util.py: its grandparent is no project root.
    installed = tmp_path / "lib" / "python3.11" / "site-packages" / "vmafx_saliency"
    installed.mkdir(parents=True)
    (installed / "_util.py").touch()
    assert checkout_root(installed / "_util.py") is None
    # Nor is a folder that happens to hold some other project's pyproject.toml.
    (tmp_path / "lib" / "python3.11" / "pyproject.toml").touch()
    assert checkout_root(installed / "_util.py") is None
    checkout = tmp_path / "work" / "src" / "vmafx_saliency"
    checkout.mkdir(parents=True)
    (tmp_path / "work" / "pyproject.toml").write_text('[project]\nname = "vmafx-saliency"\n')
    assert checkout_root(checkout / "_util.py") == tmp_path / "work"
    # A copy vendored into another src-layout project is that project's, not a checkout.
    vendored = tmp_path / "myapp" / "src" / "vmafx_saliency"
    vendored.mkdir(parents=True)
    (tmp_path / "myapp" / "pyproject.toml").write_text('[project]\nname = "myapp"\n')
    assert checkout_root(vendored / "_util.py") is None
    (tmp_path / "myapp" / "pyproject.toml").write_text("not toml [")
    assert checkout_root(vendored / "_util.py") is None
    # Nor a copy beside a checkout (pip --target vendor/): only the checkout's own src/.
    beside = tmp_path / "work" / "vendor" / "vmafx_saliency"
    beside.mkdir(parents=True)
    assert checkout_root(beside / "_util.py") is None


# --- optional dependencies: the hint names the extra that installs the module ------

# Each distribution an extra lists, and the top-level modules it installs
# (onnx brings protobuf, whose modules live under google).
IMPORTS_OF = {
    "torch": {"torch"},
    "onnx": {"onnx", "google"},
    "pillow": {"PIL"},
    "model-signing": {"model_signing", "sigstore_models", "cryptography"},  # its own requires
    "pyopenssl": {"OpenSSL"},
    "pysodmetrics": {"py_sod_metrics"},
    "matplotlib": {"matplotlib"},
    "scipy": {"scipy"},
    "pyarrow": {"pyarrow"},
    "ray[data]": {"ray"},
    "numpy": {"numpy"},
    "onnxruntime": {"onnxruntime"},
    "av": {"av"},
    "jsonschema": {"jsonschema"},
}


def _provided(requirements: list[str]) -> set[str]:
    names = {re.split(r"[<>=!~ ]", r, maxsplit=1)[0].lower() for r in requirements}
    return set().union(*(IMPORTS_OF[name] for name in names if name in IMPORTS_OF))


def _require_calls() -> Iterator[tuple[str, str, str | None]]:
    """(where, module, extra) of every require(...) call in the package."""
    package = ROOT / "src" / "vmafx_saliency"
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "require_extra":  # require_extra(extra, {module: purpose, ...})
                extra, modules = (ast.literal_eval(a) for a in node.args)
                for module in modules:
                    yield f"{path.name}:{node.lineno}", module, extra
                continue
            if name != "require":
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            assert "extra" in keywords, f"{path}:{node.lineno} names no extra"
            module = node.args[0]
            if isinstance(module, ast.Constant):  # not require_extra's own call
                yield (
                    f"{path.name}:{node.lineno}",
                    str(module.value),
                    ast.literal_eval(keywords["extra"]),
                )


def test_every_install_hint_names_an_extra_that_installs_the_module() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = project["project"]["optional-dependencies"]
    core = _provided(project["project"]["dependencies"])
    calls = list(_require_calls())
    assert len(calls) >= 30
    for where, module, extra in calls:
        top = module.split(".")[0]
        provides = core if extra is None else _provided(extras[extra])
        assert top in provides, f"{where}: {module} is not installed by [{extra}]"


def test_a_missing_module_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(
        MissingDependencyError,
        match=r"^eval plots needs the Python package 'matplotlib', which is not installed: "
        r"run pip install 'vmafx-saliency\[eval\]'$",
    ):
        require("matplotlib.figure", purpose="eval plots", extra="eval")
    with pytest.raises(MissingDependencyError, match=r"'av'.*a core dependency: reinstall"):
        require("av", purpose="reading video frames", extra=None)

    # Installed, but what it imports is not: said so, not "not installed".
    def broken(name: str) -> object:
        raise ModuleNotFoundError("No module named 'google'", name="google")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(
        MissingDependencyError,
        match=r"^export needs the Python package 'onnx', which fails to import \(no module "
        r"named 'google'\): run pip install 'vmafx-saliency\[export\]'$",
    ):
        require("onnx", purpose="export", extra="export")
    monkeypatch.setattr(importlib, "import_module", missing)
    # Where pip's name is not the module's, both are said.
    with pytest.raises(
        MissingDependencyError,
        match=r"^views needs the Python package 'PIL' \(Pillow on PyPI\), which is not "
        r"installed: run pip install 'vmafx-saliency\[views\]'$",
    ):
        require("PIL.Image", purpose="views", extra="views")


def test_an_output_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    with (
        pytest.raises(OutputExistsError, match=r"out\.json already exists \(written meanwhile"),
        atomic_writer(path, force=False) as fh,
    ):
        fh.write(b"mine")
        path.write_bytes(b"theirs")  # another run won between the check and the rename
    assert path.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with atomic_writer(path, force=True) as fh:  # --force replaces it
        fh.write(b"mine")
    assert path.read_bytes() == b"mine"


def test_leftovers_of_a_killed_run_are_swept_and_a_live_runs_kept(tmp_path: Path) -> None:
    gone = _ended_pid()
    # Names as tempfile makes them: eight random characters after the pid.
    stale = tmp_path / f".out.json.{gone}.x1y2z3w4.tmp"
    stale.write_bytes(b"partial")
    stale_maps = tmp_path / f".maps.{gone}.abcd_123"
    stale_maps.mkdir()
    (stale_maps / "frame_000000.png").write_bytes(b"")
    live = tmp_path / f".out.json.{os.getpid()}.z9z9z9z9.tmp"
    live.write_bytes(b"being written")
    kept = {
        ".out.json.notes": b"",  # not of our form: never touched
        f".out.json.{gone}.bak": b"a user's",  # no random part: not a temporary of ours
        f".out.json.{gone}.abcdefgh": b"",  # no .tmp: not atomic_writer's
        # Another output's temporary: 'out.json.<n>' written by a live run, not <n>'s.
        f".out.json.{gone}.{os.getpid()}.q7q7q7q7.tmp": b"another output's",
    }
    for name, data in kept.items():
        (tmp_path / name).write_bytes(data)
    atomic_write_bytes(tmp_path / "out.json", b"{}")  # sweeps '.out.json.' first
    sweep_stale_temporaries(tmp_path, ".maps.")
    assert not stale.exists() and not stale_maps.exists()
    assert live.exists()
    assert all((tmp_path / name).exists() for name in kept)


def _ended_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_outputs_that_would_write_over_an_input_are_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    video, key = tmp_path / "clip.mp4", tmp_path / "out" / "signing.key"
    video.write_bytes(b"v")
    key.write_bytes(b"k")
    (tmp_path / "link.mp4").symlink_to(video)
    reads = [
        ("VIDEO", video),
        ("--private-key", key),
        ("--images", tmp_path / "images"),
        ("-", None),
    ]
    Writes = list[tuple[str, Path | None]]
    refused: list[tuple[Writes, Writes, str]] = [
        ([("--output", tmp_path / "link.mp4")], [], f"--output {tmp_path / 'link.mp4'} is VIDEO"),
        ([("-o", tmp_path / "out" / ".." / "clip.mp4")], [], f"clip.mp4 is VIDEO {video}"),
        ([], [("--out", tmp_path / "out")], f"--out {tmp_path / 'out'} holds --private-key {key}"),
        ([("-o", tmp_path / "images" / "x.png")], [], "x.png is in --images"),
    ]
    for files, folders, said in refused:
        with pytest.raises(UsageError, match=re.escape(said) + r".*: give the outputs paths apart"):
            check_inputs_spared(reads, files=files, folders=folders)
    os.link(video, tmp_path / "hard.mp4")  # another name of the same file
    with pytest.raises(UsageError, match=r"hard\.mp4 is VIDEO \S+clip\.mp4: give"):
        check_inputs_spared(reads, files=[("-o", tmp_path / "hard.mp4")])
    # A file output is never said to hold anything; siblings, "-" and None are fine.
    check_inputs_spared(
        reads,
        files=[("-o", tmp_path / "out"), ("-o", tmp_path / "clip.json"), ("-o", Path("-"))],
        folders=[("--maps", tmp_path / "maps"), ("--report", None)],
    )


def test_a_folder_walk_is_sorted_bounded_and_does_not_follow_links(tmp_path: Path) -> None:
    from vmafx_saliency import _util

    (tmp_path / "b" / "c").mkdir(parents=True)
    for name in ("b/c/z.png", "b/a.jpg", "y.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "loop").symlink_to(tmp_path)  # listed as an entry, never walked into
    files = walk_files(tmp_path, what="calibration folder")
    assert files == sorted(p for p in tmp_path.rglob("*") if not p.is_dir() or p.is_symlink())
    assert tmp_path / "loop" in files
    deep = tmp_path / "deep"
    (deep / Path(*["d"] * (_util.MAX_WALK_DEPTH + 1))).mkdir(parents=True)
    with pytest.raises(UsageError, match=r"^calibration folder \S+deep: folders nested deeper"):
        walk_files(deep, what="calibration folder")


def test_an_image_over_the_pixel_cap_is_refused_from_its_header(tmp_path: Path) -> None:
    pil_image = pytest.importorskip("PIL.Image")
    big, bomb = tmp_path / "big.png", tmp_path / "bomb.png"
    pil_image.new("1", (8000, 8000)).save(big)  # 64 Mpx, a few kB on disk
    pil_image.new("1", (14000, 14000)).save(bomb)  # past PIL's own bomb limit too
    with pytest.raises(InputFileError, match=r"big\.png: 8000x8000 pixels, over the 50,000,000"):
        decode_image(pil_image, big)
    with pytest.raises(InputFileError, match=r"cannot decode \S+bomb\.png \(.*fix or remove it"):
        decode_image(pil_image, bomb)
    # The header alone, for callers that need only the size.
    with pytest.raises(InputFileError, match=r"big\.png: 8000x8000 pixels, over the 50,000,000"):
        open_image(pil_image, big)
    with pytest.raises(InputFileError, match=r"cannot decode \S+bomb\.png"):
        open_image(pil_image, bomb)
    small = tmp_path / "small.png"
    pil_image.new("RGBA", (5, 3), (10, 20, 30, 0)).save(small)
    assert decode_image(pil_image, small).shape == (3, 5, 3)  # alpha dropped
    assert decode_image(pil_image, small, mode="L").shape == (3, 5)


def test_an_output_below_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(OutputError, match=rf"afile/x\.json: {afile} is a file, not a folder"):
        check_can_write(afile / "x.json", force=True)
    with pytest.raises(OutputError, match=r"cannot write /proc/\S+: .*a folder you can write"):
        atomic_write_bytes(Path("/proc/vmafx-saliency-test.json"), b"{}")


def test_shown_keeps_paths_whole_and_names_big_values_by_type() -> None:
    import numpy as np

    class Wordy:
        def __repr__(self) -> str:
            return "x" * 100

    long = Path("/" + "folder/" * 20 + "sidecar.json")
    assert shown(long) == repr(long)  # the path a message is about, never cut
    assert shown(str(long)) == repr(str(long))
    assert shown(np.zeros((5, 288, 352), np.uint8)) == "<ndarray of shape (5, 288, 352)>"
    assert shown(Wordy()) == "<Wordy>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    assert shown(Broken()) == "<Broken>"  # a message is still one line of ours
    assert shown((0.5, 3)) == "(0.5, 3)"


@pytest.mark.parametrize(
    "argv",
    [
        ["roi", "map", "clip.mp4", "--out", "-"],
        ["eval", "--dataset", "ds", "--models", "m.onnx", "--report", "-"],
        ["views", "frames", "clip.mp4", "--every", "10", "--out", "-"],
        ["export", "--checkpoint", "c.pth", "--output", "-"],
        ["keygen", "--private-key", "-"],
        ["compare", "clip.mp4", "--models", "a.onnx,b.onnx", "--report", "-"],
        ["train", "--out", "-", "--images", "ds/images"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_dash_is_never_a_file_or_folder_named_dash(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """'-' is standard input or output elsewhere: an output that cannot be a stream
    refuses it, before any work, rather than writing a file or folder called '-'."""
    from PIL import Image

    from vmafx_saliency.cli.main import main

    monkeypatch.chdir(tmp_path)
    for folder in ("images", "masks"):  # a dataset whose one pair passes the early checks
        (tmp_path / "ds" / folder).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "ds" / folder / "a.png")
    assert main(argv) == 2
    assert re.search(r" -: this output cannot go to standard output: give a (file|folder) name$|"
                     r"output '-': this output cannot go to standard output",
                     capsys.readouterr().err.strip())  # fmt: skip
    assert not (tmp_path / "-").exists()
    with pytest.raises(UsageError, match=r"^output '-': this output cannot go to standard output"):
        check_can_write(Path("-"), force=True)
