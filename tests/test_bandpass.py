"""Bandpass presets from speclite curves, curve-derived properties, subfilter partitions."""

import builtins

import astropy.units as u
import numpy as np
import pytest

from dcrcoadd.core.bandpass import (
    BAND_LETTER_CENTRES,
    CAMERA_SITES,
    Bandpass,
    band_letter,
    fwhm_range,
    pivot_wavelength,
    preset_names,
    same_band_name,
)
from dcrcoadd.core.observatory import Observatory
from dcrcoadd.errors import ConfigError

pytest.importorskip("speclite")


def test_lsst_g_matches_lsst_filter_definition():
    g = Bandpass.preset("lsst-g")
    assert g.name == "lsst-g" and g.band == "g" and g.camera == "lsst"
    # LSST obs packages: lambdaEff 476.31 nm, lambdaMin 405, lambdaMax 552 (147 nm)
    assert g.effective_wavelength.to_value(u.nm) == pytest.approx(477.0, abs=2.5)
    assert g.bandwidth.to_value(u.nm) == pytest.approx(147.0, abs=3.0)
    lo, hi = g.wavelength_range
    assert lo == pytest.approx(405.0, abs=3.0) and hi == pytest.approx(552.0, abs=3.0)
    assert g.transmission is not None and g.throughput(478.0) > 0.3 and g.throughput(300.0) == 0.0


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_with_its_site(name):
    bp = Bandpass.preset(name)
    lam = bp.effective_wavelength.to_value(u.nm)
    lo, hi = bp.wavelength_range
    assert bp.site in CAMERA_SITES.values()
    if bp.camera == "ztf":  # no curve shipped: pivot and FWHM only
        assert bp.transmission is None and 400 < lam < 900 and 120 < hi - lo < 160
        return
    wl, thr = bp.transmission
    assert wl.value[0] < lo < lam < hi < wl.value[-1]
    # effective wavelength sits inside the half-maximum range, close to the mean wavelength
    assert abs(lam / (np.trapezoid(wl.value * thr, wl.value) / np.trapezoid(thr, wl.value)) - 1) < 0.02
    assert bp.site in CAMERA_SITES.values()
    assert isinstance(Observatory.from_site(bp.site), Observatory)


@pytest.mark.parametrize("alias,canonical", [
    ("g", "lsst-g"), ("LSST-G", "lsst-g"), ("rubin_r", "lsst-r"), ("decam-y", "decam-Y"),
    ("DECam-Y", "decam-Y"), ("HSC-I", "hsc-i"), ("hsc-i2", "hsc-i2"), ("sdss-u", "sdss-u"),
    ("ps1-z", "ps1-z"), ("panstarrs-z", "ps1-z"), ("lsst2023-i", "lsst-i"), ("ZTF_g", "ztf-g"),
])
def test_preset_aliases(alias, canonical):
    assert Bandpass.preset(alias).name == canonical


def test_camera_sites():
    assert Bandpass.preset("decam-g").site == "ctio"
    assert Bandpass.preset("hsc-r").site == "subaru"
    assert Bandpass.preset("sdss-r").site == "apo"
    assert Bandpass.preset("ps1-g").site == "haleakala"
    assert Bandpass.preset("y").site == "rubin"
    assert Bandpass("g", 480 * u.nm, 140 * u.nm).site is None


@pytest.mark.parametrize("bad", ["lsst-q", "foo-g", "decam-w", ""])
def test_unknown_preset(bad):
    with pytest.raises(ConfigError, match="unknown bandpass preset"):
        Bandpass.preset(bad)


def test_missing_speclite_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("speclite"):
            raise ImportError("No module named 'speclite'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ConfigError, match=r"install dcrcoadd\[filters\]"):
        Bandpass.preset("lsst-g")


def test_curve_definitions_on_a_top_hat():
    wl = np.linspace(300.0, 700.0, 4001)
    thr = ((wl >= 400) & (wl <= 600)).astype(float)
    # pivot of a top hat [a, b]: sqrt((b^2 - a^2) / (2 ln(b/a)))
    expected = np.sqrt((600**2 - 400**2) / (2 * np.log(600 / 400)))
    assert pivot_wavelength(wl, thr) == pytest.approx(expected, rel=1e-4)
    lo, hi = fwhm_range(wl, thr)
    assert lo == pytest.approx(400.0, abs=0.1) and hi == pytest.approx(600.0, abs=0.1)
    bp = Bandpass.from_curve("box", wl * u.nm, thr)
    assert bp.bandwidth.to_value(u.nm) == pytest.approx(200.0, abs=0.2)
    # zero tails are trimmed to one sample each side
    assert bp.transmission[0].value[0] == pytest.approx(399.9) and bp.transmission[0].value[-1] == 600.1


def test_equal_width_edges_follow_lsst_convention():
    bp = Bandpass("g", 477.0 * u.nm, 150.0 * u.nm)
    edges = bp.subfilter_edges(3)
    np.testing.assert_allclose(edges, [[402.0, 452.0], [452.0, 502.0], [502.0, 552.0]])
    assert bp.subfilter_edges(1).shape == (1, 2)
    with pytest.raises(ValueError):
        bp.subfilter_edges(0)
    with pytest.raises(ValueError):
        bp.subfilter_edges(3, method="bogus")
    with pytest.raises(ConfigError, match="transmission"):
        bp.subfilter_edges(3, method="equal-throughput")


@pytest.mark.parametrize("n", [2, 3, 5])
def test_equal_throughput_edges_carry_equal_throughput(n):
    bp = Bandpass.preset("lsst-g")
    edges = bp.subfilter_edges(n, method="equal-throughput")
    lo, hi = bp.wavelength_range
    assert edges[0, 0] == pytest.approx(lo) and edges[-1, 1] == pytest.approx(hi)
    np.testing.assert_allclose(edges[1:, 0], edges[:-1, 1])
    integrals = []
    for a, b in edges:
        x = np.linspace(a, b, 20001)
        integrals.append(np.trapezoid(bp.throughput(x), x))
    np.testing.assert_allclose(integrals, np.mean(integrals), rtol=2e-3)
    # on a flat top hat both partitions coincide
    box = Bandpass("box", 500 * u.nm, 100 * u.nm, (np.array([440.0, 450, 550, 560]) * u.nm, [0.0, 1, 1, 0]))
    np.testing.assert_allclose(box.subfilter_edges(n, "equal-throughput"), box.subfilter_edges(n), atol=1e-6)


def test_subfilter_quadrature_is_a_throughput_weighted_mean():
    wl = np.linspace(400.0, 560.0, 33)
    thr = np.linspace(0.0, 1.0, 33)  # rising ramp
    bp = Bandpass("ramp", 480 * u.nm, 160 * u.nm, (wl * u.nm, thr))
    (nodes, weights), = bp.subfilter_quadrature([[400.0, 560.0]])
    assert weights.sum() == pytest.approx(1.0)
    # mean wavelength of a linear ramp from 0 at a to 1 at b is a + 2(b - a)/3
    assert np.sum(weights * nodes) == pytest.approx(400 + 2 * 160 / 3, rel=1e-4)
    # without a curve: uniform weights, mean at the centre
    (nodes, weights), = Bandpass("flat", 480 * u.nm, 160 * u.nm).subfilter_quadrature([[400.0, 500.0]])
    assert np.sum(weights * nodes) == pytest.approx(450.0)


def test_constructor_validates_curves():
    with pytest.raises(ValueError, match="increasing"):
        Bandpass("x", 500 * u.nm, 100 * u.nm, (np.array([500.0, 400.0]) * u.nm, [1.0, 1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        Bandpass("x", 500 * u.nm, 100 * u.nm, (np.array([400.0, 500.0]) * u.nm, [1.0, -1.0]))
    with pytest.raises(ValueError):
        Bandpass("x", -5 * u.nm, 100 * u.nm)


@pytest.mark.parametrize("name, letter", [
    ("g", "g"), ("lsst-g", "g"), ("HSC-G", "g"), ("HSC_G", "g"), ("g_6", "g"),
    ("g DECam SDSS c0001 4720.0 1520.0", "g"), ("Y", "y"), ("hsc-r2", None), ("N708", None), ("VR", None),
    ("", None)])
def test_band_letters_of_filter_names(name, letter):
    assert band_letter(name) == letter


def test_band_letter_centres_are_those_of_every_presets_band_within_25_nm():
    for name in preset_names():
        letter = band_letter(name)
        if letter is not None:
            lam = Bandpass.preset(name).effective_wavelength.to_value("nm")
            assert abs(lam - BAND_LETTER_CENTRES[letter]) < 25, name


def test_filter_names_of_one_band():
    assert same_band_name("g", "lsst-g") and same_band_name("HSC-G", "decam-g")
    assert same_band_name("hsc-r2", "r2")
    assert not same_band_name("lsst-g", "lsst-r") and not same_band_name("hsc-r2", "hsc-r")
