"""Exposure FITS I/O: exact round trips, subregion reads, foreign files, bad inputs, atomic writes."""

from __future__ import annotations

import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.errors import InputError
from dcrcoadd.io import read_exposure, read_info, write_exposure


def assert_same_exposure(a: Exposure, b: Exposure) -> None:
    """Every field of two exposures is identical (NaNs compare equal)."""
    assert a.image.dtype == b.image.dtype == np.float32
    assert a.mask.dtype == b.mask.dtype == np.uint32
    assert a.variance.dtype == b.variance.dtype == np.float32
    np.testing.assert_array_equal(a.image, b.image)  # treats NaN == NaN
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.variance, b.variance)
    assert a.origin == b.origin
    assert a.mask_planes == b.mask_planes
    assert dict(a.mask_planes) == dict(b.mask_planes)
    if a.wcs is None or b.wcs is None:
        assert a.wcs is None and b.wcs is None
    else:
        assert a.wcs.to_header(relax=True) == b.wcs.to_header(relax=True)
    assert a.psf == b.psf
    assert a.band == b.band
    assert a.flux_calibration == b.flux_calibration
    assert_same_visit(a.visit, b.visit)
    assert a.bandpass == b.bandpass
    if a.bandpass is not None:
        assert a.bandpass.effective_wavelength == b.bandpass.effective_wavelength
        assert a.bandpass.bandwidth == b.bandpass.bandwidth
        if a.bandpass.transmission is None:
            assert b.bandpass.transmission is None
        else:
            np.testing.assert_array_equal(a.bandpass.transmission[0].to_value(u.nm),
                                          b.bandpass.transmission[0].to_value(u.nm))
            np.testing.assert_array_equal(a.bandpass.transmission[1], b.bandpass.transmission[1])


def assert_same_visit(a, b) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.id == b.id
    # The same instant to the nanosecond, whatever the time scale it is held in.
    assert a.time.tai.jd1 == b.time.tai.jd1
    assert abs((a.time - b.time).to_value(u.ns)) < 1.0
    assert a.exposure_time == b.exposure_time
    for name in ("boresight_ra", "boresight_dec", "boresight_az", "boresight_alt", "rotation_angle"):
        va, vb = getattr(a, name), getattr(b, name)
        assert (va is None and vb is None) or va.deg == vb.deg, name
    assert a.airmass == b.airmass
    assert a.rotation_type == b.rotation_type
    assert a.observatory == b.observatory
    if a.observatory is not None:
        assert a.observatory.latitude.deg == b.observatory.latitude.deg
        assert a.observatory.longitude.deg == b.observatory.longitude.deg
        assert a.observatory.elevation == b.observatory.elevation
    assert a.weather == b.weather
    assert a == b


# -- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_is_exact_for_every_field(tmp_path, exposure, compress):
    assert exposure.mask_planes.bit("BIT31") == 31
    assert np.any(exposure.mask & np.uint32(1 << 31))  # bit 31 is really exercised
    path = write_exposure(exposure, tmp_path / "exp.fits", compress=compress)
    back = read_exposure(path)
    assert_same_exposure(exposure, back)
    info = read_info(path)
    assert info.compressed is compress
    assert info.bbox == exposure.bbox


def test_round_trip_utc_time_and_minimal_metadata(tmp_path, make_exposure, make_visit):
    """A UTC time comes back as the same instant; absent optional metadata stays absent (None)."""
    visit = make_visit(with_weather=False).replace(
        time=Time("2023-11-02T07:00:01.5", scale="utc"), observatory=None, boresight_az=None,
        rotation_angle=None, rotation_type=None, exposure_time=None)
    exp = make_exposure(wcs=None, psf=False, visit=visit, bandpass=None, flux_calibration=1.0)
    back = read_exposure(write_exposure(exp, tmp_path / "e.fits"))
    assert_same_exposure(exp, back)
    assert back.visit.weather is None and back.visit.observatory is None
    assert back.visit.boresight_az is None and back.visit.exposure_time is None
    assert back.psf is None and back.wcs is None and back.bandpass is None


def test_round_trip_bandpass_without_curve_and_custom_mask_layout(tmp_path, make_exposure, make_bandpass):
    planes = MaskPlanes({"SAT": 7, "BAD": 30, "NO_DATA": 31, "EDGE": 0})
    exp = make_exposure(mask_planes=planes, bandpass=make_bandpass(with_curve=False))
    back = read_exposure(write_exposure(exp, tmp_path / "e.fits", compress=True))
    assert_same_exposure(exp, back)
    assert back.bandpass.transmission is None
    assert back.mask_planes.bit("NO_DATA") == 31


@pytest.mark.parametrize("compress", [False, True])
def test_sip_distorted_wcs_round_trips_and_subregions_keep_the_sky(tmp_path, make_exposure, make_wcs,
                                                                 compress):
    from astropy.wcs import Sip

    wcs = make_wcs(crpix=(28.25, 18.5))
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    a[2, 0], b[0, 2], a[1, 1], b[3, 0] = 2e-4, -3e-4, 1e-4, 1e-6
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.wcs.set()
    exp = make_exposure(wcs=wcs)
    path = write_exposure(exp, tmp_path / "sip.fits", compress=compress)
    assert_same_exposure(exp, read_exposure(path))
    box = Box(1003, 2005, 17, 11)
    sub = read_exposure(path, bbox=box)
    y, x = np.mgrid[:box.height, :box.width]
    sep = sub.wcs.pixel_to_world(x, y).separation(exp.wcs.pixel_to_world(x + 3, y + 5))
    assert np.max(sep.to_value(u.arcsec)) < 1e-9


def test_written_header_uses_lsst_keywords(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path) as hdul:
        h = hdul[0].header
        assert h["EXPID"] == exposure.visit.id
        assert h["BORE-AIRMASS"] == exposure.visit.airmass
        assert h["FILTER"] == "g" and h["BANDLAM"] == pytest.approx(477.03)
        assert h["OBS-ELEV"] == 2663.0 and h["TIMESYS"] == "TAI"
        assert hdul["IMAGE"].header["LTV1"] == -1000 and hdul["IMAGE"].header["LTV2"] == -2000
        assert hdul["MASK"].header["MP_DETECTED_NEGATIVE"] == 6
        assert hdul["MASK"].data.dtype.kind == "i" and hdul["MASK"].data.dtype.itemsize == 4
        assert hdul["PSF"].data.sum() == pytest.approx(1.0, abs=1e-6)
        assert [h.name for h in hdul][:4] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE"]


# -- subregions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("box", [Box(1003, 2005, 17, 11), Box(1000, 2000, 50, 40), Box(1049, 2039, 1, 1),
                                 Box(1020, 2010, 30, 30)])
def test_subregion_read_equals_slice_of_full_read(tmp_path, exposure, compress, box):
    path = write_exposure(exposure, tmp_path / "e.fits", compress=compress)
    full = read_exposure(path)
    sub = read_exposure(path, bbox=box)
    assert sub.origin == box.origin and sub.bbox == box
    expected = full[box]
    np.testing.assert_array_equal(sub.image, expected.image)
    np.testing.assert_array_equal(sub.mask, expected.mask)
    np.testing.assert_array_equal(sub.variance, expected.variance)
    assert sub.mask_planes == full.mask_planes and sub.psf == full.psf
    # The sub-array's pixels see the same sky as the parent's pixels they came from.
    y, x = np.mgrid[:box.height, :box.width]
    sky_sub = sub.wcs.pixel_to_world(x, y)
    sky_full = full.wcs.pixel_to_world(x + box.x0 - full.origin[0], y + box.y0 - full.origin[1])
    assert np.max(sky_sub.separation(sky_full).to_value(u.arcsec)) < 1e-9


def test_compressed_files_use_square_tiles(tmp_path, make_exposure):
    """Square tiles, so that a box read decompresses about the box, not whole image rows."""
    exp = make_exposure(shape=(200, 150), origin=(0, 0))
    path = write_exposure(exp, tmp_path / "c.fits", compress=True)
    with fits.open(path, disable_image_compression=True) as hdul:
        for name in ("IMAGE", "MASK", "VARIANCE"):
            h = hdul[name].header
            assert (h["ZTILE1"], h["ZTILE2"]) == (128, 128), name
    for box in (Box(100, 120, 40, 50), Box(120, 0, 20, 200), Box(0, 110, 150, 30)):  # across tile edges
        sub = read_exposure(path, bbox=box)
        np.testing.assert_array_equal(sub.image, exp.image[box.slices()])
        np.testing.assert_array_equal(sub.mask, exp.mask[box.slices()])
        np.testing.assert_array_equal(sub.variance, exp.variance[box.slices()])


def test_subregion_read_is_clipped_to_the_exposure(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    sub = read_exposure(path, bbox=Box(1040, 1990, 100, 20))
    assert sub.bbox == Box(1040, 2000, 10, 10)
    np.testing.assert_array_equal(sub.image, exposure.image[:10, 40:])


def test_subregion_not_overlapping_is_an_input_error(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    with pytest.raises(InputError, match="does not overlap") as err:
        read_exposure(path, bbox=Box(0, 0, 100, 100))
    assert str(path) in str(err.value)


# -- files written by other tools ----------------------------------------------------------------

def test_file_written_by_another_tool_reads(tmp_path, make_wcs):
    """Plain astropy output: HIERARCH cards, extra cards, no PSF/weather/MASK/VARIANCE, float64 pixels."""
    rng = np.random.default_rng(3)
    data = rng.normal(size=(12, 15))
    wcs = make_wcs(crpix=(7.0, 6.0))
    primary = fits.Header()
    primary["TELESCOP"] = "Other"
    primary["EXPID"] = 42
    primary["DATE-AVG"] = "2022-01-01T00:00:00.000"
    primary["TIMESYS"] = "UTC"
    primary["BORE-RA"] = 10.5
    primary["BORE-DEC"] = -20.25
    primary["HIERARCH BORE-AIRMASS"] = 1.5
    primary["FILTER"] = "r"
    primary["HISTORY"] = "made elsewhere"
    primary["COMMENT"] = "not by dcrcoadd"
    image_header = wcs.to_header()
    image_header["BUNIT"] = "adu"
    image_header["EXTRA"] = (3, "some other card")
    hdul = fits.HDUList([fits.PrimaryHDU(header=primary),
                         fits.ImageHDU(data=data, header=image_header, name="IMAGE"),
                         fits.ImageHDU(data=np.arange(4.0), name="OTHER")])
    path = tmp_path / "foreign.fits"
    hdul.writeto(path)

    exp = read_exposure(path)
    np.testing.assert_array_equal(exp.image, data.astype(np.float32))
    assert exp.origin == (0, 0)
    assert not exp.mask.any() and exp.mask.dtype == np.uint32
    assert exp.variance.shape == data.shape and exp.variance.dtype == np.float32
    assert exp.psf is None and exp.bandpass is None and exp.band == "r"
    assert exp.flux_calibration == 1.0
    assert exp.mask_planes == MaskPlanes()
    v = exp.visit
    assert v.id == 42 and v.airmass == 1.5 and v.time == Time("2022-01-01", scale="utc")
    assert v.boresight_ra.deg == 10.5 and v.boresight_dec.deg == -20.25
    assert v.weather is None and v.observatory is None and v.boresight_alt is None
    assert exp.wcs.to_header() == wcs.to_header()
    # a subregion of a foreign file works as well
    sub = read_exposure(path, bbox=Box(3, 4, 5, 6))
    np.testing.assert_array_equal(sub.image, data[4:10, 3:8].astype(np.float32))


def test_foreign_unsigned_mask_with_own_bit_layout_translates(tmp_path):
    """A uint32 mask (stored with BZERO by astropy) in another layout keeps its named planes."""
    mask = np.zeros((4, 5), dtype=np.uint32)
    mask[0, 0] = 1 << 31  # SAT in the foreign layout
    mask[1, 1] = 1 << 2   # BAD
    mask[2, 2] = (1 << 31) | (1 << 2)
    mask_header = fits.Header()
    mask_header["MP_SAT"] = 31
    mask_header["MP_BAD"] = 2
    hdul = fits.HDUList([fits.PrimaryHDU(),
                         fits.ImageHDU(data=np.ones((4, 5), np.float32), name="IMAGE"),
                         fits.ImageHDU(data=mask, header=mask_header, name="MASK")])
    path = tmp_path / "m.fits"
    hdul.writeto(path)
    exp = read_exposure(path)
    assert exp.mask_planes.bit("SAT") == 31
    np.testing.assert_array_equal(exp.mask_of("SAT"), mask & (1 << 31) != 0)
    np.testing.assert_array_equal(read_exposure(path, bbox=Box(0, 0, 3, 3)).mask, mask[:3, :3])
    lsst = MaskPlanes()
    translated = lsst.translate(exp.mask, exp.mask_planes)
    assert translated[0, 0] == 1 << lsst.bit("SAT")
    assert translated[1, 1] == 1 << lsst.bit("BAD")
    assert translated[2, 2] == lsst.value("SAT", "BAD")


def test_foreign_scaled_integer_image(tmp_path):
    """An int16 image with BSCALE/BZERO reads as its physical values, whole and in part."""
    raw = np.arange(-600, 600, dtype=np.int16).reshape(30, 40)
    hdu = fits.ImageHDU(data=raw, name="IMAGE")
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 100.0
    path = tmp_path / "scaled.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    physical = (raw * 0.5 + 100.0).astype(np.float32)
    np.testing.assert_array_equal(read_exposure(path).image, physical)
    np.testing.assert_array_equal(read_exposure(path, bbox=Box(5, 7, 11, 13)).image, physical[7:20, 5:16])


def test_unsigned_16_bit_image_keeps_its_blank_pixels_missing(tmp_path):
    """uint16 stored as int16 + BZERO 32768: its BLANK pixels came back as 0 counts of valid data."""
    raw = np.arange(-600, 600, dtype=np.int16).reshape(30, 40)
    raw[3, 4] = raw[10, 20] = -32768
    hdu = fits.ImageHDU(data=raw, name="IMAGE")
    hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 1, 32768, -32768
    path = tmp_path / "u16.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    exposure = read_exposure(path)
    assert np.isnan(exposure.image[3, 4]) and np.isnan(exposure.image[10, 20])
    assert np.isnan(exposure.image).sum() == 2 and exposure.mask_of("NO_DATA").sum() == 2
    assert exposure.image[0, 0] == -600 + 32768


# -- bad inputs ----------------------------------------------------------------------------------

def _reason(err: pytest.ExceptionInfo, path) -> str:
    """The exception names the file; returns the reason part."""
    assert isinstance(err.value, InputError)
    assert err.value.source == str(path)
    assert str(err.value).startswith(f"{path}: ")
    return err.value.reason


@pytest.mark.parametrize("reader", [read_exposure, read_info])
def test_missing_file(tmp_path, reader):
    path = tmp_path / "nope.fits"
    with pytest.raises(InputError) as err:
        reader(path)
    assert "does not exist" in _reason(err, path)


def test_directory(tmp_path):
    with pytest.raises(InputError) as err:
        read_exposure(tmp_path)
    assert "directory" in _reason(err, tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello, this is not FITS\n" * 200, bytes(range(256)) * 20])
def test_not_fits(tmp_path, content):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_exposure(path)
    assert "FITS" in _reason(err, path)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("fraction", [0.02, 0.4, 0.97])
def test_truncated_file(tmp_path, exposure, compress, fraction):
    path = write_exposure(exposure, tmp_path / "e.fits", compress=compress)
    data = path.read_bytes()
    cut = int(len(data) * fraction)
    cut -= cut % 2880 == 0  # never at a block boundary, where the file could be a valid shorter FITS
    path.write_bytes(data[:cut])
    with pytest.raises(InputError) as err:
        read_exposure(path)
    reason = _reason(err, path)
    assert "truncated" in reason or "FITS" in reason or "extension" in reason


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_inside_a_header(tmp_path, exposure, compress):
    """Cut inside the MASK header: astropy would quietly return PRIMARY and IMAGE only."""
    path = write_exposure(exposure, tmp_path / "e.fits", compress=compress)
    with fits.open(path) as hdul:
        start = hdul.fileinfo(hdul.index_of("MASK"))["hdrLoc"]
    data = path.read_bytes()
    path.write_bytes(data[:start + 1000])
    with pytest.raises(InputError) as err:
        read_exposure(path)
    assert "truncated" in _reason(err, path)


def test_junk_after_the_last_extension(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    with path.open("ab") as f:
        f.write(b"partial write of something else" * 10)
    with pytest.raises(InputError) as err:
        read_info(path)
    assert "corrupt" in _reason(err, path)


def _write(path, hdus):
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def test_missing_image_extension(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul if h.name != "IMAGE"]
    _write(path, hdus)
    with pytest.raises(InputError) as err:
        read_exposure(path)
    reason = _reason(err, path)
    assert "IMAGE" in reason and "MASK" in reason  # says what it found instead


def test_mask_shape_differs_from_image(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus[2] = fits.ImageHDU(data=np.zeros((5, 5), np.int32), header=hdus[2].header, name="MASK")
    _write(path, hdus)
    for bbox in (None, Box(1001, 2001, 3, 3)):
        with pytest.raises(InputError) as err:
            read_exposure(path, bbox=bbox)
        reason = _reason(err, path)
        assert "MASK" in reason and "(5, 5)" in reason and "(40, 50)" in reason


def _edit_primary(path, **changes):
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            del hdus[0].header[key]
        else:
            hdus[0].header[key] = value
    return _write(path, hdus)


def test_missing_airmass_and_altitude_are_derived_from_time_pointing_and_site(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    _edit_primary(path, BORE_AIRMASS=None, BORE_ALT=None, BORE_AZ=None)
    v = read_exposure(path).visit
    assert v.boresight_alt.deg == pytest.approx(exposure.visit.boresight_alt.deg, abs=1e-3)
    assert v.boresight_az.deg == pytest.approx(exposure.visit.boresight_az.deg, abs=1e-3)
    assert v.airmass == pytest.approx(1 / np.sin(np.radians(v.boresight_alt.deg)), rel=1e-12)
    assert any("airmass" in n and "computed" in n for n in read_info(path).notes)


def test_missing_airmass_with_nothing_to_derive_it_from_names_file_and_keyword(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    _edit_primary(path, BORE_AIRMASS=None, BORE_ALT=None, DATE_AVG=None)
    with pytest.raises(InputError) as err:
        read_exposure(path)
    assert "BORE-AIRMASS" in _reason(err, path)


def test_missing_airmass_with_altitude_is_derived_from_it(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    _edit_primary(path, BORE_AIRMASS=None, DATE_AVG=None)
    exp = read_exposure(path)
    assert exp.visit.boresight_alt.deg == exposure.visit.boresight_alt.deg
    assert exp.visit.airmass == pytest.approx(1 / np.sin(exp.visit.boresight_alt.rad))  # never a silent zero


@pytest.mark.parametrize("missing", ["OBS-LAT", "OBS-LONG", "OBS-ELEV"])
def test_incomplete_site(tmp_path, exposure, missing):
    path = write_exposure(exposure, tmp_path / "e.fits")
    _edit_primary(path, **{missing.replace("-", "_"): None})
    with pytest.raises(InputError) as err:
        read_exposure(path)
    reason = _reason(err, path)
    assert missing in reason and "site" in reason


@pytest.mark.parametrize(("key", "value", "words"), [
    ("EXPID", "abc", "EXPID"),
    ("BORE_AIRMASS", "high", "BORE-AIRMASS"),
    ("BORE_AIRMASS", 0.5, "airmass"),
    ("DATE_AVG", "yesterday", "DATE-AVG"),
    ("HUMIDITY", 250.0, "HUMIDITY"),
    ("FLUXCAL", -1.0, "FLUXCAL"),
])
def test_invalid_keyword_values(tmp_path, exposure, key, value, words):
    path = write_exposure(exposure, tmp_path / "e.fits")
    _edit_primary(path, **{key: value})
    with pytest.raises(InputError) as err:
        read_exposure(path)
    assert words in _reason(err, path)


def test_invalid_mask_plane_cards(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus[2].header["MP_SAT"] = hdus[2].header["MP_BAD"]  # two planes on one bit
    _write(path, hdus)
    with pytest.raises(InputError) as err:
        read_exposure(path)
    assert "mask plane" in _reason(err, path)


def test_unparsable_table_card_is_an_input_error(tmp_path, exposure):
    """Astropy's VerifyError on a damaged card of the TRANSMISSION table becomes an InputError."""
    path = write_exposure(exposure, tmp_path / "e.fits")
    raw = path.read_bytes()
    i = raw.index(b"TFORM1  = ")
    bad = b"TFORM1  = 12.0.3"
    path.write_bytes(raw[:i] + bad + raw[i + len(bad):])
    with pytest.raises(InputError) as err:
        read_exposure(path)
    assert "corrupt" in _reason(err, path) and "TFORM1" in err.value.reason
    assert isinstance(err.value.__cause__, fits.VerifyError)  # kept for --debug


def test_extension_of_the_wrong_kind(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus[2] = fits.BinTableHDU.from_columns([fits.Column("bits", "J", array=np.arange(3))], name="MASK")
    _write(path, hdus)
    with pytest.raises(InputError) as err:
        read_exposure(path)
    assert "MASK extension is not a readable image" in _reason(err, path)


def test_invalid_wcs_gives_a_one_line_reason(tmp_path, exposure):
    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus[1].header["CTYPE1"] = "RA---XYZ"
    _write(path, hdus)
    with pytest.raises(InputError) as err:
        read_info(path)
    reason = _reason(err, path)
    assert "WCS" in reason and "XYZ" in reason
    assert "\n" not in str(err.value)


def test_require_visit(tmp_path, make_exposure):
    path = write_exposure(make_exposure(visit=None), tmp_path / "e.fits")
    assert read_exposure(path).visit is None
    with pytest.raises(InputError) as err:
        read_exposure(path, require_visit=True)
    assert "visit" in _reason(err, path)


# -- atomic writes -------------------------------------------------------------------------------

def _failing_writeto(self, name, *args, **kwargs):
    """Write half a file, then fail as a full disk would."""
    with open(name, "wb") as f:
        f.write(b"SIMPLE  =                    T" + b" " * 50)
    raise OSError("No space left on device")


def test_failed_write_leaves_no_file(tmp_path, exposure, monkeypatch):
    monkeypatch.setattr(fits.HDUList, "writeto", _failing_writeto)
    with pytest.raises(OSError, match="No space"):
        write_exposure(exposure, tmp_path / "out" / "e.fits")
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_write_keeps_existing_file(tmp_path, make_exposure, monkeypatch):
    path = write_exposure(make_exposure(seed=1), tmp_path / "e.fits")
    before = path.read_bytes()
    monkeypatch.setattr(fits.HDUList, "writeto", _failing_writeto)
    with pytest.raises(OSError):
        write_exposure(make_exposure(seed=2), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.fits"]


def test_successful_write_replaces_existing_file(tmp_path, make_exposure):
    path = write_exposure(make_exposure(seed=1), tmp_path / "e.fits")
    second = make_exposure(seed=2)
    write_exposure(second, path)
    np.testing.assert_array_equal(read_exposure(path).image, second.image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.fits"]


def test_written_files_honour_the_umask(tmp_path, exposure):
    import os

    old = os.umask(0o027)
    try:
        path = write_exposure(exposure, tmp_path / "e.fits")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600


@pytest.mark.parametrize("sigma, outcome", [(0.25, "read"), (0.6, "warned"), (10.0, "refused")])
def test_a_psf_extension_cut_off_by_its_kernel_is_warned_about_or_refused(tmp_path, exposure, caplog, sigma,
                                                                          outcome):
    # a PSF wider than its stamp loses its wings; one that never falls to half its peak is no PSF
    # (sigma in units of the kernel's half-width: its border at 4, 1.7 and 0.1 sigma)
    path = write_exposure(exposure, tmp_path / f"e{sigma:g}.fits")
    with fits.open(path, mode="update") as hdul:
        size = hdul["PSF"].data.shape[0]
        r = (np.arange(size) - size // 2) / (sigma * (size // 2))
        hdul["PSF"].data = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 2).astype(np.float32)
    if outcome == "refused":
        with pytest.raises(InputError) as err:
            read_info(path)
        assert "its PSF extension does not fall to half its peak within its" in _reason(err, path)
        return
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        assert read_info(path).psf is not None
    cut = [r.getMessage() for r in caplog.records if "its PSF extension is cut off" in r.getMessage()]
    assert len(cut) == (outcome == "warned")


@pytest.mark.parametrize("roll, ok", [(0, True), (2, False)])
def test_a_psf_extension_off_its_middle_pixel_is_refused(tmp_path, exposure, roll, ok):
    # an offset kernel moves everything it convolves: a template came out 2.6 px off its science
    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path, mode="update") as hdul:
        hdul["PSF"].data = np.roll(hdul["PSF"].data, roll, axis=1)
    if ok:
        assert read_info(path).psf is not None
        return
    with pytest.raises(InputError) as err:
        read_info(path)
    assert "not centred on its middle pixel (centroid +1." in _reason(err, path)  # (the roll wraps)


@pytest.mark.parametrize("offset", [0.005, 0.2])
def test_a_psf_extension_slightly_off_its_middle_pixel_is_recentred(tmp_path, exposure, caplog, offset):
    # every warp's PSF 0.1-0.45 px off left 9-16 false detections in a simulated field's template
    # differences (0 with them centred), without a word; a science PSF 0.4 px off, 21
    from scipy import ndimage

    from dcrcoadd.core.psf import Psf

    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path, mode="update") as hdul:
        kernel = Psf(ndimage.shift(hdul["PSF"].data.astype(np.float64), (0.0, offset), order=3)).kernel
        hdul["PSF"].data = kernel
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        psf = read_info(path).psf
    recentred = [r.getMessage() for r in caplog.records if "recentred" in r.getMessage()]
    if offset < 0.02:  # (kept as it is)
        np.testing.assert_array_equal(psf.kernel, kernel)
        assert not recentred
        return
    assert np.abs(psf.centroid).max() < 1e-3 and psf.fwhm == pytest.approx(Psf(kernel).fwhm, rel=1e-2)
    assert len(recentred) == 1 and "centroid lies +0.21, -0.00 px (x, y)" in recentred[0]


@pytest.mark.parametrize("name", ["IMAGE", "VARIANCE"])
def test_a_plane_given_twice_is_refused(tmp_path, exposure, name):
    # (the first was read silently)
    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus.append(fits.ImageHDU(data=np.zeros_like(hdus[1].data), name=name))
    _write(path, hdus)
    with pytest.raises(InputError) as err:
        read_info(path)
    assert f"two {name} extensions" in _reason(err, path)


def test_a_mask_without_plane_cards_is_taken_as_bad_where_nonzero(tmp_path, exposure, caplog):
    # a data-quality image's codes (1, 4) were read as LSST bits: BAD, INTRP... as it happened
    import logging

    path = write_exposure(exposure, tmp_path / "e.fits")
    with fits.open(path, mode="update") as hdul:
        for key in [k for k in hdul["MASK"].header if k.startswith("MP_")]:
            del hdul["MASK"].header[key]
        dq = np.zeros(hdul["MASK"].data.shape, dtype=np.int32)
        dq[2, 3], dq[5, 6] = 1, 4
        hdul["MASK"].data = dq
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        read = read_exposure(path)
    bad = read.mask_of("BAD")
    assert bad[2, 3] and bad[5, 6] and bad.sum() == 2
    assert np.count_nonzero(read.mask) == 2 and not read.mask_of("INTRP").any()
    assert any("no MP_<PLANE> cards" in r.getMessage() for r in caplog.records)


def test_checksums_are_verified_as_astropy_computes_them(tmp_path):
    # the ones' complement sum folds its carries back in; DATASUM and CHECKSUM as astropy writes them
    from astropy.io import fits

    from dcrcoadd.io.checksum import failed_checksums, ones_complement_sum

    assert ones_complement_sum(np.array([0xFFFFFFFF, 1], dtype=np.uint32)) == 1
    assert ones_complement_sum(np.array([0xFFFFFFFF, 0xFFFFFFFF], dtype=np.uint32)) == 0xFFFFFFFF
    rng = np.random.default_rng(2)
    hdus = fits.HDUList([fits.PrimaryHDU(),
                         fits.ImageHDU(rng.normal(size=(37, 53)).astype(np.float32), name="A"),
                         fits.ImageHDU(rng.integers(0, 2**31, size=(11, 7)).astype(np.int32), name="B")])
    path = tmp_path / "sums.fits"
    hdus.writeto(path, checksum=True)
    with fits.open(path) as back:
        back.readall()
        assert failed_checksums(path, back) == []
        at = back.fileinfo(2)["datLoc"] + 4 * 20
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))
    with fits.open(path) as back:
        back.readall()
        assert [(f.name, f.data) for f in failed_checksums(path, back)] == [("B", True)]
    plain = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3), np.float32))])
    plain.writeto(path, overwrite=True)
    with fits.open(path) as back:  # (without checksums)
        assert failed_checksums(path, back) is None
