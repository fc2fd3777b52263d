"""Atmospheric refraction and differential chromatic refraction (Stone 1996).

The model follows R. C. Stone, "An Accurate Method for Computing Atmospheric
Refraction", PASP 108, 1051 (1996), as written out in the appendix of LSST
tech note DMTN-037:

* refractive index of moist air at the telescope, ``n0(λ) = 1 + Δn_s + Δn_w``
  (Owens 1967), with wave number ``σ = 1/λ`` in µm⁻¹,

  ``Δn_s = 1e-8 (2371.34 + 683939.7/(130 − σ²) + 4547.3/(38.9 − σ²)) D_s``,
  ``Δn_w = 1e-8 (6487.31 + 58.058 σ² − 0.71150 σ⁴ + 0.08851 σ⁶) D_w``;

* density factors of dry air and water vapour (pressures in mbar, T in K),

  ``D_s = [1 + P_d (57.90e-8 − 9.3250e-4/T + 0.25844/T²)] P_d / T`` with ``P_d = P − P_w``,
  ``D_w = [1 + P_w (1 + 3.7e-4 P_w)(−2.37321e-3 + 2.23366/T − 710.792/T² + 7.75141e4/T³)] P_w / T``;

* water-vapour pressure from the relative humidity ``RH`` (percent),
  ``P_w = RH · 1e-4 · exp(77.3450 + 0.0057 T − 7235.0/T) / T^8.2`` (mbar);

* gravity at the site relative to 9.81 m/s² (latitude φ, height h in m),
  ``κ = 1 + 5.302e-3 sin²φ − 5.83e-6 sin²(2φ) − 3.15e-7 h``;

* ratio of the atmospheric scale height to the Earth's radius, ``β = 4.5908e-6 T``;

* refraction at zenith distance ``z``,
  ``R = κ (n0 − 1)(1 − β) tan z − κ (n0 − 1)(β − (n0 − 1)/2) tan³ z``.

The ``tan³ z`` term carries a minus sign, as in Stone's paper and in every
standard ``A tan z + B tan³ z`` refraction formula (``B < 0``); DMTN-037's
appendix prints it as ``− κ (1 − n0)(...)``, which flips the sign, and the LSST
``afw`` implementation follows that (and uses ``7.75141e-4`` for the last
water-vapour constant). Both slips change the differential refraction by well
under 1 % at zenith distances below 60 degrees; this module uses the published
values, cross-checked against ERFA in the tests.

Public functions take and return astropy quantities; the numerics work in
radians, nm, mbar and K on plain numpy arrays and broadcast over wavelength
and elevation.
"""

from __future__ import annotations

from functools import lru_cache

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle

from dcrcoadd.core.observatory import Observatory, Weather

__all__ = [
    "WAVELENGTH_RANGE_NM",
    "differential_refraction",
    "refraction",
    "refraction_coefficients",
    "refractive_index_minus_one",
    "water_vapor_pressure",
]

#: Wavelengths (nm) for which Stone's refraction (Owens 1967 dispersion) is valid; the same
#: limits as LSST's implementation, which refuses anything outside them.
WAVELENGTH_RANGE_NM = (230.2, 2058.6)


def _check_wavelength(wavelength_nm: np.ndarray) -> None:
    lo, hi = WAVELENGTH_RANGE_NM
    bad = ~((wavelength_nm >= lo) & (wavelength_nm <= hi))
    if np.any(bad):
        first = np.asarray(wavelength_nm)[bad].flat[0]
        raise ValueError(f"refraction is valid for wavelengths between {lo:g} and {hi:g} nm; "
                         f"got {first:g} nm")


@lru_cache(maxsize=64)
def _standard_weather_values(elevation_m: float) -> tuple[float, float, float]:
    return _weather_values_of(Weather.standard(elevation_m * u.m))


def _weather_values_of(weather: Weather) -> tuple[float, float, float]:
    # Weather stores deg_C and Pa: same-unit to_value avoids slow equivalency lookups
    return (float(weather.temperature.to_value(u.deg_C)) + 273.15,
            float(weather.pressure.to_value(u.Pa)) / 100.0, float(weather.humidity))


def _weather_values(observatory: Observatory, weather: Weather | None) -> tuple[float, float, float]:
    """Temperature (K), pressure (mbar) and relative humidity (percent)."""
    if weather is None:
        return _standard_weather_values(float(observatory.elevation.to_value(u.m)))
    return _weather_values_of(weather)


def water_vapor_pressure(temperature_k: float | np.ndarray,
                         humidity_percent: float | np.ndarray) -> np.ndarray:
    """Partial pressure of water vapour (mbar) from relative humidity (DMTN-037 eq. for ``P_w``).

    Parameters
    ----------
    temperature_k : float or ndarray
        Air temperature in kelvin.
    humidity_percent : float or ndarray
        Relative humidity in percent.
    """
    t = np.asarray(temperature_k, dtype=float)
    saturation_pa = np.exp(77.3450 + 0.0057 * t - 7235.0 / t) / t**8.2
    # RH% * 1e-4 = (RH/100) * (Pa -> mbar)
    return np.asarray(humidity_percent, dtype=float) * 1e-4 * saturation_pa


def _density_factors(temperature_k: float, pressure_mbar: float,
                     humidity_percent: float) -> tuple[float, float]:
    """Owens (1967) density factors ``(D_s, D_w)`` of dry air and water vapour."""
    t = temperature_k
    p_w = float(water_vapor_pressure(t, humidity_percent))
    p_d = pressure_mbar - p_w
    d_s = (1.0 + p_d * (57.90e-8 - 9.3250e-4 / t + 0.25844 / t**2)) * p_d / t
    d_w = (1.0 + p_w * (1.0 + 3.7e-4 * p_w)
           * (-2.37321e-3 + 2.23366 / t - 710.792 / t**2 + 7.75141e4 / t**3)) * p_w / t
    return d_s, d_w


def refractive_index_minus_one(wavelength_nm: np.ndarray, temperature_k: float, pressure_mbar: float,
                               humidity_percent: float) -> np.ndarray:
    """``n0(λ) − 1`` of moist air (Owens 1967), vectorized over wavelength in nm."""
    wavelength_nm = np.asarray(wavelength_nm, dtype=float)
    _check_wavelength(wavelength_nm)
    sigma2 = (1e3 / wavelength_nm) ** 2  # wave number squared, µm⁻²
    d_s, d_w = _density_factors(temperature_k, pressure_mbar, humidity_percent)
    dry = 2371.34 + 683939.7 / (130.0 - sigma2) + 4547.3 / (38.9 - sigma2)
    wet = 6487.31 + 58.058 * sigma2 - 0.71150 * sigma2**2 + 0.08851 * sigma2**3
    return 1e-8 * (dry * d_s + wet * d_w)


def refraction_coefficients(wavelength_nm: np.ndarray, observatory: Observatory,
                            weather: Weather | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(A, B)`` in radians of ``R = A tan z + B tan³ z``.

    Splitting refraction this way lets callers average over wavelength once and
    then evaluate many zenith distances cheaply (``R`` is linear in ``A`` and ``B``).

    Parameters
    ----------
    wavelength_nm : array_like
        Vacuum wavelengths in nm, within `WAVELENGTH_RANGE_NM`.
    observatory : Observatory
        Site (latitude and height set the relative gravity ``κ``).
    weather : Weather, optional
        Surface conditions; default `Weather.standard` for the site's elevation.

    Returns
    -------
    A, B : ndarray
        Arrays shaped like ``wavelength_nm``.
    """
    t, p, rh = _weather_values(observatory, weather)
    gamma = refractive_index_minus_one(wavelength_nm, t, p, rh)
    lat = observatory.latitude.rad
    height = observatory.elevation.to_value(u.m)
    kappa = 1.0 + 5.302e-3 * np.sin(lat) ** 2 - 5.83e-6 * np.sin(2.0 * lat) ** 2 - 3.15e-7 * height
    beta = 4.5908e-6 * t
    a = kappa * gamma * (1.0 - beta)
    b = -kappa * gamma * (beta - gamma / 2.0)
    return a, b


def _tan_zenith(elevation) -> np.ndarray:
    el = Angle(elevation, u.deg).rad
    el = np.asarray(el, dtype=float)
    if np.any(~((el > 0.0) & (el <= np.pi / 2 + 1e-12))):
        raise ValueError("elevation must lie in (0, 90] degrees")
    return np.tan(np.pi / 2 - el)


def refraction(wavelength, elevation, observatory: Observatory, weather: Weather | None = None) -> Angle:
    """Refraction (apparent minus true altitude) of monochromatic light.

    Parameters
    ----------
    wavelength : Quantity or array_like
        Vacuum wavelength(s); plain numbers are taken as nm. Valid 230.2-2058.6 nm.
    elevation : Angle, Quantity or array_like
        Elevation(s) above the horizon; plain numbers are degrees. Broadcasts
        against ``wavelength``.
    observatory : Observatory
        Observing site.
    weather : Weather, optional
        Surface conditions; default: ISA standard atmosphere for the site's
        elevation and 40 % humidity (`Weather.standard`).

    Returns
    -------
    Angle
        Refraction, positive (light appears closer to the zenith).

    Raises
    ------
    ValueError
        A wavelength outside 230.2-2058.6 nm or an elevation outside (0, 90] deg.
    """
    lam = np.asarray(u.Quantity(wavelength, u.nm).to_value(u.nm), dtype=float)
    tan_z = _tan_zenith(elevation)
    a, b = refraction_coefficients(lam, observatory, weather)
    return Angle(a * tan_z + b * tan_z**3, u.rad)


def differential_refraction(wavelength, wavelength_ref, elevation, observatory: Observatory,
                            weather: Weather | None = None) -> Angle:
    """Refraction at ``wavelength`` minus refraction at ``wavelength_ref``.

    Positive values mean light at ``wavelength`` appears closer to the zenith
    than light at ``wavelength_ref`` (bluer than the reference). Arguments as
    for `refraction`; all three of wavelength, reference and elevation broadcast.
    """
    lam = np.asarray(u.Quantity(wavelength, u.nm).to_value(u.nm), dtype=float)
    lam_ref = np.asarray(u.Quantity(wavelength_ref, u.nm).to_value(u.nm), dtype=float)
    tan_z = _tan_zenith(elevation)
    a, b = refraction_coefficients(lam, observatory, weather)
    a_ref, b_ref = refraction_coefficients(lam_ref, observatory, weather)
    return Angle((a - a_ref) * tan_z + (b - b_ref) * tan_z**3, u.rad)
