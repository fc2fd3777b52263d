"""Visit geometry: hour angle, alt/az, airmass, parallactic angle conventions at both hemispheres."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle
from astropy.time import Time

from dcrcoadd.core.observatory import Observatory
from dcrcoadd.core.visit import (
    VisitInfo,
    airmass_from_altitude,
    altaz_from_hadec,
    altaz_of,
    altitude_from_airmass,
    hadec_from_altaz,
    hour_angle_of,
    parallactic_angle,
    position_angle_and_separation,
    radec_of,
    sky_geometry,
)
from dcrcoadd.errors import InputError

SOUTH = Observatory.from_site("rubin")
NORTH = Observatory.from_site("apo")
TIME = Time("2021-05-10T04:00:00", scale="utc")


def _q_from_hadec(ha_rad, dec_rad, lat_rad):
    """Textbook parallactic angle from hour angle and declination (independent formula)."""
    return np.arctan2(np.sin(ha_rad), np.tan(lat_rad) * np.cos(dec_rad) - np.sin(dec_rad) * np.cos(ha_rad))


@pytest.mark.parametrize("obs", [SOUTH, NORTH], ids=["south", "north"])
def test_parallactic_angle_conventions(obs):
    lat = obs.latitude.deg
    # on the meridian south of the zenith: the zenith lies due north, q = 0
    assert parallactic_angle(180 * u.deg, 60 * u.deg, obs.latitude).deg == pytest.approx(0.0, abs=1e-9)
    # on the meridian north of the zenith: q = 180
    assert parallactic_angle(0 * u.deg, 60 * u.deg, obs.latitude).deg == pytest.approx(180.0, abs=1e-9)
    # east of the meridian negative, west positive, mirror-symmetric
    east = parallactic_angle(100 * u.deg, 50 * u.deg, obs.latitude).deg
    west = parallactic_angle(260 * u.deg, 50 * u.deg, obs.latitude).deg
    assert east < 0 < west
    assert west == pytest.approx(-east)
    # agrees with the hour-angle/declination formula on a grid of targets
    ha = np.radians(np.linspace(-80, 80, 9))
    dec = np.radians(np.linspace(-70, 70, 8))[:, None]
    az, alt = altaz_from_hadec(Angle(ha, u.rad), Angle(dec, u.rad), obs.latitude)
    up = alt.deg > 5
    q = parallactic_angle(az, alt, obs.latitude).rad
    expected = _q_from_hadec(ha, dec, np.radians(lat))
    np.testing.assert_allclose(np.angle(np.exp(1j * (q - expected)))[up], 0.0, atol=1e-9)
    # negative for every target east of the meridian
    assert np.all(q[:, ha < 0][up[:, ha < 0]] < 0)


@pytest.mark.parametrize("obs", [SOUTH, NORTH], ids=["south", "north"])
def test_meridian_transits_from_radec_time(obs):
    # a star transiting south of the zenith has q = 0; north of it q = 180 (via astropy)
    lst = TIME.sidereal_time("apparent", obs.longitude)
    for dec_offset, expected in ((-25.0, 0.0), (+25.0, 180.0)):
        visit = VisitInfo(1, time=TIME, boresight_ra=lst, boresight_dec=obs.latitude + dec_offset * u.deg,
                          observatory=obs)
        # the ICRS RA is not the apparent RA (precession): the hour angle is small, not zero
        assert abs(visit.hour_angle.deg) < 0.5
        assert abs(np.angle(np.exp(1j * np.radians(visit.parallactic_angle.deg - expected)), deg=True)) < 1.0
        assert visit.completed().boresight_alt.deg == pytest.approx(90 - 25.0, abs=0.5)


def test_hour_angle_sign_and_altaz_roundtrip():
    lst = TIME.sidereal_time("apparent", SOUTH.longitude)
    ra = (lst - 2 * u.hourangle) + [0.0, 4.0] * u.hourangle  # 2h west and 2h east
    ha = hour_angle_of(ra, [-40.0, -40.0] * u.deg, TIME, SOUTH)
    assert ha[0].hour == pytest.approx(2.0, abs=0.05) and ha[1].hour == pytest.approx(-2.0, abs=0.05)
    az, alt = altaz_of(ra, [-40.0, -40.0] * u.deg, TIME, SOUTH)
    assert 180 < az[0].deg < 360 and 0 < az[1].deg < 180  # west, east
    ra2, dec2 = radec_of(az, alt, TIME, SOUTH)
    np.testing.assert_allclose(ra2.deg, Angle(ra).wrap_at(360 * u.deg).deg, atol=1e-8)
    np.testing.assert_allclose(dec2.deg, -40.0, atol=1e-8)
    # trig HA/Dec from alt/az agree with astropy's apparent HA (no time needed)
    ha_trig, dec_trig = hadec_from_altaz(az, alt, SOUTH.latitude)
    np.testing.assert_allclose(ha_trig.hour, ha.hour, atol=1e-3)
    assert np.all(np.abs(dec_trig.deg + 40.0) < 0.5)  # apparent vs ICRS declination
    az3, alt3 = altaz_from_hadec(ha_trig, dec_trig, SOUTH.latitude)
    np.testing.assert_allclose(np.c_[az3.deg, alt3.deg], np.c_[az.deg, alt.deg], atol=1e-9)


def test_airmass():
    assert airmass_from_altitude(90 * u.deg) == pytest.approx(1.0)
    assert airmass_from_altitude(30.0) == pytest.approx(2.0)
    assert altitude_from_airmass(2.0).deg == pytest.approx(30.0)
    ky = airmass_from_altitude([90.0, 30.0, 10.0], method="kasten-young")
    assert ky[0] == pytest.approx(1.0, abs=1e-3) and ky[1] == pytest.approx(1.995, abs=2e-3)
    assert 5.5 < ky[2] < 5.7  # curvature reduces it below sec z = 5.76
    with pytest.raises(ValueError):
        airmass_from_altitude(-1.0)
    with pytest.raises(ValueError):
        airmass_from_altitude(40.0, method="bogus")


def test_completed_fills_altaz_and_airmass_and_vice_versa():
    visit = VisitInfo(7, time=TIME, boresight_ra=200 * u.deg, boresight_dec=-35 * u.deg, observatory=SOUTH)
    assert visit.boresight_alt is None and visit.airmass is None
    full = visit.completed()
    az, alt = altaz_of(200 * u.deg, -35 * u.deg, TIME, SOUTH)
    assert full.boresight_alt.deg == pytest.approx(alt.deg) and full.boresight_az.deg == pytest.approx(az.deg)
    assert full.airmass == pytest.approx(1 / np.sin(alt.rad))
    assert full.id == 7 and full.time == TIME
    # from alt/az back to RA/Dec
    only_altaz = VisitInfo(8, time=TIME, boresight_az=az, boresight_alt=alt, observatory=SOUTH).completed()
    assert only_altaz.boresight_ra.deg == pytest.approx(200.0, abs=1e-8)
    assert only_altaz.boresight_dec.deg == pytest.approx(-35.0, abs=1e-8)
    # nothing to derive: the same object comes back, derived values are None
    bare = VisitInfo(9)
    assert bare.completed() is bare
    assert bare.parallactic_angle is None and bare.hour_angle is None and bare.zenith is None


def test_visit_with_only_altaz_has_parallactic_angle_and_hour_angle():
    visit = VisitInfo(3, boresight_az=135 * u.deg, boresight_alt=55 * u.deg, observatory=NORTH)
    expected = parallactic_angle(135 * u.deg, 55 * u.deg, NORTH.latitude)
    assert visit.parallactic_angle.deg == pytest.approx(expected.deg)
    assert visit.parallactic_angle.deg < 0  # south-east: east of the meridian
    assert visit.hour_angle.hour < 0
    assert visit.completed().airmass == pytest.approx(1 / np.sin(np.radians(55)))


def test_sky_geometry_matches_astropy_at_many_positions():
    visit = VisitInfo(4, time=TIME, boresight_ra=210 * u.deg, boresight_dec=-30 * u.deg, observatory=SOUTH)
    rng = np.random.default_rng(3)
    ra = 210 + rng.uniform(-2, 2, 50)
    dec = -30 + rng.uniform(-2, 2, 50)
    el, q = sky_geometry(visit, ra, dec)
    az, alt = altaz_of(ra, dec, TIME, SOUTH)
    np.testing.assert_allclose(el.deg, alt.deg, atol=2e-3)  # aberration differential, < 10 arcsec
    # ICRS-north parallactic angle vs apparent: differ by the precession rotation (< 0.5 deg)
    q_app = parallactic_angle(az, alt, SOUTH.latitude)
    assert np.all(np.abs(q.deg - q_app.deg) < 0.5)
    # the zenith is exactly where sky_geometry puts elevation 90
    z = visit.zenith
    assert sky_geometry(visit, z.ra, z.dec)[0].deg == pytest.approx(90.0, abs=1e-9)
    # exact check of the ICRS parallactic angle: position angle of a point nudged towards the zenith
    ra1, dec1 = radec_of(az[:5], alt[:5] + 1 * u.arcsec, TIME, SOUTH)
    pa, _ = position_angle_and_separation(ra[:5], dec[:5], ra1, dec1)
    np.testing.assert_allclose(q.deg[:5], pa.deg, atol=0.01)


def test_sky_geometry_without_time_uses_boresight():
    # a visit with alt/az and RA/Dec but no time: the boresight geometry is exact,
    # nearby positions follow from it to well under a degree
    full = VisitInfo(5, time=TIME, boresight_ra=150 * u.deg, boresight_dec=-10 * u.deg,
                     observatory=SOUTH).completed()
    no_time = full.replace(time=None)
    el, q = sky_geometry(no_time, full.boresight_ra, full.boresight_dec)
    assert el.deg == pytest.approx(full.boresight_alt.deg, abs=1e-9)
    assert q.deg == pytest.approx(full.parallactic_angle.deg, abs=1e-9)
    el2, q2 = sky_geometry(full, [151.0, 149.0] * u.deg, [-11.0, -9.0] * u.deg)
    el3, q3 = sky_geometry(no_time, [151.0, 149.0] * u.deg, [-11.0, -9.0] * u.deg)
    np.testing.assert_allclose(el3.deg, el2.deg, atol=0.5)
    np.testing.assert_allclose(q3.deg, q2.deg, atol=0.5)
    with pytest.raises(InputError, match="visit 6"):
        sky_geometry(VisitInfo(6, boresight_az=10 * u.deg, boresight_alt=50 * u.deg), 10.0, 10.0)


@pytest.mark.filterwarnings("ignore:ERFA function")
def test_future_dates_work_offline():
    # IERS tables do not cover 2031: geometry must still work (DCR needs arcsecond pointing only)
    visit = VisitInfo(10, time=Time("2031-07-01T02:00:00"), boresight_ra=250 * u.deg,
                      boresight_dec=-20 * u.deg, observatory=SOUTH)
    assert visit.completed().boresight_alt is not None
    assert np.isfinite(visit.parallactic_angle.deg)


def test_altaz_disagreement_warning_names_the_order_it_prints(caplog):
    ra, dec = radec_of(100.0, 50.0, TIME, SOUTH)
    v = VisitInfo(5, time=TIME, boresight_ra=ra, boresight_dec=dec, boresight_az=100.0 * u.deg,
                  boresight_alt=45.0 * u.deg, observatory=SOUTH)
    assert v.parallactic_angle is not None
    [record] = caplog.records
    text = record.getMessage()
    assert "(az, alt) = (100.000, 45.000)" in text and "(az, alt) = (100.000, 50.000)" in text
