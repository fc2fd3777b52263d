"""GalSim simulation of warps with real DCR, their truth images and catalogues.

Modules, in pipeline order: `config` (what to simulate), `visits` (observing
conditions, geometry and the field's pixel grid), `sources` (catalogue, SEDs,
subfilter fluxes), `render` (GalSim stamps, PSF kernel), `defects`, `truth`
(noise-free subfilter images), `run` (`simulate`, the pipeline), `writers`
(files and summaries); `photometry` and `streams` hold the flux scale and the
independent random streams they share.
"""

from dcrcoadd.sim.config import Defects, SimulationConfig
from dcrcoadd.sim.defects import Streak
from dcrcoadd.sim.photometry import AB_NJY_ZERO_POINT
from dcrcoadd.sim.render import psf_kernel
from dcrcoadd.sim.result import Simulation
from dcrcoadd.sim.run import simulate
from dcrcoadd.sim.sources import band_support, make_catalog, source_photons, subfilter_fluxes
from dcrcoadd.sim.truth import truth_psf_fwhm
from dcrcoadd.sim.visits import SimulatedVisit, field_wcs, make_visits
from dcrcoadd.sim.writers import summary_lines, visit_table, write_simulation

__all__ = [
    "AB_NJY_ZERO_POINT",
    "Defects",
    "SimulatedVisit",
    "Simulation",
    "SimulationConfig",
    "Streak",
    "band_support",
    "field_wcs",
    "make_catalog",
    "make_visits",
    "psf_kernel",
    "simulate",
    "source_photons",
    "subfilter_fluxes",
    "summary_lines",
    "truth_psf_fwhm",
    "visit_table",
    "write_simulation",
]
