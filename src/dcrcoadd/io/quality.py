"""Data-quality map companion files (``--masks PATTERN``): the mask of images that carry none.

Survey pipelines deliver an image's bad pixels, saturation, bleed trails and cosmic rays as a
separate data-quality file: the DECam Community Pipeline's ``*_ood_*`` beside each ``*_ooi_*``
image (and its ``*_oow_*`` weight map, ``--weights``), ZTF's ``*_mskimg.fits`` beside each
``*_sciimg.fits`` (``{name/sciimg/mskimg}``). The pattern names that file for each image
as a weights pattern does (`dcrcoadd.io.weights`: ``{name/_ooi_/_oow_}`` becomes
``{name/_ooi_/_ood_}``); its HDU is the one named like the image's extension, else its only 2-D
image, of the image's shape. It is used only where the image file has no mask of its own.

What a value means (``--mask-codes``, config ``inputs.mask_codes``):

``decam-cp``
    The DECam Community Pipeline's. From version 3.5.0 (``PLVER`` card of the data-quality or
    image file; late 2014 on) each pixel holds one integer code: 1 bad pixel (``BAD``), 2 no data
    (``NO_DATA``), 3 saturated and 4 bleed trail (``SAT``, as LSST masks both), 5 cosmic ray
    (``CR``), 6 low weight (``BAD``), 8 streak (``STREAK``); any other code ``BAD``, except 7, a
    transient found by the pipeline's own comparison of overlapping exposures, which is left
    unmasked: compare-warp finds the transients among the inputs itself (a plane that rejected
    pixels, or one among ``artifacts.prefilter_artifacts_mask_planes``, would override its
    judgement). Before 3.5.0, bits: 1 bad, 2 saturated, 4 interpolated (``INTRP``), 16 cosmic ray,
    64 bleed trail, 128 transient (left unmasked); other bits ``BAD``. Without a readable ``PLVER``
    card the values are taken as codes. (Before 4.8.0 the pipeline sometimes wrote streaks as
    cosmic rays; both are masked either way.) ``STREAK`` and ``INTRP`` are not among the default
    ``coadd.bad_mask_planes``: add them to keep those pixels out of the coadd and the model.
``ztf``
    The ZTF science data system's bits: 0 aircraft or satellite track (``STREAK``), 2 low and
    3 high responsivity, 4 noisy, 5 ghost, 6 ghost from charge spillage and 9 dead (``BAD``),
    7 pixel spike (``CR``), 8 saturated (``SAT``), 10 NaN (``NO_DATA``), 12 the halo round a star
    brighter than V 6.5 (``BRIGHT_OBJECT``: a ghost that moves with the star, about 6' across,
    not among the default ``coadd.bad_mask_planes``, so that the coadd keeps no hole there; add
    it to leave those pixels out); 1 and 11 (a source detected there) left unmasked; other bits
    ``BAD``.
``desdm``
    The DES data management system's bits, the ``MSK`` extension of its single-epoch images (read
    as such without ``--masks``): 1 bad pixel and 8 low signal (``BAD``), 2 saturated, 64 bleed
    trail and 128 edge bleed (``SAT``), 4 and 2048 interpolated or fixed (``INTRP``), 16 cosmic
    ray (``CR``), 32 bright star (``BRIGHT_OBJECT``), 256 cross-talk from a saturated source
    (``BAD``), 512 glowing CCD edge (``EDGE``), 1024 streak (``STREAK``); other bits ``BAD``.
``nonzero``
    Every nonzero pixel is ``BAD`` (a mask whose values say nothing more).
``auto`` (default)
    ``decam-cp`` when the data-quality file or the image carries a ``PLVER`` card or the image
    was read with the DECam preset, ``ztf`` for an image read with the ZTF preset, else
    ``nonzero``.

The image's own checks still apply: pixels that are not finite are ``NO_DATA``, and with a
``SATURATE`` card the pixels at or above it ``SAT``; the planes of the map are added to those.
"""

from __future__ import annotations

import re

import numpy as np

from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.errors import ConfigError

__all__ = ["MASK_CODES", "check_mask_codes", "dq_planes", "resolve_codes"]

#: The conventions ``--mask-codes`` accepts.
MASK_CODES = ("auto", "decam-cp", "ztf", "desdm", "nonzero")

#: DECam Community Pipeline integer codes (PLVER >= 3.5.0) -> plane (None: left unmasked).
_CP_CODES = {1: "BAD", 2: "NO_DATA", 3: "SAT", 4: "SAT", 5: "CR", 6: "BAD", 7: None, 8: "STREAK"}
#: DECam Community Pipeline bits (PLVER < 3.5.0) -> plane (None: left unmasked).
_CP_BITS = {1: "BAD", 2: "SAT", 4: "INTRP", 16: "CR", 64: "SAT", 128: None}
#: ZTF mskimg bits -> plane (None: left unmasked).
_ZTF_BITS = {1 << 0: "STREAK", 1 << 1: None, 1 << 2: "BAD", 1 << 3: "BAD", 1 << 4: "BAD", 1 << 5: "BAD",
             1 << 6: "BAD", 1 << 7: "CR", 1 << 8: "SAT", 1 << 9: "BAD", 1 << 10: "NO_DATA", 1 << 11: None,
             1 << 12: "BRIGHT_OBJECT"}
#: DESDM BADPIX bits -> plane.
_DESDM_BITS = {1: "BAD", 2: "SAT", 4: "INTRP", 8: "BAD", 16: "CR", 32: "BRIGHT_OBJECT", 64: "SAT", 128: "SAT",
               256: "BAD", 512: "EDGE", 1024: "STREAK", 2048: "INTRP"}
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


def check_mask_codes(name: str) -> str:
    """``name`` if it is one of `MASK_CODES`; ConfigError otherwise."""
    if name not in MASK_CODES:
        raise ConfigError(f"mask codes {name!r} unknown; use one of {', '.join(MASK_CODES)}")
    return name


def _plver(headers) -> tuple[tuple[int, int] | None, str | None]:
    """The first readable ``PLVER`` card's version (``V4.8.2`` -> (4, 8), ``V10`` -> (10, 0)), and
    the first card's text when none is readable."""
    texts = [str(h["PLVER"]) for h in headers if h is not None and "PLVER" in h]
    for text in texts:
        m = _VERSION.search(text)
        if m:
            return (int(m.group(1)), int(m.group(2) or 0)), None
    return None, texts[0] if texts else None


def resolve_codes(requested: str, headers, instrument: str | None) -> tuple[str, str]:
    """``(convention, description)`` of a data-quality map under ``requested``: ``"cp-codes"``,
    ``"cp-bits"``, ``"ztf"``, ``"desdm"`` or ``"nonzero"``. ``headers``: the data-quality HDU's and
    the image's headers (PLVER is looked for in that order); ``instrument``: the preset the image was
    read with."""
    has_plver = any(h is not None and "PLVER" in h for h in headers)
    if requested == "auto":
        requested = ("decam-cp" if has_plver or instrument == "decam" else "ztf" if instrument == "ztf"
                     else "nonzero")
    if requested == "nonzero":
        return "nonzero", "every nonzero value BAD"
    if requested == "ztf":
        return "ztf", "ZTF mask bits"
    if requested == "desdm":
        return "desdm", "DESDM mask bits"
    version, unreadable = _plver(headers)
    if version is not None and version < (3, 5):
        return "cp-bits", f"DECam Community Pipeline bits (PLVER {version[0]}.{version[1]}, before 3.5)"
    if version is not None:
        told = f"PLVER {version[0]}.{version[1]}"
    elif unreadable is not None:
        told = f"unreadable PLVER {unreadable!r}: taken as 3.5 or later"
    else:
        told = "no PLVER card: taken as 3.5 or later"
    return "cp-codes", f"DECam Community Pipeline codes ({told})"


def dq_planes(dq: np.ndarray, convention: str, planes: MaskPlanes) -> np.ndarray:
    """The mask bits (uint32, in ``planes``, which must hold the planes named above) of data-quality values
    ``dq`` (integers) under ``convention`` (of `resolve_codes`)."""
    dq = np.asarray(dq)
    out = np.zeros(dq.shape, np.uint32)
    bad = np.uint32(planes.value("BAD"))
    if convention == "nonzero":
        out[dq != 0] = bad
        return out
    if convention == "cp-codes":
        known = np.zeros(dq.shape, bool)
        for code, name in _CP_CODES.items():
            hit = dq == code
            if name is not None:
                out[hit] |= np.uint32(planes.value(name))
            known |= hit
        out[~known & (dq != 0)] |= bad
        return out
    table = {"ztf": _ZTF_BITS, "desdm": _DESDM_BITS}.get(convention, _CP_BITS)
    bits = dq.astype(np.int64)
    for bit, name in table.items():
        if name is not None:
            out[(bits & bit) != 0] |= np.uint32(planes.value(name))
    other = bits & ~np.int64(sum(table))
    out[other != 0] |= bad
    return out
