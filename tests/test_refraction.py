"""Stone (1996) refraction: cross-checks against ERFA (astropy) and GalSim, and basic physics."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, Angle, SkyCoord
from astropy.time import Time

from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.physics.refraction import (
    differential_refraction,
    refraction,
    refraction_coefficients,
    water_vapor_pressure,
)

ZENITH_DISTANCES = np.array([1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 55.0, 60.0])

CASES = [
    ("rubin", None),
    ("ctio", Weather(12.0 * u.deg_C, 78000 * u.Pa, 20.0)),
    ("subaru", Weather(-1.0 * u.deg_C, 61500 * u.Pa, 70.0)),
]


def _erfa_refraction_arcsec(observatory, weather, wavelength_nm, zenith_deg):
    """Refraction from astropy's AltAz frame (ERFA refco/atioq): observed minus true altitude."""
    loc = observatory.to_earth_location()
    time = Time("2020-01-01T05:00:00")
    true = SkyCoord(az=np.full(zenith_deg.size, 123.0) * u.deg, alt=(90.0 - zenith_deg) * u.deg,
                    frame=AltAz(obstime=time, location=loc))
    observed = AltAz(obstime=time, location=loc, pressure=weather.pressure,
                     temperature=weather.temperature, relative_humidity=weather.humidity / 100.0,
                     obswl=wavelength_nm * u.nm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        apparent = true.transform_to(observed)
    return (apparent.alt - true.alt).to_value(u.arcsec)


@pytest.mark.parametrize("site,weather", CASES)
def test_differential_refraction_matches_erfa(site, weather):
    obs = Observatory.from_site(site)
    w = weather if weather is not None else Weather.standard(obs.elevation)
    ours = differential_refraction(400 * u.nm, 550 * u.nm, (90 - ZENITH_DISTANCES) * u.deg, obs,
                                   weather).to_value(u.arcsec)
    erfa = (_erfa_refraction_arcsec(obs, w, 400.0, ZENITH_DISTANCES)
            - _erfa_refraction_arcsec(obs, w, 550.0, ZENITH_DISTANCES))
    np.testing.assert_array_less(np.abs(ours / erfa - 1), 0.01)
    # the total refraction agrees too (ERFA's A tan z + B tan^3 z model)
    total = refraction(480 * u.nm, (90 - ZENITH_DISTANCES) * u.deg, obs, weather).to_value(u.arcsec)
    np.testing.assert_array_less(np.abs(total / _erfa_refraction_arcsec(obs, w, 480.0, ZENITH_DISTANCES) - 1),
                                 0.01)


def test_tan3_term_sign_matches_erfa_at_low_elevation():
    # Stone's tan^3 z term is negative; the opposite sign would be off by > 2 % here.
    obs = Observatory.from_site("rubin")
    w = Weather.standard(obs.elevation)
    z = np.array([75.0])
    ours = refraction(500 * u.nm, (90 - z) * u.deg, obs).to_value(u.arcsec)
    erfa = _erfa_refraction_arcsec(obs, w, 500.0, z)
    assert abs(ours[0] / erfa[0] - 1) < 0.005
    a, b = refraction_coefficients(500.0, obs)
    assert a > 0 and b < 0


def test_differential_refraction_matches_galsim():
    galsim = pytest.importorskip("galsim")
    obs = Observatory.from_site("rubin")
    w = Weather.standard(obs.elevation)
    pw_kpa = float(water_vapor_pressure(w.temperature_kelvin, w.humidity)) / 10.0
    kwargs = dict(temperature=w.temperature_kelvin, pressure=w.pressure.to_value(u.kPa), H2O_pressure=pw_kpa)
    ours = differential_refraction(420 * u.nm, 520 * u.nm, (90 - ZENITH_DISTANCES) * u.deg, obs)
    ref = [galsim.dcr.get_refraction(420.0, z * galsim.degrees, **kwargs)
           - galsim.dcr.get_refraction(520.0, z * galsim.degrees, **kwargs) for z in ZENITH_DISTANCES]
    np.testing.assert_array_less(np.abs(ours.rad / np.array(ref) - 1), 0.01)


def test_classic_sea_level_value():
    # Textbook mean refraction at z = 45 deg, 10 C, 1010 mbar, visual light: ~58 arcsec.
    obs = Observatory(0 * u.deg, 0 * u.deg, 0 * u.m)
    r = refraction(550 * u.nm, 45 * u.deg, obs, Weather(10 * u.deg_C, 101000 * u.Pa, 0.0))
    assert 57.0 < r.arcsec < 60.0


def test_water_vapor_pressure_saturation():
    # saturation vapour pressure of water at 20 C is 23.39 mbar
    assert water_vapor_pressure(293.15, 100.0) == pytest.approx(23.39, rel=0.01)
    assert water_vapor_pressure(293.15, 0.0) == 0.0


def test_zero_at_zenith_and_sign():
    obs = Observatory.from_site("rubin")
    assert refraction(500 * u.nm, 90 * u.deg, obs).rad == pytest.approx(0.0, abs=1e-15)
    assert differential_refraction(400, 550, 90 * u.deg, obs).rad == pytest.approx(0.0, abs=1e-15)
    # blue is refracted more than red, antisymmetric in the two wavelengths
    d = differential_refraction(400, 550, 50 * u.deg, obs)
    assert d.arcsec > 0
    assert differential_refraction(550, 400, 50 * u.deg, obs).arcsec == pytest.approx(-d.arcsec)
    # grows towards the horizon
    r = refraction(500, [80, 60, 40, 20] * u.deg, obs).arcsec
    assert np.all(np.diff(r) > 0)


def test_default_weather_is_standard_atmosphere():
    obs = Observatory.from_site("subaru")
    a = refraction(450 * u.nm, 40 * u.deg, obs)
    b = refraction(450 * u.nm, 40 * u.deg, obs, Weather.standard(obs.elevation))
    assert a.rad == b.rad
    # thinner air at Maunakea than at sea level: less refraction
    sea = Observatory(obs.latitude, obs.longitude, 0 * u.m)
    assert refraction(450 * u.nm, 40 * u.deg, sea).rad > 1.5 * a.rad


def test_vectorized_broadcasting_matches_scalar_calls():
    obs = Observatory.from_site("ctio")
    lam = np.array([[350.0], [480.0], [900.0]]) * u.nm
    el = Angle([30.0, 50.0, 70.0, 89.0], u.deg)
    grid = differential_refraction(lam, 480 * u.nm, el, obs)
    assert isinstance(grid, Angle) and grid.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            one = differential_refraction(lam[i, 0], 480 * u.nm, el[j], obs)
            assert grid[i, j].rad == pytest.approx(one.rad, rel=1e-12, abs=1e-18)
    assert np.all(grid[1] == 0)
    # plain numbers: nm and degrees
    assert refraction(480.0, 50.0, obs).rad == refraction(480 * u.nm, 50 * u.deg, obs).rad
    assert refraction(4800 * u.AA, 50 * u.deg, obs).rad == refraction(480 * u.nm, 50 * u.deg, obs).rad


@pytest.mark.parametrize("bad", [229.0, 230.0, 230.19, 2058.61, 2059.0, 2060.0, np.nan])
def test_wavelength_out_of_range(bad):
    """Stone's formula is valid for 230.2-2058.6 nm (the range LSST enforces); nothing outside."""
    obs = Observatory.from_site("rubin")
    with pytest.raises(ValueError, match="230.2 and 2058.6 nm"):
        refraction([500.0, bad] * u.nm, 45 * u.deg, obs)
    with pytest.raises(ValueError, match="230.2 and 2058.6 nm"):
        differential_refraction(500.0, bad, 45 * u.deg, obs)


def test_wavelength_range_limits_are_accepted():
    obs = Observatory.from_site("rubin")
    r = refraction([230.2, 2058.6] * u.nm, 45 * u.deg, obs)
    assert np.all(np.isfinite(r.rad)) and r[0] > r[1] > 0


@pytest.mark.parametrize("bad", [0.0, -5.0, 91.0])
def test_elevation_out_of_range(bad):
    with pytest.raises(ValueError, match="elevation"):
        refraction(500 * u.nm, bad * u.deg, Observatory.from_site("rubin"))
