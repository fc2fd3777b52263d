"""Files nobody on the project wrote (issue 15): the LSST afw layout, a DECam Community-Pipeline
cutout, an HSC pipeline calexp and a ZTF science image, each written here as its producer lays it
out, then read (`read_info`, `read_exposure`), described (`dcrcoadd info`) and coadded.

The writers follow the producers' conventions, not this project's:

* afw (``ExposureF.writeFits``): VisitInfo cards in HDU 0 (only the finite ones), IMAGE/MASK/VARIANCE
  identified by ``EXTTYPE`` with no ``EXTNAME``, ``LTV1/2`` and the ``A`` (parent pixel) WCS, ``MP_*``
  bits, then an archive: ``ARCHIVE_INDEX`` and ``ARCHIVE_DATA`` tables named after the classes they
  hold (a ``GaussianPsf``, the ``FilterLabel``, the ``VisitInfo``).
* DECam CP cutout: exposure cards in an empty primary HDU (sexagesimal ``TELRA``/``TELDEC``, west-positive
  ``OBS-LONG`` as strings, ``DATE-OBS`` at the shutter opening, the long ``FILTER`` string, weather in
  ``OUTTEMP``/``PRESSURE`` mbar), detector cards in one image extension named after the CCD (per-amplifier
  gain and saturation, ``FWHM`` in pixels, ``MAGZERO``) with a TPV WCS; no mask, variance or PSF.
* HSC calexp (hscPipe): raw Subaru cards (``EXP-ID``, date-only ``DATE-OBS`` + ``UT``, ``RA2000``,
  ``FILTER01``, ``OUT-TMP`` in kelvin, ``OUT-PRS`` in hPa, ``FLUXMAG0``) over EXTTYPE planes and an archive
  whose PSF is a ``PsfexPsf``.
* ZTF science image: one primary HDU (``OBSMJD`` at mid-exposure, ``FILTER = 'ZTF_r'``, ``MAGZP``,
  ``SEEING`` in pixels, numeric ``TELRA``/``TELDEC``).
"""

from __future__ import annotations

import logging
import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time, TimeDelta

from conftest import star_field, tan_wcs
from dcrcoadd.cli import main
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.observatory import Observatory
from dcrcoadd.core.visit import altaz_of, radec_of, sky_geometry
from dcrcoadd.io import read_exposure, read_info
from dcrcoadd.io.calibration import AB_MAGNITUDE_OF_1_NJY
from dcrcoadd.io.pixels import sky_level_and_noise
from dcrcoadd.physics.dcr import dcr_shifts

SHAPE = (40, 44)


def sexagesimal(deg: float, hours: bool) -> str:
    a = Angle(deg, u.deg)
    return a.to_string(unit=u.hourangle if hours else u.deg, sep=":", precision=3 if hours else 2,
                       alwayssign=not hours, pad=True)


def pointing(site: str, time: Time, az: float, alt: float) -> tuple[float, float]:
    ra, dec = radec_of(az, alt, time, Observatory.from_site(site))
    return float(ra.deg), float(dec.deg)


def image_with_stars(seed: int, sky: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (sky + scale * star_field(SHAPE, rng)).astype(np.float32)


# -- LSST afw ------------------------------------------------------------------------------------

def _archive(classes: list[tuple[str, list[fits.Column]]]) -> list[fits.BinTableHDU]:
    """An afw output archive: the index, then one ARCHIVE_DATA table per class."""
    n = len(classes)
    index = fits.BinTableHDU.from_columns([
        fits.Column("id", "J", array=np.arange(1, n + 1)),
        fits.Column("cat_archive", "J", array=np.arange(1, n + 1)),
        fits.Column("cat_persistable", "J", array=np.zeros(n, int)),
        fits.Column("row0", "J", array=np.zeros(n, int)),
        fits.Column("nrows", "J", array=np.ones(n, int)),
        fits.Column("name", "64A", array=[c for c, _ in classes]),
        fits.Column("module", "64A", array=["lsst.afw.image"] * n),
    ])
    index.header["EXTTYPE"] = "ARCHIVE_INDEX"
    index.header["EXTNAME"] = "ARCHIVE_INDEX"
    index.header["AR_CATN"] = 0
    index.header["AR_NCAT"] = n + 1
    hdus = [index]
    for k, (name, columns) in enumerate(classes, start=1):
        table = fits.BinTableHDU.from_columns(columns)
        table.header["EXTTYPE"] = "ARCHIVE_DATA"
        table.header["AR_CATN"] = k
        table.header["AR_NAME"] = name
        table.header["EXTNAME"] = name
        hdus.append(table)
    return hdus


def afw_visit_cards(visit_id: int, time: Time, site: str, ra: float, dec: float, rotation: float = 0.0,
                    exptime: float = 30.0, weather: bool = True) -> fits.Header:
    obs = Observatory.from_site(site)
    az, alt = altaz_of(ra, dec, time, obs)
    h = fits.Header()
    h["EXPTIME"] = exptime
    h["DARKTIME"] = exptime + 1.2
    t = time.tai.copy()
    t.precision = 9
    h["DATE-AVG"] = (t.isot, "TAI date at middle of observation")
    h["TIMESYS"] = "TAI"
    h["HIERARCH MJD-AVG-UT1"] = float(time.utc.mjd)  # UT1 ~ UTC to well under a second
    h["AVG-ERA"] = 123.456
    h["BORE-RA"], h["BORE-DEC"] = ra, dec
    h["BORE-AZ"], h["BORE-ALT"] = float(az.deg), float(alt.deg)
    h["HIERARCH BORE-AIRMASS"] = float(1.0 / np.sin(alt.rad))
    h["HIERARCH BORE-ROTANG"] = rotation
    h["ROTTYPE"] = "SKY"
    h["OBS-LONG"], h["OBS-LAT"], h["OBS-ELEV"] = obs.longitude.deg, obs.latitude.deg, obs.elevation.value
    if weather:  # afw writes only finite values: HUMIDITY unknown here
        h["AIRTEMP"], h["AIRPRESS"] = 9.25, 74350.0
    h["HIERARCH INSTRUMENT"] = "LSSTCam"
    h["IDNUM"] = visit_id
    h["HIERARCH HAS-SIMULATED-CONTENT"] = False
    h["AR_HDU"] = 5
    h["PSF_ID"] = 1
    return h


AFW_TIME = Time("2025-11-20T05:10:00", scale="utc")
ZTF_TIME = Time("2021-06-01T07:30:00", scale="utc")


def write_afw(path, *, visit_id=2025112000123, time=AFW_TIME, az=140.0,
              alt=55.0, rotation=0.0, wcs_rotation=None, origin=(1200, 3400), band="g", seed=0,
              compress=False, psf_class="GaussianPsf", radec=None):
    """A calexp or warp as ``ExposureF.writeFits`` lays it out (see module notes). The field is at
    ``radec``, or where (az, alt) points at ``time``."""
    ra, dec = pointing("rubin", time, az, alt) if radec is None else radec
    primary = fits.PrimaryHDU(header=afw_visit_cards(visit_id, time, "rubin", ra, dec, rotation))
    wcs = tan_wcs(crval=(ra, dec), crpix=(SHAPE[1] / 2 + 0.5, SHAPE[0] / 2 + 0.5),
                  rotation_deg=rotation if wcs_rotation is None else wcs_rotation)
    planes = MaskPlanes()

    def plane_header(kind: str) -> fits.Header:
        h = fits.Header()
        h["EXTTYPE"] = kind
        h["INHERIT"] = True
        h["LTV1"], h["LTV2"] = -origin[0], -origin[1]
        h["CRPIX1A"], h["CRPIX2A"], h["CRVAL1A"], h["CRVAL2A"] = 1.0, 1.0, float(origin[0]), float(origin[1])
        h["CTYPE1A"], h["CTYPE2A"], h["CUNIT1A"], h["CUNIT2A"] = "LINEAR", "LINEAR", "PIXEL", "PIXEL"
        h["WCSNAMEA"] = "PARENT"
        return h

    image_header = plane_header("IMAGE")
    image_header.extend(wcs.to_header(), update=True)
    mask_header = plane_header("MASK")
    for key, bit in planes.to_header_cards().items():
        mask_header[f"HIERARCH {key}" if len(key) > 8 else key] = bit
    image = image_with_stars(seed)
    mask = np.zeros(SHAPE, np.int32)
    mask[3, 4] = 1 << planes.bit("SAT")
    variance = np.full(SHAPE, 1.0, np.float32)
    hdu = (lambda data, header: fits.CompImageHDU(data=data, header=header, compression_type="GZIP_2",
                                                  quantize_level=0.0)) if compress else \
        (lambda data, header: fits.ImageHDU(data=data, header=header))
    planes_hdus = [hdu(image, image_header), hdu(mask, mask_header), hdu(variance, plane_header("VARIANCE"))]
    if psf_class in ("GaussianPsf", "SingleGaussianPsf"):
        psf_columns = [fits.Column("dimensions_x", "J", array=[21]),
                       fits.Column("dimensions_y", "J", array=[21]), fits.Column("sigma", "D", array=[1.7])]
    else:
        psf_columns = [fits.Column("ctype", "16A", array=["POLY"]), fits.Column("coeffs", "4D",
                                                                              array=[np.arange(4.0)])]
    archive = _archive([
        (psf_class, psf_columns),
        ("PhotoCalib", [fits.Column("calibrationMean", "D", array=[0.0421]),
                        fits.Column("calibrationErr", "D", array=[1e-4]),
                        fits.Column("field", "J", array=[0]), fits.Column("version", "J", array=[1])]),
        ("FilterLabel", [fits.Column("band", "8A", array=[band]), fits.Column("physical", "16A",
                                                                              array=[f"{band}_6"])]),
        ("VisitInfo", [fits.Column("exposureid", "K", array=[visit_id]),
                       fits.Column("boresightrotangle", "D", array=[np.radians(rotation)])]),
    ])
    fits.HDUList([primary, *planes_hdus, *archive]).writeto(path, overwrite=True)
    return path


def test_afw_layout_reads_by_exttype_and_ignores_the_archive(tmp_path):
    path = write_afw(tmp_path / "calexp.fits")
    with fits.open(path) as hdul:  # as the issue describes it: no EXTNAME on the planes
        assert [h.name for h in hdul][:4] == ["PRIMARY", "", "", ""]
    info = read_info(path)
    assert info.layout == "lsst-afw" and info.instrument == "lsst"
    assert info.bbox == Box(1200, 3400, SHAPE[1], SHAPE[0])
    assert info.band == "lsst-g" and info.bandpass.transmission is not None  # FilterLabel -> preset curve
    assert info.psf is not None and info.psf.second_moment_sigma == pytest.approx(1.7, rel=1e-3)
    assert info.psf.shape == (21, 21)
    assert info.flux_calibration == 0.0421 and info.calibration_card == "PhotoCalib"
    v = info.visit
    assert v.id == 2025112000123 and v.rotation_type == "SKY" and v.exposure_time == 30 * u.s
    assert v.time.scale == "tai"
    assert v.weather.temperature.to_value(u.deg_C) == 9.25 and v.weather.humidity == 40.0
    assert any("HUMIDITY" not in n and "humidity 40" in n for n in info.notes)
    exp = read_exposure(path)
    assert exp.mask_of("SAT")[3, 4] and exp.mask_of("SAT").sum() == 1
    np.testing.assert_array_equal(exp.variance, 1.0)
    sub = read_exposure(path, bbox=Box(1210, 3405, 11, 9))
    np.testing.assert_array_equal(sub.image, exp.image[5:14, 10:21])


def test_afw_compressed_and_other_psf_classes(tmp_path):
    path = write_afw(tmp_path / "c.fits", compress=True, psf_class="PsfexPsf")
    info = read_info(path)
    assert info.compressed and info.layout == "lsst-afw" and info.psf is None
    assert any("PsfexPsf" in n and "LSST stack" in n for n in info.notes)
    assert read_exposure(path).image.shape == SHAPE


def test_afw_visit_cards_are_each_optional(tmp_path):
    path = write_afw(tmp_path / "e.fits")
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    for key in ("BORE-AZ", "BORE-ALT", "BORE-AIRMASS", "AIRTEMP", "AIRPRESS", "IDNUM",
                "HIERARCH MJD-AVG-UT1"):
        hdus[0].header.remove(key, ignore_missing=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    v = read_info(path).visit  # geometry derived from time, site and pointing
    assert v.boresight_alt.deg == pytest.approx(55.0, abs=1e-6) and v.weather is None
    assert v.airmass == pytest.approx(1 / math.sin(math.radians(55.0)), rel=1e-6)
    assert v.id == round(v.time.utc.mjd * 86400)  # no identifier card: derived from the time


# -- the rotator angle ----------------------------------------------------------------------------

@pytest.mark.parametrize("rotation", [0.0, 37.0, -121.5])
def test_dcr_direction_and_the_rotator_angle(tmp_path, rotation):
    """Our DCR direction comes from the WCS. On a calexp (pixels that follow the rotator) it agrees
    with LSST's "parallactic angle minus rotator angle" (boresightParAngle - boresightRotAngle, since
    November 2025): the zenith lies at that angle from +y, counted from +y towards -x (ROTTYPE SKY:
    BORE-ROTANG is the position angle of +y). On a warp (pixels on a north-up coadd grid) the rotator
    angle of the visit says nothing about the pixels: the angle is the parallactic angle alone, and
    subtracting the rotator angle there would turn the DCR by it."""
    calexp = read_exposure(write_afw(tmp_path / "calexp.fits", rotation=rotation))
    warp = read_exposure(write_afw(tmp_path / "warp.fits", rotation=rotation, wcs_rotation=0.0))
    assert calexp.visit.rotation_angle.deg == warp.visit.rotation_angle.deg == rotation
    v = calexp.visit
    q_icrs = sky_geometry(v, v.boresight_ra, v.boresight_dec)[1].deg  # zenith PA from ICRS north
    for exp, expected in ((calexp, q_icrs - rotation), (warp, q_icrs)):
        dy, dx = dcr_shifts(exp.visit, exp.wcs, exp.bandpass, 3)[0]  # bluest subfilter: towards the zenith
        angle = math.degrees(math.atan2(-dx, dy))
        assert (angle - expected + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-3)
    # LSST's own parallactic angle is in the apparent frame: it matches to the precession since J2000
    lsst_angle = v.parallactic_angle.deg - rotation
    dy, dx = dcr_shifts(v, calexp.wcs, calexp.bandpass, 3)[0]
    assert (math.degrees(math.atan2(-dx, dy)) - lsst_angle + 180) % 360 - 180 == pytest.approx(0.0, abs=0.5)


# -- DECam Community Pipeline cutout -------------------------------------------------------------

DECAM_TIME = Time("2019-03-10T03:12:45.5", scale="utc")


def decam_wcs_header(ra: float, dec: float) -> fits.Header:
    """A TPV WCS as the CP writes it (0.263"/px, detector axes turned on the sky, small distortion)."""
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TPV", "DEC--TPV"
    h["CRVAL1"], h["CRVAL2"] = ra, dec
    h["CRPIX1"], h["CRPIX2"] = SHAPE[1] / 2 + 0.5, SHAPE[0] / 2 + 0.5
    s = 0.263 / 3600.0
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = 0.0, s, -s, 0.0  # +x south, +y east
    for axis in (1, 2):
        h[f"PV{axis}_0"], h[f"PV{axis}_1"], h[f"PV{axis}_2"] = 0.0, 1.0, 0.0
        h[f"PV{axis}_4"] = 2e-3
    h["RADESYS"] = "ICRS"
    return h


def write_decam_cutout(path, *, expnum=812345, time=DECAM_TIME, az=65.0, alt=52.0, radec=None, airmass=None,
                       seed=1, filter_text="g DECam SDSS c0001 4720.0 1520.0", exptime=90.0, magzero=31.2,
                       obs_long="70.81489"):
    """A CP cutout: exposure cards in the primary, one image extension named after the CCD. The field
    is at ``radec``, or where (az, alt) points at ``time``."""
    start = time - TimeDelta(exptime / 2, format="sec")
    ra, dec = pointing("ctio", time, az, alt) if radec is None else radec
    obs = Observatory.from_site("ctio")
    az_start, alt_start = (a.deg for a in altaz_of(ra, dec, start, obs))
    p = fits.Header()
    p["OBSERVAT"] = "CTIO"
    p["TELESCOP"] = "CTIO 4.0-m telescope"
    p["INSTRUME"] = "DECam"
    p["OBS-LAT"], p["OBS-LONG"], p["OBS-ELEV"] = "-30.16606", obs_long, 2215.0
    p["EXPNUM"] = expnum
    p["OBSTYPE"] = "object"
    p["DATE-OBS"] = start.isot
    p["TIMESYS"] = "UTC"
    p["MJD-OBS"] = float(start.mjd)
    p["EXPTIME"] = exptime
    p["AIRMASS"] = round(1 / math.sin(math.radians(alt_start)), 2) if airmass is None else airmass
    p["TELRA"], p["TELDEC"] = sexagesimal(ra, True), sexagesimal(dec, False)
    p["RA"], p["DEC"] = p["TELRA"], p["TELDEC"]
    p["ZD"] = round(90.0 - alt_start, 2)
    p["AZ"] = round(float(az_start), 2)
    p["OUTTEMP"], p["PRESSURE"], p["HUMIDITY"] = 14.2, 779.0, 21.0
    p["FILTER"] = filter_text
    image = fits.ImageHDU(data=image_with_stars(seed, sky=820.0, scale=40.0), name="N6")
    h = image.header
    h["CCDNUM"], h["DETPOS"] = 37, "N6"
    h["GAINA"], h["GAINB"] = 4.061, 4.249
    h["SATURATA"], h["SATURATB"] = 42059.0, 1500.0  # B low, so that the brightest star saturates
    h["FWHM"] = 4.12
    h["AVSKY"], h["AVSIG"] = 820.0, 14.3
    h["MAGZERO"] = magzero
    h.extend(decam_wcs_header(ra, dec), update=True)
    fits.HDUList([fits.PrimaryHDU(header=p), image]).writeto(path, overwrite=True)
    return path


def write_decam_mef(path, **kwargs):
    """A CP ``ooi`` file of two CCDs: the exposure cards in the primary, images N6 and N7 (N7 east of
    N6 with a gap of 10 px, its own MAGZERO)."""
    one = write_decam_cutout(path.with_name("cutout_" + path.name), **kwargs)
    with fits.open(one) as hdul:
        primary, n6 = hdul[0].copy(), hdul["N6"].copy()
    one.unlink()
    n7 = n6.copy()
    n7.name = "N7"
    n7.header["DETPOS"], n7.header["CCDNUM"], n7.header["MAGZERO"] = "N7", 38, 31.25
    n7.header["CRPIX2"] = n6.header["CRPIX2"] - SHAPE[0] - 10
    n7.data = n7.data[::-1].copy()
    fits.HDUList([primary, n6, n7]).writeto(path)
    return path


def test_decam_multi_extension_file_is_warped_ccd_by_ccd(tmp_path):
    from dcrcoadd.io.fits import ccd_extensions
    from dcrcoadd.resample import warp_exposures

    path = write_decam_mef(tmp_path / "c4d_190310_031200_ooi_g_v1.fits")
    with fits.open(path, mode="update") as hdul:  # (no saturated pixel, whose flux no warp pixel takes)
        for name in ("N6", "N7"):
            hdul[name].header["SATURATA"] = hdul[name].header["SATURATB"] = 1e9
    assert ccd_extensions(path) == ["N6", "N7"]
    n6, n7 = read_info(path, hdu="N6"), read_info(path, hdu="N7")
    assert n6.instrument == n7.instrument == "decam" and n6.visit.id == n7.visit.id == 812345
    assert n7.flux_calibration == pytest.approx(10 ** (0.4 * (AB_MAGNITUDE_OF_1_NJY - 31.25)))
    (outcome,) = warp_exposures([path], tmp_path / "warps")
    warp = read_exposure(outcome.warp_path)
    assert outcome.warp_path.name == "visit812345_warp.fits" and warp.band == "decam-g"
    assert warp.flux_calibration == pytest.approx(n6.flux_calibration)
    # both CCDs in nJy as the file's: N7's pixels scaled by its calibration over N6's, the gap NO_DATA
    total = [float(np.nansum(read_exposure(path, hdu=h).image) * i.flux_calibration) for h, i in
             (("N6", n6), ("N7", n7))]
    assert np.nansum(warp.image) * warp.flux_calibration == pytest.approx(sum(total), rel=2e-3)
    assert 0.05 < warp.mask_of("NO_DATA").mean() < 0.4


def test_decam_data_quality_file_masks_each_ccd_of_the_visit_warp(tmp_path):
    from dcrcoadd.io.options import ReadOptions
    from dcrcoadd.resample import warp_exposures

    path = write_decam_mef(tmp_path / "c4d_190310_031200_ooi_g_v1.fits")
    shape = fits.getdata(path, "N6").shape
    dq = {name: np.zeros(shape, np.int16) for name in ("N6", "N7")}
    dq["N6"][10:13, 10:13] = 5  # a cosmic ray (CP code 5)
    dq["N7"][:, 20] = 1  # a bad column (code 1)
    primary = fits.PrimaryHDU()
    primary.header["PLVER"] = "V5.2.1"
    fits.HDUList([primary, *(fits.CompImageHDU(d, name=n) for n, d in dq.items())]).writeto(
        tmp_path / "c4d_190310_031200_ood_g_v1.fits.fz")
    options = ReadOptions(masks="{stem/_ooi_/_ood_}.fits.fz")  # (the CP's ood files are compressed)
    assert options.read_exposure(path, hdu="N7").mask_of("BAD")[:, 20].all()
    (outcome,) = warp_exposures([path], tmp_path / "warps", read_options=options)
    warp = read_exposure(outcome.warp_path)
    (plain,) = warp_exposures([path], tmp_path / "plain")
    base = read_exposure(plain.warp_path)
    cr, bad = warp.mask_of("CR") & ~base.mask_of("CR"), warp.mask_of("BAD") & ~base.mask_of("BAD")
    assert 9 <= cr.sum() <= 25  # the 3x3 px hit, as resampled onto the warp's pixels
    assert bad.sum() >= shape[0]  # the column


def test_des_single_epoch_image_reads_its_mask_bits_and_weight(tmp_path):
    # DESDM's red/immasked files: SCI, MSK (DESDM bits) and WGT (inverse variance) of one CCD, which
    # were taken for three CCDs of a multi-extension file (MSK and WGT warped as images)
    from dcrcoadd.errors import InputError
    from dcrcoadd.io.fits import ccd_extensions

    cut = write_decam_cutout(tmp_path / "cutout.fits")
    with fits.open(cut) as hdul:
        primary, sci = hdul[0].copy(), hdul["N6"].copy()
    msk = np.zeros(sci.data.shape, np.int16)
    msk[3, 3], msk[3, 9], msk[9, 3], msk[9, 9], msk[15, 3] = 1, 2 | 64, 16, 512, 4096
    wgt = np.full(sci.data.shape, 0.004, np.float32)
    wgt[20, 20] = 0.0
    path = tmp_path / "D00812345_g_c37_r4001p01_immasked.fits"
    fits.HDUList([primary, fits.ImageHDU(sci.data, sci.header, name="SCI"), fits.ImageHDU(msk, name="MSK"),
                  fits.ImageHDU(wgt, name="WGT")]).writeto(path)
    assert ccd_extensions(path) == []  # one exposure
    info = read_info(path)
    assert info.layout == "desdm" and info.visit.id == 812345
    exp = read_exposure(path)
    np.testing.assert_array_equal(exp.image, sci.data)
    assert exp.variance[0, 0] == pytest.approx(250.0) and exp.mask_of("BAD")[20, 20]
    assert exp.mask_of("BAD")[3, 3] and exp.mask_of("SAT")[3, 9] and exp.mask_of("CR")[9, 3]
    assert exp.mask_of("EDGE")[9, 9] and exp.mask_of("BAD")[15, 3]  # (4096: a bit DESDM does not define)
    sub = read_exposure(path, Box(2, 2, 20, 25))
    np.testing.assert_array_equal(sub.mask, exp.mask[2:27, 2:22])
    notes = "\n".join(info.notes)
    assert "1/weight from its WGT extension" in notes and "its MSK extension's DESDM bits" in notes
    with fits.open(path) as hdul:
        fits.HDUList([hdul[0].copy(), hdul["SCI"].copy(), fits.ImageHDU(msk[:10], name="MSK")]).writeto(
            tmp_path / "cut.fits")
    with pytest.raises(InputError, match=r"its MSK extension has shape \(10, 44\), SCI \(40, 44\)"):
        read_info(tmp_path / "cut.fits")


@pytest.mark.parametrize("name, to_plane", [("ERR", np.sqrt), ("IVAR", lambda v: 1.0 / v),
                                             ("WEIGHT", lambda v: 1.0 / v)])
def test_a_noise_plane_under_another_name_is_read_as_the_variance(tmp_path, caplog, name, to_plane):
    # IMAGE and MASK with the noise as an ERR (sigma) or IVAR/WEIGHT (inverse variance) extension: the
    # extension was ignored and the variance made from the whole image's scatter instead
    from conftest import random_exposure
    from dcrcoadd.io import write_exposure

    exp = random_exposure(shape=(30, 40))
    write_exposure(exp, tmp_path / "plain.fits")
    with fits.open(tmp_path / "plain.fits") as hdul:
        planes = [h.copy() for h in hdul]
    noise = next(h for h in planes if h.name == "VARIANCE")
    noise.data = to_plane(noise.data.astype(np.float64)).astype(np.float32)
    noise.data[5, 6] = 0.0 if name == "ERR" else -1.0  # (unusable: BAD)
    noise.name = name
    fits.HDUList(planes).writeto(tmp_path / "noise.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        got = read_exposure(tmp_path / "noise.fits")
    assert not caplog.records
    good = np.ones(exp.image.shape, bool)
    good[5, 6] = False
    np.testing.assert_allclose(got.variance[good], exp.variance[good], rtol=1e-5)
    assert got.mask_of("BAD")[5, 6] and not np.isfinite(got.variance[5, 6])
    assert name in "\n".join(read_info(tmp_path / "noise.fits").notes)


def test_an_image_with_its_err_plane_is_one_exposure_and_an_unknown_plane_is_reported(tmp_path, caplog):
    from dcrcoadd.io.fits import ccd_extensions

    cut = write_decam_cutout(tmp_path / "cutout.fits")
    with fits.open(cut) as hdul:
        primary, sci = hdul[0].copy(), hdul["N6"].copy()
    err = np.full(sci.data.shape, 14.0, np.float32)
    path = tmp_path / "sci_err.fits"
    fits.HDUList([primary, fits.ImageHDU(sci.data, sci.header, name="SCI"),
                  fits.ImageHDU(err, name="ERR")]).writeto(path)
    assert ccd_extensions(path) == []  # (not two CCDs named SCI and ERR)
    exp = read_exposure(path)
    np.testing.assert_array_equal(exp.image, sci.data)
    np.testing.assert_allclose(exp.variance, 196.0)
    # an extension of the image's shape under a name that says nothing: its variance is made from the
    # image, and the file is named in a warning
    other = tmp_path / "sci_wht.fits"
    with fits.open(tmp_path / "sci_err.fits") as hdul:
        fits.HDUList([primary, fits.ImageHDU(sci.data, sci.header, name="IMAGE"),
                      fits.ImageHDU(err, name="WHT")]).writeto(other)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        read_exposure(other)
    assert "its WHT extension is not read" in caplog.text and "sci_wht.fits" in caplog.text


def test_decam_cutout_reads_with_the_preset(tmp_path, caplog):
    path = write_decam_cutout(tmp_path / "c4d_190310_031200_ooi_g_v1_N6.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        info = read_info(path)
    assert not caplog.records  # everything consistent: nothing to report
    assert info.layout == "image" and info.instrument == "decam"
    assert info.band == "decam-g" and info.bandpass.transmission is not None
    from astropy.wcs import WCS

    cp = WCS(fits.getheader(path, "N6"))  # the TPV distortion, as the CP header gives it
    corners = [[0, 0], [43, 39]]
    np.testing.assert_allclose(info.wcs.all_pix2world(corners, 0), cp.all_pix2world(corners, 0),
                               rtol=0, atol=1e-12)
    v = info.visit
    assert v.id == 812345
    assert abs((v.time - DECAM_TIME).to_value(u.s)) < 1e-3  # DATE-OBS + EXPTIME/2
    assert v.observatory.longitude.deg == pytest.approx(-70.81489)  # OBS-LONG is west-positive
    assert v.boresight_ra.deg == pytest.approx(pointing("ctio", DECAM_TIME, 65.0, 52.0)[0], abs=1e-5)
    assert v.airmass == pytest.approx(1 / math.sin(math.radians(52.0)), abs=0.02)
    assert v.weather.pressure.to_value(u.Pa) == 77900.0  # PRESSURE is mbar
    assert info.flux_calibration == pytest.approx(10 ** (0.4 * (AB_MAGNITUDE_OF_1_NJY - 31.2)))
    assert info.calibration_card == "MAGZERO"
    assert info.psf.fwhm == pytest.approx(4.12, rel=0.02)
    notes = "\n".join(info.notes)
    for fragment in ("EXPTIME/2", "west longitude", "TELRA/TELDEC", "PRESSURE", "GAINA/GAINB",
                     "SATURATA/SATURATB", "FWHM"):
        assert fragment in notes, fragment


def test_decam_cutout_variance_mask_from_the_header(tmp_path):
    path = write_decam_cutout(tmp_path / "c.fits")
    exp = read_exposure(path)
    with fits.open(path) as hdul:
        data = hdul["N6"].data.astype(np.float64)
    sky, sigma = sky_level_and_noise(data.ravel())
    gain = (4.061 + 4.249) / 2
    np.testing.assert_allclose(exp.variance, sigma**2 + np.clip(data - sky, 0, None) / gain, rtol=1e-5)
    np.testing.assert_array_equal(exp.mask_of("SAT"), data >= 1500.0)
    assert exp.mask_of("SAT").sum() > 0 and not exp.mask_of("NO_DATA").any()
    sub = read_exposure(path, bbox=Box(7, 5, 20, 17))  # the same planes, region by region
    np.testing.assert_array_equal(sub.variance, exp.variance[5:22, 7:27])
    np.testing.assert_array_equal(sub.mask, exp.mask[5:22, 7:27])


def test_the_sky_noise_of_an_image_without_variance_leaves_its_sources_out():
    # the normalised MAD of all pixels counted the sources' wings as sky noise: a variance 1.8 and 8
    # times too large on simulated fields with 15 stars and hundreds, so false detections were missed
    # (and a dense field's difference refused as if its variance were in other units)
    rng = np.random.default_rng(4)
    ny = nx = 300
    yy, xx = np.mgrid[:ny, :nx]
    sources = np.zeros((ny, nx))
    for x, y, flux in zip(rng.uniform(0, nx, 800), rng.uniform(0, ny, 800), rng.lognormal(7, 1.5, 800),
                          strict=True):
        sources += flux / (2 * np.pi * 9) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 18)
    image = 100.0 + sources + rng.normal(0, 10.0, (ny, nx))
    sky, sigma = sky_level_and_noise(image.ravel())
    mad = 1.4826 * np.median(np.abs(image - np.median(image)))  # (what it replaces)
    assert 10.0 < sigma < 12.5 and mad > 17.0 and 100.0 < sky < 108.0  # (faint wings overlap everywhere)
    # a pure Gaussian sky: exact
    sky, sigma = sky_level_and_noise(rng.normal(-5.0, 2.0, 10**6))
    assert sigma == pytest.approx(2.0, rel=0.01) and sky == pytest.approx(-5.0, abs=0.01)


def test_decam_header_airmass_contradicting_the_geometry_is_reported(tmp_path, caplog):
    path = write_decam_cutout(tmp_path / "c.fits", airmass=1.45)  # the geometry says 1.27
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        v = read_info(path).visit
    assert v.airmass == pytest.approx(1 / math.sin(math.radians(52.0)), abs=1e-3)
    [text] = [r.getMessage() for r in caplog.records]
    assert str(path) in text and "AIRMASS = 1.45" in text and "TELRA/TELDEC at DATE-OBS" in text
    assert "using 1.26" in text


def test_decam_cutout_without_pointing_cards_uses_the_wcs_centre(tmp_path):
    path = write_decam_cutout(tmp_path / "c.fits")
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    for key in ("TELRA", "TELDEC", "RA", "DEC", "ZD", "AZ", "AIRMASS", "OBS-LAT", "OBS-LONG", "OBS-ELEV",
                "OBSERVAT"):
        del hdus[0].header[key]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    info = read_info(path)
    v = info.visit
    centre = info.wcs.all_pix2world((SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2, 0)
    assert v.boresight_ra.deg == pytest.approx(float(centre[0]))
    assert v.observatory.latitude.deg == pytest.approx(Observatory.from_site("ctio").latitude.deg)
    assert v.airmass == pytest.approx(1 / math.sin(math.radians(52.0)), abs=1e-3)
    notes = "\n".join(info.notes)
    assert "WCS centre" in notes and "decam preset" in notes


def test_decam_filter_outside_the_presets(tmp_path):
    path = write_decam_cutout(tmp_path / "c.fits", filter_text="N964 DECam c0008 9645.0 94.0")
    info = read_info(path)
    assert info.bandpass is None and info.band.startswith("N964")
    assert any("not a decam band" in n for n in info.notes)


# -- HSC pipeline calexp --------------------------------------------------------------------------

HSC_START = Time("2016-03-10T13:05:27.396", scale="utc")


def write_hsc(path, *, exp_id=12346, start=HSC_START, exptime=150.0, az=210.0, alt=63.0, seed=2,
              fluxmag0=6.3e10, out_tmp=275.35, radec=None):
    """An HSC calexp (see module notes); the field is at ``radec``, or where (az, alt) points at
    mid-exposure."""
    mid = start + TimeDelta(exptime / 2, format="sec")
    ra, dec = pointing("subaru", mid, az, alt) if radec is None else radec
    obs = Observatory.from_site("subaru")
    az_s, alt_s = altaz_of(ra, dec, start, obs)
    p = fits.Header()
    p["TELESCOP"], p["INSTRUME"] = "Subaru", "Hyper Suprime-Cam"
    p["EXP-ID"], p["FRAMEID"] = f"HSCE{exp_id:08d}", f"HSCA{exp_id * 100 + 42:08d}"
    p["DATE-OBS"], p["UT"] = start.isot[:10], start.isot[11:]
    p["MJD"] = float(start.mjd)
    p["EXPTIME"] = exptime
    p["RA2000"], p["DEC2000"] = sexagesimal(ra, True), sexagesimal(dec, False)
    p["ALTITUDE"], p["AZIMUTH"] = round(float(alt_s.deg), 4), round(float(az_s.deg), 4)
    p["AIRMASS"] = round(1 / math.sin(alt_s.rad), 3)
    p["FILTER01"] = "HSC-G"
    p["OUT-TMP"], p["OUT-PRS"], p["OUT-HUM"] = out_tmp, 615.3, 12.0
    p["FLUXMAG0"], p["HIERARCH FLUXMAG0ERR"] = fluxmag0, 1.2e7
    wcs = tan_wcs(crval=(ra, dec), crpix=(SHAPE[1] / 2 + 0.5, SHAPE[0] / 2 + 0.5), scale_arcsec=0.168,
                  rotation_deg=-90.0)
    planes = MaskPlanes()
    headers = []
    for kind in ("IMAGE", "MASK", "VARIANCE"):
        h = fits.Header()
        h["EXTTYPE"] = kind
        h["LTV1"], h["LTV2"] = -512, -1024
        headers.append(h)
    headers[0].extend(wcs.to_header(), update=True)
    for key, bit in planes.to_header_cards().items():
        headers[1][f"HIERARCH {key}" if len(key) > 8 else key] = bit
    hdus = [fits.PrimaryHDU(header=p),
            fits.ImageHDU(image_with_stars(seed), headers[0]),
            fits.ImageHDU(np.zeros(SHAPE, np.int32), headers[1]),
            fits.ImageHDU(np.full(SHAPE, 2.0, np.float32), headers[2]),
            *_archive([("PsfexPsf", [fits.Column("ctype", "16A", array=["POLY"])])])]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def test_hsc_calexp_reads_with_the_preset(tmp_path, caplog):
    path = write_hsc(tmp_path / "CORR-0012346-042.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        info = read_info(path)
    assert not caplog.records
    assert info.layout == "lsst-afw" and info.instrument == "hsc"
    assert info.band == "hsc-g" and info.bbox.origin == (512, 1024)
    v = info.visit
    assert v.id == 12346
    assert abs((v.time - (HSC_START + TimeDelta(75.0, format="sec"))).to_value(u.s)) < 1e-3  # DATE-OBS+UT
    assert v.weather.temperature.to_value(u.deg_C) == pytest.approx(2.2)  # OUT-TMP is kelvin
    assert v.weather.pressure.to_value(u.Pa) == pytest.approx(61530.0)  # OUT-PRS is hPa
    assert v.observatory == Observatory.from_site("subaru")
    assert info.flux_calibration == pytest.approx(3631e9 / 6.3e10) and info.calibration_card == "FLUXMAG0"
    assert info.psf is None and any("PsfexPsf" in n for n in info.notes)
    # the header alt/az of the shutter opening agree with the mid-exposure geometry to the tolerance
    assert v.boresight_alt.deg == pytest.approx(63.0, abs=0.5)


def test_hsc_temperature_in_kelvin_is_checked_after_conversion(tmp_path):
    from dcrcoadd.errors import InputError

    path = write_hsc(tmp_path / "c.fits", out_tmp=2.2)  # degrees C written where kelvin belongs
    with pytest.raises(InputError) as err:
        read_info(path)
    assert err.value.reason.startswith("OUT-TMP = 2.2 (K in hsc headers): ")


# -- ZTF science image ----------------------------------------------------------------------------

def write_ztf(path, *, time=ZTF_TIME, az=280.0, alt=48.0, seed=3):
    ra, dec = pointing("palomar", time, az, alt)
    wcs = tan_wcs(crval=(ra, dec), crpix=(SHAPE[1] / 2 + 0.5, SHAPE[0] / 2 + 0.5), scale_arcsec=1.01)
    h = wcs.to_header()
    h["INSTRUME"], h["TELESCOP"] = "ZTF/MOSAIC", "P48"
    h["FILTER"], h["FILTERID"] = "ZTF_r", 2
    h["EXPID"], h["FRAMENUM"] = 153712345, 1234
    h["OBSMJD"] = float(time.mjd)
    h["DATE-OBS"] = (time - TimeDelta(15, format="sec")).isot
    h["EXPTIME"] = 30.0
    h["AIRMASS"] = round(1 / math.sin(math.radians(alt)), 3)
    h["TELRA"], h["TELDEC"] = ra, dec
    h["GAIN"], h["SATURATE"], h["SEEING"], h["MAGZP"] = 6.2, 48000.0, 2.1, 26.3
    image = image_with_stars(seed, sky=150.0, scale=10.0)
    fits.PrimaryHDU(data=image, header=h).writeto(path, overwrite=True)
    return path


def test_ztf_mask_image_gives_the_planes_of_its_bits(tmp_path):
    image = write_ztf(tmp_path / "ztf_20190412_000812_zr_c04_o_q3_sciimg.fits")
    bits = {(5, 5): 1 << 0, (5, 9): 1 << 1, (9, 5): 1 << 8 | 1 << 1, (9, 9): 1 << 9, (13, 5): 1 << 7,
            (13, 9): 1 << 10, (17, 5): 1 << 12, (17, 9): 1 << 6, (21, 5): 1 << 14}
    dq = np.zeros(SHAPE, np.int16)
    for yx, value in bits.items():
        dq[yx] = value
    fits.PrimaryHDU(dq).writeto(tmp_path / "ztf_20190412_000812_zr_c04_o_q3_mskimg.fits")
    plain = read_exposure(image)
    exp = read_exposure(image, masks="{name/sciimg/mskimg}")  # auto: the ZTF preset's bits
    assert exp.mask_of("STREAK")[5, 5] and exp.mask_of("SAT")[9, 5] and exp.mask_of("BAD")[9, 9]
    assert exp.mask_of("CR")[13, 5] and exp.mask_of("NO_DATA")[13, 9] and exp.mask_of("BAD")[17, 9]
    assert exp.mask_of("BRIGHT_OBJECT")[17, 5] and not exp.mask_of("BAD")[17, 5]  # a bright star's halo
    assert exp.mask_of("BAD")[21, 5]  # a bit ZTF does not define
    assert exp.mask[5, 9] == plain.mask[5, 9]  # a source detected there
    assert any("(ZTF mask bits; --masks" in n for n in read_info(image, masks="{name/sciimg/mskimg}").notes)


def test_ztf_science_image_reads_with_the_preset(tmp_path):
    info = read_info(write_ztf(tmp_path / "ztf_sciimg.fits"))
    assert info.layout == "image" and info.instrument == "ztf" and info.band == "ztf-r"
    assert info.bandpass.effective_wavelength.to_value(u.nm) == pytest.approx(640.6)
    v = info.visit
    assert v.id == 153712345 and v.observatory == Observatory.from_site("palomar")
    assert abs((v.time - Time("2021-06-01T07:30:00", scale="utc")).to_value(u.s)) < 1e-3  # OBSMJD is mid
    assert info.calibration_card == "MAGZP" and info.psf.fwhm == pytest.approx(2.1, rel=0.02)


# -- dcrcoadd info and assemble on foreign files --------------------------------------------------

@pytest.mark.parametrize("writer", [write_afw, write_decam_cutout, write_hsc, write_ztf])
def test_info_describes_each_layout_and_says_where_values_came_from(tmp_path, capsys, writer):
    path = writer(tmp_path / "x.fits")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "from:        layout:" in out and "time:" in out and "airmass:" in out
    assert "DCR (dy,dx):" in out  # the visit's geometry is complete enough for DCR


def test_assemble_decam_cutouts(tmp_path, capsys):
    """Four visits of one field on one (TPV) grid, taken as the CP delivers them."""
    field = pointing("ctio", DECAM_TIME, 65.0, 40.0)  # rising in the east, then across the meridian
    paths = []
    for i, hours in enumerate([0.0, 1.3, 2.9, 4.4]):
        time = DECAM_TIME + TimeDelta(hours * 3600, format="sec")
        paths.append(write_decam_cutout(tmp_path / f"c{i}.fits", expnum=812345 + i, time=time, radec=field,
                                        seed=10 + i))
    out = tmp_path / "out"
    status = main(["assemble", *map(str, paths), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert (out / "coadd.fits").exists() and (out / "model.fits").exists()


def _strip(path, *keys, hdu=0):
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    for key in keys:
        hdus[hdu].header.remove(key, ignore_missing=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def test_instrument_detected_without_instrume_or_given(tmp_path):
    """A DECam file that lost INSTRUME is still recognised by its FILTER; one that lost both is
    read right when the instrument is named (its west-positive OBS-LONG above all)."""
    path = _strip(write_decam_cutout(tmp_path / "c.fits"), "INSTRUME")
    assert read_info(path).instrument == "decam"
    plain = write_decam_cutout(tmp_path / "p.fits", filter_text="g")
    _strip(plain, "INSTRUME")
    info = read_info(plain, instrument="decam")
    assert info.instrument == "decam" and info.band == "decam-g"
    assert info.visit.observatory.longitude.deg == pytest.approx(-70.81489)
    from dcrcoadd.errors import InputError

    # nothing says DECam: OBS-LONG is taken as written (east), which puts this field below the horizon
    with pytest.raises(InputError, match="below the horizon.*east lon [+]70.8149.*west-positive"):
        read_info(plain)


def test_header_map_overrides_a_card(tmp_path):
    path = write_ztf(tmp_path / "z.fits")
    with fits.open(path) as hdul:
        hdul[0].header["AIRMASS2"] = hdul[0].header["AIRMASS"]
        hdul[0].header["AIRMASS"] = 9.9  # a wrong card, and the right one under another name
        hdul.writeto(path, overwrite=True)
    info = read_info(path, header_map={"airmass": "AIRMASS2"})
    assert info.visit.airmass == pytest.approx(1 / math.sin(math.radians(48.0)), abs=0.01)
    assert any("airmass: AIRMASS2" in n for n in info.notes)


@pytest.mark.parametrize("text, band", [("g DECam SDSS c0001 4720.0 1520.0", "g"),
                                        ("G DECam SDSS c0001 4720.0 1520.0", "g"),
                                        ("Y DECam c0005 10095.0 1130.0", "Y"), ("VR DECam c0007", None)])
def test_decam_filter_names_in_either_case(text, band):
    from dcrcoadd.core.instrument import PRESETS

    assert PRESETS["decam"].band_of(text) == band
