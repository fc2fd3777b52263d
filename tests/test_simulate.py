"""Simulated warps: geometry against the project's DCR physics, defects, fluxes, files, determinism."""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
import pytest
from astropy.table import Table

pytest.importorskip("galsim")
pytest.importorskip("speclite")

from dcrcoadd.errors import ConfigError  # noqa: E402
from dcrcoadd.io import read_exposure  # noqa: E402
from dcrcoadd.sim import (  # noqa: E402
    Defects,
    SimulationConfig,
    band_support,
    make_catalog,
    simulate,
    subfilter_fluxes,
    summary_lines,
    visit_table,
    write_simulation,
)

BLUE, RED = 30000.0, 3000.0


def _centroid(image: np.ndarray, x: float, y: float, radius: float = 10.0) -> np.ndarray:
    """First moment ``(y, x)`` in a circular aperture re-centred on the result."""
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    img = np.nan_to_num(image.astype(float))
    for _ in range(6):
        w = img * (((xx - x) ** 2 + (yy - y) ** 2) <= radius ** 2)
        x, y = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
    return np.array([y, x])


def _quiet(**kwargs) -> SimulationConfig:
    """A tiny field without random sources or defects."""
    base = dict(size=64, n_visits=2, n_stars=0, n_bright_stars=0, defects=False, noise_twins=False,
                seeing=(0.7, 0.7))
    base.update(kwargs)
    return SimulationConfig(**base)


# -- geometry ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["track", "explicit"])
def test_blue_and_red_star_centroids_follow_dcr_shifts(mode):
    """GalSim's refraction (placed by the simulator) agrees with dcr_shifts (Stone 1996 through the WCS)."""
    dcr = pytest.importorskip("dcrcoadd.physics.dcr")
    if mode == "track":
        config = _quiet(size=(112, 48), airmass=(1.3, 1.8))  # one visit east, one west of the meridian
    else:
        config = _quiet(size=(112, 48), conditions=((1.9, 40.0), (1.5, -150.0)))
    catalog = Table({"x": [27.3, 84.6], "y": [23.8, 24.2], "flux": [5.0e5, 5.0e5],
                     "temperature": [BLUE, RED]})
    sim = simulate(config, catalog=catalog)
    if mode == "explicit":
        for sv, (airmass, q) in zip(sim.visits, config.conditions, strict=True):
            assert sv.visit.airmass == pytest.approx(airmass)
            assert sv.visit.parallactic_angle.deg == pytest.approx(q, abs=1e-6)

    # fine subfilters over the whole throughput curve, so the prediction is not limited by binning
    lo, hi = band_support(sim.bandpass)
    grid = np.linspace(lo, hi, 41)
    edges = np.column_stack([grid[:-1], grid[1:]])
    fractions = subfilter_fluxes(sim.catalog, sim.bandpass, edges) / np.asarray(sim.catalog["flux"])[:, None]
    truth = np.column_stack([sim.catalog["y"], sim.catalog["x"]])

    measured, predicted = [], []
    for warp in sim.warps:
        shifts = dcr.dcr_shifts(warp.visit, warp.wcs, sim.bandpass, len(edges), edges=edges)
        predicted.append(fractions @ shifts)  # (star, (dy, dx)) relative to the true position
        measured.append(np.array([_centroid(warp.image, x, y) for y, x in truth]) - truth)
    measured, predicted = np.array(measured), np.array(predicted)

    # the test has teeth: DCR moves these stars by a good fraction of a pixel, differently per visit
    assert np.abs(predicted).max() > 0.3
    assert np.abs(predicted[1] - predicted[0]).max() > 0.3
    # each star, each visit; the offset between visits; and blue minus red
    np.testing.assert_allclose(measured, predicted, atol=0.05)
    np.testing.assert_allclose(measured[1] - measured[0], predicted[1] - predicted[0], atol=0.05)
    blue_minus_red = measured[:, 0] - measured[:, 1]
    expected = predicted[:, 0] - predicted[:, 1]
    np.testing.assert_allclose(blue_minus_red[1] - blue_minus_red[0], expected[1] - expected[0], atol=0.05)
    # blue light goes towards the zenith: along the parallactic angle (north up, east left)
    for sv, m in zip(sim.visits, measured, strict=True):
        q = math.radians(sv.render_parallactic_angle)
        towards_zenith = np.array([math.cos(q), -math.sin(q)])  # (dy, dx)
        assert (m[0] - m[1]) @ towards_zenith > 0.3


@pytest.mark.parametrize("pixel_scale", [0.2, 0.4])
def test_stamps_equal_galsims_own_chromatic_drawing(pixel_scale):
    """The k-space stamps are GalSim's chromatic integral: compare with ``drawImage`` of the same star,
    which samples the pixels. On 0.4" pixels the PSF (1.75 px FWHM) is undersampled: a stamp drawn from
    its transform up to Nyquist alone was off by 1.6 % of the peak and rang along the star's row and
    column; folding in the aliases, as sampling does, leaves 0.06 %."""
    import galsim

    config = _quiet(n_visits=1, conditions=((1.8, 40.0),), pixel_scale=pixel_scale)
    temperature, x, y = 3500.0, 30.3, 33.8
    sim = simulate(config, catalog=Table({"x": [x], "y": [y], "flux": [1.0e5], "temperature": [temperature]}))
    sv, model = sim.visits[0], sim.models[0].astype(float)
    weather = sv.visit.weather
    atmosphere = galsim.ChromaticAtmosphere(
        galsim.Kolmogorov(fwhm=sv.seeing), base_wavelength=sim.bandpass.effective_wavelength.value,
        zenith_angle=sv.zenith_distance * galsim.degrees,
        parallactic_angle=sv.render_parallactic_angle * galsim.degrees,
        temperature=weather.temperature_kelvin, pressure=weather.pressure.value / 1000.0,
        H2O_pressure=weather.humidity / 100 * 0.61094 * math.exp(17.625 * weather.temperature.value
                                                                 / (weather.temperature.value + 243.04)))
    lo, hi = band_support(sim.bandpass)
    waves = np.linspace(lo, hi, int(math.ceil((hi - lo) / config.wavelength_step)) + 1)
    bandpass = galsim.Bandpass(galsim.LookupTable(waves, sim.bandpass.throughput(waves)), "nm")
    planck = waves ** -5 / np.expm1(1.438776877e7 / (waves * temperature))
    sed = galsim.SED(galsim.LookupTable(waves, planck), "nm", "flambda")
    counts = 1.0e5 / sv.flux_calibration
    star = galsim.Convolve(atmosphere, galsim.DeltaFunction() * sed.withFlux(counts, bandpass))
    image = galsim.ImageD(galsim.BoundsI(0, 63, 0, 63), scale=config.pixel_scale)
    star.drawImage(bandpass, image=image, offset=(x - 31.5, y - 31.5))  # GalSim centres at 31.5
    assert np.abs(image.array - model).max() < 2e-3 * model.max()
    np.testing.assert_allclose(_centroid(model, x, y), _centroid(image.array, x, y), atol=2e-3)


def test_track_follows_the_site_and_airmass_range():
    config = _quiet(n_visits=6, airmass=(1.1, 1.7), n_nights=2)
    sim = simulate(config)
    table = visit_table(sim)
    airmass = np.asarray(table["airmass"])
    assert airmass.min() == pytest.approx(1.1, abs=0.01) and airmass.max() == pytest.approx(1.7, abs=0.01)
    times = [sv.visit.time for sv in sim.visits]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    assert [sv.id for sv in sim.visits] == list(range(1000, 1006))
    for sv in sim.visits:
        v = sv.visit
        # the project's geometry, derived from time, site and RA/Dec, agrees with the simulator's
        assert v.parallactic_angle.deg == pytest.approx(sv.parallactic_angle, abs=1e-3)
        assert np.sign(v.hour_angle.hour) == np.sign(sv.parallactic_angle)
        assert v.exposure_time.value == 30 and v.rotation_type == "SKY" and v.weather is not None
    # both sides of the meridian, on two nights
    assert {np.sign(sv.parallactic_angle) for sv in sim.visits} == {-1.0, 1.0}
    assert len({int(t.mjd) for t in times}) == 2
    lines = summary_lines(sim)
    assert len(lines) == 2 + 6 and "1003" in lines[5]
    # explicit hour angles are kept (to the second of time)
    sim = simulate(_quiet(size=32, hour_angles=(-1.5, 0.75)))
    np.testing.assert_allclose([sv.visit.hour_angle.hour for sv in sim.visits], [-1.5, 0.75], atol=1e-3)


def test_bad_configurations_are_reported():
    with pytest.raises(ConfigError, match="conditions has 1 entries for 2 visits"):
        SimulationConfig(n_visits=2, conditions=((1.2, 30.0),))
    with pytest.raises(ConfigError, match="airmass"):
        SimulationConfig(airmass=(0.9, 1.2))
    # (--airmass 1,80 rendered visits 0.7 deg above the horizon, beyond the refraction formula)
    with pytest.raises(ConfigError, match=r"airmass must be at most 4, got \(1.0, 80.0\)"):
        SimulationConfig(airmass=(1.0, 80.0))
    with pytest.raises(ConfigError, match="conditions must be"):
        SimulationConfig(n_visits=1, conditions=((12.0, 30.0),))
    with pytest.raises(ConfigError, match="never gets below airmass"):
        simulate(_quiet(dec=40.0, airmass=(1.0, 1.1)))
    with pytest.raises(ConfigError, match="the catalogue needs"):
        simulate(_quiet(), catalog=Table({"x": [1.0], "y": [2.0]}))


# -- defects and masks ------------------------------------------------------------------------------

def test_masks_flag_exactly_the_injected_defects():
    opts = Defects(cosmic_ray_rate=3000.0, bad_columns=2, streak_visits=1)
    kwargs = dict(size=64, n_visits=3, n_stars=8, n_bright_stars=1, bright_mag_range=(15.0, 15.0),
                  noise_twins=True, defect_options=opts, seed=7)
    with_defects = simulate(SimulationConfig(defects=True, **kwargs))
    clean = simulate(SimulationConfig(defects=False, **kwargs))
    assert len(with_defects.streaks) == 1
    n_sat = 0
    for i, (warp, ref) in enumerate(zip(with_defects.warps, clean.warps, strict=True)):
        flags = with_defects.defects[i]
        for plane in ("CR", "BAD", "SAT", "NO_DATA", "EDGE"):
            np.testing.assert_array_equal(warp.mask_of(plane), flags[plane], err_msg=plane)
        assert flags["CR"].any() and flags["BAD"].any() and flags["NO_DATA"].any()
        n_sat += flags["SAT"].sum()
        streak = next((s.footprint for s in with_defects.streaks if s.visit_id == warp.visit.id),
                      np.zeros(warp.shape, bool))
        # the pixels that differ from the defect-free run are exactly the defects (same noise)
        changed = (warp.image != ref.image) | (np.isnan(warp.image) != np.isnan(ref.image))
        expected = flags["CR"] | flags["BAD"] | flags["SAT"] | flags["NO_DATA"] | streak
        np.testing.assert_array_equal(changed, expected)
        # EDGE borders the missing data without touching pixels; NaN only where NO_DATA
        assert not (flags["EDGE"] & flags["NO_DATA"]).any()
        assert np.array_equal(np.isnan(warp.image), flags["NO_DATA"])
        assert np.array_equal(np.isnan(warp.variance), flags["NO_DATA"])
        # saturation clips at the full well (sky included)
        sv = with_defects.visits[i]
        sat = flags["SAT"] & ~(flags["NO_DATA"] | flags["BAD"] | flags["CR"])  # later defects overwrite
        np.testing.assert_allclose(warp.image[sat] + sv.sky, opts.saturation_level, rtol=1e-6)
        assert np.nanmax(ref.image + sv.sky) >= opts.saturation_level
        # the streak is left for artifact rejection: no plane marks it
        assert not warp.mask_of("STREAK").any()
        # twins keep the static defects only
        twin = with_defects.twins[i]
        for plane in ("BAD", "NO_DATA", "EDGE"):
            np.testing.assert_array_equal(twin.mask_of(plane), warp.mask_of(plane))
        assert twin.mask_of("SAT").sum() == pytest.approx(flags["SAT"].sum(), abs=10)
        assert not twin.mask_of("CR").any()
    assert n_sat > 0


def test_detected_plane_marks_sources_grown_by_a_fwhm():
    catalog = Table({"x": [20.0, 45.0], "y": [32.0, 30.0], "flux": [5.0e4, 20.0]})
    sim = simulate(_quiet(size=64, n_visits=1), catalog=catalog)
    warp = sim.warps[0]
    detected = warp.mask_of("DETECTED")
    assert detected[32, 20]                    # bright star
    assert not detected[30, 45]                # far below 5 sigma
    fwhm = sim.visits[0].seeing / sim.config.pixel_scale
    # the footprint reaches beyond the 5-sigma core by about a FWHM
    assert detected[32, 20 + int(2 * fwhm)] and not detected[32, 20 + int(6 * fwhm)]
    assert detected.mean() < 0.2


# -- fluxes -----------------------------------------------------------------------------------------

def test_truth_fluxes_match_the_rendered_fluxes():
    catalog = Table({"x": [30.0, 48.5, 66.2], "y": [47.0, 30.2, 60.7], "flux": [4.0e4, 1.5e4, 2.5e4],
                     "temperature": [BLUE, 5500.0, RED]})
    config = _quiet(size=96, n_visits=3, extinction=0.25, n_subfilters=3, noise_twins=True)
    sim = simulate(config, catalog=catalog)
    total = float(np.sum(sim.catalog["flux"]))
    cals = [w.flux_calibration for w in sim.warps]
    assert len(set(cals)) == 3  # extinction: each visit its own calibration
    for warp, model in zip(sim.warps, sim.models, strict=True):
        # noise-free: the rendering conserves flux
        assert model.sum() * warp.flux_calibration == pytest.approx(total, rel=2e-3)
        # with noise: within 3 sigma of the summed variance (the wings lost off the image are far smaller)
        measured = np.sum(warp.image, dtype=float) * warp.flux_calibration
        sigma = math.sqrt(np.sum(warp.variance, dtype=float)) * warp.flux_calibration
        assert abs(measured - total) < 3 * sigma
        # the variance plane is the variance of the noise
        resid = (warp.image - model) / np.sqrt(warp.variance)
        assert np.std(resid) == pytest.approx(1.0, abs=0.03)
    # the noise twins: same expectation, independent noise
    for warp, twin in zip(sim.warps, sim.twins, strict=True):
        diff = (warp.image - twin.image) / np.sqrt(2 * warp.variance)
        assert np.std(diff) == pytest.approx(1.0, abs=0.03)
    # subfilter truth: sums to the band flux; blue stars are brighter in the blue subfilter
    sub = np.asarray(sim.catalog["subfilter_flux"])
    np.testing.assert_allclose(sub.sum(axis=1), sim.catalog["flux"], rtol=1e-10)
    assert sub[0, 0] > sub[0, 2] and sub[2, 0] < sub[2, 2]
    for k, image in enumerate(sim.truth):
        assert image.flux_calibration == 1.0
        assert np.sum(image.image, dtype=float) == pytest.approx(sub[:, k].sum(), rel=2e-3)
    # the truth images add up to the sources at the fiducial PSF, centred on the catalogue positions
    coadd = sum(t.image.astype(float) for t in sim.truth)
    for row in sim.catalog:
        np.testing.assert_allclose(_centroid(coadd, row["x"], row["y"], radius=6), [row["y"], row["x"]],
                                   atol=0.01)


# -- files ------------------------------------------------------------------------------------------

def _digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_round_trip_and_same_seed_gives_same_bytes(tmp_path):
    config = SimulationConfig(size=(48, 40), n_visits=2, n_stars=5, n_galaxies=1, n_emission=1,
                              defect_options=Defects(streak_visits=1), seed=3, origin=(100, 50))
    sim = simulate(config, tmp_path / "a")
    written = write_simulation(simulate(config), tmp_path / "b")
    assert len(written["warps"]) == 2 and len(written["twins"]) == 2
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    other = make_catalog(SimulationConfig(**{**config.__dict__, "seed": 4}))
    assert not np.allclose(other["x"], sim.catalog["x"])

    for warp in sim.warps:
        back = read_exposure(tmp_path / "a" / "warps" / f"visit_{warp.visit.id}.fits", require_visit=True)
        np.testing.assert_array_equal(back.image, warp.image)
        np.testing.assert_array_equal(back.variance, warp.variance)
        for plane in ("CR", "BAD", "SAT", "NO_DATA", "EDGE", "DETECTED"):
            np.testing.assert_array_equal(back.mask_of(plane), warp.mask_of(plane))
        assert back.psf == warp.psf and back.flux_calibration == warp.flux_calibration
        assert back.bandpass == warp.bandpass and back.band == "lsst-g"
        v, w = back.visit, warp.visit
        assert v.id == w.id and v.airmass == pytest.approx(w.airmass)
        assert abs((v.time - w.time).sec) < 1e-6
        assert v.boresight_alt.deg == pytest.approx(w.boresight_alt.deg)
        assert v.parallactic_angle.deg == pytest.approx(w.parallactic_angle.deg, abs=1e-6)
        assert v.weather.humidity == w.weather.humidity
        assert back.bbox == warp.bbox and back.origin == (100, 50) and back.shape == (40, 48)
        # the catalogue's sky positions land on its parent-grid pixels through the file's WCS
        x, y = back.wcs.world_to_pixel_values(sim.catalog["ra"], sim.catalog["dec"])
        np.testing.assert_allclose(x + 100, sim.catalog["x"], atol=1e-6)
        np.testing.assert_allclose(y + 50, sim.catalog["y"], atol=1e-6)
    for k, truth in enumerate(sim.truth):
        back = read_exposure(tmp_path / "a" / "truth" / f"subfilter_{k}.fits")
        np.testing.assert_array_equal(back.image, truth.image)
    catalog = Table.read(tmp_path / "a" / "truth" / "catalog.ecsv")
    np.testing.assert_allclose(catalog["subfilter_flux"], sim.catalog["subfilter_flux"])
    assert list(catalog["kind"]) == list(sim.catalog["kind"])
    assert set(catalog["kind"]) == {"star", "emission", "galaxy"}
    from astropy.io import fits

    with fits.open(tmp_path / "a" / "truth" / "streaks.fits") as hdul:
        s = sim.streaks[0]
        np.testing.assert_array_equal(hdul[f"STREAK_{s.visit_id}"].data.astype(bool), s.footprint)
        assert hdul["STREAKS"].data["visit"][0] == s.visit_id


def test_a_second_simulation_into_the_same_directory_leaves_none_of_the_first(tmp_path, caplog):
    # with fewer visits, the first run's extra warps stayed, and `assemble warps/` mixed two fields
    first = SimulationConfig(size=32, n_visits=4, n_stars=3, seed=3, n_subfilters=4)
    write_simulation(simulate(first), tmp_path)
    # the user's files are not the simulation's, though named like them: kept, and the ones
    # `assemble warps/` would take named in a warning (they used to be deleted without a word)
    (tmp_path / "warps" / "notes.txt").write_text("mine")
    (tmp_path / "warps" / "visit_9999.fits").write_bytes(b"a real exposure")
    (tmp_path / "truth" / "subfilter_mine.fits").write_bytes(b"mine too")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.sim"):
        write_simulation(simulate(SimulationConfig(size=32, n_visits=2, n_stars=3, seed=4)), tmp_path)
    assert sorted(p.name for p in (tmp_path / "warps").iterdir()) == ["notes.txt", "visit_1000.fits",
                                                                   "visit_1001.fits", "visit_9999.fits"]
    assert sorted(p.name for p in (tmp_path / "twins").iterdir()) == ["visit_1000.fits", "visit_1001.fits"]
    assert sorted(p.name for p in (tmp_path / "truth").glob("subfilter_*")) == [
        "subfilter_0.fits", "subfilter_1.fits", "subfilter_2.fits", "subfilter_mine.fits"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "did not write were left as they are (2: " in warned[0]
    assert "visit_9999.fits" in warned[0] and "subfilter_mine.fits" in warned[0]
