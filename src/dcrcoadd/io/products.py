"""Files dcrcoadd writes, marked so that no later run takes them for its inputs.

An output directory is often a folder of inputs too (``assemble warps/ --out warps/``, templates
written next to their science exposures): read back as inputs, a coadd or a model has no visit, and
a template is an image of the same sky. Every product carries ``DCRPROD`` (its kind) in its primary
header; `product_of` also knows the cards of files written before that card.
"""

from __future__ import annotations

import os
import warnings

from astropy.io import fits

__all__ = ["PRODUCT_CARD", "PRODUCTS", "mark_product", "product_of"]

#: Primary-header card naming the kind of a dcrcoadd product.
PRODUCT_CARD = "DCRPROD"
#: Kinds of products, and how messages name them.
PRODUCTS = {"coadd": "baseline coadd", "dcr_coadd": "DCR coadd", "subfilter": "subfilter coadd",
            "model": "DCR model", "template": "template", "difference": "difference image",
            "artifact_mask": "artifact mask"}


def mark_product(header: fits.Header, kind: str) -> None:
    """Mark ``header`` (a primary header) as that of a dcrcoadd product of ``kind`` (`PRODUCTS`)."""
    if kind not in PRODUCTS:
        raise ValueError(f"kind must be one of {sorted(PRODUCTS)}, got {kind!r}")
    header[PRODUCT_CARD] = (kind, "written by dcrcoadd: not an input")


def product_of(path: str | os.PathLike) -> str | None:
    """What dcrcoadd product the file ``path`` is (`PRODUCTS`' description), or None: any other file,
    or one that cannot be read (reading it as an input then says why)."""
    try:
        # (a damaged file is reported when it is read as an input, once, not here)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _product_in(path)
    except (OSError, ValueError, IndexError, KeyError):
        return None


def _product_in(path: str | os.PathLike) -> str | None:
    # the primary header only: every input is looked at, and listing a compressed file's extensions
    # means decompressing it (0.25 s for 72 MB)
    header = fits.getheader(path, 0)
    kind = header.get(PRODUCT_CARD)
    if isinstance(kind, str) and kind.strip():
        return PRODUCTS.get(kind.strip(), f"{kind.strip()} product")
    # written before the card
    if header.get("DCRMODEL", False):
        return PRODUCTS["model"]
    if "TMPLPSF" in header:
        return PRODUCTS["template"]
    if header.get("DCRDIFF", False):
        return PRODUCTS["difference"]
    if "NINPUTS" in header:
        return PRODUCTS["coadd"]
    if "NCLIPPED" in header:
        return PRODUCTS["artifact_mask"]
    return None
