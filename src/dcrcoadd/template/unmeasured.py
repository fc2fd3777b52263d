"""Template pixels whose light comes from where no warp measured it.

A star bright enough to saturate in every warp leaves a hole in the model (NO_DATA: no warp's pixel
there is usable). The solver fills it from the forward model, whose PSF ties the core to its
measured wings, and a template rendered at another PSF or DCR spreads that fill over the pixels
round it. It is an extrapolation, good to some per cent of the core's light: on a simulated field
whose bright star saturated in all eleven warps (`python -m benchmarks.scenarios`, seed 4), the
science − template residual beside it was 4-6 times the noise (rms) where the hole's share of the
template exceeded 10 times the noise, 1.4 where it was 1-10 times, and 1.0 below; every false
detection of those fields lay where it exceeded 3. Those pixels are flagged SAT in the template, as
the coadd flags a pixel whose inputs saturated.

Holes that reach far from any data (a chip gap, an edge) lack their sources' light altogether and
are flagged EDGE (`dcrcoadd.template.build._near_hole`); they are left to that.
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
                     ) -> np.ndarray | None:
    """The part of ``visit``'s template over ``box`` (model pixels) that the model's holes (NO_DATA)
    render, as `DcrModel.render` renders the whole (DCR at ``position``, ``psf`` or ``matching``);
    None when no hole lies within ``reach`` pixels of ``box``.

    Each hole is rendered on its own stamp (its box grown by ``reach``), with the model zero outside
    it: the template is linear in the model.
    """
    bit = model.mask_planes.value_if_present(("NO_DATA",))
    near = box.grow(reach).clip(model.bbox)
    if not bit or near.is_empty:
        return None
    hole = (model.mask[near.slices(model.bbox)] & np.uint32(bit)) != 0
    if not hole.any():
        return None
    labels, _ = ndimage.label(hole, structure=np.ones((3, 3), bool))
    light = None
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
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
        if light is None:
            light = np.zeros(box.shape)
        light[target.slices(box)] += rendered
    return light


def unmeasured(light: np.ndarray | None, noise: np.ndarray) -> np.ndarray | None:
    """Where ``light`` (`unmeasured_light`) exceeds `UNMEASURED_SIGMA` times ``noise`` (the
    difference's sigma per pixel, same units); None without any light."""
    if light is None:
        return None
    with np.errstate(invalid="ignore"):
        return np.abs(light) > UNMEASURED_SIGMA * np.where(np.isfinite(noise), noise, math.inf)
