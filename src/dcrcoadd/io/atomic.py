"""Atomic file output: write to a temporary name, rename when complete."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from dcrcoadd.errors import InputError

__all__ = ["OutputError", "atomic_output"]

_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied"}


class OutputError(InputError, OSError):
    """An output file could not be written (disk full, no permission, ...): one line naming the file.

    Both an `InputError` (the command line prints ``error: FILE: reason`` and exits with status 2)
    and an `OSError` (what it replaces, for code that catches that; ``errno``, ``strerror`` and
    ``filename`` are those of the failure, ``filename`` the output file).
    """

    def __str__(self) -> str:
        return str(self.args[0])  # the one-line message, not OSError's "[Errno n] ..." form


def _output_error(exc: OSError, path: Path) -> OutputError:
    reason = _REASONS.get(exc.errno) or exc.strerror or str(exc) or type(exc).__name__
    detail = f" ({exc.strerror})" if exc.strerror and exc.errno in _REASONS else ""
    error = OutputError(f"cannot write: {reason}{detail}", path)
    error.errno, error.strerror, error.filename = exc.errno, exc.strerror, str(path)
    return error


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    If the body raises, the temporary file is removed and ``path`` is left
    untouched, so readers never see a partial file. An `OSError` while creating,
    writing or renaming (a full disk, a read-only directory) becomes an `OutputError`
    naming ``path``: the low-level error often names no file, or only the temporary one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_unique(path)
    except OutputError:
        raise
    except OSError as exc:
        raise _output_error(exc, path) from exc
    try:
        yield tmp
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as exc:
        raise _output_error(exc, path) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _create_unique(path: Path) -> Path:
    """Create an empty, uniquely named file beside ``path``.

    Unlike `tempfile.mkstemp` (always mode 0600) it is created with mode 0666
    minus the umask, so the renamed output has the permissions users expect.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")
