"""Bandpasses: effective wavelength, bandwidth and optional throughput curve."""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import numpy as np


@dataclass(frozen=True, eq=False)
class Bandpass:
    """A filter band.

    Parameters
    ----------
    name : str
        Band name (e.g. ``"g"``).
    effective_wavelength : Quantity
        Effective wavelength (nm or any length unit).
    bandwidth : Quantity
        Full width used for the subfilter partition.
    transmission : tuple of (Quantity, ndarray), optional
        Throughput curve ``(wavelength, throughput)``.
    """

    name: str
    effective_wavelength: u.Quantity
    bandwidth: u.Quantity
    transmission: tuple[u.Quantity, np.ndarray] | None = None

    def __post_init__(self):
        lam = u.Quantity(self.effective_wavelength, u.nm)
        bw = u.Quantity(self.bandwidth, u.nm)
        if not (np.isfinite(lam.value) and lam.value > 0):
            raise ValueError(f"effective wavelength must be positive, got {lam}")
        if not (np.isfinite(bw.value) and bw.value > 0):
            raise ValueError(f"bandwidth must be positive, got {bw}")
        object.__setattr__(self, "effective_wavelength", lam)
        object.__setattr__(self, "bandwidth", bw)
        if self.transmission is not None:
            wl, thr = self.transmission
            wl = u.Quantity(wl, u.nm)
            thr = np.asarray(thr, dtype=float)
            if wl.shape != thr.shape or wl.ndim != 1 or wl.size < 2:
                raise ValueError("transmission must be two 1-d arrays of equal length")
            object.__setattr__(self, "transmission", (wl, thr))

    @property
    def wavelength_range(self) -> tuple[float, float]:
        """``(λ_eff − bw/2, λ_eff + bw/2)`` in nm."""
        lam, bw = self.effective_wavelength.to_value(u.nm), self.bandwidth.to_value(u.nm)
        return (lam - bw / 2.0, lam + bw / 2.0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bandpass):
            return NotImplemented
        same = (self.name == other.name
                and np.isclose(self.effective_wavelength.value, other.effective_wavelength.value)
                and np.isclose(self.bandwidth.value, other.bandwidth.value))
        return bool(same)

    def __hash__(self) -> int:
        return hash((self.name, round(float(self.effective_wavelength.value), 6)))
