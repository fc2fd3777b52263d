"""The faster paths of the baseline coadd give what the plain ones give, bit for bit."""

import gzip

import numpy as np

from conftest import write_warps
from dcrcoadd.coadd import assemble_coadd
from dcrcoadd.coadd.artifacts.static_sky import worker_tile_size
from dcrcoadd.core.geom import Box
from dcrcoadd.io import write_exposure
from dcrcoadd.io.fits import read_exposure, read_info, read_region
from dcrcoadd.parallel import serial_map


class _Workers:
    """A serial mapper that says it has several workers (as `ProcessMapper` does)."""

    def __init__(self, workers: int):
        self.workers = workers

    def __call__(self, fn, tasks):
        return serial_map(fn, tasks)


def test_read_region_equals_read_exposure(tmp_path):
    path = write_warps(tmp_path, 1, shape=(30, 40))[0]
    box = Box(3, 5, 20, 11)
    a, b = read_exposure(path, box), read_region(read_info(path), box)
    for plane in ("image", "mask", "variance"):
        np.testing.assert_array_equal(getattr(a, plane), getattr(b, plane))
    assert a.bbox == b.bbox and a.mask_planes == b.mask_planes
    assert np.allclose(a.wcs.wcs.crpix, b.wcs.wcs.crpix)


def test_read_region_maps_plain_files_and_reads_others_through_astropy(tmp_path):
    path = write_warps(tmp_path, 1, shape=(30, 40))[0]
    info = read_info(path)
    assert info.direct is not None  # plain arrays: mapped where they lie
    exp = read_exposure(path)
    squeezed = write_exposure(exp, tmp_path / "compressed.fits", compress=True)
    assert read_info(squeezed).direct is None  # tile-compressed: astropy decompresses
    box = Box(3, 5, 20, 11)
    a = read_region(read_info(squeezed), box)
    b = read_region(info, box)
    for plane in ("image", "mask", "variance"):
        np.testing.assert_array_equal(getattr(a, plane), getattr(b, plane))
    # a gzipped file: astropy decompresses it (the offsets it reports are in the decompressed stream)
    zipped = tmp_path / "warp.fits.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes(), compresslevel=0))  # no smaller than the file
    assert read_info(zipped).direct is None
    np.testing.assert_array_equal(read_region(read_info(zipped), box).image, b.image)
    # a file rewritten since its header was read is read afresh, not at the old offsets
    exp.image[:] += 1.0
    write_exposure(exp, path)
    np.testing.assert_array_equal(read_region(info, box).image, b.image + 1.0)


def test_worker_tiles_cover_the_workers():
    box = Box(0, 0, 1024, 1024)
    assert worker_tile_size(box, (2000, 2000), None) == (2000, 2000)
    assert worker_tile_size(box, (2000, 2000), _Workers(1)) == (2000, 2000)
    w, h = worker_tile_size(box, (2000, 2000), _Workers(2))
    assert -(-1024 // w) * -(-1024 // h) >= 2
    assert worker_tile_size(box, (256, 256), _Workers(4)) == (256, 256)  # already enough tiles


def test_coadd_is_the_same_whatever_the_workers_tiling(tmp_path):
    # 256 px rows: the padded column convolution of compare-warp is used too
    paths = write_warps(tmp_path, 5, shape=(64, 256), crpix=(128.5, 32.5))
    serial = assemble_coadd(paths)
    shared = assemble_coadd(paths, mapper=_Workers(4))
    for plane in ("image", "mask", "variance"):
        np.testing.assert_array_equal(getattr(serial.coadd, plane), getattr(shared.coadd, plane))
    np.testing.assert_array_equal(serial.n_image, shared.n_image)
    for a, b in zip(serial.artifact_masks, shared.artifact_masks, strict=True):
        for plane in a.planes:
            np.testing.assert_array_equal(a.planes[plane].index, b.planes[plane].index)
