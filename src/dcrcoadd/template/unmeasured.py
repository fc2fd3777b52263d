"""Template pixels whose light comes from where no warp measured it.

A star bright enough to saturate in every warp leaves a hole in the model (NO_DATA: no warp's pixel
there is usable). The solver fills it from the forward model, whose PSF ties the core to its
measured wings, and a template rendered at another PSF or DCR spreads that fill over the pixels
round it. It is an extrapolation, good to some per cent of the core's light: on a simulated field
whose bright star saturated in all eleven warps (`python -m benchmarks.scenarios`, seed 4), the
science − template residual beside it was 4-6 times the noise (rms) where the hole's share of the
template exceeded 10 times the noise, 1.4 where it was 1-10 times, and 1.0 below; every false
detection of those fields lay where it exceeded 3. Those pixels are flagged SAT in the template, as
the coadd flags a pixel whose inputs saturated. Light from other holes (a chip gap every warp shares)
is flagged EDGE, as light missing near the model's edge is; holes that reach far from any data are
flagged EDGE whole (`dcrcoadd.template.build._near_hole`), and the largest are left to that.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import ndimage

from dcrcoadd.core.geom import Box
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.dcr.model import DcrModel
from dcrcoadd.ops.psf_match import RoundTransfer

__all__ = ["MAX_HOLE_AREA", "UNMEASURED_SIGMA", "unmeasured", "unmeasured_light"]

#: Template pixels where the light of the model's holes exceeds this many times the difference's
#: noise are flagged (SAT).
UNMEASURED_SIGMA = 3.0
#: Holes larger than this (pixels of their bounding box) are not rendered here: they are gaps that
#: `_near_hole` flags EDGE, and rendering them alone would cost a template's time again.
MAX_HOLE_AREA = 128 * 128


def unmeasured_light(model: DcrModel, visit: VisitInfo, box: Box, *, position: tuple[float, float],
                     reach: int, psf: Psf | None = None, matching: RoundTransfer | None = None
                     ) -> dict[str, np.ndarray]:
    """The part of ``visit``'s template over ``box`` (model pixels) that the model's holes (NO_DATA)
    within ``reach`` pixels of it render, as `DcrModel.render` renders the whole (DCR at
    ``position``, ``psf`` or ``matching``), by the plane it flags: ``"SAT"`` from holes where the
    model's inputs saturated (its SAT plane next to them), ``"EDGE"`` from the others (a chip gap:
    light missing, as near the model's edge). Empty without any.

    Each hole is rendered on its own stamp (its box grown by ``reach``), with the model zero outside
    it: the template is linear in the model.
    """
    bit = model.mask_planes.value_if_present(("NO_DATA",))
    near = box.grow(reach).clip(model.bbox)
    if not bit or near.is_empty:
        return {}
    mask = model.mask[near.slices(model.bbox)]
    hole = (mask & np.uint32(bit)) != 0
    if not hole.any():
        return {}
    saturated = (mask & np.uint32(model.mask_planes.value_if_present(("SAT",)))) != 0
    labels, _ = ndimage.label(hole, structure=np.ones((3, 3), bool))
    light: dict[str, np.ndarray] = {}
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        grown = tuple(slice(max(f.start - 2, 0), f.stop + 2) for f in found)
        part = Box(near.x0 + found[1].start, near.y0 + found[0].start,
                   found[1].stop - found[1].start, found[0].stop - found[0].start)
        if part.area > MAX_HOLE_AREA:
            continue
        stamp = part.grow(reach).clip(model.bbox)
        target = stamp.intersection(box)
        if target.is_empty:
            continue
        sub = model.region(stamp)
        inside = np.zeros(stamp.shape, bool)
        inside[part.slices(stamp)] = labels[found] == index
        sub = replace(sub, images=np.where(inside[None], sub.images, 0.0).astype(sub.images.dtype))
        rendered = sub.render(visit, target, position=position, psf=psf, matching=matching)
        # (a core every warp masks is NO_DATA with INTRP; the coadd's SAT, where a tenth of the inputs
        # saturated, rings it)
        ring = ndimage.binary_dilation(labels[grown] == index, iterations=2)
        plane = "SAT" if saturated[grown][ring].any() else "EDGE"
        light.setdefault(plane, np.zeros(box.shape))[target.slices(box)] += rendered
    return light


def unmeasured(light: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Where ``light`` (one of `unmeasured_light`'s) exceeds `UNMEASURED_SIGMA` times ``noise`` (the
    difference's sigma per pixel, same units)."""
    with np.errstate(invalid="ignore"):
        return np.abs(light) > UNMEASURED_SIGMA * np.where(np.isfinite(noise), noise, math.inf)
