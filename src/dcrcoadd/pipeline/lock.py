"""One run at a time per output directory.

A run (``assemble`` into ``OUT``, ``survey`` into ``OUT``) holds ``OUT/.dcrcoadd.lock`` while it
writes there: the file names the host and process that holds it. A second run into the same
directory is refused instead of interleaving its checkpoints, outputs and records with the first's
(two surveys into one directory each recomputed every patch and each reported its own outputs as
the finished ones). A lock left by a run that no longer exists on this host (killed) is taken
over, with an INFO line (stopping a run is the user's doing, not a fault of this run: as a warning
it was counted against every patch of a survey rerun); one from another host cannot be checked and
is reported, naming the file to remove.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dcrcoadd.errors import InputError

__all__ = ["LOCK_NAME", "directory_lock"]

log = logging.getLogger("dcrcoadd.pipeline.lock")

#: The lock file in an output directory.
LOCK_NAME = ".dcrcoadd.lock"


def _holder(path: Path) -> tuple[str, int] | None:
    """``(host, pid)`` written in a lock file; None when it is unreadable or malformed."""
    try:
        host, pid = path.read_text().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def _gone(holder: tuple[str, int] | None) -> bool:
    """Whether the run holding a lock no longer exists (only knowable on this host)."""
    if holder is None:
        return True  # (a lock file cut short as its run was killed)
    host, pid = holder
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # (another user's live process)
        return False
    return False


@contextmanager
def directory_lock(directory: str | os.PathLike) -> Iterator[None]:
    """Hold `LOCK_NAME` in ``directory`` (created if needed) for the block.

    Raises
    ------
    InputError
        Naming the directory, when another live run holds it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not path.is_file() or path.is_symlink():
                raise InputError(f"{LOCK_NAME} is not a lock file dcrcoadd wrote (a directory or a link): "
                                 "remove it, or choose another output directory", directory) from None
            holder = _holder(path)
            if not _gone(holder):
                host, pid = holder
                raise InputError(f"another dcrcoadd run (process {pid} on {host}) is writing into this "
                                 f"directory: wait for it, or choose another output directory (if no run "
                                 f"is, remove {path})", directory) from None
            log.info("%s: taking over the lock of a run that no longer exists (%s)", directory,
                        "unreadable" if holder is None else f"process {holder[1]} on {holder[0]}")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{socket.gethostname()} {os.getpid()}\n")
        break
    else:
        raise InputError(f"cannot take the lock {path}: other runs keep taking it", directory)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
