"""`Simulation`: everything `simulate` made."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.sim.config import SimulationConfig
from dcrcoadd.sim.defects import Streak
from dcrcoadd.sim.visits import SimulatedVisit

__all__ = ["Simulation"]


@dataclass(eq=False)
class Simulation:
    """Everything `simulate` made.

    Attributes
    ----------
    config : SimulationConfig
    bandpass : Bandpass
    visits : list of SimulatedVisit
    warps : list of Exposure
        One per visit, in visit order.
    twins : list of Exposure
        Noise twins, one per visit (empty when not requested).
    catalog : `~astropy.table.Table`
        Truth catalogue.
    truth : list of Exposure
        Noise-free images per subfilter (nJy, ``flux_calibration`` 1) at the fiducial PSF.
    subfilter_edges : ndarray, shape (n_subfilters, 2)
        Nominal subfilter ranges (nm); the first and last also collect the
        throughput beyond the band's nominal range.
    models : list of ndarray
        Noise-free images per visit (counts), before defects.
    defects : list of dict
        Per visit, mask plane name -> boolean array of where that defect was put.
    streaks : list of Streak
    """

    config: SimulationConfig
    bandpass: Bandpass
    visits: list[SimulatedVisit]
    warps: list[Exposure]
    twins: list[Exposure]
    catalog: Table
    truth: list[Exposure]
    subfilter_edges: np.ndarray
    models: list[np.ndarray]
    defects: list[dict[str, np.ndarray]]
    streaks: list[Streak]
