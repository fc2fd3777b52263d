"""``dcrcoadd warp``: single-epoch exposures on different WCSs resampled onto one grid."""

from __future__ import annotations

import argparse
import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.special import erf

from conftest import g_bandpass, tan_wcs
from dcrcoadd.config import Config
from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.observatory import Observatory
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo, altitude_from_airmass
from dcrcoadd.errors import InputError
from dcrcoadd.io import read_exposure, write_exposure
from dcrcoadd.resample import Grid, choose_grid, grid_from_file, warp_exposure, warp_exposures, warp_psf
from dcrcoadd.resample.command import add_warp_parser, cmd_warp

pytest.importorskip("reproject")

SHAPE = (80, 84)
SIGMA = 1.5  # PSF sigma, input pixels
FLUX = 1000.0
CAL = 57.5


def wcs_a():
    return tan_wcs(crval=(150.1, 2.2), crpix=(42.5, 40.5))


def wcs_b():
    """Offset by (2, -1.5) arcsec and rotated by 23 degrees with respect to `wcs_a`."""
    return tan_wcs(crval=(150.1 + 2 / 3600, 2.2 - 1.5 / 3600), crpix=(42.2, 40.9), rotation_deg=23.0)


#: (RA, Dec) deg of the stars, inside both footprints, away from their edges.
STARS = [(150.1 + dx / 3600 / np.cos(np.radians(2.2)), 2.2 + dy / 3600)
         for dx, dy in ((-2.5, 2.0), (2.5, -2.5), (1.0, 3.5))]


def render(shape, wcs, sigma=SIGMA):
    """Stars of `FLUX` each as pixel-integrated circular Gaussians (exact fluxes)."""
    ny, nx = shape
    x, y = np.arange(nx), np.arange(ny)
    image = np.zeros(shape)
    s = np.sqrt(2) * sigma
    for ra, dec in STARS:
        px, py = wcs.world_to_pixel_values(ra, dec)
        gx = 0.5 * (erf((x + 0.5 - px) / s) - erf((x - 0.5 - px) / s))
        gy = 0.5 * (erf((y + 0.5 - py) / s) - erf((y - 0.5 - py) / s))
        image += FLUX * np.outer(gy, gx)
    return image


def visit(i, airmass=1.2, az=120.0):
    return VisitInfo(id=500 + i, airmass=airmass, boresight_alt=altitude_from_airmass(airmass),
                     boresight_az=az * u.deg, observatory=Observatory.from_site("rubin"))


def exposure(wcs, i=0, *, noise=0.0, airmass=1.2, az=120.0, seed=0, shape=SHAPE, psf=None):
    rng = np.random.default_rng(seed)
    image = render(shape, wcs) + (rng.normal(0.0, noise, shape) if noise else 0.0)
    return Exposure(image=image, variance=np.full(shape, 4.0), wcs=wcs, psf=psf or Psf.gaussian(SIGMA),
                    visit=visit(i, airmass, az), bandpass=g_bandpass(with_curve=False),
                    flux_calibration=CAL, origin=(7, -3))


def write_pair(directory):
    directory.mkdir(parents=True, exist_ok=True)
    return [write_exposure(exposure(w, i), directory / f"v{i}.fits")
            for i, w in enumerate((wcs_a(), wcs_b()))]


def centroid_and_flux(warp, ra, dec, radius=8.0):
    px, py = warp.wcs.world_to_pixel_values(ra, dec)
    yy, xx = np.mgrid[: warp.shape[0], : warp.shape[1]]
    ap = (xx - px) ** 2 + (yy - py) ** 2 < radius**2
    img = np.where(ap, warp.image.astype(np.float64), 0.0)
    assert np.all(np.isfinite(img)), "aperture reaches NO_DATA"
    flux = img.sum()
    return (img * xx).sum() / flux, (img * yy).sum() / flux, flux, (px, py)


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="dcrcoadd")
    add_warp_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    assert args.func is cmd_warp
    return args.func(args)


# -- flux, positions, variance, masks ---------------------------------------------------------------

@pytest.mark.parametrize("method", ["exact", "adaptive"])
def test_flux_conserved_and_stars_where_the_sky_says(tmp_path, method):
    paths = write_pair(tmp_path / "in")
    outcomes = warp_exposures(paths, tmp_path / "out", method=method)
    assert [o.ok for o in outcomes] == [True, True]
    warps = [read_exposure(o.warp_path) for o in outcomes]
    assert [o.warp_path.name for o in outcomes] == ["v0_warp.fits", "v1_warp.fits"]
    # one grid: the same parent pixel is the same sky position in both warps
    pa, pb = (w.parent_wcs() for w in warps)
    probe = np.array([0.0, 40.0, 80.0])
    np.testing.assert_allclose(pa.pixel_to_world_values(probe, probe), pb.pixel_to_world_values(probe, probe),
                               atol=1e-10)
    for warp in warps:
        for ra, dec in STARS:
            cx, cy, flux, (px, py) = centroid_and_flux(warp, ra, dec)
            assert flux == pytest.approx(FLUX, rel=0.005)
            assert abs(cx - px) < 0.05 and abs(cy - py) < 0.05


def test_variance_of_integer_binning_is_exact(make_wcs):
    """2x2 binning: each warp pixel is the sum of four input pixels, variance 4x (r = 4), and the
    noise of the warp has that variance."""
    rng = np.random.default_rng(3)
    shape = (80, 80)
    wcs = make_wcs(crpix=(40.5, 40.5))
    exp = Exposure(image=rng.normal(0.0, 2.0, shape), variance=np.full(shape, 4.0), wcs=wcs)
    coarse = wcs.deepcopy()
    coarse.wcs.cd = 2 * wcs.wcs.cd
    coarse.wcs.crpix = [20.5, 20.5]  # the reference point is a pixel corner of both grids
    coarse.wcs.set()
    warp = warp_exposure(exp, Grid(coarse))
    assert warp.shape == (40, 40)
    np.testing.assert_allclose(warp.variance, 16.0, rtol=1e-6)
    binned = exp.image.reshape(40, 2, 40, 2).sum(axis=(1, 3))
    np.testing.assert_allclose(warp.image, binned, rtol=1e-5, atol=1e-4)
    assert np.var(warp.image) == pytest.approx(16.0, rel=0.1)


def test_variance_keeps_noise_per_area_on_a_rotated_grid():
    """On another grid the variance plane is r x the input's, and sums over regions much larger
    than a pixel have the variance the plane says; per pixel it is an upper bound."""
    shape = (160, 160)
    ref = tan_wcs(crpix=(80.5, 80.5), scale_arcsec=0.3)  # output pixels 1.5x the input's
    grid = Grid(ref)
    block_sums, plane_sums, pixel_values = [], [], []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        wcs = tan_wcs(crpix=(80.3, 80.8), rotation_deg=31.0)
        exp = Exposure(image=rng.normal(0.0, 2.0, shape), variance=np.full(shape, 4.0), wcs=wcs)
        warp = warp_exposure(exp, grid)
        good = ~warp.mask_of("NO_DATA")
        interior = good & np.isfinite(warp.variance)
        np.testing.assert_allclose(warp.variance[interior], 4.0 * 1.5**2, rtol=2e-3)
        ny, nx = (n // 6 * 6 for n in warp.shape)
        ok = good[:ny, :nx].reshape(ny // 6, 6, nx // 6, 6).all(axis=(1, 3))
        img = np.nan_to_num(warp.image[:ny, :nx]).reshape(ny // 6, 6, nx // 6, 6).sum(axis=(1, 3))
        var = np.nan_to_num(warp.variance[:ny, :nx]).reshape(ny // 6, 6, nx // 6, 6).sum(axis=(1, 3))
        block_sums.append(img[ok])
        plane_sums.append(var[ok])
        pixel_values.append(warp.image[interior])
    sums, planes = np.concatenate(block_sums), np.concatenate(plane_sums)
    assert sums.size > 300
    assert np.var(sums) == pytest.approx(np.mean(planes), rel=0.2)
    assert np.var(np.concatenate(pixel_values)) < 9.0


def test_no_data_outside_the_footprint_and_masks_by_nearest_pixel(tmp_path):
    exp = exposure(wcs_b())
    planes = exp.mask_planes
    exp.mask[20:23, 30:33] |= np.uint32(planes.value("SAT"))
    exp.image[40, 12] = np.nan  # an unmasked NaN
    exp.mask[10, 45] |= np.uint32(planes.value("NO_DATA"))
    exp.image[10, 45] = 0.0
    warp = warp_exposure(exp, Grid(wcs_a()), source="b.fits")
    no_data = warp.mask_of("NO_DATA")
    # independently: which warp pixel centres fall inside the input array
    yy, xx = np.mgrid[: warp.shape[0], : warp.shape[1]]
    x_in, y_in = exp.wcs.world_to_pixel_values(*warp.wcs.pixel_to_world_values(xx, yy))
    ny, nx = exp.shape
    inside = (x_in >= -0.5) & (x_in < nx - 0.5) & (y_in >= -0.5) & (y_in < ny - 0.5)
    edge = (np.abs(x_in + 0.5) < 1e-6) | (np.abs(x_in - nx + 0.5) < 1e-6) \
        | (np.abs(y_in + 0.5) < 1e-6) | (np.abs(y_in - ny + 0.5) < 1e-6)
    assert (~inside).sum() > 100  # the rotated footprint leaves corners of its box empty
    assert np.all(no_data[~inside & ~edge])
    assert np.all(np.isnan(warp.image[no_data])) and np.all(np.isnan(warp.variance[no_data]))
    nearest = (np.floor(x_in + 0.5).astype(int), np.floor(y_in + 0.5).astype(int))
    lacking = inside & (((nearest[0] == 12) & (nearest[1] == 40)) | ((nearest[0] == 45) & (nearest[1] == 10)))
    assert lacking.sum() >= 1 and np.all(no_data[lacking])
    # missing input pixels do not blank their neighbours
    assert no_data[inside & ~edge].sum() == lacking.sum()
    assert np.all(np.isfinite(warp.image[inside & ~edge & ~lacking]))
    sat = warp.mask_of("SAT")
    want = inside & (nearest[0] >= 30) & (nearest[0] < 33) & (nearest[1] >= 20) & (nearest[1] < 23)
    np.testing.assert_array_equal(sat, want)


@pytest.mark.parametrize("plane", ["BAD", "SAT", "CR"])
def test_a_masked_input_pixels_value_reaches_no_unflagged_warp_pixel(plane):
    # a bad column of 1e6 rotated 23 degrees: its value reached 217 warp pixels without a bit, as much as
    # 5e5 (the coadd's outlier rejection missed most of the simulator's defects that leaked so)
    clean = exposure(wcs_b())
    exp = exposure(wcs_b())
    bit = np.uint32(exp.mask_planes.value(plane))
    exp.image[:, 20] = 1e6
    exp.mask[:, 20] |= bit
    warp = warp_exposure(exp, Grid(wcs_a()), source="b.fits")
    reference = warp_exposure(clean, Grid(wcs_a()), source="b.fits")
    flagged = (warp.mask & bit) != 0
    data = ~warp.mask_of("NO_DATA")
    assert flagged.sum() > 40 and (data & ~flagged).sum() > 1000
    # unflagged pixels hold what the exposure without the column gives, up to the renormalized means
    # of the pixels next to it (the stars' light, a few per cent of a pixel's)
    assert np.max(np.abs(warp.image - reference.image)[data & ~flagged]) < 0.05 * FLUX
    # and the stars' flux stays where the sky says
    for ra, dec in STARS:
        assert centroid_and_flux(warp, ra, dec)[2] == pytest.approx(FLUX, rel=0.01)


def test_a_warp_onto_its_own_grid_is_the_exposure(tmp_path):
    exp = exposure(wcs_b())
    path = write_exposure(exp, tmp_path / "b.fits")
    (outcome,) = warp_exposures([path], tmp_path / "out", grid=path)
    warp = read_exposure(outcome.warp_path)
    assert warp.bbox == exp.bbox
    np.testing.assert_allclose(warp.image, exp.image, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(warp.variance, exp.variance, rtol=1e-5)
    assert not warp.mask_of("NO_DATA").any()
    assert warp.psf == exp.psf


def test_an_exposure_without_any_usable_pixel_is_named_as_such(tmp_path):
    # an all-NaN exposure maps onto the grid well enough: its problem is its pixels, not its footprint
    exp = exposure(wcs_b())
    exp.image = np.full(exp.shape, np.nan, np.float32)
    path = write_exposure(exp, tmp_path / "blank.fits")
    (outcome,) = warp_exposures([path], tmp_path / "out", grid=path)
    assert "blank.fits: it has no usable pixel" in str(outcome.error)


# -- metadata and PSF -------------------------------------------------------------------------------

def test_visit_band_calibration_and_psf_carried(tmp_path):
    paths = write_pair(tmp_path / "in")
    inputs = [read_exposure(p) for p in paths]
    outcomes = warp_exposures(paths, tmp_path / "out", grid=Grid(shift_wcs(wcs_a(), 0.37, -0.21)))
    for exp, outcome in zip(inputs, outcomes, strict=True):
        warp = read_exposure(outcome.warp_path)
        assert outcome.visit_id == exp.visit.id == warp.visit.id
        v, w = exp.visit, warp.visit
        assert (w.airmass, w.boresight_alt, w.boresight_az) == (v.airmass, v.boresight_alt, v.boresight_az)
        assert w.observatory.latitude == v.observatory.latitude
        assert warp.band == exp.band
        assert warp.bandpass.effective_wavelength == exp.bandpass.effective_wavelength
        assert warp.flux_calibration == exp.flux_calibration == CAL
        assert set(exp.mask_planes.items()) <= set(warp.mask_planes.items())
        assert outcome.bbox == warp.bbox
    # same scale and orientation: the PSF as is; rotated by 23 degrees: a round PSF stays round
    warp_a, warp_b = (read_exposure(o.warp_path) for o in outcomes)
    assert warp_a.psf == inputs[0].psf
    assert warp_b.psf.shape[0] % 2 == 1
    assert np.allclose(warp_b.psf.centroid, 0.0, atol=1e-3)
    ixx, iyy, ixy = warp_b.psf.second_moments()
    assert ixx == pytest.approx(iyy, rel=0.02) and abs(ixy) < 0.02


def test_psf_follows_the_grid_rotation_and_scale():
    y, x = np.mgrid[-12:13, -12:13]
    elongated = Psf(np.exp(-0.5 * ((x / 3.0) ** 2 + (y / 1.5) ** 2)))
    ixx, iyy, _ = elongated.second_moments()
    quarter_turn = np.array([[0.0, -1.0], [1.0, 0.0]])  # output x steps are input y steps
    rot = warp_psf(elongated, quarter_turn)
    rxx, ryy, rxy = rot.second_moments()
    assert rxx == pytest.approx(iyy, rel=0.01) and ryy == pytest.approx(ixx, rel=0.01) and abs(rxy) < 1e-3
    # output pixels twice as large: the PSF is half as wide in them
    half = warp_psf(Psf.gaussian(3.0), 2.0 * np.eye(2))
    sxx, syy, _ = half.second_moments()
    # each output pixel covers half, all and half of three input pixels: the weights (1/4, 1/2, 1/4)
    # add 1/2 input px^2 to the second moment, which then shrinks by 2^2
    assert sxx == pytest.approx((Psf.gaussian(3.0).second_moments()[0] + 0.5) / 4, rel=0.01)
    assert sxx == pytest.approx(syy)
    assert warp_psf(elongated, np.eye(2) + 1e-5) is elongated


# -- the warps go through assemble -------------------------------------------------------------------

def test_warps_of_rotated_offset_exposures_assemble(tmp_path):
    from dcrcoadd.coadd.baseline import assemble_coadd
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    shape = (72, 72)
    specs = [((0.0, 0.0), 0.0, 1.05, 70.0), ((0.8, -0.6), 23.0, 1.3, 140.0),
             ((-0.7, 0.5), -40.0, 1.6, 220.0), ((0.5, 0.9), 90.0, 1.9, 290.0)]
    paths = []
    for i, ((dx, dy), rot, airmass, az) in enumerate(specs):
        wcs = tan_wcs(crval=(150.1 + dx / 3600, 2.2 + dy / 3600), crpix=(36.5, 36.5), rotation_deg=rot)
        paths.append(write_exposure(exposure(wcs, i, noise=1.0, airmass=airmass, az=az, seed=i, shape=shape),
                                    tmp_path / "in" / f"visit{i}.fits"))
    outcomes = warp_exposures(paths, tmp_path / "warps")
    assert all(o.ok for o in outcomes)
    warps = [o.warp_path for o in outcomes]
    config = Config()
    baseline = assemble_coadd(warps, config)
    assert len(baseline.inputs) == 4 and not baseline.skipped
    result = assemble_dcr_coadd(warps, config, baseline=baseline)
    assert len(result.subfilter_coadds) == config.dcr.dcr_num_subfilters
    assert np.isfinite(result.coadd.image).mean() > 0.9
    for ra, dec in STARS:
        _, _, flux, _ = centroid_and_flux(baseline.coadd, ra, dec, radius=7.0)
        assert flux == pytest.approx(FLUX * CAL, rel=0.01)  # the coadd is in nJy


# -- refusals, failures and the command line --------------------------------------------------------

def test_file_without_wcs_is_refused_and_the_others_are_warped(tmp_path, capsys):
    paths = write_pair(tmp_path / "in")
    bare = exposure(wcs_a(), 9)
    bare.wcs = None
    nowcs = write_exposure(bare, tmp_path / "in" / "nowcs.fits")
    outcomes = warp_exposures([paths[0], nowcs, paths[1]], tmp_path / "out")
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error.startswith(f"{nowcs}: no WCS") and "\n" not in outcomes[1].error
    assert outcomes[1].warp_path is None and not (tmp_path / "out" / "nowcs_warp.fits").exists()

    status = run_cli(["warp", str(paths[0]), str(nowcs), str(paths[1]), "--out", str(tmp_path / "cli")])
    captured = capsys.readouterr()
    assert status == 2
    # (log handlers other tests left on the dcrcoadd logger may write to stderr too)
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {nowcs}: no WCS: cannot place it on the grid",
                      "error: warp: 1 of 3 exposures failed"]
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["v0_warp.fits", "v1_warp.fits"]
    # when every exposure fails, no empty output directory is left behind
    assert run_cli(["warp", str(nowcs), "--grid", str(paths[0]), "--out", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "none").exists()


def test_grid_file_without_wcs_is_refused(tmp_path):
    paths = write_pair(tmp_path / "in")
    bare = exposure(wcs_a())
    bare.wcs = None
    ref = write_exposure(bare, tmp_path / "ref.fits")
    with pytest.raises(InputError, match=f"^{ref}: no HDU has a celestial WCS"):
        warp_exposures(paths, tmp_path / "out", grid=ref)
    with pytest.raises(InputError, match="grid file does not exist"):
        warp_exposures(paths, tmp_path / "out", grid=tmp_path / "missing.fits")


def test_cli_pixel_scale_then_grid_from_a_warp(tmp_path, capsys):
    paths = write_pair(tmp_path / "in")
    status = run_cli(["warp", str(tmp_path / "in"), "--out", str(tmp_path / "coarse"),
                      "--pixel-scale", "0.4"])
    assert status == 0
    out = capsys.readouterr().out
    assert "0.4000 arcsec/px" in out and out.count("wrote ") == 2
    first = read_exposure(tmp_path / "coarse" / "v0_warp.fits")
    assert np.mean(proj_plane_pixel_scales(first.wcs)) * 3600 == pytest.approx(0.4)
    # new exposures onto the lattice of an earlier warp (its origin read from LTV1/LTV2)
    assert run_cli(["warp", str(paths[1]), "--out", str(tmp_path / "again"),
                    "--grid", str(tmp_path / "coarse" / "v0_warp.fits")]) == 0
    again = read_exposure(tmp_path / "again" / "v1_warp.fits")
    before = read_exposure(tmp_path / "coarse" / "v1_warp.fits")
    assert again.bbox == before.bbox
    np.testing.assert_allclose(again.image, before.image, rtol=1e-6, atol=1e-6)
    assert grid_from_file(tmp_path / "coarse" / "v0_warp.fits").bbox == first.bbox
    # -q, as every other command has it: the files alone
    capsys.readouterr()
    assert run_cli(["warp", str(paths[1]), "--out", str(tmp_path / "quiet"), "-q",
                    "--grid", str(tmp_path / "coarse" / "v0_warp.fits")]) == 0
    assert capsys.readouterr().out == "" and (tmp_path / "quiet" / "v1_warp.fits").exists()


def test_a_pixel_scale_far_off_the_inputs_is_refused_or_warned_about(tmp_path, caplog):
    import logging

    from dcrcoadd.resample.warp import choose_grid

    paths = write_pair(tmp_path / "in")
    # 1e-5 arcsec (a scale in degrees?): billions of pixels, refused before any is allocated
    with pytest.raises(InputError, match=r"--pixel-scale: a pixel scale of 1e-05 arcsec .* far too large"):
        choose_grid(paths, pixel_scale=1e-5)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.resample.warp"):
        grid = choose_grid(paths, pixel_scale=2.0)
    assert 0 < min(grid.bbox.shape) < 16 and "much coarser than theirs" in caplog.text
    # coarser than the whole footprint: no pixel at all (an exposure's "no pixel lands on the grid")
    with pytest.raises(InputError, match=r"--pixel-scale: .* makes a grid of 0 x 0 px .* coarser than"):
        choose_grid(paths, pixel_scale=50.0)


def test_cli_grid_and_pixel_scale_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(["warp", "a.fits", "--out", str(tmp_path), "--grid", "g.fits", "--pixel-scale", "0.3"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(InputError, match="either a grid or a pixel scale"):
        warp_exposures(["a.fits"], tmp_path, grid="g.fits", pixel_scale=0.3)


def test_results_in_input_order_whatever_the_mapper(tmp_path):
    paths = write_pair(tmp_path / "in")

    def reversed_map(fn, tasks):
        return reversed([fn(t) for t in tasks])

    outcomes = warp_exposures(paths, tmp_path / "out", mapper=reversed_map)
    assert [o.path for o in outcomes] == paths
    assert [o.visit_id for o in outcomes] == [500, 501]


def test_local_processes_give_the_serial_warps(tmp_path):
    from dcrcoadd.parallel.mappers import process_map

    paths = write_pair(tmp_path / "in")
    serial = warp_exposures(paths, tmp_path / "serial")
    parallel = warp_exposures(paths, tmp_path / "parallel", mapper=process_map(2))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(read_exposure(a.warp_path).image, read_exposure(b.warp_path).image)


def test_mask_planes_read_from_the_file_are_kept(tmp_path):
    planes = MaskPlanes({"BAD": 0, "SAT": 1, "MYPLANE": 7})
    exp = exposure(wcs_b())
    exp = Exposure(image=exp.image, variance=exp.variance, mask=np.full(exp.shape, 1 << 7, np.uint32),
                   mask_planes=planes, wcs=exp.wcs, visit=exp.visit)
    warp = warp_exposure(exp, Grid(wcs_a()))
    assert warp.mask_planes.bit("MYPLANE") == 7 and "NO_DATA" in warp.mask_planes
    assert np.all(warp.mask_of("MYPLANE") | warp.mask_of("NO_DATA"))
    assert warp.mask_of("MYPLANE").sum() > 0.5 * warp.mask.size


# -- the CCDs of one visit make one warp -----------------------------------------------------------

SPLIT = 37  # column where the "CCD" cut-outs of one exposure meet: a star (x ≈ 36.5) straddles it


def ccd_files(directory, *, cal_b=CAL * 1.1, psf_b=None, visit_b=0):
    """Exposure 0 cut into two CCD files at column `SPLIT`; the second with another flux calibration
    (its image in its own units: the same sky in nJy) and visit ``visit_b``."""
    directory.mkdir(parents=True, exist_ok=True)
    whole = exposure(wcs_a(), 0, noise=0.5, seed=3)
    a = Exposure(image=whole.image[:, :SPLIT], variance=whole.variance[:, :SPLIT], wcs=wcs_a(),
                 psf=whole.psf, visit=whole.visit, bandpass=whole.bandpass, flux_calibration=CAL)
    r = CAL / cal_b
    b = Exposure(image=whole.image[:, SPLIT:] * r, variance=whole.variance[:, SPLIT:] * r**2,
                 wcs=shift_wcs(wcs_a(), -SPLIT, 0), psf=psf_b or whole.psf, visit=visit(visit_b),
                 bandpass=whole.bandpass, flux_calibration=cal_b)
    return whole, [write_exposure(a, directory / "expo_N1.fits"),
                   write_exposure(b, directory / "expo_N2.fits")]


def test_the_ccds_of_one_visit_make_one_warp(tmp_path):
    whole, paths = ccd_files(tmp_path / "in")
    grid = Grid(wcs_a())  # the exposure's own grid: the two CCDs' warps are its two halves
    outcomes = warp_exposures(paths, tmp_path / "out", grid=grid)
    assert all(o.ok for o in outcomes)
    assert {o.warp_path.name for o in outcomes} == {"visit500_warp.fits"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["visit500_warp.fits"]
    warp = read_exposure(outcomes[0].warp_path)
    assert warp.visit.id == 500 and warp.flux_calibration == CAL
    assert warp.shape == SHAPE and not warp.mask_of("NO_DATA").any()
    # the second CCD is brought to the first's calibration: the whole exposure, seam included
    np.testing.assert_allclose(warp.image, whole.image, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(warp.variance, whole.variance, rtol=1e-5)
    ra, dec = STARS[2]
    px, _ = wcs_a().world_to_pixel_values(ra, dec)
    assert abs(px - SPLIT) < 1.5  # (the star straddles the seam)
    assert centroid_and_flux(warp, ra, dec)[2] == pytest.approx(FLUX, rel=2e-3)

    # on a grid offset and rotated from the CCDs, flux and position still carry across the seam
    outcomes = warp_exposures(paths, tmp_path / "rot", grid=Grid(wcs_b()))
    warp = read_exposure(outcomes[0].warp_path)
    cx, cy, flux, (px, py) = centroid_and_flux(warp, ra, dec)
    assert flux == pytest.approx(FLUX, rel=0.01)
    assert np.hypot(cx - px, cy - py) < 0.05


def test_cli_says_each_visit_warp_once(tmp_path, capsys):
    _, paths = ccd_files(tmp_path / "in")
    assert run_cli(["warp", *map(str, paths), "--grid", str(paths[0]), "--out", str(tmp_path / "out")]) == 0
    wrote = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote")]
    assert len(wrote) == 1 and wrote[0].endswith("; 2 files of visit 500)")
    assert "visit500_warp.fits" in wrote[0]


def test_a_visit_mosaic_assembles_with_other_visits(tmp_path):
    from dcrcoadd.coadd.baseline import assemble_coadd

    _, paths = ccd_files(tmp_path / "in")
    other = exposure(wcs_a(), 1, noise=0.5, seed=4, airmass=1.5)
    paths.append(write_exposure(other, tmp_path / "in" / "v1.fits"))
    outcomes = warp_exposures(paths, tmp_path / "warps", grid=Grid(wcs_a()))
    warps = sorted({o.warp_path for o in outcomes})
    assert [p.name for p in warps] == ["v1_warp.fits", "visit500_warp.fits"]
    coadd = assemble_coadd(warps, Config())
    assert sorted(i.visit_id for i in coadd.inputs) == [500, 501]
    for ra, dec in STARS:
        assert centroid_and_flux(coadd.coadd, ra, dec)[2] == pytest.approx(FLUX * CAL, rel=0.01)


def test_one_exposure_given_twice_is_refused(tmp_path, capsys):
    whole = exposure(wcs_a(), 0)
    first = write_exposure(whole, tmp_path / "in" / "expo.fits")
    copy = write_exposure(whole, tmp_path / "in" / "expo_copy.fits")
    outcomes = warp_exposures([first, copy], tmp_path / "out")
    assert not any(o.ok for o in outcomes)
    assert f"{copy}: shares" in outcomes[1].error and "expo.fits, of the same visit 500" in outcomes[1].error
    assert not (tmp_path / "out" / "visit500_warp.fits").exists()
    # the command line says the visit's one problem once, though both of its files failed
    assert run_cli(["warp", str(first), str(copy), "--grid", str(first), "--out", str(tmp_path / "cli")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {outcomes[1].error}", "error: warp: 2 of 2 exposures failed"]
    # the same file twice: the second is named, the first warped as usual
    outcomes = warp_exposures([first, first], tmp_path / "same")
    assert outcomes[0].ok and outcomes[0].warp_path.name == "expo_warp.fits"
    assert outcomes[1].error == f"{first}: given twice (also as {first})"


def test_dcrcoadd_products_among_the_exposures_are_skipped(tmp_path, capsys):
    # (a coadd or model was warped like an exposure; assemble then refused the result for lack of a
    # visit, naming the warp)
    from astropy.io import fits

    from dcrcoadd.io.products import mark_product

    expo = write_exposure(exposure(wcs_a(), 0), tmp_path / "in" / "expo.fits")
    coadd = exposure(wcs_a(), 1)
    coadd.visit = None
    path = write_exposure(coadd, tmp_path / "in" / "coadd.fits")
    with fits.open(path, mode="update") as hdus:
        mark_product(hdus[0].header, "coadd")
    outcomes = warp_exposures([path, expo], tmp_path / "out")
    assert outcomes[0].ok and outcomes[0].skipped == "a dcrcoadd baseline coadd, not an exposure"
    assert outcomes[1].warp_path.name == "expo_warp.fits"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["expo_warp.fits"]
    # only products: the grid cannot be chosen, and the message says why
    with pytest.raises(InputError, match="coadd.fits is a dcrcoadd baseline coadd, not an exposure"):
        warp_exposures([path], tmp_path / "none")


def test_a_visit_mosaic_carries_its_ccds_mean_psf(tmp_path, caplog):
    wide = Psf.gaussian(SIGMA * 1.3)
    _, paths = ccd_files(tmp_path / "in", psf_b=wide)
    with caplog.at_level("WARNING", logger="dcrcoadd"):
        outcomes = warp_exposures(paths, tmp_path / "out", grid=Grid(wcs_a()))
    warp = read_exposure(outcomes[0].warp_path)
    narrow = Psf.gaussian(SIGMA).fwhm
    assert narrow < warp.psf.fwhm < wide.fwhm
    assert any("visit 500: its 2 CCDs' PSFs range over FWHM" in r.getMessage() for r in caplog.records)


def test_files_of_different_visits_stay_apart(tmp_path):
    _, paths = ccd_files(tmp_path / "in", visit_b=7)
    outcomes = warp_exposures(paths, tmp_path / "out", grid=Grid(wcs_a()))
    assert [o.warp_path.name for o in outcomes] == ["expo_N1_warp.fits", "expo_N2_warp.fits"]


# -- multi-extension files: one image per CCD ------------------------------------------------------

def mef_file(directory, *, weights=False):
    """Exposure 0 as a DECam-Community-Pipeline-like file: the visit's cards in the primary header,
    CCD images `N1` and `N2` (the two halves, each with its WCS and its own FLUXCAL) and no mask or
    variance; with ``weights`` the weight maps (1/variance) as a companion file of the same layout."""
    from astropy.io import fits

    from dcrcoadd.io.fits import exposure_hdus

    whole, _ = ccd_files(directory / "parts")
    primary = fits.PrimaryHDU(header=exposure_hdus(whole)[0].header)
    for key in ("FLUXCAL", "FLUXCALE"):
        primary.header.remove(key, ignore_missing=True)
    cals = {"N1": CAL, "N2": CAL * 1.1}
    cuts = {"N1": (slice(None), slice(0, SPLIT)), "N2": (slice(None), slice(SPLIT, None))}
    shifts = {"N1": 0, "N2": -SPLIT}
    images, maps = [primary], [fits.PrimaryHDU()]
    for name in ("N1", "N2"):
        header = shift_wcs(wcs_a(), shifts[name], 0).to_header()
        header["FLUXCAL"] = cals[name]
        r = CAL / cals[name]
        images.append(fits.ImageHDU((whole.image[cuts[name]] * r).astype(np.float32), header, name=name))
        maps.append(fits.ImageHDU((1.0 / (whole.variance[cuts[name]] * r * r)).astype(np.float32), name=name))
    path = directory / "expo_ooi.fits"
    fits.HDUList(images).writeto(path)
    if weights:
        fits.HDUList(maps).writeto(directory / "expo_oow.fits")
    return whole, path


def test_a_multi_extension_file_is_warped_ccd_by_ccd(tmp_path):
    from dcrcoadd.io import read_info
    from dcrcoadd.io.fits import ccd_extensions
    from dcrcoadd.io.options import ReadOptions

    whole, path = mef_file(tmp_path, weights=True)
    assert ccd_extensions(path) == ["N1", "N2"]
    # (its CCDs are named already: the advice is to give it to warp or template, not to name them)
    with pytest.raises(InputError, match="which of its 2 images is the exposure .*or give the file to "
                                         "dcrcoadd warp or template, which read each of its CCDs$"):
        read_info(path)
    assert read_info(path, hdu="n2").bbox.shape == (SHAPE[0], SHAPE[1] - SPLIT)
    outcomes = warp_exposures([path], tmp_path / "out", grid=Grid(wcs_a()),
                              read_options=ReadOptions(weights="{name/_ooi/_oow}"))
    assert outcomes[0].ok and outcomes[0].warp_path.name == "visit500_warp.fits"
    warp = read_exposure(outcomes[0].warp_path)
    assert warp.visit.id == 500 and warp.flux_calibration == CAL and warp.shape == SHAPE
    np.testing.assert_allclose(warp.image, whole.image, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(warp.variance, whole.variance, rtol=1e-5)

    # a grid whose box only the first CCD reaches: only it is read (the warp is still the visit's)
    grid = Grid(wcs_a(), bbox=Box(0, 0, SPLIT - 5, SHAPE[0]))
    outcomes = warp_exposures([path], tmp_path / "part", grid=grid)
    assert outcomes[0].ok and outcomes[0].warp_path.name == "visit500_warp.fits"
    assert outcomes[0].bbox.width == SPLIT
    far = Grid(wcs_a(), bbox=Box(500, 500, 10, 10), source="far.fits")
    outcomes = warp_exposures([path], tmp_path / "far", grid=far)
    assert outcomes[0].ok and outcomes[0].warp_path is None
    assert outcomes[0].skipped == f"none of its 2 CCDs reaches the grid's box {far.bbox} (far.fits)"


def test_a_multi_extension_file_chooses_the_grid_from_all_its_ccds(tmp_path):
    whole, path = mef_file(tmp_path)
    outcomes = warp_exposures([path], tmp_path / "out")
    assert outcomes[0].ok
    warp = read_exposure(outcomes[0].warp_path)
    ra, dec = STARS[2]  # (across the CCDs' seam)
    assert centroid_and_flux(warp, ra, dec)[2] == pytest.approx(FLUX, rel=2e-3)


def test_info_describes_a_multi_extension_file_by_its_first_ccd(tmp_path, capsys):
    from dcrcoadd.cli import main

    _, path = mef_file(tmp_path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"file:        {path}: 2 CCD images (N1, N2); dcrcoadd warp and template read each" in out
    assert f"grid:        {SPLIT}x{SHAPE[0]} at origin" in out and "visit:       500" in out
    assert "layout: CCD image N1 of a multi-extension file" in out


def test_a_visit_too_large_for_memory_is_refused_before_any_ccd_is_read(tmp_path, monkeypatch):
    from dcrcoadd.resample import mosaic
    from dcrcoadd.resample import warp as warp_module

    _, path = mef_file(tmp_path)
    monkeypatch.setattr(mosaic, "physical_memory", lambda: 100 * 1024)  # (the two CCDs need 210 kB)
    from dcrcoadd.resample.grid import patch_grid

    # (on a patch the CCDs are cut to it: 8x8 px of them fit)
    (outcome,) = warp_exposures([path], tmp_path / "patch", grid=patch_grid(150.1, 2.2, (8, 8), 0.2))
    assert outcome.ok and read_exposure(outcome.warp_path).shape == (8, 8)
    monkeypatch.setattr(warp_module, "read_region", lambda *a, **k: pytest.fail("a CCD was read"))
    (outcome,) = warp_exposures([path], tmp_path / "out", grid=Grid(wcs_a()))
    assert outcome.error == (f"{path}: visit 500: its 2 CCDs span {SHAPE[1]}x{SHAPE[0]} px of the grid, "
                             "more than this machine's memory holds as one warp: warp onto a patch "
                             "(--center, --size), which reads only the CCDs that reach it")


def test_templates_of_a_multi_extension_science_file_one_per_ccd_on_the_model(tmp_path, monkeypatch, capsys):
    from astropy.io import fits

    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.template.build import build_templates

    models = []
    for i, (airmass, az) in enumerate(((1.05, 70.0), (1.3, 140.0), (1.6, 220.0), (1.9, 290.0), (1.4, 100.0))):
        exp = exposure(wcs_a(), 10 + i, noise=1.0, airmass=airmass, az=az, seed=20 + i)
        models.append(write_exposure(exp, tmp_path / "in" / f"m{i}.fits"))
    warps = [o.warp_path for o in warp_exposures(models, tmp_path / "warps", grid=Grid(wcs_a()))]
    model_path = tmp_path / "model.fits"
    assemble_dcr_coadd(warps, Config()).model.write(model_path)

    _, mef = mef_file(tmp_path / "sci")
    with fits.open(mef) as hdul:  # a third CCD, a degree away: off the model
        far = hdul["N2"].copy()
        far.name = "N3"
        far.header["CRVAL1"] += 1.0
        science = tmp_path / "sci" / "expo3_ooi.fits"
        fits.HDUList([h.copy() for h in hdul] + [far]).writeto(science)
        farther = far.copy()
        farther.name = "N4"
        fits.HDUList([hdul[0].copy(), far, farther]).writeto(tmp_path / "sci" / "off_ooi.fits")
    fwhm = Psf.gaussian(SIGMA).fwhm  # (the CCD images carry no PSF; the files of one CCD this one)
    *outcomes, skipped = build_templates(model_path, [science], tmp_path / "tmpl", diff=True,
                                         given_psf_fwhm=fwhm)
    assert [(o.hdu, o.ok) for o in outcomes] == [("N1", True), ("N2", True)]
    # the CCD off the model is said to be (one line for the file)
    assert skipped.hdu is None and skipped.template_path is None
    assert skipped.skipped == "its CCD N3 (1 of its 3 CCDs) does not overlap the model's footprint"
    assert [o.template_path.name for o in outcomes] == ["expo3_ooi_N1_template.fits",
                                                        "expo3_ooi_N2_template.fits"]
    # each CCD's template is the one of the same CCD as a file of its own
    _, parts = ccd_files(tmp_path / "parts")
    alone = build_templates(model_path, parts, tmp_path / "alone", given_psf_fwhm=fwhm)
    for o, a in zip(outcomes, alone, strict=True):
        t, ta = read_exposure(o.template_path), read_exposure(a.template_path)
        assert t.shape == ta.shape
        np.testing.assert_allclose(t.image, ta.image, rtol=1e-5, atol=1e-3)
        assert o.diff_path.exists()
    def broken(hdus):  # (N2's WCS matrix singular)
        for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
            if key in hdus[2].header:
                hdus[2].header[key] = 0.0

    bad = _edit_mef(mef, broken, "bad_ooi.fits")
    first, second = build_templates(model_path, [bad], tmp_path / "bad", given_psf_fwhm=fwhm)
    assert first.ok and second.error.startswith(f"{bad}: invalid WCS in IMAGE header")
    assert second.error.endswith("(its CCD N2)") and second.error.count(str(bad)) == 1
    off_path = tmp_path / "sci" / "off_ooi.fits"
    (off,) = build_templates(model_path, [off_path], tmp_path / "off")
    assert off.ok and off.skipped == "none of its 2 CCDs overlaps the model's footprint"
    from dcrcoadd.cli import main

    assert main(["template", str(model_path), str(off_path), "--out", str(tmp_path / "cli")]) == 2
    captured = capsys.readouterr()
    assert f"skipped {off_path}: none of its 2 CCDs overlaps" in captured.out
    assert "error: template: none of the science exposures overlaps the model" in captured.err
    # CCDs the header check lets through (a corner of a rotated CCD, an edge that only touches) but
    # the model does not reach are left out too, not failed
    import dcrcoadd.template.build as build

    monkeypatch.setattr(build, "_reaches_model", lambda *a: True)
    (off,) = build_templates(model_path, [off_path], tmp_path / "off2")
    assert off.ok and off.skipped == "none of its 2 CCDs overlaps the model's footprint"


def test_a_file_without_visit_metadata_is_warped_alone_as_before(tmp_path):
    bare = exposure(wcs_a(), 0)
    bare.visit = None
    path = write_exposure(bare, tmp_path / "plain.fits")
    (outcome,) = warp_exposures([path], tmp_path / "out", grid=Grid(wcs_a()))
    assert outcome.ok and outcome.warp_path.name == "plain_warp.fits" and outcome.visit_id is None


def _edit_mef(path, edit, name):
    from astropy.io import fits

    with fits.open(path) as hdul:
        copies = [h.copy() for h in hdul]
    edit(copies)
    out = path.with_name(name)
    fits.HDUList(copies).writeto(out)
    return out


def test_ccds_of_a_file_in_several_visits_or_none_each_make_their_warp(tmp_path):
    _, path = mef_file(tmp_path)

    def second_visit(hdus):
        hdus[2].header["EXPID"] = 501

    def no_visit(hdus):
        for key in ("EXPID", "BORE-AZ", "BORE-ALT", "BORE-AIRMASS"):
            del hdus[0].header[key]

    two = _edit_mef(path, second_visit, "two_ooi.fits")
    (outcome,) = warp_exposures([two], tmp_path / "two", grid=Grid(wcs_a()))
    assert outcome.ok
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == ["visit500_warp.fits", "visit501_warp.fits"]
    none = _edit_mef(path, no_visit, "none_ooi.fits")
    (outcome,) = warp_exposures([none], tmp_path / "none", grid=Grid(wcs_a()))
    assert outcome.ok, outcome.error
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == ["none_ooi_N1_warp.fits",
                                                                     "none_ooi_N2_warp.fits"]


def test_a_visit_of_calibrated_and_uncalibrated_ccds_is_refused(tmp_path):
    _, path = mef_file(tmp_path)

    def uncalibrated(hdus):
        del hdus[2].header["FLUXCAL"]

    mixed = _edit_mef(path, uncalibrated, "mixed_ooi.fits")
    (outcome,) = warp_exposures([mixed], tmp_path / "out", grid=Grid(wcs_a()))
    assert outcome.error == (f"{mixed}[N2]: is not flux-calibrated and {mixed}[N1] of the same visit is: "
                             "its pixels cannot be put in one unit")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_images_that_do_not_say_they_are_ccds_stay_ambiguous(tmp_path):
    from astropy.io import fits

    from dcrcoadd.io.fits import ccd_extensions

    path = tmp_path / "image_and_weight.fits"
    image = np.ones((8, 8), np.float32)
    fits.HDUList([fits.PrimaryHDU(image), fits.ImageHDU(image)]).writeto(path)
    assert ccd_extensions(path) == []
    (outcome,) = warp_exposures([path], tmp_path / "out", grid=Grid(wcs_a()))
    assert "no IMAGE extension says which of its 2 images is the exposure" in outcome.error
    # (it told the user of template to give the file to template, which reads only named CCDs)
    assert "for a file of CCDs, give each image its own EXTNAME" in outcome.error


def test_a_ccd_without_variance_does_not_take_its_neighbours_for_its_planes(tmp_path, caplog):
    from dcrcoadd.io.fits import read_info

    _, path = mef_file(tmp_path)

    def twin(hdus):  # (a neighbour of N1's shape, which a plane would have)
        hdus.append(hdus[1].copy())
        hdus[-1].name = "N3"

    path = _edit_mef(path, twin, "three_ooi.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        info = read_info(path, hdu="N1")
    assert "variance: none in the file; from the robust sky noise" in " ".join(info.notes)
    assert "is not read as one" not in caplog.text  # ("its N2 extension is not read as one: ...")


# -- a patch: --center and --size -----------------------------------------------------------------

def test_a_patch_grid_is_north_up_about_its_centre():
    from dcrcoadd.resample.grid import patch_grid

    grid = patch_grid(150.1, 2.2, (40, 30), 0.25)
    assert grid.clip and grid.bbox == Box(0, 0, 40, 30)
    ra, dec = grid.wcs.pixel_to_world_values(19.5, 14.5)  # the middle of the patch
    assert (ra, dec) == (pytest.approx(150.1), pytest.approx(2.2))
    ra_east, _ = grid.wcs.pixel_to_world_values(18.5, 14.5)  # one pixel left: east, RA grows
    assert (ra_east - 150.1) * 3600 * np.cos(np.radians(2.2)) == pytest.approx(0.25, rel=1e-4)
    with pytest.raises(InputError, match="not on the sky"):
        patch_grid(150.1, 95.0, (40, 30), 0.25)


def test_warps_are_cut_to_the_patch_and_exposures_that_miss_it_skipped(tmp_path, capsys):
    paths = write_pair(tmp_path / "in")
    far_wcs = tan_wcs(crval=(151.0, 2.2), crpix=(42.5, 40.5))
    paths.append(write_exposure(exposure(far_wcs, 7), tmp_path / "in" / "far.fits"))
    patch = choose_grid(paths, center=(150.1, 2.2), size=(52, 50))
    outcomes = warp_exposures(paths, tmp_path / "out", grid=patch)
    assert [o.ok for o in outcomes] == [True, True, True] and outcomes[2].warp_path is None
    assert outcomes[2].skipped == "misses the patch about RA 150.100000 Dec +2.200000"
    for o in outcomes[:2]:
        warp = read_exposure(o.warp_path)
        assert Box(0, 0, 52, 50).contains(warp.bbox) and warp.bbox.area > 0.8 * 52 * 50
        assert warp.wcs.pixel_to_world_values(25.5 - warp.bbox.x0, 24.5 - warp.bbox.y0) == (
            pytest.approx(150.1), pytest.approx(2.2))
        for ra, dec in STARS:  # (all well inside the patch, 10" across)
            assert centroid_and_flux(warp, ra, dec, radius=6.0)[2] == pytest.approx(FLUX, rel=0.01)

    assert run_cli(["warp", *map(str, paths), "--center", "10:00:24,+02:12:00", "--size", "40,36",
                    "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert f"skipped {paths[2]}: misses the patch about RA 150.100000" in out and out.count("wrote ") == 2
    assert "0.2000 arcsec/px, 40x36 px, centre RA 150.100000 Dec +2.200000" in out  # (the finest input's)
    assert run_cli(["warp", str(paths[2]), "--center", "150.1,2.2", "--size", "40",
                    "--out", str(tmp_path / "none")]) == 2
    assert "error: warp: none of the 1 exposures reaches the patch" in capsys.readouterr().err
    with pytest.raises(InputError, match="needs both its centre"):
        choose_grid(paths, center=(150.1, 2.2))
    with pytest.raises(InputError, match="either a grid or a patch"):
        choose_grid(paths, grid=paths[0], center=(150.1, 2.2), size=(4, 4))


def test_center_parts_are_read_each_in_its_own_form():
    from dcrcoadd.resample.command import _sky_position

    assert _sky_position("150.1,2.2") == (150.1, 2.2)
    ra, dec = _sky_position("150.1,+02:12:00")  # (a plain RA is degrees, whatever the Dec)
    assert (ra, dec) == (150.1, pytest.approx(2.2))
    ra, dec = _sky_position("10:00:24,2.2")  # (a sexagesimal RA is hours)
    assert (ra, dec) == (pytest.approx(150.1), 2.2)


def test_exposures_that_miss_a_patch_however_are_skipped_not_failed(tmp_path):
    from dcrcoadd.resample.grid import patch_grid

    # one beyond the patch's projection (the far side of the sky), one rotated by 45 degrees whose
    # bounding box reaches the patch but whose pixels do not (the patch lies off its NE edge)
    far = write_exposure(exposure(tan_wcs(crval=(330.1, -2.2), crpix=(42.5, 40.5)), 1), tmp_path / "far.fits")
    turned = tan_wcs(crval=(150.1, 2.2), crpix=(42.5, 40.5), rotation_deg=45.0)
    rotated = write_exposure(exposure(turned, 2), tmp_path / "rotated.fits")
    offset = 50 * 0.2 / 3600
    patch = patch_grid(150.1 + offset / np.cos(np.radians(2.2)), 2.2 + offset, (10, 10), 0.2)
    outcomes = warp_exposures([far, rotated], tmp_path / "out", grid=patch)
    assert [o.ok for o in outcomes] == [True, True]
    assert [o.skipped for o in outcomes] == [f"misses {patch.source}"] * 2
