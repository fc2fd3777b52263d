"""Per-pixel stacking: statistics, variances and LSST's mask propagation rules."""

import numpy as np
import pytest

from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.ops.stack import (
    IQ_TO_STDEV,
    MeanAccumulator,
    StackControl,
    clipped_mean,
    make_control,
    rejected_mask_mapping,
    stack,
)

PLANES = MaskPlanes()
BAD_PLANES = ["NO_DATA", "BAD", "SAT", "EDGE", "CLIPPED"]


def bit(*names):
    return PLANES.value(list(names))


def control(statistic="MEAN", **kw):
    kw.setdefault("mask_propagation_thresholds", {"SAT": 0.1})
    return make_control(PLANES, statistic=statistic, bad_mask_planes=kw.pop("bad", BAD_PLANES), **kw)


def constant_stack(values, shape=(3, 4), variances=None):
    n = len(values)
    images = np.array([np.full(shape, v, np.float32) for v in values])
    var = np.ones_like(images) if variances is None else \
        np.array([np.full(shape, v, np.float32) for v in variances])
    return images, var, np.zeros(images.shape, np.uint32), n


# -- statistics ------------------------------------------------------------------------------------

def test_weighted_mean_of_constant_images():
    images, var, masks, _ = constant_stack([1.0, 2.0, 4.0], variances=[1.0, 4.0, 2.0])
    w = np.array([3.0, 1.0, 2.0])
    res = stack(images, var, masks, w, control("MEAN"))
    np.testing.assert_allclose(res.image, (3 * 1 + 1 * 2 + 2 * 4) / 6.0, rtol=1e-6)
    # error of a weighted mean from the input variances: sum(w^2 v) / (sum w)^2
    np.testing.assert_allclose(res.variance, (9 * 1 + 1 * 4 + 4 * 2) / 36.0, rtol=1e-6)
    assert np.all(res.mask == 0) and np.all(res.n_good == 3)


def test_mean_variance_from_scatter_when_asked():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 2, 2)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, 6)
    res = stack(x, np.ones_like(x), np.zeros(x.shape, np.uint32), w,
                control("MEAN", calc_error_from_input_variance=False))
    mean = np.tensordot(w, x.astype(np.float64), 1) / w.sum()
    s2 = np.tensordot(w, (x - mean) ** 2, 1) / w.sum() * w.sum() ** 2 / (w.sum() ** 2 - (w**2).sum())
    np.testing.assert_allclose(res.image, mean, rtol=1e-5)
    np.testing.assert_allclose(res.variance, s2 * (w**2).sum() / w.sum() ** 2, rtol=1e-4)


def test_streaming_accumulator_equals_full_stack():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 8, 9)).astype(np.float32)
    v = rng.uniform(1, 2, x.shape).astype(np.float32)
    m = np.where(rng.random(x.shape) < 0.2, bit("SAT"), 0).astype(np.uint32)
    w = rng.uniform(0.5, 2.0, 5)
    c = control("MEAN")
    full = stack(x, v, m, w, c)
    acc = MeanAccumulator(x.shape[1:], c)
    for i in range(5):
        acc.add(x[i], v[i], m[i], w[i])
    part = acc.result()
    for name in ("image", "variance", "mask", "n_good"):
        np.testing.assert_array_equal(getattr(part, name), getattr(full, name))


def test_meanclip_removes_an_injected_outlier():
    base = np.linspace(-1.0, 1.0, 9)
    values = np.concatenate([base, [100.0]])
    images, var, masks, n = constant_stack(values, shape=(2, 2))
    images[-1, 0, 0] = 0.5  # only pixel (0, 0) of the last input is normal
    res = stack(images, var, masks, np.ones(n), control("MEANCLIP"))
    np.testing.assert_allclose(res.image[0, 1], base.mean(), atol=1e-6)
    np.testing.assert_allclose(res.variance[0, 1], 1.0 / 9, rtol=1e-6)  # 9 unit-variance values kept
    assert PLANES.names_in(int(res.mask[0, 1])) == ["CLIPPED"]  # INEXACT_PSF is set later, by the coadd
    np.testing.assert_allclose(res.image[0, 0], np.append(base, 0.5).mean(), atol=1e-6)
    assert res.mask[0, 0] == 0
    assert np.all(res.n_good == 10)  # clipping does not change the good-input count


def _meanclip_reference(x, w, sigma, iters):
    """afw's MEANCLIP for one pixel, written out directly."""
    q1, med, q3 = np.percentile(x, (25, 50, 75))
    center, hw = med, sigma * IQ_TO_STDEV * (q3 - q1)
    mean = None
    for _ in range(iters):
        keep = np.abs(x - center) <= hw
        sw, sw2 = w[keep].sum(), (w[keep] ** 2).sum()
        mean = (w[keep] * x[keep]).sum() / sw
        var = (w[keep] * (x[keep] - mean) ** 2).sum() / sw * sw**2 / (sw**2 - sw2)
        center, hw = mean, sigma * np.sqrt(var)
    return mean


def test_meanclip_matches_afw_algorithm_pixel_by_pixel():
    rng = np.random.default_rng(7)
    n, shape = 9, (6, 7)
    x = rng.standard_t(2, size=(n,) + shape).astype(np.float32)  # heavy tails: clipping matters
    w = rng.uniform(0.5, 2.0, n)
    masks = np.where(rng.random(x.shape) < 0.15, bit("BAD"), 0).astype(np.uint32)
    res = stack(x, np.ones_like(x), masks, w, control("MEANCLIP", sigma_clip=2.5, clip_iter=3))
    for iy in range(shape[0]):
        for ix in range(shape[1]):
            good = masks[:, iy, ix] == 0
            ref = _meanclip_reference(x[good, iy, ix].astype(float), w[good], 2.5, 3)
            assert res.image[iy, ix] == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_median_ignores_weights_and_masked_inputs():
    images, var, masks, n = constant_stack([1.0, 2.0, 10.0, 4.0, 1000.0])
    masks[4] = bit("BAD")
    res = stack(images, var, masks, [100, 1, 1, 1, 1], control("MEDIAN"))
    np.testing.assert_allclose(res.image, 3.0)  # median of 1, 2, 4, 10
    # pi/2 times the error of the (weighted) mean of the four good inputs
    w = np.array([100.0, 1, 1, 1])
    np.testing.assert_allclose(res.variance, np.pi / 2 * (w**2).sum() / w.sum() ** 2, rtol=1e-6)
    assert np.all(res.mask & bit("REJECTED"))


def test_clipped_mean_of_a_sample():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(5.0, 1.0, 10000), np.full(50, 1e4), [np.nan, np.inf]])
    mean, var, n = clipped_mean(x, 3.0, 2)
    assert mean == pytest.approx(5.0, abs=0.05) and var == pytest.approx(1.0, rel=0.1)
    assert 9900 < n < 10001
    assert np.isnan(clipped_mean([np.nan])[0])


# -- mask propagation, rule by rule ---------------------------------------------------------------

def masked_stack(n, flags, weights=None, statistic="MEAN", **kw):
    """n unit inputs over one pixel; ``flags`` maps input index -> mask bits."""
    images = np.ones((n, 1, 1), np.float32)
    masks = np.zeros((n, 1, 1), np.uint32)
    for i, f in flags.items():
        masks[i] = f
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    return stack(images, np.ones_like(images), masks, w, control(statistic, **kw))


def planes_of(res):
    return set(PLANES.names_in(int(res.mask[0, 0])))


@pytest.mark.parametrize("statistic", ["MEAN", "MEANCLIP", "MEDIAN"])
def test_sat_propagates_above_weight_threshold(statistic):
    # 1 of 5 equal weights = 20% > 10%: SAT on the coadd, and the rejection is recorded
    assert planes_of(masked_stack(5, {0: bit("SAT")}, statistic=statistic)) == \
        {"SAT", "REJECTED"}
    # 1 of 20 = 5% <= 10%: no SAT
    assert planes_of(masked_stack(20, {0: bit("SAT")}, statistic=statistic)) == {"REJECTED"}


def test_sat_threshold_uses_weights_not_counts():
    # the saturated input carries 1/(1+9*10) of the weight
    res = masked_stack(10, {0: bit("SAT")}, weights=[1] + [10] * 9)
    assert planes_of(res) == {"REJECTED"}
    res = masked_stack(10, {0: bit("SAT")}, weights=[10] + [1] * 9)
    assert planes_of(res) == {"SAT", "REJECTED"}


def test_rejection_planes_map_to_coadd_planes():
    assert planes_of(masked_stack(4, {1: bit("BAD")})) == {"REJECTED"}
    assert planes_of(masked_stack(4, {1: bit("EDGE")})) == {"SENSOR_EDGE"}
    assert planes_of(masked_stack(4, {1: bit("CLIPPED")})) == {"CLIPPED"}
    assert planes_of(masked_stack(4, {1: bit("NO_DATA")})) == set()  # missing data is not a rejection
    assert planes_of(masked_stack(4, {1: bit("NO_DATA", "BAD")})) == {"REJECTED"}


def test_good_pixel_planes_are_ored_rejected_ones_are_not():
    res = masked_stack(3, {0: bit("DETECTED"), 1: bit("CR", "BAD")})
    assert planes_of(res) == {"DETECTED", "REJECTED"}  # CR came with a rejected pixel
    assert res.image[0, 0] == 1.0 and res.n_good[0, 0] == 2


def test_no_good_input_gives_no_data():
    res = masked_stack(3, {0: bit("NO_DATA"), 1: bit("NO_DATA"), 2: bit("NO_DATA", "DETECTED")})
    assert planes_of(res) == {"NO_DATA"} and np.isnan(res.image[0, 0]) and res.n_good[0, 0] == 0
    res = masked_stack(2, {0: bit("NO_DATA"), 1: bit("BAD")})
    assert planes_of(res) == {"NO_DATA", "REJECTED"}


def test_nan_input_is_excluded_without_a_rejection_flag():
    images = np.ones((3, 1, 1), np.float32)
    images[0] = np.nan
    res = stack(images, np.ones_like(images), np.zeros(images.shape, np.uint32), np.ones(3), control())
    assert res.image[0, 0] == 1.0 and res.n_good[0, 0] == 2 and res.mask[0, 0] == 0


def test_rejected_mask_mapping_follows_lsst():
    bad = bit("NO_DATA", "BAD", "SAT", "EDGE", "CLIPPED")
    mapping = dict(rejected_mask_mapping(PLANES, bad))
    assert mapping[bit("BAD", "SAT")] == bit("REJECTED")
    assert mapping[bit("EDGE")] == bit("SENSOR_EDGE")
    assert mapping[bit("CLIPPED")] == bit("CLIPPED")


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="statistic"):
        StackControl(statistic="MODE")
    with pytest.raises(ValueError, match="weights"):
        stack(np.ones((2, 2, 2)), np.ones((2, 2, 2)), np.zeros((2, 2, 2), np.uint32), [1.0], StackControl())
    with pytest.raises(ValueError, match="shape"):
        stack(np.ones((2, 2, 2)), np.ones((2, 2, 3)), np.zeros((2, 2, 2), np.uint32), [1, 1], StackControl())
