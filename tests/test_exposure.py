"""Exposure: construction, view-backed sub-exposures, masks, and CCDData conversions."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData, InverseVariance, StdDevUncertainty, VarianceUncertainty

from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes


def test_defaults_and_dtypes():
    exp = Exposure(np.ones((3, 4)))
    assert exp.image.dtype == np.float32 and exp.mask.dtype == np.uint32 and exp.variance.dtype == np.float32
    assert not exp.mask.any() and not exp.variance.any()
    assert exp.bbox == Box(0, 0, 4, 3) and exp.shape == (3, 4)
    assert exp.mask_planes == MaskPlanes() and exp.flux_calibration == 1.0
    assert exp.wcs is None and exp.psf is None and exp.visit is None and exp.band is None


def test_band_defaults_to_bandpass_name(bandpass):
    assert Exposure(np.ones((2, 2)), bandpass=bandpass).band == "g"
    assert Exposure(np.ones((2, 2)), bandpass=bandpass, band="g_other").band == "g_other"


@pytest.mark.parametrize("kwargs", [
    {"image": np.ones(5)},
    {"image": np.ones((3, 4)), "mask": np.zeros((4, 3), np.uint32)},
    {"image": np.ones((3, 4)), "variance": np.zeros((3, 5))},
    {"image": np.ones((3, 4)), "flux_calibration": 0.0},
    {"image": np.ones((3, 4)), "flux_calibration": np.nan},
])
def test_invalid_construction(kwargs):
    with pytest.raises(ValueError):
        Exposure(**kwargs)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_signed_masks_keep_bit_31(dtype):
    mask = np.array([[-(2**31), 5]], dtype=dtype)  # bit 31 as a signed FITS int32 stores it
    exp = Exposure(np.zeros((1, 2)), mask=mask)
    assert exp.mask.dtype == np.uint32
    np.testing.assert_array_equal(exp.mask, np.array([[2**31, 5]], dtype=np.uint32))


# -- sub-exposures -------------------------------------------------------------------------------

def test_subexposure_is_view_backed(exposure):
    box = Box(1010, 2005, 20, 15)
    sub = exposure[box]
    assert sub.origin == (1010, 2005) and sub.bbox == box and sub.shape == (15, 20)
    for name in ("image", "mask", "variance"):
        assert np.shares_memory(getattr(sub, name), getattr(exposure, name)), name
    # writing through the view changes the parent at the same parent pixel
    sub.image[0, 0] = -1234.5
    sub.mask[2, 3] = np.uint32(1 << 31)
    sub.variance[14, 19] = 7.0
    assert exposure.image[5, 10] == np.float32(-1234.5)
    assert exposure.mask[7, 13] == 1 << 31
    assert exposure.variance[19, 29] == 7.0
    # the sub-exposure keeps every piece of metadata
    assert sub.psf is exposure.psf and sub.visit is exposure.visit and sub.bandpass is exposure.bandpass
    assert sub.mask_planes == exposure.mask_planes and sub.flux_calibration == exposure.flux_calibration


def test_subexposure_of_subexposure(exposure):
    inner = exposure[Box(1010, 2005, 20, 15)][Box(1012, 2010, 3, 4)]
    assert inner.origin == (1012, 2010)
    np.testing.assert_array_equal(inner.image, exposure.image[10:14, 12:15])
    inner.image[...] = 0.0
    assert not exposure.image[10:14, 12:15].any()


@pytest.mark.parametrize("box", [Box(1010, 2005, 20, 15), Box(1000, 2000, 50, 40), Box(1049, 2039, 1, 1)])
def test_subexposure_wcs_maps_to_the_same_sky(exposure, box):
    sub = exposure.subexposure(box)
    y, x = np.mgrid[:box.height, :box.width]
    dx, dy = box.x0 - exposure.origin[0], box.y0 - exposure.origin[1]
    sky_sub = sub.wcs.pixel_to_world(x, y)
    sky_parent = exposure.wcs.pixel_to_world(x + dx, y + dy)
    assert np.max(sky_sub.separation(sky_parent).to_value(u.arcsec)) < 1e-9
    assert sub.wcs is not exposure.wcs
    # the parent's WCS is untouched
    assert exposure.wcs.wcs.crpix[0] == pytest.approx(50 / 2 + 3.25)


def test_parent_wcs_uses_parent_coordinates(exposure):
    pw = exposure.parent_wcs()
    x0, y0 = exposure.origin
    a = pw.pixel_to_world(x0 + 7, y0 + 3)
    b = exposure.wcs.pixel_to_world(7, 3)
    assert a.separation(b).to_value(u.arcsec) < 1e-9
    assert Exposure(np.ones((2, 2))).parent_wcs() is None


def test_shift_wcs_with_sip_distortion(make_wcs):
    from astropy.wcs import Sip

    w = make_wcs()
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0], b[0, 2], a[1, 1] = 2e-4, -3e-4, 1e-4
    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.wcs.set()
    shifted = shift_wcs(w, -11, 4)
    x, y = np.array([0.0, 30.0, 49.0]), np.array([0.0, 15.0, 39.0])
    sep = shifted.pixel_to_world(x - 11, y + 4).separation(w.pixel_to_world(x, y))
    assert np.max(sep.to_value(u.arcsec)) < 1e-8
    # and the distortion really matters at these pixels
    plain = make_wcs()
    assert np.max(plain.pixel_to_world(x, y).separation(w.pixel_to_world(x, y)).to_value(u.arcsec)) > 0.01


@pytest.mark.parametrize("box", [Box(999, 2000, 5, 5), Box(1000, 2000, 51, 1), Box(0, 0, 1, 1)])
def test_subexposure_outside_is_an_error(exposure, box):
    with pytest.raises(ValueError, match="not inside"):
        exposure[box]


def test_subexposure_needs_a_box(exposure):
    with pytest.raises(TypeError, match="Box"):
        exposure[0:3, 0:3]


def test_copy_is_independent(exposure):
    dup = exposure.copy()
    dup.image[0, 0] = 5.0
    dup.mask[0, 0] = 0
    dup.wcs.wcs.crval = [0.0, 0.0]
    assert exposure.image[0, 0] != 5.0 or np.isnan(exposure.image[0, 0])
    assert exposure.wcs.wcs.crval[0] == 150.1
    assert not np.shares_memory(dup.mask, exposure.mask)


# -- masks ---------------------------------------------------------------------------------------

def test_mask_of_and_set_mask():
    planes = MaskPlanes({"BAD": 0, "SAT": 31})
    mask = np.array([[1, 2**31, 0, 2**31 + 1]], dtype=np.uint32)
    exp = Exposure(np.zeros((1, 4)), mask=mask, mask_planes=planes)
    np.testing.assert_array_equal(exp.mask_of("SAT"), [[False, True, False, True]])
    np.testing.assert_array_equal(exp.mask_of("BAD", "SAT"), [[True, True, False, True]])
    np.testing.assert_array_equal(exp.mask_of("STREAK"), [[False] * 4])  # absent plane: nothing set
    exp.set_mask("STREAK", np.array([[False, False, True, True]]))
    bit = exp.mask_planes.bit("STREAK")
    assert bit not in (0, 31)
    np.testing.assert_array_equal(exp.mask, [[1, 2**31, 1 << bit, 2**31 + 1 + (1 << bit)]])
    np.testing.assert_array_equal(exp.mask_of("STREAK"), [[False, False, True, True]])


# -- CCDData -------------------------------------------------------------------------------------

def test_to_ccddata(exposure):
    ccd = exposure.to_ccddata()
    cal = exposure.flux_calibration
    assert ccd.unit == u.nJy
    np.testing.assert_allclose(ccd.data, exposure.image * cal, rtol=1e-6)
    assert isinstance(ccd.uncertainty, VarianceUncertainty)
    np.testing.assert_allclose(ccd.uncertainty.array, exposure.variance * cal**2, rtol=1e-6)
    # the mask is the boolean OR of the default bad planes, and only of those
    np.testing.assert_array_equal(ccd.mask, exposure.mask_of("BAD", "SAT", "CR", "NO_DATA", "EDGE"))
    assert ccd.mask.dtype == bool and ccd.mask.any() and not ccd.mask.all()
    np.testing.assert_array_equal(exposure.to_ccddata(mask_planes=("BIT31",)).mask,
                                  exposure.mask & np.uint32(2**31) != 0)
    np.testing.assert_array_equal(exposure.to_ccddata(mask_planes=None).mask, exposure.mask != 0)
    assert ccd.wcs.to_header() == exposure.wcs.to_header()
    assert ccd.meta["LTV1"] == -1000 and ccd.meta["LTV2"] == -2000 and ccd.meta["FILTER"] == "g"
    # the physical flux of a pixel is unchanged: value times calibration in nJy
    assert (ccd.data[5, 5] * ccd.unit).to_value(u.Jy) == pytest.approx(exposure.image[5, 5] * cal * 1e-9)


def test_ccddata_round_trip(exposure):
    back = Exposure.from_ccddata(exposure.to_ccddata(mask_planes=("SAT",)))
    cal = exposure.flux_calibration
    assert back.flux_calibration == 1.0  # data are already in nJy
    np.testing.assert_allclose(back.image, exposure.image * cal, rtol=1e-6)
    np.testing.assert_allclose(back.variance, exposure.variance * cal**2, rtol=1e-6)
    np.testing.assert_array_equal(back.mask_of("BAD"), exposure.mask_of("SAT"))  # boolean -> BAD
    assert back.origin == exposure.origin and back.band == "g"
    assert back.wcs.to_header() == exposure.wcs.to_header()


def test_from_ccddata_units_and_uncertainties(make_wcs):
    data = np.arange(12.0).reshape(3, 4)
    std = np.full((3, 4), 2.0)
    ccd = CCDData(data, unit="Jy", uncertainty=StdDevUncertainty(std), wcs=make_wcs())
    exp = Exposure.from_ccddata(ccd, band="r", origin=(5, 6))
    assert exp.flux_calibration == pytest.approx(1e9)  # nJy per Jy
    np.testing.assert_array_equal(exp.image, data)
    np.testing.assert_array_equal(exp.variance, std**2)
    assert exp.origin == (5, 6) and exp.band == "r"
    assert not exp.mask.any()
    # flux in nJy is the same either way
    np.testing.assert_allclose(exp.to_ccddata().data, data * 1e9, rtol=1e-6)

    ivar = CCDData(data, unit="adu", uncertainty=InverseVariance(np.full((3, 4), 0.25)))
    exp = Exposure.from_ccddata(ivar)
    assert exp.flux_calibration == 1.0  # a count unit carries no flux scale
    np.testing.assert_array_equal(exp.variance, np.full((3, 4), 4.0))

    # CCDData itself turns an integer mask into a boolean one, which lands in ``mask_plane``
    uJy = CCDData(data, unit="uJy", mask=np.array([[4, 0, 0, 0]] * 3, dtype=np.uint32))
    exp = Exposure.from_ccddata(uJy, mask_plane="SAT")
    assert exp.flux_calibration == pytest.approx(1e3)
    np.testing.assert_array_equal(exp.mask_of("SAT"), np.array([[1, 0, 0, 0]] * 3, bool))
    assert not exp.mask_of("BAD", "INTRP").any()
    assert not exp.variance.any()


def test_from_ccddata_boolean_mask_plane():
    ccd = CCDData(np.zeros((2, 2)), unit="nJy", mask=np.array([[True, False], [False, True]]))
    exp = Exposure.from_ccddata(ccd, mask_plane="CR")
    np.testing.assert_array_equal(exp.mask_of("CR"), ccd.mask)
    assert exp.mask_planes.names_in(int(exp.mask[0, 0])) == ["CR"]


@pytest.mark.parametrize("kwargs, error, words", [
    ({"mask": np.full((4, 5), 0.5)}, TypeError, "mask must hold integer bit planes"),
    ({"mask": np.full((4, 5), 1 << 40, dtype=np.int64)}, ValueError, "bits above bit 31"),
    ({"origin": (1.7, 2.0)}, ValueError, "origin must be whole pixels"),
    ({"psf": np.ones((3, 3))}, TypeError, "psf must be a Psf"),
])
def test_construction_refuses_what_it_would_silently_change(kwargs, error, words):
    # (float masks were truncated, high bits dropped, origins rounded; an array PSF failed deep in a run)
    with pytest.raises(error, match=words):
        Exposure(image=np.zeros((4, 5)), **kwargs)
    fine = Exposure(image=np.zeros((4, 5)), mask=np.ones((4, 5), dtype=np.int64), origin=(2.0, 3))
    assert fine.origin == (2, 3) and fine.mask.dtype == np.uint32
