"""Input paths as users give them (files, directories, glob patterns) and output names derived from them."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from dcrcoadd.errors import InputError

#: What a directory given as input stands for.
FITS_GLOBS = ("*.fits", "*.fits.gz", "*.fits.fz", "*.fit", "*.fz")
_FITS_SUFFIXES = (".fits.gz", ".fits.fz", ".fit.gz", ".fits", ".fit", ".fts", ".fz")


def expand_paths(items: Iterable[str | os.PathLike], what: str = "inputs") -> list[str]:
    """Files as given, directories as their FITS files (sorted), glob patterns as their matches.

    Raises
    ------
    InputError
        A directory without FITS files, a pattern that matches nothing, or nothing at all
        (``what`` names the missing inputs in that message).
    """
    paths: list[str] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found = sorted({str(f) for pattern in FITS_GLOBS for f in path.glob(pattern)})
            if not found:
                raise InputError("directory holds no FITS files", text)
            paths.extend(found)
        elif any(c in text for c in "*?["):
            found = sorted(glob.glob(text))
            if not found:
                raise InputError("pattern matches no files", text)
            paths.extend(found)
        else:
            paths.append(text)
    if not paths:
        raise InputError(f"no {what} given", what)
    return paths


def output_stem(path: str | os.PathLike) -> str:
    """File name without its FITS suffix(es): ``"v1"`` for ``"dir/v1.fits.gz"``."""
    name = Path(path).name
    for suffix in _FITS_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem or name


def check_outdir(path: str | os.PathLike) -> None:
    """Raise `InputError` unless ``path`` is, or can be created as, a writable directory.

    Nothing is created: the nearest existing ancestor must be a writable directory.
    """
    out = Path(path)
    if out.is_symlink() and not out.exists():  # (creating it failed with a bare "File exists")
        raise InputError(f"is a link to {os.readlink(out)}, which does not exist: create that directory, "
                         "or give another output directory", path)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a directory", path)
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot create the output directory: {existing} is not a directory", path)
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "output directory is not writable" if existing == out else \
            f"cannot create the output directory: {existing} is not writable"
        raise InputError(what, path)


def make_outdir(path: str | os.PathLike) -> Path:
    """Create the output directory ``path`` (and its parents) if needed; `InputError` when it is a
    file, cannot be created or is not writable (`check_outdir`)."""
    out = Path(path)
    check_outdir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output directory ({exc.strerror or exc})", out) from None
    return out


def remove_if_empty(directory: str | os.PathLike, created: bool) -> None:
    """Remove ``directory`` when this run ``created`` it and wrote nothing there (a failed command
    leaves no empty output directory behind)."""
    directory = Path(directory)
    if created and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
