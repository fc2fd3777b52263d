"""The fast binary morphology and column correlation equal scipy's results exactly."""

import numpy as np
import pytest
from scipy import ndimage

from dcrcoadd.ops import morphology
from dcrcoadd.ops.detection import disk
from dcrcoadd.ops.filters import aliased_rows, correlate_columns, gaussian_filter

STRUCTURES = {
    "disk4": disk(4),
    "disk2.5": disk(2.5),
    "square": np.ones((3, 3), bool),
    "diamond2": ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), 2),
    "asymmetric": np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 0], [1, 1, 0, 0, 1]], bool),
    "even": np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]], bool),
    "point": np.ones((1, 1), bool),
    "empty": np.zeros((3, 3), bool),
    "wider_than_mask": disk(30),
}


@pytest.mark.parametrize("name", STRUCTURES)
@pytest.mark.parametrize("operation", ["binary_dilation", "binary_erosion", "binary_opening"])
def test_morphology_equals_scipy(name, operation):
    rng = np.random.default_rng(len(name))
    structure = STRUCTURES[name]
    for shape in [(37, 53), (5, 3), (1, 7), (64, 64)]:
        for fraction in (0.02, 0.3, 0.9):
            mask = rng.uniform(size=shape) < fraction
            expected = getattr(ndimage, operation)(mask, structure=structure)
            np.testing.assert_array_equal(getattr(morphology, operation)(mask, structure), expected)


@pytest.mark.parametrize("shape", [(64, 256), (40, 512), (33, 100), (1, 256)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, bool])
def test_correlate_columns_equals_scipy(shape, dtype):
    rng = np.random.default_rng(3)
    arr = (rng.standard_normal(shape) > 0.3) if dtype is bool else rng.standard_normal(shape).astype(dtype)
    weights = np.exp(-0.5 * (np.arange(-4, 5) / 1.3) ** 2)
    weights /= weights.sum()
    expected = ndimage.correlate1d(arr, weights, axis=0, mode="constant", cval=0.0, output=np.float32)
    got = correlate_columns(arr, weights, output=np.float32)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_array_equal(got, expected)


def test_aliased_rows():
    assert aliased_rows((2048, 1024), 4)
    assert aliased_rows((10, 256), 4)
    assert not aliased_rows((2000, 2000), 4)
    assert not aliased_rows((1, 1024), 4)  # one row: nothing to alias


@pytest.mark.parametrize("shape", [(64, 256), (33, 100)])
@pytest.mark.parametrize("mode", ["constant", "reflect"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_filter_equals_scipy(shape, mode, dtype):
    arr = np.random.default_rng(4).standard_normal(shape).astype(dtype)
    for sigma in (0.7, 2.0, (1.0, 3.0)):
        expected = ndimage.gaussian_filter(arr, sigma, mode=mode)
        got = gaussian_filter(arr, sigma, mode=mode)
        assert got.dtype == expected.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)
