"""Big read-only arrays that many tasks of one stage read: handed to local worker processes by file.

A task sent to a `ProcessMapper` worker is pickled, and so is every array it carries. Compare-warp
gives each warp's search the static sky over the whole patch: on a 2048x4096 patch with 12 warps,
800 MB pickled, piped and unpickled (1.8 s of unpickling alone), which left two workers only 1.3
times as fast as one. `shared` writes such arrays once to a private temporary folder and gives
the tasks `FileArray` handles instead, which the workers memory-map (`resolve`); the pages are read
from the system's file cache, not copied through a pipe. Serial runs and Dask get the arrays
themselves (a Dask cluster's workers need not see this machine's temporary folder), and so do the
workers when the temporary folder cannot take the files (a warning; only the speed differs).
A folder left by a process killed outright is removed by the next run's `shared`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcrcoadd.parallel.mappers import Mapper, ProcessMapper

__all__ = ["FileArray", "resolve", "shared"]

log = logging.getLogger("dcrcoadd.parallel.shared")

_PREFIX = "dcrcoadd-shared-"


@dataclass(frozen=True)
class FileArray:
    """A read-only array saved in ``path`` (``.npy``), or its part ``slices``."""

    path: str
    slices: tuple[slice, ...] | None = None

    def __getitem__(self, slices: tuple[slice, ...]) -> FileArray:
        if self.slices is not None:
            raise TypeError("a FileArray part cannot be sliced again")
        return FileArray(self.path, slices)

    def load(self) -> np.ndarray:
        """The array (or its part), memory-mapped read-only."""
        array = np.load(self.path, mmap_mode="r")
        return array if self.slices is None else array[self.slices]


def resolve(array: np.ndarray | FileArray) -> np.ndarray:
    """The array a task was given: itself, or a `FileArray`'s pixels."""
    return array.load() if isinstance(array, FileArray) else array


@contextmanager
def shared(mapper: Mapper | None, *arrays: np.ndarray) -> Iterator[tuple[np.ndarray | FileArray, ...]]:
    """``arrays`` as tasks run by ``mapper`` should carry them: `FileArray` handles for local worker
    processes (the files are removed when the block ends), the arrays themselves otherwise."""
    if not isinstance(mapper, ProcessMapper):
        yield arrays
        return
    _remove_orphans()
    folder = None
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        handles = []
        for i, array in enumerate(arrays):
            path = folder / f"array_{i}.npy"
            np.save(path, np.ascontiguousarray(array))
            handles.append(FileArray(str(path)))
    except OSError as exc:
        log.warning("cannot write %.0f MB to the temporary folder %s (%s): the worker processes get "
                    "their copies through pipes instead, which is slower (set TMPDIR to a folder with room)",
                    sum(a.nbytes for a in arrays) / 1e6, folder or tempfile.gettempdir(), exc)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        yield arrays
        return
    try:
        yield tuple(handles)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_orphans() -> None:
    """Remove the folders of `shared` whose process is gone (killed before it could clean up)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        m = re.match(rf"{_PREFIX}(\d+)-", folder.name)
        if m is None or _alive(int(m.group(1))):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # (another user's process)
        return True
    return True
