"""DCR-matched templates on the science exposure's grid: direct cuts, flux-conserving resampling,
errors, difference images, and the per-file driver."""

import logging
import math
import re

import astropy.units as u
import numpy as np
import pytest
from scipy import ndimage

from conftest import complete_visit, g_bandpass, tan_wcs
from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.dcr.forward import matched_template, subfilter_shifts
from dcrcoadd.dcr.model import DcrModel
from dcrcoadd.errors import InputError
from dcrcoadd.io import read_exposure, write_exposure
from dcrcoadd.io.paths import output_stem
from dcrcoadd.ops.resample import resample_flux
from dcrcoadd.template.build import (
    build_templates,
    difference,
    grid_offset,
    make_template,
)

ORIGIN = (100, 200)
SHAPE = (48, 56)
SOURCE = (127.3, 223.6)  # parent (x, y) of the isolated chromatic source
MODEL_CAL = 2.5

# RA/Dec with alt/az and no time: the zenith is placed from the boresight, so DCR depends
# on position without the RA/Dec-vs-alt/az disagreement of complete_visit's time.
VISIT = complete_visit(airmass=None).replace(time=None, boresight_alt=40 * u.deg, boresight_az=200 * u.deg)


def gaussian(shape, origin, centre, sigma=1.5):
    y, x = np.mgrid[: shape[0], : shape[1]]
    r2 = (x + origin[0] - centre[0]) ** 2 + (y + origin[1] - centre[1]) ** 2
    return np.exp(-0.5 * r2 / sigma**2) / (2 * np.pi * sigma**2)


def make_model(scale_arcsec=0.2, seed=0, source=SOURCE):
    """Three subfilters holding one isolated source, bluest brightest, over SHAPE at ORIGIN."""
    wcs = tan_wcs(crpix=(SHAPE[1] / 2, SHAPE[0] / 2), scale_arcsec=scale_arcsec)
    src = gaussian(SHAPE, ORIGIN, source)
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, np.uint32)
    mask[28, 34] = 1 << MaskPlanes().bit("SAT")  # array (x, y) = (34, 28)
    return DcrModel(images=np.stack([300 * src, 200 * src, 100 * src]), mask=mask,
                    variance=rng.uniform(1.0, 2.0, SHAPE), bandpass=g_bandpass(),
                    subfilter_edges=g_bandpass().subfilter_edges(3), origin=ORIGIN, wcs=wcs,
                    psf=Psf.gaussian(1.5), flux_calibration=MODEL_CAL)


def science_on(model, box, *, wcs=None, visit=VISIT, bandpass=True, cal=MODEL_CAL, origin=None):
    """A science exposure covering ``box`` of the model's grid, or on ``wcs`` with ``box``'s shape."""
    if wcs is None:
        wcs = shift_wcs(model.wcs, -(box.x0 - model.origin[0]), -(box.y0 - model.origin[1]))
    rng = np.random.default_rng(1)
    return Exposure(image=rng.normal(0, 1, box.shape), variance=np.ones(box.shape),
                    origin=box.origin if origin is None else origin, wcs=wcs, psf=Psf.gaussian(2.0),
                    visit=visit, bandpass=g_bandpass() if bandpass is True else bandpass,
                    flux_calibration=cal)


def moments(image):
    image = np.nan_to_num(image.astype(np.float64))
    y, x = np.mgrid[: image.shape[0], : image.shape[1]]
    total = image.sum()
    return total, (image * x).sum() / total, (image * y).sum() / total


# -- grids ----------------------------------------------------------------------------------------

def test_grid_offset_finds_integer_translations_only():
    wcs = tan_wcs()
    assert grid_offset(shift_wcs(wcs, -7, 3), wcs, (20, 30)) == (7, -3)
    assert grid_offset(wcs, wcs, (20, 30)) == (0, 0)
    assert grid_offset(shift_wcs(wcs, 0.3, 0), wcs, (20, 30)) is None
    assert grid_offset(tan_wcs(rotation_deg=0.5), wcs, (20, 30)) is None
    assert grid_offset(tan_wcs(scale_arcsec=0.2002), wcs, (20, 30)) is None


def test_output_stem_drops_fits_suffixes():
    assert output_stem("a/b/visit_12.fits") == "visit_12"
    assert output_stem("v.fits.gz") == "v"
    assert output_stem("v.FITS") == "v"
    assert output_stem("v.dat") == "v"


def shifts_at(model, at, split=False):
    return subfilter_shifts([VISIT], model.wcs, model.origin, model.bandpass, model.subfilter_edges, at,
                            split=split)[0]


# -- same grid ------------------------------------------------------------------------------------

def test_same_grid_template_is_the_model_template_over_the_science_box():
    model = make_model()
    box = Box(110, 208, 30, 26)
    template = make_template(model, science_on(model, box))
    m = 4  # ≥ ceil(max shift) + 1 at 50 deg zenith distance in g
    assert np.max(np.abs(shifts_at(model, box.center, split=True))) < m - 1
    # DCR at the science box's centre, edges computed with light shifted in from outside
    grown = model.build_matched_template(VISIT, bbox=box.grow(m))
    np.testing.assert_array_equal(template.image, grown[m:-m, m:-m])
    # and the same as the model's own template over that box away from its edges
    direct = model.build_matched_template(VISIT, bbox=box)
    np.testing.assert_array_equal(template.image[m:-m, m:-m], direct[m:-m, m:-m])
    sl = box.slices(model.bbox)
    np.testing.assert_allclose(template.variance, 3 * model.variance[sl], rtol=1e-6)
    np.testing.assert_array_equal(template.mask, model.mask[sl])
    assert template.bbox == box and template.visit is VISIT and template.psf is model.psf
    assert template.flux_calibration == MODEL_CAL and template.bandpass == model.bandpass
    assert template.wcs.pixel_to_world(0, 0).separation(
        model.wcs.pixel_to_world(box.x0 - ORIGIN[0], box.y0 - ORIGIN[1])).arcsec < 1e-9


def test_same_grid_with_another_origin_convention_is_still_cut_directly():
    model = make_model()
    box = Box(110, 208, 30, 26)
    science = science_on(model, box, origin=(0, 0))  # same pixels, origin not on the model's parent grid
    template = make_template(model, science)
    np.testing.assert_array_equal(template.image, make_template(model, science_on(model, box)).image)
    assert template.origin == (0, 0)


def test_dcr_is_evaluated_at_the_science_position_not_the_model_centre():
    # 40 arcsec pixels: the model spans 37 arcmin, so DCR differs between its centre and a corner
    model = make_model(scale_arcsec=40.0, source=(107.4, 205.8))
    box = Box(100, 200, 16, 14)  # the corner holding the source
    template = make_template(model, science_on(model, box), split=False)
    at_science = shifts_at(model, box.center)
    at_centre = shifts_at(model, model.bbox.center)
    assert np.max(np.abs(at_science - at_centre)) > 0.003 * np.max(np.abs(at_centre))
    region = box.grow(4).clip(model.bbox)
    images = model.images[(slice(None), *region.slices(model.bbox))]
    np.testing.assert_array_equal(template.image, matched_template(images, at_science)[box.slices(region)])
    assert not np.array_equal(template.image, matched_template(images, at_centre)[box.slices(region)])


def test_template_is_in_the_science_units():
    model = make_model()
    box = Box(110, 208, 30, 26)
    same = make_template(model, science_on(model, box))
    scaled = make_template(model, science_on(model, box, cal=4 * MODEL_CAL))
    np.testing.assert_allclose(scaled.image, same.image / 4, rtol=1e-6)
    np.testing.assert_allclose(scaled.variance, same.variance / 16, rtol=1e-6)
    assert scaled.flux_calibration == 4 * MODEL_CAL


def test_partial_overlap_marks_no_data(caplog):
    model = make_model()
    box = Box(140, 230, 30, 26)  # sticks out of the model at the top right
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        template = make_template(model, science_on(model, box))
    outside = np.ones(box.shape, bool)
    outside[box.intersection(model.bbox).slices(box)] = False
    assert template.mask_of("NO_DATA")[outside].all() and not template.mask_of("NO_DATA")[~outside].any()
    assert np.isnan(template.image[outside]).all() and np.isfinite(template.image[~outside]).all()
    assert "outside the model" in caplog.text


def science_over(model, box, grid):
    """A 30x26 science exposure over ``box`` of the model's grid, on that grid or rotated 20 degrees."""
    if grid == "same":
        return science_on(model, box)
    centre = model.wcs.pixel_to_world(box.x0 - ORIGIN[0] + 14.5, box.y0 - ORIGIN[1] + 12.5)
    wcs = tan_wcs(crval=(centre.ra.deg, centre.dec.deg), crpix=(15.5, 13.5), rotation_deg=20.0)
    return science_on(model, Box(0, 0, 30, 26), wcs=wcs)


@pytest.mark.parametrize("grid", ["same", "rotated"])
def test_a_template_within_dcr_and_psf_reach_of_the_models_edge_is_edge(grid):
    # light from sources beyond the model's edge, which the visit's DCR and PSF spread in, is not in the
    # model: a star on the last column left residuals of 18 sigma 3 px in, unflagged
    model = make_model()
    box = Box(140, 230, 30, 26)  # sticks out of the model at the top right
    science = science_over(model, box, grid)
    template = make_template(model, science)
    width = math.ceil(float(np.max(np.abs(shifts_at(model, box.center)))) + template.psf.fwhm)
    # each science pixel's centre in the model's parent pixels: how far inside the model's edge
    y, x = np.mgrid[: science.shape[0], : science.shape[1]]
    mx, my = model.wcs.world_to_pixel(science.wcs.pixel_to_world(x, y))
    inside = np.minimum(np.minimum(mx, my), np.minimum(SHAPE[1] - 1 - mx, SHAPE[0] - 1 - my))
    edge, no_data = template.mask_of("EDGE"), template.mask_of("NO_DATA")
    assert edge[(inside >= 0) & (inside < width - 1.5)].all()
    assert not edge[inside > width].any() and not (edge & no_data).any()


@pytest.mark.parametrize("grid", ["same", "rotated"])
def test_a_template_within_reach_of_a_hole_in_the_model_is_edge(grid):
    # a hole no warp covers (NO_DATA in the model) lacks its sources' light as the world beyond the
    # model's edge does: a probe's held-out visit left 11.5 sigma a pixel from such a hole, unflagged
    model = make_model()
    hole = slice(14, 26)  # model columns: wider than twice the PSF's FWHM
    model.mask[:, hole] |= np.uint32(1 << model.mask_planes.bit("NO_DATA"))
    box = Box(110, 208, 30, 26)
    science = science_over(model, box, grid)
    template = make_template(model, science)
    width = math.ceil(float(np.max(np.abs(shifts_at(model, box.center)))) + template.psf.fwhm)
    y, x = np.mgrid[: science.shape[0], : science.shape[1]]
    mx, _ = model.wcs.world_to_pixel(science.wcs.pixel_to_world(x, y))
    away = np.maximum(hole.start - np.round(mx), np.round(mx) - (hole.stop - 1))  # (columns from the hole)
    edge = template.mask_of("EDGE")
    assert (away <= 0).any() and edge[away <= width].all()
    assert (away > width).any() and not edge[away > width].any()


def test_a_saturated_core_every_warp_masks_is_no_hole():
    # a few NO_DATA pixels (all warps' SAT core): the forward model's PSF ties them to their neighbours,
    # and the template there is no less good than elsewhere
    model = make_model()
    model.mask[20:23, 24:27] |= np.uint32(1 << model.mask_planes.bit("NO_DATA"))
    template = make_template(model, science_on(model, Box(110, 208, 30, 26)))
    assert not template.mask_of("EDGE")[6:-6, 6:-6].any()


# -- another grid ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dx, dy, rotation", [(0.37, -0.21, 0.0), (0.0, 0.0, 25.0), (-0.45, 0.3, -40.0)])
def test_resampled_template_conserves_flux_and_position(dx, dy, rotation):
    model = make_model()
    box = Box(112, 210, 30, 28)
    reference = make_template(model, science_on(model, box))
    # a science grid on the same sky, shifted by a fraction of a pixel and/or rotated about
    # the model centre (so its footprint lies well inside the model)
    centre = model.wcs.pixel_to_world((SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2)
    wcs = tan_wcs(crval=(centre.ra.deg, centre.dec.deg), crpix=(15.5 + dx, 14.5 + dy), rotation_deg=rotation)
    science = science_on(model, Box(0, 0, 30, 28), wcs=wcs)
    assert grid_offset(science.wcs, model.wcs, science.shape) is None
    template = make_template(model, science)
    assert not template.mask_of("NO_DATA").any()
    f_ref, x_ref, y_ref = moments(reference.image)
    f_new, x_new, y_new = moments(template.image)
    assert f_new == pytest.approx(f_ref, rel=0.01)
    expected = wcs.world_to_pixel(reference.wcs.pixel_to_world(x_ref, y_ref))
    assert x_new == pytest.approx(float(expected[0]), abs=0.05)
    assert y_new == pytest.approx(float(expected[1]), abs=0.05)
    # variance keeps the noise per unit area (same pixel scale: the mean level is unchanged)
    assert np.mean(template.variance) == pytest.approx(3 * np.mean(model.variance), rel=0.05)
    # the saturated model pixel is carried to the science pixel containing its centre
    sat = np.argwhere(template.mask_of("SAT"))
    assert len(sat) == 1
    sx, sy = wcs.world_to_pixel(model.wcs.pixel_to_world(34, 28))
    assert tuple(sat[0]) == (round(float(sy)), round(float(sx)))


def test_resampling_onto_a_coarser_grid_conserves_flux():
    model = make_model()
    box = Box(112, 210, 30, 28)
    reference = make_template(model, science_on(model, box))
    centre = model.wcs.pixel_to_world((SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2)
    wcs = tan_wcs(crval=(centre.ra.deg, centre.dec.deg), crpix=(10.2, 9.7), scale_arcsec=0.3)
    template = make_template(model, science_on(model, Box(0, 0, 20, 19), wcs=wcs))
    assert moments(template.image)[0] == pytest.approx(moments(reference.image)[0], rel=0.01)
    # pixels 2.25x the area: per-pixel variance scales with the area (noise per area kept)
    assert np.nanmedian(template.variance) == pytest.approx(2.25 * 3 * np.median(model.variance), rel=0.1)


@pytest.mark.parametrize("dx, dy", [(0.5, 0.5), (0.37, -0.21)])
def test_a_template_on_a_grid_offset_by_part_of_a_pixel_is_not_blurred(dx, dy):
    # Averaging model pixels over each science pixel (the exact-overlap resampling that templates on
    # another grid had) blurred them by a pixel: a science exposure on its own grid half a pixel from the
    # model's got star peaks 5-7 % low and false detections at bright stars.
    model = make_model()
    box = Box(112, 210, 30, 28)
    reference = make_template(model, science_on(model, box))
    science = science_on(model, box, wcs=shift_wcs(model.wcs, -(box.x0 - model.origin[0]) + dx,
                                                   -(box.y0 - model.origin[1]) + dy))
    assert grid_offset(science.wcs, model.wcs, science.shape) is None
    template = make_template(model, science)
    # science pixel (x, y) is model-grid pixel (x - dx, y - dy) of the reference's box
    expected = ndimage.shift(reference.image.astype(np.float64), (dy, dx), order=3, mode="nearest")
    inner = (slice(4, -4), slice(4, -4))
    assert np.max(template.image[inner]) == pytest.approx(np.max(expected[inner]), rel=0.005)
    np.testing.assert_allclose(template.image[inner], expected[inner], atol=0.005 * np.max(expected))


def test_resampled_partial_overlap_marks_no_data():
    model = make_model()
    corner = model.wcs.pixel_to_world(SHAPE[1] - 1, SHAPE[0] - 1)
    wcs = tan_wcs(crval=(corner.ra.deg, corner.dec.deg), crpix=(10.5, 10.5), rotation_deg=10.0)
    template = make_template(model, science_on(model, Box(0, 0, 20, 20), wcs=wcs))
    no_data = template.mask_of("NO_DATA")
    assert 0.4 < no_data.mean() < 0.9
    assert np.isnan(template.image[no_data]).all() and np.isfinite(template.image[~no_data]).all()
    assert np.isnan(template.variance[no_data]).all()


# -- errors ---------------------------------------------------------------------------------------

def test_science_outside_the_model_is_an_input_error():
    model = make_model()
    with pytest.raises(InputError, match="sci.fits: outside the model's footprint"):
        make_template(model, science_on(model, Box(300, 300, 20, 20)), source="sci.fits")
    far = tan_wcs(crval=(150.2, 2.2))  # 6 arcmin away
    with pytest.raises(InputError, match="outside the model's footprint"):
        make_template(model, science_on(model, Box(0, 0, 20, 20), wcs=far))


def test_science_in_another_band_is_an_input_error():
    model = make_model()
    box = Box(110, 208, 30, 26)
    r = Bandpass("r", 622.0 * u.nm, 140.0 * u.nm)
    with pytest.raises(InputError, match=r"visit \d+: band r \(622.0 nm\) differs from the model's band g"):
        make_template(model, science_on(model, box, bandpass=r))
    name_only = science_on(model, box, bandpass=None)
    name_only.band = "HSC-R"
    with pytest.raises(InputError, match="band HSC-R differs"):
        make_template(model, name_only)
    name_only.band = "lsst-g"  # the same band under a camera-qualified name is fine
    make_template(model, name_only)
    decam_g = Bandpass("decam-g", 481.0 * u.nm, 148.0 * u.nm)  # same band, another camera
    make_template(model, science_on(model, box, bandpass=decam_g))


@pytest.mark.parametrize("lam, width, warned", [(481.0, 148.0, False), (500.0, 150.0, True),
                                                (478.0, 60.0, True)])
def test_a_science_band_near_the_models_but_not_it_is_warned_about(caplog, lam, width, warned):
    # 21 nm off, or 60 nm wide against 149: accepted in silence, while every source of another colour
    # than the field's left a residual
    model = make_model()
    science = science_on(model, Box(110, 208, 30, 26), bandpass=Bandpass("x", lam * u.nm, width * u.nm))
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        make_template(model, science)
    assert ("is not the model's g" in caplog.text and "colour term" in caplog.text) == warned


def test_science_without_visit_or_wcs_is_an_input_error():
    model = make_model()
    box = Box(110, 208, 30, 26)
    with pytest.raises(InputError, match="s.fits: no visit metadata"):
        make_template(model, science_on(model, box, visit=None), source="s.fits")
    no_wcs = science_on(model, box)
    no_wcs.wcs = None
    with pytest.raises(InputError, match="no WCS"):
        make_template(model, no_wcs)
    blank = science_on(model, box)
    blank.image = np.full(blank.shape, np.nan, np.float32)  # e.g. an exposure read from the wrong HDU
    with pytest.raises(InputError, match="s.fits: the science image has no finite pixel"):
        make_template(model, blank, source="s.fits")


def test_templates_say_how_far_they_extrapolate_the_dcr(tmp_path, caplog):
    from dcrcoadd.template.build import write_template

    model = make_model()
    box = Box(110, 208, 30, 26)
    science = science_on(model, box)
    done = VISIT.completed()
    airmass, angle = float(done.airmass), float(done.parallactic_angle.deg)
    # inputs around the science visit: it interpolates (gap 0, no message)
    model.input_conditions = [[airmass - 0.2, angle - 20], [airmass + 0.2, angle - 20], [airmass, angle + 20]]
    assert make_template(model, science).dcr_gap == pytest.approx(0.0, abs=1e-6)
    # inputs of one airmass and parallactic angle elsewhere: degenerate, and this visit differs
    model.input_conditions = [[1.1, angle]] * 4
    with caplog.at_level(logging.INFO, logger="dcrcoadd.template.build"):
        template = make_template(model, science, source="s.fits")
    assert template.dcr_gap > 0.5
    assert "s.fits: the model's 4 warps share nearly one airmass and parallactic angle" in caplog.text
    # inputs that span a range, all on the far side of the zenith: a gap beyond what was validated
    caplog.clear()
    model.input_conditions = [[2.0, angle + 170], [2.0, angle + 190], [1.9, angle + 180]]
    with caplog.at_level(logging.INFO, logger="dcrcoadd.template.build"):
        far = make_template(model, science, source="s.fits")
    assert far.dcr_gap > 2.0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "(airmass 1.90-2.00), farther than the solver was validated" in warned[0]
    path = write_template(template, tmp_path / "t.fits")
    from astropy.io import fits

    assert fits.getheader(path)["DCRGAP"] == pytest.approx(template.dcr_gap, abs=1e-4)


def test_visit_without_geometry_is_an_input_error_naming_the_science():
    model = make_model()
    bare = complete_visit().replace(time=None, boresight_ra=None, boresight_dec=None,
                                    boresight_alt=None, boresight_az=None, airmass=1.3)
    with pytest.raises(InputError, match="s.fits: visit"):
        make_template(model, science_on(model, Box(110, 208, 30, 26), visit=bare), source="s.fits")


# -- difference -----------------------------------------------------------------------------------

def test_difference_of_a_template_with_itself_is_zero_with_doubled_variance():
    model = make_model()
    template = make_template(model, science_on(model, Box(110, 208, 30, 26)))
    diff = difference(template, template)
    np.testing.assert_array_equal(diff.image, 0.0)
    np.testing.assert_allclose(diff.variance, 2 * template.variance, rtol=1e-6)
    np.testing.assert_array_equal(diff.mask, template.mask)


def test_difference_subtracts_in_science_units_and_merges_mask_planes():
    model = make_model()
    box = Box(110, 208, 30, 26)
    science = science_on(model, box)
    science.mask_planes = MaskPlanes({"CR": 0, "ODD": 5})
    science.mask[2, 3] = 1 << 5
    template = make_template(model, science)
    diff = difference(science, template)
    np.testing.assert_allclose(diff.image, science.image - template.image, atol=1e-5)
    np.testing.assert_allclose(diff.variance, science.variance + template.variance, rtol=1e-6)
    assert diff.mask_of("ODD")[2, 3] and diff.mask_of("SAT").sum() == template.mask_of("SAT").sum() == 1
    # a template in other units is converted before subtracting
    doubled = Exposure(image=template.image / 2, variance=template.variance / 4, mask=template.mask,
                       mask_planes=template.mask_planes, origin=template.origin, wcs=template.wcs,
                       flux_calibration=2 * template.flux_calibration)
    np.testing.assert_allclose(difference(science, doubled).image, diff.image, atol=1e-5)
    with pytest.raises(ValueError, match="differ"):
        difference(science, science[Box(111, 209, 5, 5)])


def test_difference_flags_the_pixels_it_has_no_value_for():
    # an unmasked NaN in the science image (or a negative variance) reached the difference unflagged
    model = make_model()
    science = science_on(model, Box(110, 208, 30, 26))
    science.image[4, 5] = np.nan
    science.variance[6, 7] = -1.0
    diff = difference(science, make_template(model, science))
    no_data = diff.mask_of("NO_DATA")
    assert no_data[4, 5] and no_data[6, 7] and no_data.sum() == 2
    assert np.isnan(diff.image[6, 7]) and np.isnan(diff.variance[4, 5])
    assert np.isfinite(diff.image).sum() == diff.image.size - 2


# -- files ----------------------------------------------------------------------------------------

def test_build_templates_writes_files_and_continues_past_failures(tmp_path):
    model = make_model()
    model_path = model.write(tmp_path / "model.fits")
    inputs = tmp_path / "in"
    box = Box(110, 208, 30, 26)
    good = write_exposure(science_on(model, box), inputs / "good.fits")
    red = write_exposure(science_on(model, box, bandpass=Bandpass("r", 622 * u.nm, 140 * u.nm)),
                         inputs / "red.fits")
    centre = model.wcs.pixel_to_world(27.5, 23.5)
    rotated = write_exposure(science_on(model, Box(0, 0, 20, 20), wcs=tan_wcs(
        crval=(centre.ra.deg, centre.dec.deg), crpix=(10.5, 10.5), rotation_deg=30)), inputs / "rot.fits")
    junk = inputs / "junk.fits"
    junk.write_text("not fits")
    first = write_exposure(science_on(model, box), inputs / "twin.fits")
    dup = write_exposure(science_on(model, box), inputs / "again" / "twin.fits")

    out = tmp_path / "out"
    outcomes = build_templates(model_path, [good, first, red, rotated, junk, dup], out, diff=True)
    assert [o.ok for o in outcomes] == [True, False, False, True, False, False]
    assert str(red) in outcomes[2].error and "band r" in outcomes[2].error
    assert str(junk) in outcomes[4].error
    # two files whose outputs share a name: neither is written (the first one was, before the clash)
    assert f"twin_template.fits is also that of {dup}" in outcomes[1].error
    assert f"twin_template.fits is also that of {first}" in outcomes[5].error
    assert sorted(p.name for p in out.iterdir()) == ["good_diff.fits", "good_template.fits",
                                                   "rot_diff.fits", "rot_template.fits"]
    assert outcomes[0].template_path == out / "good_template.fits" and outcomes[0].visit_id == VISIT.id
    written = read_exposure(out / "good_template.fits")
    expected = make_template(model, read_exposure(good))
    np.testing.assert_array_equal(written.image, expected.image)
    # the grids still match after the FITS round trip of both WCSs: the template was cut directly
    np.testing.assert_array_equal(written.image, make_template(model, science_on(model, box)).image)
    assert written.bbox == box and written.visit.id == VISIT.id and written.psf == model.psf
    diff = read_exposure(out / "good_diff.fits")
    np.testing.assert_allclose(diff.image, read_exposure(good).image - expected.image, atol=1e-5)


def test_build_templates_rejects_unusable_inputs(tmp_path):
    model_path = make_model().write(tmp_path / "model.fits")
    with pytest.raises(InputError, match="no science exposures"):
        build_templates(model_path, [], tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        build_templates(model_path, [tmp_path / "a.fits"], tmp_path / "file")
    with pytest.raises(InputError, match="does not exist"):
        build_templates(tmp_path / "missing.fits", [tmp_path / "a.fits"], tmp_path / "out")


def test_resampled_variance_keeps_noise_per_area():
    # white noise of unit variance moved by half a pixel in x: each output pixel averages two
    # inputs (per-pixel variance 1/2, neighbours correlated); the variance plane stays 1, the
    # noise per unit area, which is what sums over many pixels see
    rng = np.random.default_rng(3)
    shape = (128, 128)
    wcs_in = tan_wcs(crpix=(64.5, 64.5))
    wcs_out = tan_wcs(crpix=(64.0, 64.5))
    noise = rng.normal(0.0, 1.0, shape)
    image, variance, coverage = resample_flux(np.stack([noise, np.ones(shape)]), wcs_in, wcs_out, shape, 1.0)
    inner = image[:, 2:-2]
    np.testing.assert_allclose(variance[:, 2:-2], 1.0, rtol=1e-9)
    assert np.var(inner) == pytest.approx(0.5, rel=0.05)
    sums = inner[:, :96].reshape(128, 3, 32).sum(axis=2)  # 32-pixel runs along the shift
    assert np.var(sums) == pytest.approx(32 * 1.0, rel=0.15)
    assert np.all(coverage[:, 2:-2] == pytest.approx(1.0))


def _second_moment_sigma(image):
    image = np.nan_to_num(image.astype(np.float64))
    y, x = np.mgrid[: image.shape[0], : image.shape[1]]
    total, cx, cy = moments(image)
    return math.sqrt((((x - cx) ** 2 + (y - cy) ** 2) * image).sum() / total / 2)


def test_science_psf_on_a_coarser_grid_is_taken_in_its_own_pixels():
    # a PSF-aware model (reference PSF sigma 1.5 model px) and a science exposure with 1.5x larger
    # pixels whose PSF HDU says sigma 1.6 of its own pixels (2.4 model px): the template's star must
    # be as wide as on the model's grid at 2.4 px, and carry that PSF (read as model pixels, the
    # star came out a third narrower)
    import dataclasses

    model = dataclasses.replace(make_model(), forward_model="fourier", wavelength_samples=2,
                                psf_model="warp")
    same = science_on(model, Box(110, 208, 32, 30))
    same.psf = Psf.gaussian(2.4)
    expected = _second_moment_sigma(make_template(model, same).image) / 1.5
    centre = model.wcs.pixel_to_world(SOURCE[0] - ORIGIN[0], SOURCE[1] - ORIGIN[1])
    wcs = tan_wcs(crval=(centre.ra.deg, centre.dec.deg), crpix=(11.0, 10.0), scale_arcsec=0.3)
    science = science_on(model, Box(0, 0, 21, 19), wcs=wcs)
    science.psf = Psf.gaussian(1.6)
    template = make_template(model, science)
    # (plus a pixel's 1/12 px² of resampling)
    assert _second_moment_sigma(template.image) == pytest.approx(math.hypot(expected, math.sqrt(1 / 12)),
                                                                 rel=0.02)
    assert template.psf == science.psf
    # the model's own PSF, when asked for, is mapped onto the science pixels too
    reference = make_template(model, science, psf="reference")
    assert reference.psf.second_moment_sigma == pytest.approx(1.5 / 1.5, rel=0.05)


@pytest.mark.parametrize("sigma, warned", [(0.8, True), (1.6, False)])
def test_a_science_psf_too_coarsely_sampled_for_the_model_grid_is_warned_about(caplog, sigma, warned):
    # 0.3" pixels against the model's 0.2": a PSF of 1.9 px FWHM there cannot be carried onto the
    # model's grid exactly, one of 3.8 px can
    import dataclasses

    model = dataclasses.replace(make_model(), forward_model="fourier", wavelength_samples=2,
                                psf_model="warp")
    centre = model.wcs.pixel_to_world(SOURCE[0] - ORIGIN[0], SOURCE[1] - ORIGIN[1])
    wcs = tan_wcs(crval=(centre.ra.deg, centre.dec.deg), crpix=(11.0, 10.0), scale_arcsec=0.3)
    science = science_on(model, Box(0, 0, 21, 19), wcs=wcs)
    science.psf = Psf.gaussian(sigma)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        make_template(model, science, source="sci.fits")
    message = f"sci.fits: its PSF (FWHM {science.psf.fwhm:.2f} px) is sampled too coarsely"
    assert (message in caplog.text) is warned


def test_build_templates_never_overwrites_a_science_exposure_nor_templates_its_own_outputs(tmp_path):
    import dataclasses

    model = dataclasses.replace(make_model(), flux_unit="nJy")
    model_path = model.write(tmp_path / "model.fits")
    box = Box(110, 208, 30, 26)
    here = tmp_path / "sci"
    a = write_exposure(science_on(model, box), here / "a.fits")
    # a science exposure named like a's template: writing a's template there would destroy it
    clash = write_exposure(science_on(model, box, visit=VISIT.replace(id=VISIT.id + 1)),
                           here / "a_template.fits")
    before = clash.read_bytes()
    outcomes = build_templates(model_path, [a, clash], here)
    assert not outcomes[0].ok and "would overwrite the science exposure" in outcomes[0].error
    assert outcomes[1].ok and clash.read_bytes() == before
    # a rerun into the science directory: its own templates and differences are not science exposures
    clash.unlink()
    (here / "a_template_template.fits").unlink()
    first = build_templates(model_path, sorted(here.glob("*.fits")), here, diff=True)
    again = build_templates(model_path, sorted(here.glob("*.fits")), here, diff=True)
    assert [o.path.name for o in first] == [o.path.name for o in again] == ["a.fits"]
    assert again[0].ok and sorted(p.name for p in here.iterdir()) == ["a.fits", "a_diff.fits",
                                                                      "a_template.fits"]
    # and from the command line, with the files named one by one (a shell's sci/*.fits)
    from dcrcoadd.cli import main

    assert main(["template", str(model_path), *map(str, sorted(here.glob("*.fits"))), "--out", str(here),
                 "--diff", "-q"]) == 0


def test_a_failed_difference_leaves_no_template(tmp_path):
    model = make_model()
    model_path = model.write(tmp_path / "model.fits")
    science = write_exposure(science_on(model, Box(110, 208, 30, 26)), tmp_path / "s.fits")
    (tmp_path / "out" / "s_diff.fits").mkdir(parents=True)  # (cannot be written)
    [outcome] = build_templates(model_path, [science], tmp_path / "out", diff=True)
    assert not outcome.ok and "s_diff.fits" in outcome.error
    assert not (tmp_path / "out" / "s_template.fits").exists()


@pytest.mark.parametrize("unit, calibration, words", [("nJy", None, "has no flux calibration"),
                                                      ("image", 2.0, "is flux-calibrated (FLUXCAL)")])
def test_science_calibration_must_match_the_models_unit(tmp_path, unit, calibration, words):
    import dataclasses

    from astropy.io import fits

    model = dataclasses.replace(make_model(), flux_unit=unit)
    model_path = model.write(tmp_path / "model.fits")
    assert DcrModel.read(model_path).flux_unit == unit
    path = write_exposure(science_on(model, Box(110, 208, 30, 26)), tmp_path / "s.fits")
    with fits.open(path, mode="update") as hdul:
        if calibration is None:
            del hdul[0].header["FLUXCAL"]
        else:
            hdul[0].header["FLUXCAL"] = calibration
    [outcome] = build_templates(model_path, [path], tmp_path / "out")
    assert not outcome.ok and words in outcome.error and "off by" in outcome.error


def test_a_psf_fit_against_an_image_without_the_models_sources_is_refused():
    # (the "fitted" PSF was the prior's, 44 px wide, and the run reported success)
    import dataclasses

    model = dataclasses.replace(make_model(), forward_model="fourier", wavelength_samples=2,
                                psf_model="warp")
    science = science_on(model, Box(110, 208, 30, 26))  # (noise only: the model's source is not there)
    science.psf = None
    with pytest.raises(InputError, match="its PSF cannot be fitted against the model"):
        make_template(model, science)
    # with the source in it, the fit holds
    science.image = science.image * 0.01 + make_template(model, science_on(model, Box(110, 208, 30, 26)),
                                                         psf="reference").image
    assert make_template(model, science).psf_label == "science-fitted"


def test_template_options_that_cannot_apply_are_said_so(tmp_path, caplog):
    import dataclasses

    model = dataclasses.replace(make_model(), forward_model="fourier", wavelength_samples=2)
    model_path = model.write(tmp_path / "model.fits")
    science = write_exposure(science_on(model, Box(110, 208, 30, 26)), tmp_path / "s.fits")
    with pytest.raises(InputError, match="--psf reference renders the templates at the model's own"):
        build_templates(model_path, [science], tmp_path / "out", psf="reference", given_psf_fwhm=3.0)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        [outcome] = build_templates(model_path, [science], tmp_path / "out", order=3, given_psf_fwhm=3.0)
    assert outcome.ok
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "--order is not used" in text and "--psf-fwhm is not used: the model is not PSF-aware" in text
    with pytest.raises(ValueError, match="order must be 1"):
        make_template(model, science_on(model, Box(110, 208, 30, 26)), order=2)


def test_a_science_psf_that_cannot_be_fitted_is_kept_with_a_warning(caplog):
    # a model of measured PSFs fits a science PSF from a file against itself; where the image does not
    # show the model's sources there is nothing to fit, and the file's PSF stays
    import dataclasses
    import logging

    model = dataclasses.replace(make_model(), forward_model="fourier", wavelength_samples=2,
                                psf_model="warp", psfs_measured=True)
    science = science_on(model, Box(110, 208, 30, 26))  # (noise only)
    assert science.psf is not None
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        template = make_template(model, science)
    assert template.psf_label == "science" and template.psf == science.psf
    assert "its PSF cannot be fitted against the model" in caplog.text
    assert "rendered at its own PSF" in caplog.text


@pytest.mark.parametrize("plane, words", [
    ("honest", None),
    ("sigma", r"scatter 3\.[0-3]\d* times what its VARIANCE says .*holding sigma"),  # (noise 10, plane 10)
    # (and the other cause of a narrow scatter: an exposure put through warp was refused for its units)
    ("times 100", r"scatter 0\.(09|10)\d* times what its VARIANCE says .*other units.*resampled from"),
    ("negative", "negative or not a number at 100 % of its pixels"),
])
def test_a_science_variance_that_is_not_its_noise_makes_no_difference_image(tmp_path, caplog, plane, words):
    # the science VARIANCE becomes the difference's: held as sigma, 100x or negative, every 5-sigma
    # detection on the difference was wrong by its factor (or it was all NaN), with exit status 0
    import dataclasses

    model = make_model()
    model = dataclasses.replace(model, variance=model.variance * 1e-6)  # (a deep model: its noise is small)
    model_path = model.write(tmp_path / "model.fits")
    box = Box(ORIGIN[0], ORIGIN[1], SHAPE[1], SHAPE[0])
    science = science_on(model, box)
    science.image *= 10.0
    science.image += make_template(model, science).image
    science.variance = {"honest": 100.0, "sigma": 10.0, "times 100": 1e4, "negative": -100.0}[plane] \
        * np.ones(box.shape)
    path = write_exposure(science, tmp_path / "s.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        [outcome] = build_templates(model_path, [path], tmp_path / "out", diff=True)
    if words is None:
        assert outcome.ok and not [r for r in caplog.records if r.levelno >= logging.WARNING]
        return
    assert not outcome.ok and re.search(words, outcome.error) and str(path) in outcome.error
    assert not any((tmp_path / "out").iterdir())  # (no template either: they are written together)
    # a template alone does not use the science variance
    [alone] = build_templates(model_path, [path], tmp_path / "alone")
    assert alone.ok


def test_a_science_exposure_with_its_sky_is_warned_about_not_blamed_on_its_calibration(tmp_path, caplog):
    # a pedestal of 100 sigma made the flux check read the science as 59x its template's and refuse it,
    # naming its FLUXCAL
    import dataclasses

    model = make_model()
    model = dataclasses.replace(model, variance=model.variance * 1e-6)
    box = Box(ORIGIN[0], ORIGIN[1], SHAPE[1], SHAPE[0])
    science = science_on(model, box)
    science.image = 10.0 * science.image + make_template(model, science).image + 1000.0
    science.variance = 100.0 * np.ones(box.shape)
    path = write_exposure(science, tmp_path / "s.fits")
    model_path = model.write(tmp_path / "model.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        [outcome] = build_templates(model_path, [path], tmp_path / "out")
    assert outcome.ok and re.search(r"its sky lies (9\d|1\d\d) times its pixel noise above its template's",
                                    caplog.text)
    assert "FLUXCAL" not in caplog.text and "fluxes are" not in caplog.text
    assert "The template has none" in caplog.text
    # its difference would hold the sky in every pixel: refused, naming it
    [outcome] = build_templates(model_path, [path], tmp_path / "diff", diff=True)
    assert not outcome.ok and "times its pixel noise above" in outcome.error
    assert "difference image would hold it" in outcome.error

    # a sky of 3 sigma (the sky check used to start at 5): its blocks' sums read as fluxes 1.3 times
    # the template's, blamed on clouds or the calibration; a difference chi2 of 8
    caplog.clear()
    science.image -= 1000.0 - 30.0
    path = write_exposure(science, tmp_path / "s3.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        [outcome] = build_templates(model_path, [path], tmp_path / "out3")
    assert outcome.ok and re.search(r"its sky lies (2\.[89]|3\.\d?) times its pixel noise above", caplog.text)
    assert "fluxes are" not in caplog.text


def test_a_noise_mismatch_with_a_given_psf_names_it_first(caplog):
    # a --psf-fwhm of 3.5 or 12 px against stars of 4.1 left the science's sky (less the template)
    # scattering 1.6-1.8 times its variance, blamed on "a VARIANCE plane holding sigma"
    from dcrcoadd.template.build import check_science_noise

    rng = np.random.default_rng(3)
    shape = (120, 120)
    template = Exposure(image=np.zeros(shape, np.float32), variance=np.full(shape, 0.01, np.float32),
                        psf=Psf.gaussian(fwhm=3.5))
    science = Exposure(image=rng.normal(0.0, 1.7, shape).astype(np.float32),
                       variance=np.ones(shape, np.float32))
    for label, words in (("science-given", "the given PSF, a Gaussian of FWHM 3.50 px (--psf-fwhm)"),
                         ("science", "a VARIANCE plane holding sigma")):
        template.psf_label = label
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
            check_science_noise(science, template, "s.fits")
        [record] = caplog.records
        assert words in record.getMessage() and "scatter 1.7" in record.getMessage()


def test_a_science_exposure_deeper_than_the_model_is_not_refused_for_its_variance(caplog):
    # a 3000 s exposure against a model of 30 s warps: its sky (less the template) scattered 3.2 times
    # its VARIANCE, all of it the template's noise (0.86 with the template's variance), and it was
    # refused as "a VARIANCE plane holding sigma"
    from dcrcoadd.template.build import check_science_noise

    rng = np.random.default_rng(4)
    shape = (120, 120)
    science = Exposure(image=rng.normal(0.0, 1.0, shape).astype(np.float32),
                       variance=np.ones(shape, np.float32))
    template = Exposure(image=rng.normal(0.0, 3.0, shape).astype(np.float32),
                        variance=np.full(shape, 9.0, np.float32))
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        check_science_noise(science, template, "deep.fits")
    [record] = caplog.records
    assert "the template's own noise accounts for it" in record.getMessage()
    # a science VARIANCE holding sigma is still refused: the template's noise does not explain it
    science.variance = np.full(shape, 0.1, np.float32)
    template.variance = np.full(shape, 0.01, np.float32)
    template.image = rng.normal(0.0, 0.1, shape).astype(np.float32)
    with pytest.raises(InputError, match="a VARIANCE plane holding sigma"):
        check_science_noise(science, template, "sigma.fits")
