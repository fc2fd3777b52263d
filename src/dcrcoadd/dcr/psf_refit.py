"""PSFs of warps measured from their own stars, fitted again against the DCR model.

A PSF measured on a warp's isolated stars (`dcrcoadd.ops.psf_measure.measure_psf`, across the DCR
direction) is right to a few per cent; around bright stars that leaves residuals in every
template. The model knows where every source's light lands in each warp, DCR included, so the
ratio of a warp's PSF to the model's reference PSF can be fitted on all its sources at once
(`dcrcoadd.template.build.fit_psf_to_model`); the model is then solved again with the fitted PSFs.
Each pass removes part of the error: the model, fitted to the same warps, absorbs some of it. The
fit is made per DCR tile, so a PSF that varies over the patch varies from tile to tile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from dcrcoadd.coadd.inputs import CoaddInput
from dcrcoadd.core.geom import Box
from dcrcoadd.core.psf import Psf
from dcrcoadd.dcr.model import DcrModel

log = logging.getLogger("dcrcoadd.dcr.psf_refit")

#: ``CoaddInput.psf_origin`` of the PSFs this module fits.
REFITTED = ("measured", "fitted")
#: Pixels of sources around a tile that its PSF fit also uses.
TILE_MARGIN = 8


def needs_refit(inputs: Sequence[CoaddInput]) -> bool:
    """Whether some input's PSF was measured from its stars (or fitted before)."""
    return any(inp.psf_origin in REFITTED for inp in inputs)


def refit_warp_psfs(model: DcrModel, inputs: Sequence[CoaddInput], tiles: Mapping[int, Box]) -> None:
    """Replace the PSF of every input measured from its stars by its fits against ``model`` (a
    PSF-aware model of the same warps), in place: one fit per DCR tile (``tiles``: index to box),
    so the PSF may vary over the patch from tile to tile (`CoaddInput.tile_psfs`), and ``psf``
    their area-weighted mean; ``psf_origin`` becomes ``"fitted"``."""
    from dcrcoadd.template.build import UNRELIABLE_PLANES, fit_psf_to_model, make_template

    for inp in inputs:
        if inp.psf_origin not in REFITTED:
            continue
        exposure = inp.read(model.bbox)
        template = make_template(model, exposure, psf="reference", source=inp.name)
        # room for the wings a 25-px star stamp cuts off, once
        size = inp.psf.shape[0] + (8 if inp.psf_origin == "measured" else 0)
        unreliable = template.mask_of(*UNRELIABLE_PLANES)
        fits, areas, failed = {}, {}, []
        for index, box in tiles.items():
            # a margin of sources around the tile, so that its border is fitted like its middle
            region = box.grow(TILE_MARGIN).clip(exposure.bbox)
            inside = region.slices(exposure.bbox)
            matching, fit = fit_psf_to_model(model, exposure.subexposure(region), template.image[inside],
                                             size, unreliable[inside])
            if not matching.constrained():
                # the warp there does not look like the model (a ratio of -0.9 on a defect field): the
                # fit is the prior's, tens of pixels wide, and solving with it spread the failure to
                # every warp's next fit (all 33 px against 3.5-5 true, templates useless)
                failed.append((box, matching.low_frequency))
                continue
            fits[index], areas[index] = fit, box.area
        if failed:
            log.warning("%s: its PSF could not be fitted against the DCR model in %d of %d tile(s) (fitted "
                        "ratio %s at the lowest frequency, about 1 expected): %s", inp.name, len(failed),
                        len(tiles), ", ".join(f"{r:.2f}" for _, r in failed),
                        "those tiles take the others' mean" if fits else "its PSF stays as it was")
        if not fits:
            continue
        mean = sum(areas[i] * fits[i].kernel.astype(np.float64) for i in fits) / sum(areas.values())
        fitted = Psf(mean / mean.sum())
        log.info("%s: PSF fitted against the DCR model in %d tile(s): FWHM %s px (was %.2f)", inp.name,
                 len(fits), ", ".join(f"{fits[i].fwhm:.2f}" for i in sorted(fits)), inp.psf.fwhm)
        inp.psf, inp.psf_origin = fitted, "fitted"
        inp.tile_psfs = fits if len(fits) > 1 else {}
