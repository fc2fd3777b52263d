"""Photometric scale of the simulation: AB fluxes in nJy and a visit's counts per nJy.

A visit's counts per nJy follow the zero point (AB magnitude giving one count
per second at airmass 1), the exposure time and a grey extinction.
"""

from __future__ import annotations

import math

from dcrcoadd.sim.config import SimulationConfig

__all__ = ["AB_NJY_ZERO_POINT", "counts_per_njy", "flux_calibration"]

AB_NJY_ZERO_POINT = 2.5 * math.log10(3631.0e9)  # AB magnitude of 1 nJy = 31.4


def counts_per_njy(config: SimulationConfig, airmass: float) -> float:
    """Counts per nJy of a visit at ``airmass``: zero point, exposure time, grey extinction."""
    return 10 ** (0.4 * (config.zero_point - AB_NJY_ZERO_POINT)) * config.exposure_time \
        * 10 ** (-0.4 * config.extinction * (airmass - 1.0))


def flux_calibration(config: SimulationConfig, airmass: float) -> float:
    """nJy per count of a visit at ``airmass``."""
    return 1.0 / counts_per_njy(config, airmass)
