"""Small helpers shared across modules: atomic writes, hashing, lazy imports, CLI types."""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import importlib
import os
import re
import shutil
import stat
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import IO, Any, TypeGuard

from vmafx_saliency.errors import (
    InputFileError,
    MissingDependencyError,
    OutputError,
    OutputExistsError,
    UsageError,
    VmafxSaliencyError,
)

# What a refused read raises: an error class, or a function of the message.
ErrorFactory = Callable[[str], VmafxSaliencyError]


def checkout_root(module: Path) -> Path | None:
    """The source checkout that ``module`` (a file of this package) runs from, if any.

    ``src/vmafx_saliency/<file>`` in a checkout (an editable install too) gives
    its root; an installed package (``site-packages/vmafx_saliency/<file>``)
    gives None: it has no docs/, no models/ exports and no ../shared beside it.
    """
    package = module.resolve().parent
    root = package.parents[1]
    # This very package in the checkout's src/, and the checkout this project's: a copy
    # vendored into another project (its src/, a vendor/ folder, a zip) is installed.
    if package != root / "src" / "vmafx_saliency":
        return None
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = project.get("project", {}).get("name") if isinstance(project, dict) else None
    return root if name == "vmafx-saliency" else None


# The checkout's docs/ and the exports in models/, with the shared data folder
# beside it: the defaults of the development commands (train, quantize, export,
# release). None when installed: those commands then ask for the paths.
PROJECT_ROOT = checkout_root(Path(__file__))
SHARED_DIR = PROJECT_ROOT.parent / "shared" if PROJECT_ROOT is not None else None
# Said where a default of the checkout is missing, before what to pass instead.
NOT_A_CHECKOUT = (
    "vmafx-saliency runs installed here, with no source checkout and ../shared beside it"
)


def in_shared(*parts: str) -> Path | None:
    """A path under the shared data folder beside the checkout; None when installed."""
    return SHARED_DIR.joinpath(*parts) if SHARED_DIR is not None else None


# Modules of our optional dependencies whose distribution has another name.
_DISTRIBUTIONS = {
    "PIL": "Pillow",
    "py_sod_metrics": "pysodmetrics",
    "model_signing": "model-signing",
    "google": "protobuf",
    "sigstore_models": "sigstore-models",
}


def require(module: str, *, purpose: str, extra: str | None) -> ModuleType:
    """Import an optional dependency, or say exactly how to install it.

    ``extra`` is the pip extra of this project that installs ``module`` for
    ``purpose`` (one module can come with several: the caller knows which one
    its command needs); ``None`` for a core dependency, which only a broken
    install lacks.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        fix = (
            "it is a core dependency: reinstall vmafx-saliency"
            if extra is None
            else f"run pip install 'vmafx-saliency[{extra}]'"
        )
        # What pip calls it, where that is not the module's name.
        known_as = f" ({_DISTRIBUTIONS[top]} on PyPI)" if top in _DISTRIBUTIONS else ""
        missing = (exc.name or top).split(".")[0]
        if missing != top:  # installed, but a package it needs is not
            raise MissingDependencyError(
                f"{purpose} needs the Python package '{top}'{known_as}, which fails to import "
                f"(no module named '{missing}'): {fix}"
            ) from exc
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{top}'{known_as}, which is not installed: {fix}"
        ) from exc


def require_extra(extra: str, modules: Mapping[str, str]) -> None:
    """Every module of a command's extra (module -> what needs it), checked before the
    command does any work: the first one missing is named with the extra to install."""
    for module, purpose in modules.items():
        require(module, purpose=purpose, extra=extra)


# mkstemp creates files 0600; outputs should get the usual umask-based mode.
# Read the umask once at import (setting it is process-wide and not thread-safe).
UMASK = os.umask(0o022)
os.umask(UMASK)


def str_path(value: object) -> str | None:
    """The text of a ``str`` or ``os.PathLike`` path; ``None`` for anything else,
    bytes paths included (the product's paths and messages are text)."""
    text = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    return text if isinstance(text, str) else None


def shown(value: object, *, limit: int = 80) -> str:
    """A value a caller passed, for a message: its repr, or its type where that repr
    is long or spans lines (an array of frames, a model object). A path is always
    shown whole: it is what the message is about."""
    kind = type(value).__name__
    try:
        text = repr(value)
        shape = getattr(value, "shape", None)
    except Exception:  # noqa: BLE001 - a caller's object whose repr fails is named by type
        return f"<{kind}>"
    if (len(text) <= limit and "\n" not in text) or str_path(value) is not None:
        return text
    return f"<{kind} of shape {shape}>" if isinstance(shape, tuple) else f"<{kind}>"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- reading a file the product did not write ------------------------------------


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "a device or socket"


def _unopenable(exc: OSError, *, what: str) -> str:
    """Why a path cannot be opened, and what to do, by the OS's reason."""
    if exc.errno == errno.ELOOP:
        return "a loop of symlinks: fix the path"
    if exc.errno == errno.ENOTDIR:
        return "a folder on its path is a file: check the path"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: make the {what} file readable"
    return f"cannot be opened ({exc.strerror}): check the path"


def _check_regular(mode: int, *, name: str, what: str, error: ErrorFactory) -> None:
    if not stat.S_ISREG(mode):
        raise error(f"{name}: {_kind(mode)}, not a regular file: pass the {what} file itself")


@contextlib.contextmanager
def open_regular(
    path: Path,
    *,
    what: str,
    error: ErrorFactory = InputFileError,
    symlinks: bool = True,
    missing: str = "check the path",
    name: str | None = None,
) -> Iterator[tuple[int, int]]:
    """Open a regular file for reading; yield its descriptor and size, nothing read yet.

    The one set of rules for every file the product reads whole (models,
    sidecars, registries, bundles, keys, release files): a pipe or a device is
    refused by a stat before it is opened (opening either has effects of its
    own), the open never blocks, ``symlinks=False`` refuses a symlink as the
    last component, and the checks are made again on the opened descriptor, so
    the file checked is the file read. Each refusal raises ``error`` with
    "{what} {path}: {problem}: {what to do}" (``name`` replaces "{what} {path}");
    ``missing`` is the advice when it does not exist.
    """
    name = name or f"{what} {path}"
    try:
        mode = (path.stat() if symlinks else path.lstat()).st_mode
    except FileNotFoundError:
        raise error(f"{name}: no such file: {missing}") from None
    except OSError as exc:
        raise error(f"{name}: {_unopenable(exc, what=what)}") from exc
    if not symlinks and stat.S_ISLNK(mode):
        raise error(f"{name}: a symlink, not a regular file: pass the {what} file itself")
    _check_regular(mode, name=name, what=what, error=error)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{name}: no such file: {missing}") from None
    except OSError as exc:  # replaced since the stat; O_NOFOLLOW gives ELOOP for a symlink
        raise error(f"{name}: {_unopenable(exc, what=what)}") from exc
    try:
        info = os.fstat(fd)
        _check_regular(info.st_mode, name=name, what=what, error=error)
        yield fd, info.st_size
    finally:
        os.close(fd)


def read_opened(fd: int, size: int, *, name: str, error: ErrorFactory = InputFileError) -> bytes:
    """The whole of a file :func:`open_regular` opened and measured at ``size`` bytes.

    Reading one byte past that size tells a file that grew from one that did
    not, and never allocates more than the file's size. ``name`` names the
    file in errors, as in :func:`open_regular`.
    """
    chunks: list[bytes] = []
    left = size + 1
    try:
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 24))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise error(f"{name}: cannot be read ({exc.strerror}): check the file") from exc
    data = b"".join(chunks)
    if len(data) != size:
        # A file being written, or one the kernel makes up (/proc) and sizes as 0 or 4096.
        raise error(f"{name}: changed size while it was read: pass a file nothing is writing")
    return data


def read_capped(
    path: Path,
    *,
    cap: int,
    what: str,
    error: ErrorFactory = InputFileError,
    symlinks: bool = True,
    missing: str = "check the path",
) -> bytes:
    """A regular file's bytes, refused unread when over ``cap`` (rules: :func:`open_regular`)."""
    opened = open_regular(path, what=what, error=error, symlinks=symlinks, missing=missing)
    with opened as (fd, size):
        if size > cap:
            raise error(
                f"{what} {path}: {size:,} bytes, over the cap of {cap:,}, and was not read: "
                "check that it is the right file"
            )
        return read_opened(fd, size, name=f"{what} {path}", error=error)


# --- writing outputs ------------------------------------------------------------------

_STD_NAMES = {"/dev/stdout": 1, "/dev/stderr": 2}
_FD_NAME = re.compile(r"/(?:dev|proc/self)/fd/([0-9]+)")


def _descriptor(path: Path) -> int | None:
    """The open descriptor a name such as ``/dev/stdout`` or ``/dev/fd/3`` stands for.

    Written through that descriptor, never opened by name: opening it would
    truncate a redirected file (``>> log``), and a rename would replace it.
    """
    name = os.path.normpath(str(path))
    match = _FD_NAME.fullmatch(name)
    return int(match.group(1)) if match else _STD_NAMES.get(name)


def _is_stream(path: Path) -> bool:
    """A descriptor name, a named pipe or a device: written in place, nothing to clobber."""
    if _descriptor(path) is not None:
        return True
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def refuse_dash(path: Path, *, kind: str = "file", flag: str | None = None) -> None:
    """Refuse ``-`` as the name of an output that cannot go to standard output.

    Elsewhere on the command line ``-`` is standard input or output: a file or
    folder named ``-`` would surprise the user, and the next run find it in the way.
    """
    if str(path) == "-":
        named = f"{flag} -" if flag else "output '-'"
        raise UsageError(f"{named}: this output cannot go to standard output: give a {kind} name")


def check_out_folder(path: Path, *, purpose: str, flag: str = "--out") -> None:
    """Refuse an output folder that names an existing file: no --force makes it a folder."""
    refuse_dash(path, kind="folder", flag=flag)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: a file, not a folder: give a folder for {purpose}")


def check_can_write(path: Path, *, force: bool, folder: bool = False) -> None:
    """Refuse to clobber an existing output unless asked to.

    ``folder``: the output is a folder; otherwise an existing folder at ``path``
    is refused outright, since no --force can turn it into a file.
    """
    refuse_dash(path, kind="folder" if folder else "file")
    if not folder and path.is_dir():
        raise OutputError(f"{path} is a folder: give a file name for the output")
    if path.exists() and not force and not _is_stream(path):
        raise OutputExistsError(f"{path} already exists: pass --force to overwrite it")
    check_parents_are_folders(path)


def check_parents_are_folders(path: Path) -> None:
    """A missing folder on an output's path is made at write time; one that cannot be
    (a file in the way) is refused now, before any work."""
    above = next((p for p in path.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise OutputError(f"{path}: {above} is a file, not a folder: give a path in a folder")


# A folder walked for inputs (calibration frames, a dataset) is bounded in depth and in
# entries seen, so a hostile tree costs little; no real set comes near either.
MAX_WALK_DEPTH = 32
MAX_WALK_ENTRIES = 200_000


def walk_files(folder: Path, *, what: str) -> list[Path]:
    """Every entry under ``folder`` that is not a folder, sorted; symlinked folders are
    not followed. Refused (UsageError, naming ``what``) past the bounds above."""
    found: list[Path] = []
    seen = 0
    stack = [(folder, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            entries = os.scandir(current)
        except OSError as exc:
            raise InputFileError(f"{what} {folder}: cannot list {current}: {exc.strerror}") from exc
        with entries:
            for entry in entries:
                seen += 1
                if seen > MAX_WALK_ENTRIES:
                    raise UsageError(
                        f"{what} {folder}: more than {MAX_WALK_ENTRIES:,} entries: "
                        "point it at a folder of the files themselves"
                    )
                if not entry.is_dir(follow_symlinks=False):
                    found.append(Path(entry.path))
                elif depth + 1 > MAX_WALK_DEPTH:
                    raise UsageError(
                        f"{what} {folder}: folders nested deeper than {MAX_WALK_DEPTH}: "
                        "point it at a folder of the files themselves"
                    )
                else:
                    stack.append((Path(entry.path), depth + 1))
    return sorted(found)


# Pixels an image may hold: an 8K video frame has 33 million. Past this a file is a
# decompression bomb or a mistake, refused from its header before it is decoded.
MAX_IMAGE_PIXELS = 50_000_000


def decode_image(pil_image: ModuleType, path: Path, *, mode: str | None = None) -> Any:
    """The decoded image as a uint8 array ``[H, W]`` or ``[H, W, 3]``, or one InputFileError.

    ``pil_image``: the ``PIL.Image`` module (through the caller's extra). ``mode``:
    "RGB" or "L"; ``None`` keeps grey images grey (one channel, as upstream reads
    them) and makes any other mode (RGBA, P, CMYK) RGB, dropping alpha.
    """
    import numpy as np

    img = open_image(pil_image, path)
    try:
        with img:
            chosen = mode or ("L" if img.mode in _GREY_MODES else "RGB")
            return np.asarray(img.convert(chosen), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot decode {path} ({exc}): fix or remove it") from exc


def open_image(pil_image: ModuleType, path: Path) -> Any:
    """The opened, not yet decoded, image (the caller closes it), its size within
    :data:`MAX_IMAGE_PIXELS`, or one InputFileError: only the header is read."""
    import warnings

    try:
        with warnings.catch_warnings():
            # PIL warns of sizes the cap below refuses: one error, not a warning too.
            warnings.simplefilter("ignore", pil_image.DecompressionBombWarning)
            img = pil_image.open(path)
    except (OSError, ValueError, pil_image.DecompressionBombError) as exc:
        raise InputFileError(f"cannot decode {path} ({exc}): fix or remove it") from exc
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        img.close()
        raise InputFileError(
            f"{path}: {width}x{height} pixels, over the {MAX_IMAGE_PIXELS:,} an image "
            "may hold here: give a smaller image"
        )
    return img


# PIL modes read as one grey channel (upstream reads grey images so, and treats them apart).
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def check_inputs_spared(
    reads: Iterable[tuple[str, Path | None]],
    *,
    files: Iterable[tuple[str, Path | None]] = (),
    folders: Iterable[tuple[str, Path | None]] = (),
    has_force: bool = True,
) -> None:
    """Refuse, before any work, a run that would write over one of its own inputs.

    Each is (how the user named it, path); ``reads``: the files and folders the
    run reads (standard input, ``-``, is none); ``files``: the files it writes;
    ``folders``: the folders it replaces or fills. An output may not be an
    input or lie inside one (a folder read whole would read it back), and an
    output folder may not hold one (replaced whole, it would delete it).
    --force lets a run replace its earlier outputs, never what it reads (the
    message says so where the command has one, ``has_force``).
    """
    inputs = [(what, path, _canonical(path), _inode(path)) for what, path in reads if _named(path)]
    outputs = [(flag, out, False) for flag, out in files if _named(out)]
    outputs += [(flag, out, True) for flag, out in folders if _named(out)]
    for flag, out, folder in outputs:
        target, node = _canonical(out), _inode(out)
        for what, path, source, source_node in inputs:
            holds = folder and target in source.parents
            same = target == source or (node is not None and node == source_node)  # hard links
            if same or holds or source in target.parents:
                relation = "is" if same else "holds" if holds else "is in"
                note = " (--force replaces earlier outputs, never a run's inputs)"
                raise UsageError(
                    f"{flag} {out} {relation} {what} {path}: give the outputs paths apart "
                    f"from the inputs{note if has_force else ''}"
                )


def _named(path: Path | None) -> TypeGuard[Path]:
    return path is not None and str(path) != "-"


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None  # not there (yet): its path alone says what it is
    return found.st_dev, found.st_ino


def _canonical(path: Path) -> Path:
    # Symlinks and '..' resolved: two spellings of one file are one file.
    return path.absolute().resolve()


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: str = "wb", force: bool = True) -> Iterator[IO[bytes]]:
    """Write to a temporary file beside ``path`` and rename it into place.

    On any exception the temporary file is removed, so a failed run leaves no
    partial output behind.
    """
    check_can_write(path, force=force)
    fd = _descriptor(path)
    if fd is not None:
        sys.stdout.flush()  # what was printed before comes first
        with os.fdopen(os.dup(fd), mode) as fh:
            yield fh
        return
    if _is_stream(path):
        # A pipe or a device cannot be replaced by a rename: write into it.
        with path.open(mode) as fh:
            yield fh
        return
    # Through a symlink to the file it names, which is replaced; the link stays.
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temporaries(path.parent, f".{path.name}.", suffixes=(".tmp",))
        # The pid in the name lets a later run tell a leftover of a killed run
        # (its process gone) from the temporary of one still writing.
        prefix = f".{path.name}.{os.getpid()}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc}: give a path in a folder you can write to"
        ) from exc
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _put_in_place(Path(tmp), path, force=force)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


# What os.link says where the file system has no hard links (FAT, some network
# and FUSE file systems).
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}
)


def _put_in_place(tmp: Path, path: Path, *, force: bool) -> None:
    """Rename ``tmp`` to ``path``; without ``force``, never over a file that appeared.

    The existence check before the work and this rename are not one step: a
    second run writing the same output could win in between. A hard link is
    created only where the name is free, so exactly one of two runs succeeds.
    """
    if force:
        tmp.replace(path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(
            f"{path} already exists (written meanwhile by another run): pass --force to "
            "overwrite it"
        ) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # A file system without hard links: the earlier check stands alone.
        if path.exists():
            message = f"{path} already exists: pass --force to overwrite it"
            raise OutputExistsError(message) from None
        tmp.replace(path)
        return
    tmp.unlink()


def own_temporary_folder(
    folder: Path, name: str, *, suffix: str = "", sweep: tuple[str, ...] = ("",)
) -> Path:
    """A new hidden folder ``.<name>.<pid>.<random><suffix>`` in ``folder`` (mode 0700).

    The pid in the name lets a later run tell a leftover of a killed run (SIGKILL,
    a power cut) from the folder of one still working: before making it, the
    leftovers of ``name`` with the ``sweep`` suffixes are removed (none when empty).
    """
    prefix = f".{name}."
    if sweep:
        sweep_stale_temporaries(folder, prefix, suffixes=sweep)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", suffix=suffix, dir=folder))


# tempfile's random part of a name (mkstemp, mkdtemp): eight of these.
_TEMPFILE_RANDOM = "[a-z0-9_]{8}"


def sweep_stale_temporaries(
    folder: Path, prefix: str, *, suffixes: tuple[str, ...] = ("",)
) -> None:
    """Remove ``<prefix><pid>.*`` temporaries in ``folder`` whose process is gone.

    Leftovers of runs killed by SIGKILL or a power cut: nothing else removes
    them. Only names of the product's own form are touched, and only where the
    pid they carry is no longer a running process on this machine.
    """
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    # <prefix><pid>.<random><suffix>, nothing more: '.x.99.<pid>.<random>' is the
    # temporary of an output named 'x.99', not a leftover of process 99.
    ours = re.compile(rf"(\d+)\.{_TEMPFILE_RANDOM}(?:{'|'.join(re.escape(s) for s in suffixes)})")
    for candidate in names:
        found = ours.fullmatch(candidate.name[len(prefix) :])
        if found is None or _alive(int(found.group(1))):
            continue
        with contextlib.suppress(OSError):
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def atomic_write_bytes(path: Path, data: bytes, *, force: bool = True) -> None:
    with atomic_writer(path, force=force) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str, *, force: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), force=force)


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts (threads, limits, stem convolutions): 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return value
