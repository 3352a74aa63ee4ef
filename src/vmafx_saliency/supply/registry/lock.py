"""One writer of a registry file at a time: an advisory lock on the file's folder.

``registry add`` and ``registry promote`` read a registry file, check their
change (a scan and a contract probe: a second or more) and write the file
again. Two at once would each write what they read, and one change would be
lost without a word. Each writer now reads the file again while it holds the
lock of the file's folder. The folder, not a lock file: nothing is left behind,
and the registry file itself is replaced by a rename (a lock on it would guard
the old inode).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vmafx_saliency.errors import RegistryError

# A writer holds the lock for its checks and its write: seconds, not minutes.
LOCK_WAIT_S = 60.0
_POLL_S = 0.05


@contextlib.contextmanager
def writing(registry: Path, *, wait: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the lock of ``registry``'s folder (made if missing) while the body runs.

    The folder the file is written in: through a symlink, its target's. Waits at
    most ``wait`` seconds for another writer, then raises RegistryError. Where
    the platform has no ``flock`` (Windows), the body runs unlocked.
    """
    fcntl: Any
    try:
        import fcntl
    except ImportError:  # not POSIX: one writer at a time is the operator's to keep
        fcntl = None
    if fcntl is None:
        yield
        return
    folder = Path(os.path.realpath(registry)).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise RegistryError(
            f"cannot write {registry}: its folder {folder} cannot be made or opened "
            f"({exc.strerror or exc}): check the path and its permissions"
        ) from exc
    try:
        _take(fcntl, fd, registry, folder, wait)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _take(fcntl: Any, fd: int, registry: Path, folder: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise RegistryError(
                    f"{registry}: another vmafx-saliency run has been writing it for over "
                    f"{wait:g} s (it holds the lock of {folder}): run again when it has finished"
                ) from None
            time.sleep(_POLL_S)


__all__ = ["LOCK_WAIT_S", "writing"]
