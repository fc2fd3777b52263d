"""Impossible inputs are refused where they are read, naming the card and the likely unit mistake;
header airmass against altitude; flux calibration across the inputs of a coadd (issue 16)."""

from __future__ import annotations

import logging
import math
import re

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from conftest import g_bandpass, write_warps
from dcrcoadd.cli import main
from dcrcoadd.coadd.baseline import prepare_inputs
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.errors import InputError
from dcrcoadd.io import read_exposure, read_info, write_exposure
from dcrcoadd.io.calibration import AB_MAGNITUDE_OF_1_NJY, flux_unit


def edit(path, **cards):
    """Set (or, with None, remove) primary-header cards; ``_`` in a name stands for ``-``."""
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    for key, value in cards.items():
        key = key.replace("_", "-")
        if value is None:
            hdus[0].header.remove(key, ignore_missing=True)
        else:
            hdus[0].header[f"HIERARCH {key}" if len(key) > 8 else key] = value
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


GOOD_WEATHER = dict(AIRTEMP=8.5, AIRPRESS=74250.0, HUMIDITY=35.0)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


# -- impossible values, each refused naming its card ----------------------------------------------

BAD_CARDS = [
    ({"AIRTEMP": 271.0}, "AIRTEMP", "kelvin"),
    ({"AIRTEMP": 500.0}, "AIRTEMP", "air temperature"),
    ({"AIRTEMP": -60.0}, "AIRTEMP", "air temperature"),
    ({"AIRPRESS": 731.66}, "AIRPRESS", "mbar/hPa"),
    ({"AIRPRESS": 73.2}, "AIRPRESS", "kPa"),
    ({"AIRPRESS": -5.0}, "AIRPRESS", "air pressure"),
    ({"HUMIDITY": 250.0}, "HUMIDITY", "0-100"),
    ({"HUMIDITY": -1.0}, "HUMIDITY", "0-100"),
    ({"OBS_LAT": 95.0, "OBS_LONG": -70.7, "OBS_ELEV": 2663.0}, "OBS-LAT", "latitude"),
    ({"OBS_ELEV": 8737.0}, "OBS-ELEV", "feet"),
    ({"BORE_AIRMASS": 0.8}, "BORE-AIRMASS", "below 1"),
    ({"BORE_ALT": -3.0}, "BORE-ALT", "horizon"),
    ({"EXPTIME": 30000.0}, "EXPTIME", "milliseconds"),  # 30 s in ms: it moved the airmass from 1.04 to 2.65
    ({"EXPID": 10**19}, "EXPID", "64-bit"),  # it failed writing the coadd, after the whole solve
]


@pytest.mark.parametrize(("cards", "card", "words"), BAD_CARDS)
def test_impossible_value_is_refused_naming_the_card(tmp_path, cards, card, words):
    path = write_warps(tmp_path, 1)[0]
    edit(path, **{**GOOD_WEATHER, **cards})
    with pytest.raises(InputError) as err:
        read_info(path)
    assert err.value.source == str(path)
    assert err.value.reason.startswith(f"{card} = ")
    assert words in err.value.reason


@pytest.mark.parametrize(("cards", "card", "words"), BAD_CARDS[:8:3] + BAD_CARDS[8:11])
def test_impossible_value_through_the_cli(tmp_path, capsys, cards, card, words):
    """One ``error: FILE: CARD = ...`` line, exit status 2, nothing written."""
    paths = write_warps(tmp_path / "w", 4)
    edit(paths[2], **{**GOOD_WEATHER, **cards})
    out = tmp_path / "out"
    assert main(["assemble", *map(str, paths), "--out", str(out), "-q"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {paths[2]}: {card} = ") and words in lines[0]
    assert not out.exists()
    assert main(["info", str(paths[2])]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and f"{card} = " in lines[0]


def test_plausible_weather_reads_and_is_used(tmp_path):
    path = edit(write_warps(tmp_path, 1)[0], **GOOD_WEATHER)
    w = read_info(path).visit.weather
    assert w.temperature.to_value(u.deg_C) == 8.5 and w.pressure.to_value(u.Pa) == 74250.0
    assert w.humidity == 35


def test_partial_weather_is_completed_from_the_standard_atmosphere(tmp_path):
    """LSST writes each weather card only when known: the others come from the site's standard air."""
    path = edit(write_warps(tmp_path, 1)[0], AIRTEMP=5.0)
    info = read_info(path)
    std = Weather.standard(2663 * u.m)
    w = info.visit.weather
    assert w.temperature.to_value(u.deg_C) == 5.0
    assert w.pressure.to_value(u.Pa) == pytest.approx(std.pressure.to_value(u.Pa)) and w.humidity == 40.0
    assert any("AIRTEMP" in n and "standard atmosphere" in n for n in info.notes)


def test_value_types_refuse_the_same_mistakes():
    """The Python API refuses what the reader refuses (without a card to name)."""
    with pytest.raises(ValueError, match="kelvin"):
        Weather(271 * u.deg_C, 74000 * u.Pa, 40)
    with pytest.raises(ValueError, match="mbar/hPa"):
        Weather(10 * u.deg_C, 731.66 * u.Pa, 40)
    with pytest.raises(ValueError, match="0-100"):
        Weather(10 * u.deg_C, 74000 * u.Pa, 101)
    with pytest.raises(ValueError, match="latitude"):
        Observatory(95 * u.deg, 0 * u.deg, 100 * u.m)
    # kelvin given as kelvin is fine
    assert Weather(281.65 * u.K, 74000 * u.Pa, 40).temperature.to_value(u.deg_C) == pytest.approx(8.5)


# -- header airmass against the altitude ----------------------------------------------------------

def test_airmass_contradicting_the_altitude_is_reported_and_the_altitude_used(tmp_path, caplog):
    path = write_warps(tmp_path, 1, airmasses=[1.6])[0]
    edit(path, BORE_AIRMASS=3.0, BORE_ALT=38.7)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        visit = read_info(path).visit
    assert visit.airmass == pytest.approx(1 / math.sin(math.radians(38.7)))
    [record] = [r for r in caplog.records if "contradicts" in r.getMessage()]
    text = record.getMessage()
    assert str(path) in text and "BORE-AIRMASS = 3" in text and "38.7" in text and "1.599" in text
    assert "using 1.599" in text and "altitude" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        read_exposure(path)  # re-reading (every subregion does) does not repeat the warning
    assert not [r for r in caplog.records if "contradicts" in r.getMessage()]


def test_airmass_contradiction_through_the_cli(tmp_path, capsys):
    paths = write_warps(tmp_path / "w", 4)
    edit(paths[1], BORE_AIRMASS=3.0)
    assert main(["assemble", *map(str, paths), "--out", str(tmp_path / "out"), "-q"]) == 0
    err = capsys.readouterr().err
    assert str(paths[1]) in err and "BORE-AIRMASS = 3" in err and "using" in err


@pytest.mark.parametrize("airmass", [1.3, 1.31, 1.286])
def test_airmass_within_the_tolerance_is_kept_as_the_file_says(tmp_path, caplog, airmass):
    path = write_warps(tmp_path, 1, airmasses=[1.3])[0]  # BORE-ALT of airmass 1.3
    edit(path, BORE_AIRMASS=airmass)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        assert read_info(path).visit.airmass == airmass
    assert not caplog.records


def test_airmass_allowance_covers_the_formulas_exposure_and_field():
    from dcrcoadd.io.visitinfo import airmass_allowance

    lo, hi = airmass_allowance(30.0)
    assert lo == pytest.approx(1.9942 - 0.02, abs=1e-3) and hi == pytest.approx(2.0 + 0.02)
    wide = airmass_allowance(30.0, exposure_time_s=900.0, field_radius_deg=1.1)
    assert wide[0] < lo and wide[1] > hi + 0.1


# -- flux calibration across the inputs -----------------------------------------------------------

def _calibrated_set(directory, n=4, value=0.48):
    paths = write_warps(directory, n)
    for p in paths:
        edit(p, FLUXCAL=value)
    return paths


def test_mixed_calibrated_and_uncalibrated_inputs_are_refused(tmp_path):
    paths = _calibrated_set(tmp_path)
    edit(paths[2], FLUXCAL=None)
    assert read_info(paths[2]).flux_calibration is None  # never silently 1
    assert read_exposure(paths[2]).flux_calibration == 1.0  # an Exposure is in its image units
    with pytest.raises(InputError) as err:
        prepare_inputs(paths)
    assert err.value.source == str(paths[2])
    assert "FLUXCAL" in err.value.reason and "0.48" in err.value.reason


def test_a_mask_without_plane_cards_set_at_most_pixels_is_refused(tmp_path):
    # its every nonzero pixel is BAD: a plane of detected sources on 87-97 % of the simulator's pixels
    # left the coadd 87 % NO_DATA, exit 0, with a warning that blamed the warps' footprints
    paths = write_warps(tmp_path, 4)
    for i, path in enumerate(paths):
        with fits.open(path) as hdul:
            hdus = [h.copy() for h in hdul]
        mask = next(h for h in hdus if h.name == "MASK")
        for key in [k for k in mask.header if k.startswith("MP_")]:
            del mask.header[key]
        mask.data = np.zeros_like(mask.data)
        if i == 2:
            mask.data[:, : mask.data.shape[1] * 3 // 4] = 32  # (most pixels: refused)
        else:
            mask.data[3, 4] = 1  # (a defect or two: BAD, as before)
        fits.HDUList(hdus).writeto(path, overwrite=True)
    with pytest.raises(InputError) as err:
        prepare_inputs(paths)
    assert err.value.source == str(paths[2])
    assert "no MP_<PLANE> cards" in err.value.reason and "75 % of its pixels are nonzero" in err.value.reason
    assert len(prepare_inputs([p for i, p in enumerate(paths) if i != 2]).inputs) == 3


def test_mixed_calibration_through_the_cli(tmp_path, capsys):
    paths = _calibrated_set(tmp_path / "w")
    edit(paths[3], FLUXCAL=None)
    out = tmp_path / "out"
    assert main(["assemble", *map(str, paths), "--out", str(out), "-q"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"error: {paths[3]}: ") and "FLUXCAL" in lines[0]
    assert not out.exists()


def test_all_uncalibrated_inputs_are_accepted_with_one_warning(tmp_path, caplog):
    paths = write_warps(tmp_path, 4)
    for p in paths:
        edit(p, FLUXCAL=None)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    assert [i.scale for i in prep.inputs] == [1.0] * 4
    warnings = [r.getMessage() for r in caplog.records if "flux calibration" in r.getMessage()]
    assert len(warnings) == 1 and "none of the 4 inputs" in warnings[0]
    # what a model of them is in, for its templates' science exposures (calibrated: nJy)
    assert flux_unit(prep.inputs) == "image"
    assert flux_unit(prepare_inputs(_calibrated_set(tmp_path / "cal")).inputs) == "nJy"


def test_zero_point_cards_calibrate(tmp_path):
    paths = _calibrated_set(tmp_path, 3, value=2.0)
    zp = AB_MAGNITUDE_OF_1_NJY - 2.5 * math.log10(2.0)  # the zero point of 2 nJy per unit
    edit(paths[1], FLUXCAL=None, MAGZERO=zp)
    edit(paths[2], FLUXCAL=None, FLUXMAG0=3631e9 / 2.0)
    for p, card in zip(paths, ("FLUXCAL", "MAGZERO", "FLUXMAG0"), strict=True):
        info = read_info(p)
        assert info.flux_calibration == pytest.approx(2.0, rel=1e-12) and info.calibration_card == card
    prep = prepare_inputs(paths)  # calibrated by different cards: one scale
    np.testing.assert_allclose([i.scale for i in prep.inputs], 2.0, rtol=1e-12)
    assert AB_MAGNITUDE_OF_1_NJY == pytest.approx(31.4, abs=1e-3)


def test_calibration_cards_that_disagree_are_reported_and_the_first_used(tmp_path, caplog):
    [path] = _calibrated_set(tmp_path, 1, value=2.0)
    edit(path, MAGZERO=20.0)  # (0.0031 nJy per unit less... 12 mag from FLUXCAL's)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        info = read_info(path)
    assert info.flux_calibration == 2.0 and info.calibration_card == "FLUXCAL"
    [text] = [r.getMessage() for r in caplog.records if "disagree" in r.getMessage()]
    assert text.startswith(f"{path}: FLUXCAL and MAGZERO disagree by ") and text.endswith("using FLUXCAL")
    caplog.clear()
    edit(path, MAGZERO=0.0)  # (a placeholder of an unused card: neither refused nor reported)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        assert read_info(path).flux_calibration == 2.0
    assert not caplog.records


@pytest.mark.parametrize(("cards", "card"), [({"MAGZERO": 3.1}, "MAGZERO"), ({"MAGZPT": 99.0}, "MAGZPT"),
                                             ({"FLUXMAG0": -5.0}, "FLUXMAG0"), ({"FLUXCAL": 0.0}, "FLUXCAL"),
                                             ({"FLUXCAL": 1e300}, "FLUXCAL"),
                                             ({"FLUXMAG0": 1e30}, "FLUXMAG0")])
def test_impossible_calibration_cards_are_refused(tmp_path, cards, card):
    path = write_warps(tmp_path, 1)[0]
    edit(path, **({"FLUXCAL": None} if card != "FLUXCAL" else {}), **cards)
    with pytest.raises(InputError, match=card):
        read_info(path)


@pytest.mark.parametrize("lam, bw, hint", [(250.0, 60.0, "BANDWID are in nm)"), (4787.0, 1486.0, "Angstrom")])
def test_a_band_outside_the_refraction_formula_is_refused(tmp_path, capsys, lam, bw, hint):
    """Stone's formula holds for 230.2-2058.6 nm: a band reaching beyond is refused where it is read
    (it used to end in a traceback from the refraction code)."""
    paths = write_warps(tmp_path / "w", 3)
    for p in paths:
        edit(p, BANDLAM=lam, BANDWID=bw)
    with pytest.raises(InputError, match="refraction formula"):
        read_info(paths[0])
    assert main(["assemble", str(tmp_path / "w"), "--out", str(tmp_path / "out")]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {paths[0]}: BANDLAM = {lam:g}, BANDWID = {bw:g}") and hint in line


def test_a_humidity_that_looks_like_a_fraction_is_warned_about_and_a_logical_refused(tmp_path, caplog):
    [path] = write_warps(tmp_path, 1)
    edit(path, **{**GOOD_WEATHER, "HUMIDITY": 0.45})
    with caplog.at_level(logging.WARNING):
        assert read_info(path).visit.weather.humidity == pytest.approx(0.45)
    assert "HUMIDITY = 0.45 is taken as 0.45 % relative humidity; if it is a fraction (45 %)" in caplog.text
    edit(path, HUMIDITY=True)
    with pytest.raises(InputError, match="keyword HUMIDITY is a logical"):
        read_info(path)


@pytest.mark.parametrize("change, words", [
    ({"PC1_1": None, "PC2_2": None, "CDELT1": None, "CDELT2": None}, "no CD, PC or CDELT cards"),
    ({"PC1_1": -1.0, "PC2_2": 1.0, "CDELT1": 0.2, "CDELT2": 0.2}, "are CD/CDELT in arcsec?"),
    ({"PC1_1": -1.0, "PC2_2": 1.0, "CDELT1": 0.2 / 3600**2, "CDELT2": 0.2 / 3600**2},
     "converted to degrees twice?"),
    ({"CTYPE1": "RA---TPV", "CTYPE2": "DEC--TPV"}, "degenerate: every pixel maps to one sky position; "
                                                   "CTYPE RA---TPV without its PV distortion cards?"),
])
def test_a_wcs_of_impossible_pixels_is_refused_where_it_is_read(tmp_path, change, words):
    """A TPV WCS whose PV cards a tool dropped crashed `template` (singular matrix) and `warp` (inside
    reproject); a header without CD cards (astropy's 1 deg/px) was coadded without a word."""
    [path] = write_warps(tmp_path, 1)
    with fits.open(path, mode="update") as hdul:
        h = hdul[1].header
        assert "CDELT1" in h and "PC1_1" in h and "CD1_1" not in h
        for key, value in change.items():
            if value is None:
                del h[key]
            else:
                h[key] = value
    with pytest.raises(InputError) as err:
        read_info(path)
    assert words in err.value.reason and err.value.source == str(path)


def _edit_curve(path, wavelength=lambda wl: wl, throughput=lambda wl, thr: thr):
    with fits.open(path, mode="update") as hdul:
        table = hdul["TRANSMISSION"].data
        wl = np.array(table["wavelength"])
        table["throughput"] = throughput(wl, np.array(table["throughput"]))
        table["wavelength"] = wavelength(wl)


def test_a_filter_name_of_another_band_than_bandlam_is_refused_where_it_is_read(tmp_path, capsys):
    # FILTER = 'lsst-r' over a g band's BANDLAM: assemble refused it against the other warps' names,
    # template accepted it on its wavelength
    paths = write_warps(tmp_path / "w", 3)
    edit(paths[1], FILTER="lsst-r")
    with pytest.raises(InputError, match=r"FILTER = 'lsst-r' names the r band \(about 630 nm\), but BANDLAM"):
        read_info(paths[1])
    assert main(["assemble", *map(str, paths), "--out", str(tmp_path / "out"), "-q"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {paths[1]}: FILTER = 'lsst-r'")
    assert line.endswith("one of the two cards is wrong")


def test_filter_names_of_one_band_coadd_together(tmp_path):
    paths = write_warps(tmp_path, 3)
    edit(paths[0], FILTER="g")
    edit(paths[1], FILTER="lsst-g")
    edit(paths[2], FILTER="HSC-G")
    assert len(prepare_inputs(paths).inputs) == 3


def test_a_transmission_curve_in_angstrom_or_of_another_band_is_refused(tmp_path):
    """BANDLAM and BANDWID right, the curve wrong: the run ended in a traceback inside the DCR stage."""
    paths = write_warps(tmp_path, 2, band=g_bandpass(with_curve=True))
    read_info(paths[0])
    _edit_curve(paths[0], wavelength=lambda wl: 10 * wl)
    with pytest.raises(InputError, match=r"TRANSMISSION has throughput at 3\d{3}.\d-5\d{3}.\d nm, outside "
                                         r".*it looks like Angstrom"):
        read_info(paths[0])
    _edit_curve(paths[1], wavelength=lambda wl: wl + 200.0)  # an r-like curve under g's cards
    with pytest.raises(InputError, match=r"TRANSMISSION has its pivot wavelength at 676.4 nm, 199 nm from "
                                         r"BANDLAM = 477.03 nm .*another band"):
        read_info(paths[1])


def test_a_warp_in_another_sky_frame_is_refused(tmp_path):
    """FK4 (B1950) numbers in one warp: 0.66 deg away from the others, and coadded as if on their grid."""
    paths = write_warps(tmp_path, 3)
    with fits.open(paths[1], mode="update") as hdul:
        hdul[1].header["RADESYS"], hdul[1].header["EQUINOX"] = "FK4", 1950.0
    with pytest.raises(InputError, match=r"its WCS is in FK4 \(equinox B1950.000\), .*warp_0.fits's in ICRS"):
        prepare_inputs(paths)
    with fits.open(paths[1], mode="update") as hdul:  # FK5 at J2000 is ICRS to 20 mas
        hdul[1].header["RADESYS"], hdul[1].header["EQUINOX"] = "FK5", 2000.0
    prepare_inputs(paths)


def test_a_pointing_far_from_the_image_is_refused(tmp_path):
    """BORE-RA/BORE-DEC 40 deg away from where the WCS puts the pixels: the DCR direction and the
    airmass across the image would follow the wrong sky position."""
    from conftest import complete_visit, random_exposure
    from dcrcoadd.io import write_exposure

    path = write_exposure(random_exposure(visit=complete_visit()), tmp_path / "e.fits")
    read_info(path)  # consistent as written
    edit(path, BORE_RA=190.1)
    with pytest.raises(InputError, match=r"BORE-RA/BORE-DEC = \(190.1000, 2.2346\) deg lies 40.\d deg "
                                         r"from the image centre .* wrong pointing cards or a wrong WCS"):
        read_info(path)


def test_unreadable_time_and_wcs_say_so_in_one_short_line(tmp_path):
    [path] = write_warps(tmp_path, 1)
    edit(path, DATE_AVG="yesterday")
    with pytest.raises(InputError) as err:
        read_info(path)
    assert err.value.reason == ("keyword DATE-AVG is not a valid time ('yesterday'); expected ISO "
                                "'YYYY-MM-DDThh:mm:ss' or an MJD")
    [path] = write_warps(tmp_path / "b", 1)
    with fits.open(path, mode="update") as hdul:
        hdul[1].header["CRVAL2"] = 95.0  # a declination beyond the pole
    with pytest.raises(InputError) as err:
        read_info(path)
    assert err.value.reason.startswith("invalid WCS in IMAGE header (") and "wcslib" not in err.value.reason


def test_header_altaz_warning_prints_az_then_alt(tmp_path, caplog):
    """Issue 16: the alt/az disagreement names its order, (az, alt), and prints the values in it."""
    from test_inputs_layouts import write_decam_cutout

    path = write_decam_cutout(tmp_path / "c.fits")
    with fits.open(path, mode="update") as hdul:
        az, zd = hdul[0].header["AZ"], hdul[0].header["ZD"]
        hdul[0].header["AZ"] = 200.0  # the telescope's azimuth card is wrong by 135 deg
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        info = read_info(path)
    [text] = [r.getMessage() for r in caplog.records if "(az, alt)" in r.getMessage()]
    assert f"AZ/90 - ZD = (200.000, {90 - zd:.3f}) deg (az, alt)" in text
    c_az, c_alt = info.visit.boresight_az.deg, info.visit.boresight_alt.deg
    assert f"from the ({c_az:.3f}, {c_alt:.3f}) of TELRA/TELDEC" in text
    assert abs(c_az - az) < 1.0 and "using the latter" in text


@pytest.mark.parametrize("latitude, words", [(-0.52779, "in radians"), (30.24464, "sign flipped")])
def test_a_wrong_site_latitude_is_refused_when_altitude_and_airmass_agree(tmp_path, latitude, words):
    """An OBS-LAT in radians or with its sign flipped moved the computed pointing tens of degrees from the
    header's BORE-ALT and BORE-AIRMASS, which agree with each other; it was a warning, and the visit's
    airmass and DCR came from the wrong site (airmass 6.5 instead of 2.0)."""
    from conftest import complete_visit, tan_wcs

    exp = Exposure(image=np.zeros((20, 20)), variance=np.ones((20, 20)), wcs=tan_wcs(),
                   visit=complete_visit(), bandpass=g_bandpass(with_curve=False))
    path = write_exposure(exp, tmp_path / "visit.fits")
    read_info(path)  # (consistent as written)
    edit(path, OBS_LAT=latitude)
    with pytest.raises(InputError) as err:
        read_info(path)
    reason = err.value.reason
    assert reason.startswith("BORE-AZ/BORE-ALT = (")
    assert "and BORE-AIRMASS = 1.18487 agree with each other" in reason
    assert f"the site (lat {latitude:+.4f}" in reason and "OBS-LAT" in reason and words in reason


def test_a_date_without_time_of_day_gives_way_to_mjd_obs(tmp_path, caplog):
    """A date-only DATE-OBS (no TIME-OBS/UT) was read as midnight, hours off the exposure, so its
    airmass and DCR came from the wrong sky; MJD-OBS, when present, has the time."""
    from test_inputs_layouts import write_decam_cutout

    path = write_decam_cutout(tmp_path / "c.fits")
    exact = read_info(path).visit
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["DATE-OBS"] = hdul[0].header["DATE-OBS"][:10]
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        visit = read_info(path).visit
    assert abs((visit.time - exact.time).sec) < 1e-3
    assert visit.airmass == pytest.approx(exact.airmass, abs=1e-6)
    assert any("date without a time of day" in r.getMessage() for r in caplog.records)


def test_time_cards_that_disagree_are_reported(tmp_path, caplog):
    from test_inputs_layouts import write_decam_cutout

    path = write_decam_cutout(tmp_path / "c.fits")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["MJD-OBS"] += 0.25
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        read_info(path)
    assert any("DATE-OBS and MJD-OBS disagree by 6.0 h; using DATE-OBS" in r.getMessage()
               for r in caplog.records)


def test_a_start_time_that_is_not_half_an_exposure_before_the_middle_is_reported(tmp_path, caplog):
    # MJD-OBS 3 h from DATE-AVG went unseen (DATE-AVG was used, and was right)
    from astropy.time import Time, TimeDelta

    from conftest import complete_visit, tan_wcs

    exp = Exposure(image=np.zeros((20, 20)), variance=np.ones((20, 20)), wcs=tan_wcs(),
                   visit=complete_visit(), bandpass=g_bandpass(with_curve=False))
    path = write_exposure(exp, tmp_path / "visit.fits")
    middle = Time(fits.getheader(path)["DATE-AVG"], scale="tai")
    start = (middle - TimeDelta(30.5 / 2, format="sec")).tai.mjd  # (EXPTIME 30.5 s; TIMESYS TAI)
    edit(path, MJD_OBS=start)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        read_info(path)
    assert not caplog.records
    edit(path, MJD_OBS=start + 0.125)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        visit = read_info(path).visit
    [text] = [r.getMessage() for r in caplog.records]
    assert text == f"{path}: DATE-AVG and MJD-OBS + EXPTIME/2 disagree by 3.0 h; using DATE-AVG"
    assert abs((visit.time - middle).sec) < 1e-3


@pytest.mark.parametrize("text", ["{iso}Z", "{iso}+00:00"])
def test_iso_times_with_a_utc_designator_are_read(tmp_path, text):
    from test_inputs_layouts import write_decam_cutout

    path = write_decam_cutout(tmp_path / "c.fits")
    exact = read_info(path).visit
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["DATE-OBS"] = text.format(iso=hdul[0].header["DATE-OBS"])
        del hdul[0].header["MJD-OBS"]
    assert abs((read_info(path).visit.time - exact.time).sec) < 1e-3


def test_a_utc_designator_overrides_timesys_and_an_mjd_in_milliseconds_is_named(tmp_path):
    # (DATE-AVG '...Z' with TIMESYS = 'TAI' was "not a valid time"; an MJD in milliseconds was an
    # ERFA "unacceptable date" error)
    from astropy.time import Time

    [path] = write_warps(tmp_path, 1)
    with fits.open(path, mode="update") as hdul:
        h = hdul[0].header
        for key in ("DATE-OBS", "MJD-OBS", "MJD-AVG"):
            h.remove(key, ignore_missing=True)
        h["TIMESYS"], h["DATE-AVG"] = "TAI", "2024-03-21T00:31:01Z"
    assert abs((read_info(path).visit.time - Time("2024-03-21T00:31:01", scale="utc")).sec) < 1e-3
    # (and `info` says so: it said TAI)
    assert "time: DATE-AVG (mid-exposure, UTC, by its 'Z'; TIMESYS says TAI)" in read_info(path).notes
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["DATE-AVG"]
        hdul[0].header["MJD-AVG"] = 60390.02 * 86400e3
    with pytest.raises(InputError, match="MJD-AVG .* is not the time of an observation .*milliseconds"):
        read_info(path)


def test_a_sea_level_pressure_at_a_mountain_site_is_refused(tmp_path):
    # (101325 Pa at Cerro Pachon, 2663 m, lies within the plausible range of any site, and made the
    # DCR 38 % too large: 276 pixels beyond 5 sigma in a held-out difference, against 8)
    [path] = write_warps(tmp_path, 1)
    with fits.open(path, mode="update") as hdul:
        h = hdul[0].header
        h["AIRTEMP"], h["HUMIDITY"], h["AIRPRESS"] = 10.0, 20.0, 73000.0
    read_info(path)  # (the station pressure there)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["AIRPRESS"] = 101325.0
    with pytest.raises(InputError, match=r"AIRPRESS = 101325 Pa is 38% above .*\(2663 m\); a pressure"):
        read_info(path)


def test_a_galactic_wcs_is_refused_naming_its_axes(tmp_path):
    # (warp took its (l, b) for (RA, Dec); info crashed; assemble failed after the baseline coadd)
    [path] = write_warps(tmp_path, 1)
    with fits.open(path, mode="update") as hdul:
        hdul[1].header["CTYPE1"], hdul[1].header["CTYPE2"] = "GLON-TAN", "GLAT-TAN"
    with pytest.raises(InputError) as err:
        read_info(path)
    assert "WCS is not equatorial (CTYPE GLON-TAN, GLAT-TAN)" in err.value.reason


def test_an_unknown_radesys_is_refused_naming_the_card(tmp_path):
    # (info and template ended in tracebacks; assemble blamed the other, good, file)
    [path] = write_warps(tmp_path, 1)
    with fits.open(path, mode="update") as hdul:
        hdul[1].header["RADESYS"] = "XYZ"
    with pytest.raises(InputError, match="RADESYS = 'XYZ' is not a sky reference frame"):
        read_info(path)


def test_a_variance_far_below_the_pixels_scatter_skips_the_warp(tmp_path, caplog):
    # a variance map given as a weight map: its weight was millions of times the others', and the coadd
    # was that one warp
    paths = write_warps(tmp_path, 4)
    with fits.open(paths[1], mode="update") as hdul:
        hdul["VARIANCE"].data = np.full_like(hdul["VARIANCE"].data, 1e-7)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    assert [n for n, _ in prep.skipped] == [str(paths[1])]
    assert "times more than its variance says" in prep.skipped[0][1]  # (about 3e3; stars widen it)


def test_pixels_whose_variance_overflows_are_refused_naming_the_units(tmp_path):
    # pixels near 1e33 and no variance: the variance made from their noise overflowed float32, and the
    # warp was skipped as "no usable pixels (all NaN or masked)"
    paths = write_warps(tmp_path, 3)
    with fits.open(paths[1], mode="update") as hdul:
        hdul["IMAGE"].data = (hdul["IMAGE"].data * 1e33).astype(np.float32)
        del hdul["VARIANCE"]
    with pytest.raises(InputError, match="too large for a float32 variance: are its pixels in the right"):
        prepare_inputs(paths).inputs[1].read()


def test_a_warp_that_is_not_sky_subtracted_is_reported(tmp_path, caplog):
    paths = write_warps(tmp_path, 3)
    with fits.open(paths[2], mode="update") as hdul:
        hdul["IMAGE"].data = hdul["IMAGE"].data + 40.0  # (a sky of 40 times the noise)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    assert len(prep.inputs) == 3
    [text] = [r.getMessage() for r in caplog.records if "sky-subtracted" in r.getMessage()]
    assert text.startswith(f"{paths[2]}: its median is ") and "times its pixel noise above 0" in text


def test_one_exposure_under_two_visit_ids_counts_once(tmp_path, caplog):
    # a copy of a warp with another EXPID was coadded as a second visit: twice its weight
    import shutil

    paths = write_warps(tmp_path, 4)
    copy = shutil.copy(paths[1], tmp_path / "warp_copy.fits")
    edit(copy, EXPID=999)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs([*paths, copy])
    [(name, reason)] = prep.skipped
    assert name == str(copy) and reason.startswith(f"its pixels are those of {paths[1]} (one exposure")
    assert len(prep.inputs) == 4


def test_a_named_site_far_from_the_coordinates_is_reported(tmp_path, caplog):
    [path] = write_warps(tmp_path, 1)  # (Rubin's coordinates)
    edit(path, OBSERVAT="Rubin")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        read_info(path)
    assert not caplog.records
    edit(path, OBSERVAT="subaru")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        info = read_info(path)
    [text] = [r.getMessage() for r in caplog.records]
    assert text.startswith(f"{path}: OBSERVAT = 'subaru' lies ") and text.endswith("using OBS-LAT/OBS-LONG")
    assert info.visit.observatory.latitude.deg == pytest.approx(-30.2446, abs=1e-3)


@pytest.mark.parametrize("value", [1e30, "abc"])
def test_an_ltv_that_is_no_pixel_offset_is_refused_naming_the_card(tmp_path, value):
    # LTV1 = 1e30 was a TypeError traceback in assemble (and went into template's outputs as it was);
    # LTV1 = 'abc' was "unreadable or corrupt FITS content"
    [path] = write_warps(tmp_path, 1)
    with fits.open(path, mode="update") as hdul:
        hdul["IMAGE"].header["LTV1"] = value
    with pytest.raises(InputError, match=r"LTV1 = .* is not the image's pixel offset on its parent grid"):
        read_info(path)


def test_a_variance_plane_holding_sigma_skips_the_warp(tmp_path):
    # its variance-rescaling factor of 22 was warned about, and the warp went in with 70 % of the weight
    paths = write_warps(tmp_path, 5)
    for i, path in enumerate(paths):
        with fits.open(path, mode="update") as hdul:  # (noise of 20 image units)
            hdul["IMAGE"].data = hdul["IMAGE"].data * 20
            hdul["VARIANCE"].data = hdul["VARIANCE"].data * 400 if i != 3 else hdul["VARIANCE"].data * 20
    prep = prepare_inputs(paths)
    [(name, reason)] = prep.skipped
    assert name == str(paths[3]) and reason.startswith("its sky pixels scatter ")
    assert "a variance plane holding sigma" in reason and len(prep.inputs) == 4



@pytest.mark.parametrize("amplitude, skipped", [(10.0, True), (4.0, False)])
def test_a_sky_gradient_in_one_warp_is_named_not_blamed_on_its_variance(tmp_path, caplog, amplitude, skipped):
    # A gradient of 10 times the noise across one warp in six was skipped as "a variance plane holding
    # sigma"; one of 4 was kept, with compare-warp's "variance rescaling factor 21 is unusable ... check
    # its variance plane", and went into every product at its weight's share.
    paths = write_warps(tmp_path, 6, shape=(128, 128), crpix=(64.5, 64.5))
    with fits.open(paths[2], mode="update") as hdul:
        hdul["IMAGE"].data = hdul["IMAGE"].data + amplitude * np.linspace(-0.5, 0.5, 128)[None, :]
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    text = caplog.text
    assert "its sky varies by " in text and "a background left in" in text
    assert "holding sigma" not in text and "check its variance plane" not in text
    variation = float(re.search(r"its sky varies by ([\d.]+) times", text).group(1))
    assert variation == pytest.approx(amplitude, rel=0.15)
    assert [name for name, _ in prep.skipped] == ([str(paths[2])] if skipped else [])
    # the other warps' skies are flat: nothing said of them
    assert all(str(p) not in text for i, p in enumerate(paths) if i != 2)


def test_a_sky_that_every_warp_shares_is_not_one_warps_gradient(tmp_path, caplog):
    # (a halo or the survey's own background residual: the same in every warp, it is the sky's)
    paths = write_warps(tmp_path, 6, shape=(128, 128), crpix=(64.5, 64.5))
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            hdul["IMAGE"].data = hdul["IMAGE"].data + 4.0 * np.linspace(-0.5, 0.5, 128)[:, None]
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    assert "its sky varies" not in caplog.text and len(prep.inputs) == 6


def test_a_variance_far_above_the_pixels_scatter_is_reported(tmp_path, caplog):
    # every warp's variance 9 times its noise: the coadd's, model's and templates' variances were 9 times
    # too large, and a difference image's detections 3 sigma too strict, in silence (relative checks
    # against the other warps cannot see a factor they share)
    paths = write_warps(tmp_path, 3)
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            hdul["VARIANCE"].data = hdul["VARIANCE"].data * 9
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    assert len(prep.inputs) == 3
    texts = [r.getMessage() for r in caplog.records if "too large" in r.getMessage()]
    assert len(texts) == 3 and all(re.search(r"variance looks [6-9] times too large", t) for t in texts)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prepare_inputs(write_warps(tmp_path / "right", 3))
    assert "too large" not in caplog.text
