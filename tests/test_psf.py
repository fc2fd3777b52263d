"""PSF sizes: the measured FWHM of a kernel, and the second-moment and noise-equivalent sigmas."""

import numpy as np
import pytest

from conftest import tan_wcs, write_warps
from dcrcoadd.core.psf import (
    SIGMA_TO_FWHM,
    Psf,
    best_seeing_selection,
    coadd_psf,
    kernel_fwhm,
    pixel_scale_arcsec,
)

try:
    import galsim
except ImportError:  # the sim extra; the tests that draw kernels with it are skipped
    galsim = None
needs_galsim = pytest.mark.skipif(galsim is None, reason="needs galsim (pip install 'dcrcoadd[sim]')")

SCALE = 0.2  # arcsec per pixel, as in the simulator
PHASES = [(0.0, 0.0), (0.5, 0.5), (0.3, -0.2), (-0.45, 0.15)]  # (dx, dy) of the centre, pixels


def profile(kind: str, fwhm_arcsec: float):
    if kind == "gaussian":
        return galsim.Gaussian(fwhm=fwhm_arcsec)
    if kind.startswith("moffat"):
        return galsim.Moffat(beta=float(kind[len("moffat"):]), fwhm=fwhm_arcsec)
    return galsim.Kolmogorov(fwhm=fwhm_arcsec)


def true_fwhm_px(obj) -> float:
    """FWHM in pixels of a continuous profile, independently of the code under test: the
    equivalent diameter of its area above half the peak, counted on a grid 1/100 FWHM fine."""
    fwhm = obj.calculateFWHM()  # rough (a radial-profile estimate), only to size the grid
    step = fwhm / 100
    n = 2 * int(1.5 * fwhm / step) + 1
    img = obj.drawImage(nx=n, ny=n, scale=step, method="no_pixel").array
    area = np.count_nonzero(img > img.max() / 2) * step**2
    return 2.0 * np.sqrt(area / np.pi) / SCALE


def kernel(obj, fwhm_px: float, offset, method="auto") -> np.ndarray:
    size = 2 * int(np.ceil(4 * fwhm_px)) + 1
    return obj.drawImage(nx=size, ny=size, scale=SCALE, offset=offset, method=method).array


# -- the FWHM of a kernel ------------------------------------------------------------------------

@needs_galsim
@pytest.mark.parametrize("kind", ["gaussian", "moffat2.5", "moffat3.5", "moffat4.5", "kolmogorov"])
@pytest.mark.parametrize("fwhm_px", [2.0, 3.1, 5.0])
def test_fwhm_of_point_sampled_kernels_is_the_profiles_fwhm(kind, fwhm_px):
    obj = profile(kind, fwhm_px * SCALE)
    for offset in PHASES:
        k = kernel(obj, fwhm_px, offset, method="no_pixel")
        assert kernel_fwhm(k) == pytest.approx(fwhm_px, rel=0.03), offset
        assert Psf(k).fwhm == pytest.approx(fwhm_px, rel=0.03), offset


@needs_galsim
@pytest.mark.parametrize("kind", ["gaussian", "moffat2.5", "moffat4.5", "kolmogorov"])
@pytest.mark.parametrize("fwhm_px", [2.0, 3.1, 5.0])
def test_fwhm_of_kernels_with_the_pixel_response_includes_it(kind, fwhm_px):
    # drawImage's default convolves with the pixel, as a PSF measured on an image is: the
    # kernel is wider than the atmospheric profile (by 7 % at 2 px), and its FWHM says so.
    obj = profile(kind, fwhm_px * SCALE)
    truth = true_fwhm_px(galsim.Convolve(obj, galsim.Pixel(SCALE)))
    assert truth > fwhm_px * 1.005
    for offset in PHASES:
        assert Psf(kernel(obj, fwhm_px, offset)).fwhm == pytest.approx(truth, rel=0.03), offset


@needs_galsim
@pytest.mark.parametrize("fwhm_px", [2.0, 3.1])
def test_fwhm_of_elliptical_and_blended_kernels(fwhm_px):
    f = fwhm_px * SCALE
    elongated = galsim.Kolmogorov(fwhm=f).shear(g1=0.2, g2=0.1)
    # a coadd-like mixture: three visits' PSFs, offset by DCR, of different seeing
    blend = galsim.Add([galsim.Kolmogorov(fwhm=f), galsim.Kolmogorov(fwhm=1.3 * f).shift(0.4 * SCALE, 0),
                        galsim.Kolmogorov(fwhm=0.9 * f).shift(-0.2 * SCALE, 0.5 * SCALE)])
    for obj in (elongated, blend):
        truth = true_fwhm_px(galsim.Convolve(obj, galsim.Pixel(SCALE)))
        for offset in PHASES:
            assert Psf(kernel(obj, truth, offset)).fwhm == pytest.approx(truth, rel=0.03), offset


@needs_galsim
def test_atmospheric_fwhm_is_not_the_second_moment_one():
    # The case: a 0.62 arcsec (3.1 px) Kolmogorov PSF was reported as ~4.9 px.
    k = kernel(galsim.Kolmogorov(fwhm=0.62), 3.1, (0.0, 0.0))
    psf = Psf(np.pad(k, 7))  # a 41x41 stamp, as in the issue
    truth = true_fwhm_px(galsim.Convolve(galsim.Kolmogorov(fwhm=0.62), galsim.Pixel(SCALE)))
    assert psf.fwhm == pytest.approx(truth, rel=0.01)
    assert 3.1 < psf.fwhm < 3.25
    # the wings inflate the other two sizes, which therefore keep their own names
    assert psf.second_moment_sigma * SIGMA_TO_FWHM > 1.4 * psf.fwhm
    assert psf.noise_equivalent_sigma * SIGMA_TO_FWHM > 1.1 * psf.fwhm


def test_gaussian_psf_sizes_agree():
    psf = Psf.gaussian(fwhm=3.1)
    assert psf.fwhm == pytest.approx(3.1, rel=1e-3)
    assert psf.second_moment_sigma == pytest.approx(3.1 / SIGMA_TO_FWHM, rel=1e-3)
    assert psf.noise_equivalent_sigma == pytest.approx(3.1 / SIGMA_TO_FWHM, rel=1e-3)
    # a stamp cut at 1.5 sigma still gives the FWHM; the second moments shrink with the stamp
    small = Psf.gaussian(fwhm=3.1, size=5)
    assert small.fwhm == pytest.approx(3.1, rel=1e-3)
    assert small.second_moment_sigma < 0.9 * 3.1 / SIGMA_TO_FWHM


@needs_galsim
def test_fwhm_is_that_of_the_brightest_peak():
    two = galsim.Add([galsim.Gaussian(fwhm=0.5), galsim.Gaussian(fwhm=0.5, flux=0.8).shift(1.6, 0)])
    k = two.drawImage(nx=31, ny=31, scale=SCALE, method="no_pixel").array
    assert kernel_fwhm(k) == pytest.approx(2.5, rel=0.03)


def test_fwhm_follows_the_kernel_when_it_is_replaced():
    psf = Psf.gaussian(fwhm=3.0)
    assert psf.fwhm == pytest.approx(3.0, rel=1e-3)
    psf.kernel = Psf.gaussian(fwhm=5.0).kernel
    assert psf.fwhm == pytest.approx(5.0, rel=1e-3)
    assert "fwhm=5.000 px" in repr(psf)


def test_kernel_fwhm_rejects_kernels_without_a_peak():
    with pytest.raises(ValueError, match="no positive value"):
        kernel_fwhm(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="2-D"):
        kernel_fwhm(np.ones(5))
    with pytest.raises(ValueError, match="non-finite"):
        kernel_fwhm(np.full((3, 3), np.nan))


# -- arcsec ----------------------------------------------------------------------------------------

@needs_galsim
def test_fwhm_in_arcsec_and_pixels():
    psf = Psf(kernel(galsim.Kolmogorov(fwhm=0.62), 3.1, (0.0, 0.0), method="no_pixel"))
    wcs = tan_wcs(scale_arcsec=SCALE, rotation_deg=30.0)
    assert pixel_scale_arcsec(wcs) == pytest.approx(SCALE, rel=1e-9)
    assert psf.fwhm_arcsec(wcs) == pytest.approx(0.62, rel=0.01)
    assert psf.describe_fwhm(wcs) == f"FWHM {psf.fwhm * SCALE:.2f} arcsec ({psf.fwhm:.2f} px)"
    assert psf.describe_fwhm(wcs) == "FWHM 0.62 arcsec (3.10 px)"
    assert psf.describe_fwhm(None) == "FWHM 3.10 px"
    assert np.isnan(psf.fwhm_arcsec(None)) and np.isnan(pixel_scale_arcsec(None))


# -- which size does what --------------------------------------------------------------------------

@needs_galsim
def test_best_seeing_compares_fwhms_not_second_moments():
    # A Moffat (beta 2.5) with the sharpest core but the widest second moments of the three.
    sharp = Psf(kernel(galsim.Moffat(beta=2.5, fwhm=3.0 * SCALE), 3.0, (0, 0), method="no_pixel"))
    mid, wide = Psf.gaussian(fwhm=3.3, size=25), Psf.gaussian(fwhm=4.0, size=25)
    assert sharp.fwhm < mid.fwhm < wide.fwhm
    assert sharp.second_moment_sigma > wide.second_moment_sigma
    assert best_seeing_selection([sharp, mid, wide], [1.0, 1.0, 1.0]).tolist() == [True, True, False]


def test_best_seeing_threshold_is_the_smaller_of_median_and_weighted_mean_fwhm():
    psfs = [Psf.gaussian(fwhm=f, size=31) for f in (3.0, 3.5, 4.0, 6.0, 7.0)]
    # equal weights: the median (4.0) is below the mean (4.7)
    assert best_seeing_selection(psfs, [1, 1, 1, 1, 1]).tolist() == [True, True, True, False, False]
    # the sharp inputs weigh most: the weighted mean (3.4) is below the median
    assert best_seeing_selection(psfs, [20, 1, 1, 1, 1]).tolist() == [True, False, False, False, False]
    # not the FWHM of the coadd PSF, which the sharpest inputs' peaks pull below the median
    assert coadd_psf(psfs, [1, 1, 1, 1, 1]).fwhm < 0.95 * 4.0


def test_best_seeing_keeps_identical_inputs():
    psfs = [Psf.gaussian(fwhm=3.0)] * 4
    assert best_seeing_selection(psfs, [1, 2, 3, 4]).all()
    assert best_seeing_selection([], []).shape == (0,)
    with pytest.raises(ValueError, match="weight per PSF"):
        best_seeing_selection(psfs, [1, 2])


def test_inputs_table_and_assemble_summary_show_arcsec_and_pixels(tmp_path):
    from dcrcoadd.cli import _summary_table
    from dcrcoadd.coadd.baseline import assemble_coadd
    from dcrcoadd.config.schema import Config

    config = Config()
    config.artifacts.enabled = False
    result = assemble_coadd(write_warps(tmp_path, n=2), config)  # Gaussian PSFs, sigma 1.5 px, 0.2"/px
    table = result.inputs_table()
    fwhm = 1.5 * SIGMA_TO_FWHM
    np.testing.assert_allclose(table["psf_fwhm"], fwhm, rtol=1e-3)
    np.testing.assert_allclose(table["psf_fwhm_arcsec"], SCALE * fwhm, rtol=1e-3)
    header, _, first, second = _summary_table(result).splitlines()
    assert 'FWHM(")  FWHM(px)' in header
    for line in (first, second):
        assert f"{SCALE * fwhm:7.3f}  {fwhm:8.2f}" in line
