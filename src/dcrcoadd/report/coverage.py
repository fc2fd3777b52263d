"""How well the inputs' observing conditions constrain the subfilters: DCR vectors and a verdict.

The DCR model separates the subfilters only through the differences between the visits'
DCR: a source whose light is bluer lands further towards the zenith, by an amount and in a
direction that change from visit to visit. Each input's *DCR vector* is the shift of the
bluest subfilter relative to the reddest one on the patch's pixel grid (its length grows
with ``tan z``, its direction follows the parallactic angle). Where those vectors spread
in two directions (visits on both sides of the meridian, several airmasses), the subfilter
images are determined in both pixel directions; where they only differ in length (one side
of the meridian, parallactic angles close together) only along one; where they hardly
differ at all, not at all, and the split comes from the starting model and the priors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcrcoadd.errors import InputError

log = logging.getLogger("dcrcoadd.report.coverage")

__all__ = ["MIN_SPREAD_PX", "Coverage", "DcrVector", "coverage", "dcr_vector", "dcr_vectors"]

#: Spread of the DCR vectors (pixels, standard deviation along an axis) below which the warps'
#: templates differ by less than interpolation and noise can tell apart: the subfilters are
#: not constrained along that axis.
MIN_SPREAD_PX = 0.2


@dataclass(frozen=True)
class DcrVector:
    """One input's DCR vector: the bluest minus the reddest subfilter shift, in pixels.

    ``dy``/``dx`` are NaN when the visit lacks the geometry to compute it.
    """

    visit: int | None
    airmass: float
    parallactic_angle: float
    dy: float
    dx: float

    @property
    def length(self) -> float:
        """Length in pixels."""
        return math.hypot(self.dy, self.dx)

    @property
    def direction(self) -> float:
        """Direction on the pixel grid in degrees, counter-clockwise from +x."""
        return math.degrees(math.atan2(self.dy, self.dx))


def dcr_vector(visit, model, *, airmass: float = math.nan, parallactic_angle: float = math.nan,
               name: str = "") -> DcrVector:
    """The DCR vector of ``visit`` at the centre of the model's patch (NaN when it cannot be had).

    ``model`` (a DcrModel) gives the pixel grid (WCS), the bandpass and the subfilter edges, so
    the vector is made of the shifts the solver used there.
    """
    from dcrcoadd.physics.dcr import dcr_shifts

    dy = dx = math.nan
    if visit is not None and model.wcs is not None and model.bandpass is not None:
        box = model.bbox
        centre = ((box.width - 1) / 2.0, (box.height - 1) / 2.0)  # in the model array's pixels
        try:
            shifts = dcr_shifts(visit.completed(), model.wcs, model.bandpass, len(model),
                                position=centre, edges=model.subfilter_edges)
        except (InputError, ValueError) as exc:
            log.info("no DCR vector for %s: %s", name or f"visit {visit.id}", exc)
        else:
            dy, dx = (float(v) for v in shifts[0] - shifts[-1])
    return DcrVector(visit=None if visit is None else visit.id, airmass=float(airmass),
                     parallactic_angle=float(parallactic_angle), dy=dy, dx=dx)


def dcr_vectors(inputs: Sequence, model) -> list[DcrVector]:
    """The DCR vector (`dcr_vector`) of every input of a baseline coadd (CoaddInput)."""
    return [dcr_vector(inp.visit, model, airmass=inp.airmass, parallactic_angle=inp.parallactic_angle,
                       name=inp.name) for inp in inputs]


@dataclass(frozen=True)
class Coverage:
    """What the inputs' conditions say about the subfilter split.

    Attributes
    ----------
    n_inputs : int
    n_subfilters : int
    airmass : (float, float)
        Smallest and largest airmass.
    parallactic_angle : (float, float)
        Smallest and largest parallactic angle (deg).
    one_side_of_meridian : bool
        All parallactic angles have one sign (all hour angles have that sign: the vectors lie
        in one half plane).
    spread_px : (float, float)
        Standard deviation of the DCR vectors along their major and minor axes (px).
    constrained : str
        ``"both directions"``, ``"one direction"`` or ``"none"`` (see `MIN_SPREAD_PX`).
    """

    n_inputs: int
    n_subfilters: int
    airmass: tuple[float, float]
    parallactic_angle: tuple[float, float]
    one_side_of_meridian: bool
    spread_px: tuple[float, float]
    constrained: str

    def line(self) -> str:
        """One sentence for the report."""
        lo, hi = self.parallactic_angle
        angles = f"par. angle {lo:+.0f}° … {hi:+.0f}°" if math.isfinite(lo) else "par. angle unknown"
        if self.one_side_of_meridian:
            sign = ">" if lo > 0 else "<"
            side = f"one side of the meridian only (hour angle {sign} 0; {angles})"
        else:
            side = f"both sides of the meridian ({angles})"
        am = (f"airmass {self.airmass[0]:.2f}–{self.airmass[1]:.2f}" if math.isfinite(self.airmass[0])
              else "airmass unknown")
        major, minor = self.spread_px
        if self.n_subfilters < 2:
            verdict = "one subfilter: nothing to separate"
        elif self.constrained == "both directions":
            verdict = "the subfilters are constrained in both directions"
        elif self.constrained == "one direction":
            verdict = (f"the subfilters are constrained along one direction only (spread across it "
                       f"< {MIN_SPREAD_PX:g} px)")
        else:
            verdict = f"the subfilters are NOT constrained (spread < {MIN_SPREAD_PX:g} px)"
        spread = (f"DCR spread {major:.2f} × {minor:.2f} px" if math.isfinite(major)
                  else "DCR spread unknown")
        return f"Coverage: {side}, {am}; {spread}: {verdict}."


def coverage(vectors: Sequence[DcrVector], n_subfilters: int, *,
             min_spread_px: float = MIN_SPREAD_PX) -> Coverage:
    """Summarize the inputs' coverage from their DCR vectors (see `Coverage`)."""
    airmass = np.array([v.airmass for v in vectors], float)
    angle = np.array([v.parallactic_angle for v in vectors], float)
    vec = np.array([[v.dy, v.dx] for v in vectors], float).reshape(-1, 2)
    am, pa = airmass[np.isfinite(airmass)], angle[np.isfinite(angle)]
    one_side = bool(pa.size) and (bool(np.all(pa > 0)) or bool(np.all(pa < 0)))
    vec = vec[np.all(np.isfinite(vec), axis=1)]
    if vec.shape[0] >= 1:
        centred = vec - vec.mean(axis=0)
        eig = np.sort(np.linalg.eigvalsh(centred.T @ centred / vec.shape[0]))[::-1]
        major, minor = (float(math.sqrt(max(e, 0.0))) for e in eig)
    else:
        major = minor = math.nan
    if not math.isfinite(major) or major < min_spread_px:
        constrained = "none"
    elif minor < min_spread_px:
        constrained = "one direction"
    else:
        constrained = "both directions"
    return Coverage(
        n_inputs=len(vectors), n_subfilters=int(n_subfilters),
        airmass=(float(am.min()), float(am.max())) if am.size else (math.nan, math.nan),
        parallactic_angle=(float(pa.min()), float(pa.max())) if pa.size else (math.nan, math.nan),
        one_side_of_meridian=one_side, spread_px=(major, minor), constrained=constrained)
