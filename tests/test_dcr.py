"""DCR pixel shifts: independent astropy construction, zenith, sign/ordering, symmetry, modes, errors."""

import logging
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import ICRS, AltAz, SkyCoord
from astropy.time import Time
from astropy.wcs import WCS

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.core.visit import VisitInfo, parallactic_angle
from dcrcoadd.errors import InputError
from dcrcoadd.physics.dcr import dcr_shifts, dcr_shifts_at, subfilter_dcr
from dcrcoadd.physics.refraction import differential_refraction

SCALE = 0.2  # arcsec per pixel
BAND = Bandpass("g", 477.0 * u.nm, 150.0 * u.nm)
TIME = Time("2021-05-10T04:00:00")


def make_wcs(crval, rotation_deg=0.0, flip=False, crpix=(50.5, 40.5), scale=SCALE):
    """TAN WCS; unflipped means East to -x at rotation 0 (the usual sky orientation)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [float(crval[0]), float(crval[1])]
    w.wcs.crpix = list(crpix)
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    parity = np.diag([1.0 if flip else -1.0, 1.0])
    w.wcs.cd = scale / 3600.0 * np.array([[c, -s], [s, c]]) @ parity
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w


def to_icrs(az_deg, alt_deg, time, observatory):
    frame = AltAz(obstime=time, location=observatory.to_earth_location(), pressure=0 * u.hPa)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SkyCoord(az=az_deg * u.deg, alt=alt_deg * u.deg, frame=frame).transform_to(ICRS())


def expected_shifts(az, alt, time, obs, weather, wcs, bandpass=BAND, n=3):
    """Independent construction: move each target along altitude by the subfilter DCR (edge mean,
    relative to the effective wavelength), AltAz -> ICRS -> WCS pixels. Returns (N, n, 2) (dy, dx)."""
    az, alt = np.atleast_1d(az), np.atleast_1d(alt)
    lo, hi = bandpass.wavelength_range
    edges = np.linspace(lo, hi, n + 1)
    lam_eff = bandpass.effective_wavelength
    d_edge = differential_refraction(edges[None, :] * u.nm, lam_eff, alt[:, None] * u.deg, obs, weather).deg
    d = 0.5 * (d_edge[:, :-1] + d_edge[:, 1:])  # (N, n) degrees
    all_az = np.concatenate([az, np.repeat(az, n)])
    all_alt = np.concatenate([alt, (alt[:, None] + d).ravel()])
    icrs = to_icrs(all_az, all_alt, time, obs)
    x, y = wcs.all_world2pix(icrs.ra.deg, icrs.dec.deg, 0)
    x0, y0 = x[: az.size], y[: az.size]
    dx = x[az.size:].reshape(-1, n) - x0[:, None]
    dy = y[az.size:].reshape(-1, n) - y0[:, None]
    return np.stack([dy, dx], axis=-1)


@pytest.mark.parametrize("site", ["rubin", "apo"])
def test_shifts_match_independent_astropy_construction(site):
    rng = np.random.default_rng(42 if site == "rubin" else 7)
    obs = Observatory.from_site(site)
    weather = Weather(8.0 * u.deg_C, 74000 * u.Pa, 30.0) if site == "rubin" else None
    n_cases = 10
    az = rng.uniform(0, 360, n_cases)
    alt = rng.uniform(45, 85, n_cases)
    rotations = rng.uniform(0, 360, n_cases)
    flips = np.arange(n_cases) % 2 == 1
    boresight = to_icrs(az, alt, TIME, obs)
    worst = 0.0
    for k in range(n_cases):
        ra, dec = boresight.ra.deg[k], boresight.dec.deg[k]
        # reference pixel a little away from the boresight: the Jacobian is local, not at crpix
        wcs = make_wcs((ra + 0.01, dec - 0.01), rotations[k], flips[k])
        visit = VisitInfo(k, time=TIME, boresight_ra=ra * u.deg, boresight_dec=dec * u.deg,
                          observatory=obs, weather=weather)
        got = dcr_shifts(visit, wcs, BAND, 3)
        want = expected_shifts(az[k], alt[k], TIME, obs, weather, wcs)[0]
        assert got.shape == (3, 2)
        np.testing.assert_allclose(got, want, atol=0.01)
        worst = max(worst, np.abs(got - want).max())
    # the shifts are not trivially small: at 45-85 deg elevation g-band edges span ~0.1-2 pixels
    assert np.abs(want).max() > 0.05


def test_shifts_across_a_wide_field_match_local_geometry():
    # LSST-sized field: positions up to 1.75 deg from the boresight see their own elevation and
    # parallactic angle; compare each against the independent construction at that position
    obs = Observatory.from_site("rubin")
    bore = to_icrs(np.array([200.0]), np.array([50.0]), TIME, obs)
    ra0, dec0 = bore.ra.deg[0], bore.dec.deg[0]
    wcs = make_wcs((ra0, dec0), rotation_deg=33.0)
    visit = VisitInfo(1, time=TIME, boresight_ra=ra0 * u.deg, boresight_dec=dec0 * u.deg, observatory=obs)
    offsets = np.array([[1.75, 0.0], [-1.75, 0.0], [0.0, 1.75], [0.0, -1.75], [1.2, 1.2], [0.0, 0.0]])
    targets = SkyCoord(ra0 * u.deg, dec0 * u.deg).spherical_offsets_by(offsets[:, 0] * u.deg,
                                                                       offsets[:, 1] * u.deg)
    frame = AltAz(obstime=TIME, location=obs.to_earth_location(), pressure=0 * u.hPa)
    altaz = targets.transform_to(frame)
    want = expected_shifts(altaz.az.deg, altaz.alt.deg, TIME, obs, None, wcs)
    got = dcr_shifts_at(visit, wcs, BAND, 3, targets)
    assert got.shape == (6, 3, 2)
    np.testing.assert_allclose(got, want, atol=0.01)
    # across the field the shift really changes (more than the tolerance)
    assert np.ptp(np.hypot(got[:, 0, 0], got[:, 0, 1])) > 0.1
    # the single-position API agrees, with SkyCoord and with pixel positions
    x, y = wcs.world_to_pixel(targets[1])
    np.testing.assert_allclose(dcr_shifts(visit, wcs, BAND, 3, position=targets[1]), got[1], atol=1e-9)
    np.testing.assert_allclose(dcr_shifts(visit, wcs, BAND, 3, position=(x, y)), got[1], atol=1e-6)


def test_zero_shift_at_zenith():
    obs = Observatory.from_site("ctio")
    z = to_icrs(np.array([0.0]), np.array([90.0]), TIME, obs)
    visit = VisitInfo(2, time=TIME, boresight_ra=z.ra[0], boresight_dec=z.dec[0], observatory=obs)
    shifts = dcr_shifts(visit, make_wcs((z.ra.deg[0], z.dec.deg[0]), 20.0), BAND, 5)
    np.testing.assert_allclose(shifts, 0.0, atol=1e-6)


@pytest.mark.parametrize("flip", [False, True])
def test_blue_towards_zenith_red_away_and_ordered(flip):
    obs = Observatory.from_site("rubin")
    bore = to_icrs(np.array([140.0, 140.0]), np.array([55.0, 55.0 + 1 / 60]), TIME, obs)
    wcs = make_wcs((bore.ra.deg[0], bore.dec.deg[0]), 71.0, flip)
    x, y = wcs.all_world2pix(bore.ra.deg, bore.dec.deg, 0)
    to_zenith = np.array([y[1] - y[0], x[1] - x[0]])
    to_zenith /= np.hypot(*to_zenith)
    visit = VisitInfo(3, time=TIME, boresight_ra=bore.ra[0], boresight_dec=bore.dec[0], observatory=obs)
    shifts = dcr_shifts(visit, wcs, BAND, 4)
    along = shifts @ to_zenith
    across = shifts @ np.array([-to_zenith[1], to_zenith[0]])
    assert along[0] > 0 > along[-1]
    assert np.all(np.diff(along) < 0)
    np.testing.assert_allclose(across, 0.0, atol=1e-3)


def test_meridian_symmetry():
    # near J2000 ICRS north is the apparent north; north-up WCS with East to -x
    time = Time("2000-01-01T12:00:00")
    obs = Observatory.from_site("rubin")
    ha_dec = []
    for az in (150.0, 210.0):  # mirror images about the meridian (south of zenith)
        ha_dec.append(to_icrs(np.array([az]), np.array([60.0]), time, obs))
    shifts = []
    for c in ha_dec:
        visit = VisitInfo(4, time=time, boresight_ra=c.ra[0], boresight_dec=c.dec[0], observatory=obs)
        shifts.append(dcr_shifts(visit, make_wcs((c.ra.deg[0], c.dec.deg[0])), BAND, 3))
    east, west = shifts
    np.testing.assert_allclose(east[:, 0], west[:, 0], atol=2e-3)  # dy equal
    np.testing.assert_allclose(east[:, 1], -west[:, 1], atol=2e-3)  # dx mirrored
    assert west[0, 1] < 0 < east[0, 1]  # the zenith lies west (+x here) of an eastern target
    # on the meridian south of the zenith the blue light moves due north (+y), no x component
    c = to_icrs(np.array([180.0]), np.array([60.0]), time, obs)
    visit = VisitInfo(5, time=time, boresight_ra=c.ra[0], boresight_dec=c.dec[0], observatory=obs)
    s = dcr_shifts(visit, make_wcs((c.ra.deg[0], c.dec.deg[0])), BAND, 3)
    assert s[0, 0] > 0 > s[-1, 0]
    np.testing.assert_allclose(s[:, 1], 0.0, atol=2e-3)


def test_split_mode_and_subfilter_dcr():
    obs = Observatory.from_site("rubin")
    bore = to_icrs(np.array([250.0]), np.array([48.0]), TIME, obs)
    visit = VisitInfo(6, time=TIME, boresight_ra=bore.ra[0], boresight_dec=bore.dec[0], observatory=obs)
    wcs = make_wcs((bore.ra.deg[0], bore.dec.deg[0]), 10.0)
    plain = dcr_shifts(visit, wcs, BAND, 3)
    split = dcr_shifts(visit, wcs, BAND, 3, split=True)
    assert split.shape == (3, 2, 2)
    # 3/4 d0 + 1/4 d1 and 1/4 d0 + 3/4 d1 average to the edge mean
    np.testing.assert_allclose(split.mean(axis=1), plain, atol=1e-9)
    assert np.hypot(*split[0, 0]) > np.hypot(*split[0, 1])
    # amplitudes in pixels are the subfilter DCR over the pixel scale
    amp = subfilter_dcr(BAND, 3, 48.0, obs).arcsec / SCALE
    np.testing.assert_allclose(np.sign(amp) * np.hypot(plain[:, 0], plain[:, 1]), amp, rtol=2e-3)
    assert subfilter_dcr(BAND, 3, [40.0, 60.0], obs, split=True).shape == (2, 3, 2)


def test_throughput_weighted_subfilters():
    obs = Observatory.from_site("rubin")
    bore = to_icrs(np.array([100.0]), np.array([50.0]), TIME, obs)
    visit = VisitInfo(7, time=TIME, boresight_ra=bore.ra[0], boresight_dec=bore.dec[0], observatory=obs)
    wcs = make_wcs((bore.ra.deg[0], bore.dec.deg[0]))
    lo, hi = BAND.wavelength_range
    # throughput rising steeply to the red: each subfilter's weighted DCR is redder than its edge mean
    wl = np.linspace(lo - 1, hi + 1, 200)
    curved = Bandpass("g", BAND.effective_wavelength, BAND.bandwidth, (wl * u.nm, (wl - lo + 1) ** 3))
    flat = Bandpass("g", BAND.effective_wavelength, BAND.bandwidth, (wl * u.nm, np.ones_like(wl)))
    a_edge = subfilter_dcr(BAND, 3, 50.0, obs).arcsec
    a_flat = subfilter_dcr(flat, 3, 50.0, obs).arcsec
    a_red = subfilter_dcr(curved, 3, 50.0, obs).arcsec
    # DCR is convex in wavelength: the edge mean overestimates the in-band average a little
    np.testing.assert_allclose(a_flat, a_edge, atol=0.05 * np.abs(a_edge).max())
    assert np.all(a_flat < a_edge)
    assert np.all(a_red < a_flat)
    # the weighted mean over a flat curve equals a direct numerical average of the DCR
    grid = np.linspace(lo, lo + (hi - lo) / 3, 2001)
    direct = differential_refraction(grid, BAND.effective_wavelength, 50 * u.deg, obs).arcsec.mean()
    assert a_flat[0] == pytest.approx(direct, rel=1e-4)
    shifts = dcr_shifts(visit, wcs, curved, 3)
    np.testing.assert_allclose(np.sign(a_red) * np.hypot(*shifts.T), a_red / SCALE, rtol=2e-3)
    # equal-throughput partition and explicit edges
    et = curved.subfilter_edges(3, "equal-throughput")
    np.testing.assert_allclose(dcr_shifts(visit, wcs, curved, 3, partition="equal-throughput"),
                               dcr_shifts(visit, wcs, curved, 3, edges=et), atol=1e-12)
    with pytest.raises(ValueError, match="edges"):
        dcr_shifts(visit, wcs, curved, 3, edges=et[:2])


def test_visit_with_only_altaz_uses_reference_pixel_and_boresight_geometry(caplog):
    obs = Observatory.from_site("subaru")
    visit = VisitInfo(8, boresight_az=120 * u.deg, boresight_alt=50 * u.deg, observatory=obs)
    wcs = make_wcs((10.0, 20.0))  # north up, East to -x
    shifts = dcr_shifts(visit, wcs, BAND, 3)
    q = parallactic_angle(120 * u.deg, 50 * u.deg, obs.latitude).rad
    amp = subfilter_dcr(BAND, 3, 50.0, obs).arcsec / SCALE
    np.testing.assert_allclose(shifts[:, 0], amp * np.cos(q), atol=1e-3)  # north = +y
    np.testing.assert_allclose(shifts[:, 1], -amp * np.sin(q), atol=1e-3)  # east = -x
    again = dcr_shifts(visit, wcs, BAND, 3, position=(500.0, 500.0))
    np.testing.assert_allclose(again, shifts, atol=1e-3)
    # the DCR stage says so once per visit and run (not once per tile, not once per process)
    from types import SimpleNamespace

    from dcrcoadd.dcr.assemble import dcr_visits

    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dcrcoadd.dcr.assemble"):
            dcr_visits([SimpleNamespace(visit=visit, name="w.fits")])
        assert caplog.text.count("boresight elevation") == 1


def test_site_from_bandpass_camera():
    pytest.importorskip("speclite")
    band = Bandpass.preset("decam-g")
    ctio = Observatory.from_site("ctio")
    bore = to_icrs(np.array([30.0]), np.array([60.0]), TIME, ctio)
    kwargs = dict(time=TIME, boresight_ra=bore.ra[0], boresight_dec=bore.dec[0])
    wcs = make_wcs((bore.ra.deg[0], bore.dec.deg[0]))
    np.testing.assert_allclose(dcr_shifts(VisitInfo(9, **kwargs), wcs, band, 3),
                               dcr_shifts(VisitInfo(9, observatory=ctio, **kwargs), wcs, band, 3))
    with pytest.raises(InputError, match="no observatory"):
        dcr_shifts(VisitInfo(9, **kwargs), wcs, BAND, 3)


def test_errors_name_the_problem():
    obs = Observatory.from_site("rubin")
    wcs = make_wcs((10.0, -30.0))
    with pytest.raises(InputError, match="visit 11"):
        dcr_shifts(VisitInfo(11, observatory=obs), wcs, BAND, 3)
    below = to_icrs(np.array([0.0]), np.array([-20.0]), TIME, obs)
    visit = VisitInfo(12, time=TIME, boresight_ra=below.ra[0], boresight_dec=below.dec[0], observatory=obs)
    with pytest.raises(InputError, match="below the horizon"):
        dcr_shifts(visit, make_wcs((below.ra.deg[0], below.dec.deg[0])), BAND, 3)
    unknown = WCS(naxis=2)
    unknown.wcs.ctype = ["XLON-TAN", "XLAT-TAN"]
    with pytest.raises(InputError, match="sky frame is unknown"):
        dcr_shifts(VisitInfo(13, boresight_az=0 * u.deg, boresight_alt=60 * u.deg, observatory=obs), unknown,
                   BAND, 3)


@pytest.mark.parametrize("frame", ["fk4", "galactic", "fk5_1950"])
def test_a_wcs_in_another_sky_frame_gives_the_shifts_of_the_same_sky_in_icrs(frame):
    """The zenith's direction is found in ICRS: a WCS in FK4 (B1950), FK5 at another equinox or
    galactic coordinates, describing the same pixels on the sky, gives the same shifts."""
    from astropy.coordinates import FK4, FK5
    from astropy.wcs.utils import fit_wcs_from_points

    obs = Observatory.from_site("rubin")
    bore = to_icrs(np.array([130.0]), np.array([55.0]), TIME, obs)
    ra0, dec0 = bore.ra.deg[0], bore.dec.deg[0]
    icrs_wcs = make_wcs((ra0, dec0), rotation_deg=20.0, crpix=(200.5, 200.5))
    visit = VisitInfo(1, time=TIME, boresight_ra=ra0 * u.deg, boresight_dec=dec0 * u.deg, observatory=obs)
    # the same pixel grid in the other frame: a TAN WCS fitted to a grid of its points (mas-exact)
    yy, xx = np.mgrid[0:400:40, 0:400:40].astype(float)
    target = {"fk4": FK4(equinox="B1950"), "galactic": "galactic", "fk5_1950": FK5(equinox="J1950")}[frame]
    sky = icrs_wcs.pixel_to_world(xx.ravel(), yy.ravel()).transform_to(target)
    other = fit_wcs_from_points((xx.ravel(), yy.ravel()), sky, projection="TAN")
    assert np.max(sky.separation(other.pixel_to_world(xx.ravel(), yy.ravel())).arcsec) < 1e-3
    pixels = (np.array([10.0, 200.0, 390.0]), np.array([30.0, 200.0, 370.0]))
    want = dcr_shifts_at(visit, icrs_wcs, BAND, 3, pixels)
    got = dcr_shifts_at(visit, other, BAND, 3, pixels)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.abs(want).max() > 0.3  # (the frames' norths differ by ~0.3-60 deg: a wrong one shows)
    # sky positions in any frame land on the same pixels
    star = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    np.testing.assert_allclose(dcr_shifts(visit, other, BAND, 3, position=star.transform_to(target)),
                               dcr_shifts(visit, icrs_wcs, BAND, 3, position=star), atol=1e-4)


def test_vectorized_grid_equals_single_calls():
    obs = Observatory.from_site("rubin")
    bore = to_icrs(np.array([75.0]), np.array([52.0]), TIME, obs)
    visit = VisitInfo(14, time=TIME, boresight_ra=bore.ra[0], boresight_dec=bore.dec[0], observatory=obs)
    wcs = make_wcs((bore.ra.deg[0], bore.dec.deg[0]), 45.0, flip=True)
    xs, ys = np.meshgrid(np.linspace(-20000, 20000, 4), np.linspace(-20000, 20000, 3))
    grid = dcr_shifts_at(visit, wcs, BAND, 3, (xs, ys), split=True)
    assert grid.shape == (12, 3, 2, 2)
    for k, (x, y) in enumerate(zip(xs.ravel(), ys.ravel(), strict=True)):
        np.testing.assert_allclose(grid[k], dcr_shifts(visit, wcs, BAND, 3, position=(x, y), split=True),
                                   atol=1e-12)


# -- the last line of defence: a bound on the DCR itself -------------------------------------------

def _unchecked_weather(celsius, pascal, humidity):
    """A Weather that bypasses its own checks, as a unit mistake slipping past them would."""
    w = object.__new__(Weather)
    object.__setattr__(w, "temperature", celsius * u.deg_C)
    object.__setattr__(w, "pressure", pascal * u.Pa)
    object.__setattr__(w, "humidity", float(humidity))
    return w


@pytest.mark.parametrize(("celsius", "pascal"), [(500.0, 74000.0), (271.0, 74000.0), (10.0, 731.66e2 * 10)])
def test_dcr_beyond_any_plausible_atmosphere_is_refused(celsius, pascal):
    """AIRTEMP = 500 once gave shifts of -2.7e8 px; now the shift computation itself refuses."""
    obs = Observatory.from_site("rubin")
    visit = VisitInfo(21, boresight_az=120 * u.deg, boresight_alt=50 * u.deg, observatory=obs,
                      weather=_unchecked_weather(celsius, pascal, 40.0))
    with pytest.raises(InputError, match="visit 21.*densest plausible atmosphere"):
        dcr_shifts(visit, make_wcs((10.0, -30.0)), BAND, 3)


@pytest.mark.parametrize("alt", [85.0, 60.0, 40.0, 25.0])
def test_every_admissible_weather_stays_within_the_bound(alt):
    from dcrcoadd.physics.dcr import dcr_bound

    obs = Observatory.from_site("subaru")
    edges = BAND.subfilter_edges(5)
    tan_z = np.tan(np.radians(90.0 - alt))
    for split in (False, True):
        bound = dcr_bound(BAND, edges, obs, tan_z, split=split)
        for t in (-40.0, 0.0, 40.0):
            for p in (40e3, 75e3, 110e3):
                for h in (0.0, 50.0, 100.0):
                    amp = subfilter_dcr(BAND, 5, alt, obs, Weather(t * u.deg_C, p * u.Pa, h), edges=edges,
                                        split=split).rad
                    assert np.all(np.abs(amp) <= bound), (t, p, h)
    # and the bound is a few arcseconds, not a formality: at airmass 2 the bluest fifth of g
    # can move at most ~1.2 arcsec
    bound = dcr_bound(BAND, edges, obs, np.sqrt(3.0)) * 206264.8
    assert 0.8 < bound[0] < 1.5 and bound.max() == bound[0]
