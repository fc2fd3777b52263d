"""Weight-map companion files (``--weights PATTERN``): the variance of images that carry none.

Survey pipelines often deliver the inverse variance of an image as a separate file: the
DECam Community Pipeline's ``*_oow_*`` beside each ``*_ooi_*`` image, SWarp's
``*.weight.fits``, a ``*_wtmap.fits``. A *pattern* names that file for each image:

``{dir}``
    the image's directory;
``{name}``
    its file name (``c4d_190310_031200_ooi_g_v1.fits.fz``);
``{stem}``
    the name without its FITS extensions (``c4d_190310_031200_ooi_g_v1``);
``{ext}``
    those extensions (``.fits.fz``; ``.fits``, ``.fit``, ``.fts``, each optionally ``.gz``,
    ``.fz`` or ``.bz2``);
``{FIELD/OLD/NEW}``
    any of them with the text ``OLD`` replaced by ``NEW`` (``{name/_ooi_/_oow_}``).

A result that is not absolute is relative to the image's directory. Glob characters
(``*``, ``?``, ``[``) written in the pattern itself match files, and must match exactly one
(``{stem}*wt*.fits``). Examples: ``{stem}_wtmap.fits``, ``{stem}.weight{ext}``,
``{name/_ooi_/_oow_}``, ``../weights/{stem}.fits``.

The weight file's pixels are the inverse variance in the image's units⁻²: the variance is
``1 / weight``; pixels of weight 0 (or not finite) are marked ``BAD`` and get no variance.
The weight map is read from the HDU with the image's extension name, else from the file's
only 2-D image; it must have the image's shape. It is used only where the image file has
no variance of its own.
"""

from __future__ import annotations

import glob
import os
import re
import threading
from pathlib import Path

import numpy as np
from astropy.io import fits

from dcrcoadd.errors import ConfigError, InputError

__all__ = ["WEIGHT_FIELDS", "check_weights_pattern", "companion_hdu", "variance_from_sigma",
           "variance_from_weight", "weight_path"]

#: The fields a weights pattern can use.
WEIGHT_FIELDS = ("dir", "name", "stem", "ext")
_FIELD = re.compile(r"\{([^{}]*)\}")
_EXTENSION = re.compile(r"(\.(?:fits|fit|fts)(?:\.(?:gz|fz|bz2))?)$", re.IGNORECASE)
_GLOB = re.compile(r"[*?\[]")


def _parse_field(text: str, pattern: str, what: str = "weights") -> tuple[str, str | None, str | None]:
    """``(field, old, new)`` of ``{field}`` or ``{field/old/new}``; ConfigError otherwise."""
    parts = text.split("/")
    if parts[0] not in WEIGHT_FIELDS or len(parts) not in (1, 3) or (len(parts) == 3 and not parts[1]):
        raise ConfigError(f"{what} pattern {pattern!r}: {{{text}}} is not a field; use "
                          + ", ".join(f"{{{f}}}" for f in WEIGHT_FIELDS) + " or {FIELD/OLD/NEW}")
    return (parts[0], None, None) if len(parts) == 1 else (parts[0], parts[1], parts[2])


def check_weights_pattern(pattern: str, what: str = "weights") -> str:
    """``pattern`` if it is a usable weights pattern (see the module notes); ConfigError otherwise.

    It must name the image through at least one field (one weight file for every image
    would be a mistake) and hold no stray brace. ``what``: the option's name in messages (the same
    patterns name data-quality maps, ``masks``, `dcrcoadd.io.quality`).
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigError(f"{what} pattern must be a non-empty text, got {pattern!r}")
    fields = [_parse_field(m.group(1), pattern, what) for m in _FIELD.finditer(pattern)]
    if "{" in _FIELD.sub("", pattern) or "}" in _FIELD.sub("", pattern):
        raise ConfigError(f"{what} pattern {pattern!r} has an unmatched brace")
    if not any(f in ("name", "stem") for f, _, _ in fields):
        raise ConfigError(f"{what} pattern {pattern!r} must contain {{name}} or {{stem}} (with or without "
                          "/OLD/NEW), so that each image gets its own file")
    return pattern


def _values(image: Path) -> dict[str, str]:
    name = image.name
    m = _EXTENSION.search(name)
    ext = m.group(1) if m else image.suffix
    stem = name[: len(name) - len(ext)] if ext else name
    # the directory as an absolute path: the pattern's result is taken relative to the image's directory
    # when it is relative, which a relative {dir} would then name twice
    return {"dir": str(Path(os.path.abspath(image)).parent), "name": name, "stem": stem, "ext": ext}


def weight_path(image: str | Path, pattern: str, kind: str = "weight map", option: str = "--weights") -> Path:
    """The weight file of ``image`` under ``pattern`` (``kind`` and ``option``: what the file is and
    which option named it, in messages: a data-quality map from ``--masks`` is found the same way).

    Raises
    ------
    InputError
        Naming the image: the weight file does not exist, or a glob matches no file or several.
    """
    image = Path(image)
    check_weights_pattern(pattern, option.lstrip("-"))
    values = _values(image)
    literal = _FIELD.sub("", pattern)
    globbing = bool(_GLOB.search(literal))

    def substitute(m: re.Match) -> str:
        field, old, new = _parse_field(m.group(1), pattern, option.lstrip("-"))
        value = values[field] if old is None else values[field].replace(old, new)
        return glob.escape(value) if globbing else value

    text = _FIELD.sub(substitute, pattern)
    path = Path(text)
    if not path.is_absolute():
        path = image.parent / path
    if globbing:
        found = sorted(glob.glob(str(path)))
        if len(found) != 1:
            what = "matches no file" if not found else f"matches {len(found)} files ({', '.join(found[:3])}" \
                + (", ..." if len(found) > 3 else "") + ")"
            raise InputError(f"{kind}: {option} {pattern!r} gives {path}, which {what}", image)
        path = Path(found[0])
    if path.resolve() == image.resolve():
        raise InputError(f"{kind}: {option} {pattern!r} gives the image itself", image)
    if not path.is_file():
        raise InputError(f"{kind} {path} (from {option} {pattern!r}) does not exist", image)
    return path


def companion_hdu(path: Path, image_name: str, shape: tuple[int, int], image: Path,
                  kind: str = "weight map") -> tuple[int, fits.Header, fits.Header]:
    """Index of the weight (or data-quality, ``kind``) map's HDU in ``path``: the one named like the
    image's extension, else the only 2-D image; with that HDU's header and the primary header.
    InputError (naming the image and the map) if none fits."""
    try:
        hdus, headers = _image_hdus(path)
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on corrupt files
        raise InputError(f"{kind} {path} is not a readable FITS file ({exc})", image) from None
    named = [h for h in hdus if image_name and image_name not in ("PRIMARY", "") and h[1] == image_name]
    chosen = named[0] if named else hdus[0] if len(hdus) == 1 else None
    if chosen is None:
        names = ", ".join(n or f"HDU {i}" for i, n, _ in hdus) or "none"
        raise InputError(f"{kind} {path}: no 2-D image named {image_name or 'like the image'} and not "
                         f"exactly one 2-D image (found: {names})", image)
    if chosen[2] != tuple(shape):
        raise InputError(f"{kind} {path} has shape {chosen[2]}, the image {tuple(shape)}", image)
    return chosen[0], headers[chosen[0]].copy(), headers[0].copy()


#: Companion files whose HDUs were listed, by identity and state: the CCDs of one multi-extension
#: image each look up their extension in the same file, whose headers (compressed ones especially)
#: cost ~80 ms to parse for a 61-HDU DECam file. A few files' worth (one visit's weight and
#: data-quality maps), a few MB each; a lock, as survey patches may read from threads.
_LISTED: dict[tuple, tuple[list, dict[int, fits.Header]]] = {}
_LISTED_MAX = 4
_LISTED_LOCK = threading.Lock()


def _image_hdus(path: Path) -> tuple[list[tuple[int, str, tuple[int, ...]]], dict[int, fits.Header]]:
    """``(index, name, shape)`` of each 2-D image HDU of ``path``, and the headers of those HDUs and
    of the primary, by index; cached while the file is unchanged."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _LISTED_LOCK:
        entry = _LISTED.get(key)
    if entry is None:
        with fits.open(path, memmap=None) as hdul:
            hdus = [(i, h.name.strip().upper(), tuple(int(n) for n in h.shape)) for i, h in enumerate(hdul)
                    if isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
                    and h.header.get("NAXIS") == 2]
            headers = {i: hdul[i].header.copy() for i in {0, *(i for i, _, _ in hdus)}}
        entry = (hdus, headers)
        with _LISTED_LOCK:
            while len(_LISTED) >= _LISTED_MAX:
                _LISTED.pop(next(iter(_LISTED)), None)
            _LISTED[key] = entry
    return entry


def variance_from_sigma(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(variance, bad)``: ``sigma²`` (float32, NaN where unusable) and where the standard deviation
    is zero, negative or not finite."""
    s = np.asarray(sigma, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(s) & (s > 0))
    variance = np.where(bad, np.nan, s * s)
    return variance.astype(np.float32), bad


def variance_from_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(variance, bad)``: ``1 / weight`` (float32, NaN where unusable) and where the weight is
    zero, negative or not finite."""
    w = np.asarray(weight, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(w) & (w > 0))
    variance = np.full(w.shape, np.nan)
    np.divide(1.0, w, out=variance, where=~bad)
    return variance.astype(np.float32), bad
