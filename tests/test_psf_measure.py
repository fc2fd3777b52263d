"""Empirical PSF measurement from bright isolated stars (do_calculate_psf)."""

import numpy as np
import pytest

from dcrcoadd.core.psf import SIGMA_TO_FWHM, Psf
from dcrcoadd.ops.psf_measure import measure_psf


def field(n_stars, sigma=1.8, shape=(160, 160), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0.0, 1.0, shape)
    grid = [(20 + 40 * i + rng.uniform(-0.5, 0.5), 20 + 40 * j + rng.uniform(-0.5, 0.5))
            for i in range(4) for j in range(4)][:n_stars]
    for y0, x0 in grid:
        image += 2e4 * np.exp(-0.5 * ((y - y0) ** 2 + (x - x0) ** 2) / sigma**2) / (2 * np.pi * sigma**2)
    return image, np.ones(shape)


def test_recovers_the_width_of_gaussian_stars():
    image, variance = field(12, sigma=1.8)
    psf = measure_psf(image, variance, size=21)
    assert psf.shape == (21, 21)
    assert psf.second_moment_sigma == pytest.approx(1.8, rel=0.03)
    assert psf.fwhm == pytest.approx(1.8 * SIGMA_TO_FWHM, rel=0.03)
    cy, cx = psf.centroid
    assert abs(cy) < 0.05 and abs(cx) < 0.05


def test_too_few_stars_is_an_error():
    image, variance = field(2)
    with pytest.raises(ValueError, match="only 2"):
        measure_psf(image, variance, size=21)


def test_stars_touching_bad_pixels_are_not_used():
    image, variance = field(4)  # four stars along y ~ 20
    assert measure_psf(image, variance, size=21).shape == (21, 21)
    bad = np.zeros(image.shape, bool)
    bad[26, :] = True  # one bad row through every star's stamp
    with pytest.raises(ValueError, match="only 0"):
        measure_psf(image, variance, bad, size=21)


def test_measured_kolmogorov_psf_has_the_stars_fwhm():
    galsim = pytest.importorskip("galsim")
    scale, seeing = 0.2, 0.62  # arcsec: 3.1 px
    star = galsim.Convolve(galsim.Kolmogorov(fwhm=seeing), galsim.Pixel(scale))
    rng = np.random.default_rng(3)
    image = rng.normal(0.0, 1.0, (200, 200))
    for i in range(4):
        for j in range(4):
            y0, x0 = 25 + 50 * i + rng.uniform(-0.5, 0.5), 25 + 50 * j + rng.uniform(-0.5, 0.5)
            stamp = star.withFlux(3e5).drawImage(nx=41, ny=41, scale=scale, method="no_pixel",
                                                 offset=(x0 - round(x0), y0 - round(y0))).array
            image[round(y0) - 20:round(y0) + 21, round(x0) - 20:round(x0) + 21] += stamp
    psf = measure_psf(image, np.ones(image.shape), size=25)
    # the FWHM of the star images (the Kolmogorov profile with the pixel): 3.19 px
    fine = star.drawImage(nx=801, ny=801, scale=scale / 50, method="no_pixel").array
    truth = 2 * np.sqrt(np.count_nonzero(fine > fine.max() / 2) / np.pi) / 50
    assert psf.fwhm == pytest.approx(truth, rel=0.03)


def dcr_smeared_field(sigma=1.8, direction=(0.6, 0.8), seed=4, shape=(200, 200)):
    """Gaussian stars, each smeared along ``direction`` by its own 'spectrum' (a line of 9 points
    of a length from 0 to 4 px, weighted towards one end), as DCR smears stars in one exposure."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0.0, 1.0, shape)
    uy, ux = direction
    for i in range(4):
        for j in range(4):
            y0, x0 = 25 + 50 * i + rng.uniform(-0.5, 0.5), 25 + 50 * j + rng.uniform(-0.5, 0.5)
            length = rng.uniform(0.0, 4.0)
            t = np.linspace(-0.5, 0.5, 9) * length
            w = np.exp(-t * rng.uniform(-0.5, 0.5))
            for tk, wk in zip(t, w / w.sum(), strict=True):
                r2 = (y - y0 - tk * uy) ** 2 + (x - x0 - tk * ux) ** 2
                image += 3e4 * wk * np.exp(-0.5 * r2 / sigma**2) / (2 * np.pi * sigma**2)
    return image, np.ones(shape)


def test_psf_across_the_dcr_direction_is_free_of_the_smear():
    image, variance = dcr_smeared_field(sigma=1.8)
    smeared = measure_psf(image, variance, size=25)
    across = measure_psf(image, variance, size=25, dcr_direction=(1.5, 2.0))
    # stacking carries the smear: elongated along the DCR direction
    ixx, iyy, ixy = smeared.second_moments()
    along = 0.36 * iyy + 0.64 * ixx + 2 * 0.48 * ixy  # direction (dy, dx) = (0.6, 0.8)
    assert np.sqrt(along) > 1.8 * 1.05
    # across it, the PSF is the stars' own: round, centred, of their width
    ixx, iyy, ixy = across.second_moments()
    assert iyy == pytest.approx(ixx, rel=1e-6) and abs(ixy) < 1e-6
    assert across.fwhm == pytest.approx(1.8 * SIGMA_TO_FWHM, rel=0.03)
    assert across.shape == (25, 25)
    cy, cx = across.centroid
    assert abs(cy) < 1e-6 and abs(cx) < 1e-6


def test_psf_across_a_zero_dcr_direction_is_the_stars_psf():
    image, variance = field(12, sigma=1.8)
    psf = measure_psf(image, variance, size=21, dcr_direction=(0.0, 0.0))
    assert psf.fwhm == pytest.approx(1.8 * SIGMA_TO_FWHM, rel=0.03)


def test_blended_stars_are_not_taken_for_stars():
    # Stars closer than the detection threshold separates are one footprint, "isolated"; with twice a
    # star's flux a blend weighs four times one, and two blends among 21 stars of 1.3" seeing made the PSF
    # across the DCR direction measure 3.5 px against 6.54 (a given PSF was then replaced as "1.2 times
    # wider than its stars'", and the coadd's flux rose 0.23 %)
    galsim = pytest.importorskip("galsim")
    rng = np.random.default_rng(1)
    for seeing in (0.6, 0.9, 1.1, 1.3):  # (the field of 1.3" as the probe drew it, after three others)
        star = galsim.Kolmogorov(fwhm=seeing)
        image = galsim.ImageF(512, 512, scale=0.2)
        for _ in range(40):
            x, y = rng.uniform(40, 472, 2)
            star.withFlux(2e5).drawImage(image, center=galsim.PositionD(x, y), add_to_image=True)
        data = image.array + rng.normal(0.0, 5.0, image.array.shape)
    true = galsim.Kolmogorov(fwhm=1.3).drawImage(nx=61, ny=61, scale=0.2).array
    psf = measure_psf(data, np.full(data.shape, 25.0), size=41, dcr_direction=(0.0, 1.0))
    assert psf.fwhm == pytest.approx(Psf(true).fwhm, rel=0.03)


def _stamps(with_neighbour: bool):
    """Three 25-px stamps of Kolmogorov stars (4.2 px FWHM), each with a neighbour of 40 % of its flux
    just beyond the stamp's edge, or without; Poisson-like variance."""
    galsim = pytest.importorskip("galsim")
    rng = np.random.default_rng(2)
    star = galsim.Kolmogorov(fwhm=0.84)  # 4.2 px of 0.2"
    stamps, variances = [], []
    for dy, dx in ((13, -5), (-5, 14), (8, -15)):
        image = galsim.ImageF(25, 25, scale=0.2)
        centre = galsim.PositionD(13 + rng.uniform(-0.5, 0.5), 13 + rng.uniform(-0.5, 0.5))
        star.withFlux(1e5).drawImage(image, center=centre, add_to_image=True)
        if with_neighbour:
            star.withFlux(4e4).drawImage(image, center=centre + galsim.PositionD(dx, dy), add_to_image=True)
        variance = 4.0 + image.array / 10
        stamps.append(image.array + rng.normal(0.0, np.sqrt(variance)))
        variances.append(variance)
    return stamps, variances, Psf(star.drawImage(nx=61, ny=61, scale=0.2).array).fwhm


def test_a_neighbour_cut_by_the_stamps_edge_does_not_narrow_the_psf():
    # A star too faint per pixel (Poisson noise) to be a detection of 25 px at 50 sigma does not stop
    # its neighbour being "isolated"; cut by the stamp's edge, it put the edge's power at every
    # frequency: two of three stars of a 4.2-px PSF measured 2.8 and 3.6 px, together 3.1, and the
    # warp's true PSF was replaced as 1.4 times wider than its stars' (benchmarks.scenarios, HSC g,
    # seed 6: 88 false detections, 0 since)
    from dcrcoadd.ops.psf_measure import across_dcr_psf, edge_free

    stamps, variances, true = _stamps(with_neighbour=True)
    assert across_dcr_psf(stamps, variances, (0.0, 1.0), window=False).fwhm < 0.8 * true
    assert across_dcr_psf(stamps, variances, (0.0, 1.0)).fwhm == pytest.approx(true, rel=0.03)
    # the first stamp's neighbour, whose core the edge cuts, alone made all three measure 2.5 px as they are
    assert across_dcr_psf(stamps[:1], variances[:1], (0.0, 1.0), window=False).fwhm < 0.7 * true
    assert not edge_free(stamps[0], variances[0], (0.0, 1.0))
    # the same stars alone are measured as they are (the taper also takes some of their wings)
    stamps, variances, true = _stamps(with_neighbour=False)
    assert all(edge_free(s, v, (0.0, 1.0)) for s, v in zip(stamps, variances, strict=True))
    assert across_dcr_psf(stamps, variances, (0.0, 1.0), window=False).fwhm == pytest.approx(true, rel=0.03)


@pytest.mark.parametrize("fwhm", [2.5, 3.5, 5.0, 8.0])
def test_transfer_fwhm_is_the_kernels_fwhm(fwhm):
    # edge_free reads each stamp's FWHM from its transfer function (a Moffat fit per kernel took a third
    # of a DECam CCD's baseline coadd): it must be the FWHM of the kernel the same transfer function makes
    from dcrcoadd.ops.psf_measure import transfer_fwhm

    size = 41
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :]
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    for beta in (None, 3.0):  # a Gaussian, and a Moffat's wider wings (its transform by FFT)
        if beta is None:
            transfer = np.exp(-2.0 * np.pi**2 * sigma**2 * (fy**2 + fx**2)) * np.sinc(fy) * np.sinc(fx)
        else:
            y, x = np.mgrid[:size, :size] - size // 2
            alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
            moffat = (1.0 + (y**2 + x**2) / alpha**2) ** -beta
            transfer = np.fft.fft2(np.fft.ifftshift(moffat)).real
        kernel = np.fft.fftshift(np.fft.ifft2(transfer).real)
        assert transfer_fwhm(transfer) == pytest.approx(Psf(kernel).fwhm, rel=0.01)
        if beta is not None:
            assert transfer_fwhm(transfer) == pytest.approx(fwhm, rel=0.01)
