"""Per-pixel stacking of co-registered images with LSST's statistics and mask rules.

This reproduces what ``lsst.afw.math.statisticsStack`` does for one pixel across a
stack of inputs, vectorized over pixels:

* A pixel of an input is *good* when its image value is finite and its mask has
  none of the bad bits (``StackControl.bad_mask``). Only good pixels enter the
  statistic and ``n_good`` counts them.
* ``MEAN``: weighted mean ``sum(w x) / sum(w)``.
* ``MEANCLIP``: start from the (unweighted) median and half-width
  ``sigma_clip * 0.7413 * IQR``; then ``clip_iter`` times keep the values within
  the current centre +- half-width and compute their weighted mean and weighted,
  debiased variance; the next centre is that mean and the next half-width
  ``sigma_clip * sqrt(variance)``. Quartiles use linear interpolation at
  ``f (n - 1)`` like afw.
* ``MEDIAN``: unweighted median of the good values.
* Variance: with ``calc_error_from_input_variance`` the error of the weighted
  mean, ``sum(w^2 var) / sum(w)^2`` over the values used; otherwise the sample
  estimate ``s^2 sum(w^2) / sum(w)^2`` with ``s^2`` the weighted debiased
  variance.
* Output mask: OR of the masks of the good pixels; plus each plane of
  ``propagation_thresholds`` where the fraction of weight rejected with that
  plane set, ``w_rej / (sum(w_good) + w_rej)``, exceeds the threshold; where no
  input is good, the mask is ``no_good_pixels_mask`` instead (NO_DATA) and the
  value NaN; ``clipped_mask`` where MEANCLIP clipped a value; and for each
  ``(source, target)`` of ``mask_map``, ``target`` where any input was rejected
  with a ``source`` bit set (REJECTED / SENSOR_EDGE / CLIPPED, see
  `rejected_mask_mapping`).

Deliberate differences from afw, for robustness:

* If a clipping iteration leaves the clip range undefined (e.g. one value kept
  so no variance), afw returns NaN with every mask bit set; here the pixel keeps
  the previous iteration's result.
* ``MEDIAN`` with ``calc_error_from_input_variance`` gives ``pi/2`` times the
  error of the weighted mean from the input variances (afw always uses the
  sample scatter, which is undefined for one input).
* A ``mask_map`` source bit only counts where it actually rejected the pixel
  (afw also fires on accepted pixels carrying a non-bad source bit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from dcrcoadd.core.masks import MaskPlanes

log = logging.getLogger("dcrcoadd.ops.stack")

#: Converts an interquartile range to a Gaussian standard deviation (afw's value).
IQ_TO_STDEV = 0.741301109252802

STATISTICS = ("MEAN", "MEANCLIP", "MEDIAN")

#: Pixels per block when clipping a full stack, to bound float64 temporaries.
_BLOCK_PIXELS = 1 << 18


@dataclass(frozen=True)
class StackControl:
    """How to stack (the counterpart of afw's ``StatisticsControl`` + stacking arguments).

    Parameters
    ----------
    statistic : {"MEAN", "MEANCLIP", "MEDIAN"}
    bad_mask : int
        Integer bitmask of the planes that exclude an input pixel (afw "and mask").
    sigma_clip, clip_iter : float, int
        MEANCLIP clipping half-width (standard deviations) and number of iterations.
    calc_error_from_input_variance : bool
        Variance from the input variances rather than the scatter of the values.
    propagation_thresholds : tuple of (int, float)
        ``(plane value, threshold)``: set the plane on the output where the rejected weight
        fraction carrying it exceeds the threshold.
    mask_map : tuple of (int, int)
        ``(source bits, target bits)``: set ``target`` where an input was rejected with a
        ``source`` bit.
    clipped_mask : int
        Bits set where MEANCLIP clipped an input.
    no_good_pixels_mask : int
        Output mask where no input is good.
    """

    statistic: str = "MEAN"
    bad_mask: int = 0
    sigma_clip: float = 3.0
    clip_iter: int = 2
    calc_error_from_input_variance: bool = True
    propagation_thresholds: tuple[tuple[int, float], ...] = ()
    mask_map: tuple[tuple[int, int], ...] = ()
    clipped_mask: int = 0
    no_good_pixels_mask: int = 0

    def __post_init__(self):
        stat = str(self.statistic).upper()
        if stat not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {self.statistic!r}")
        object.__setattr__(self, "statistic", stat)
        if not self.sigma_clip > 0:
            raise ValueError(f"sigma_clip must be positive, got {self.sigma_clip}")
        if int(self.clip_iter) != self.clip_iter or self.clip_iter < 1:
            raise ValueError(f"clip_iter must be a positive integer, got {self.clip_iter}")


@dataclass
class StackResult:
    """Stacked image, variance and mask over one region, plus the number of good inputs."""

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    n_good: np.ndarray


def rejected_mask_mapping(planes: MaskPlanes, bad_mask: int) -> tuple[tuple[int, int], ...]:
    """LSST's ``setRejectedMaskMapping``: which coadd plane records a rejection.

    An input rejected because of EDGE marks SENSOR_EDGE, because of CLIPPED marks CLIPPED,
    and because of any other bad plane except NO_DATA marks REJECTED.
    """
    edge = planes.value_if_present(["EDGE"])
    no_data = planes.value_if_present(["NO_DATA"])
    clipped = planes.value_if_present(["CLIPPED"])
    to_reject = bad_mask & ~no_data & ~edge & ~clipped
    out = []
    if to_reject:
        out.append((to_reject, planes.value("REJECTED")))
    if edge:
        out.append((edge, planes.value("SENSOR_EDGE")))
    if clipped:
        out.append((clipped, clipped))
    return tuple(out)


def make_control(planes: MaskPlanes, *, statistic: str, bad_mask_planes, sigma_clip: float = 3.0,
                 clip_iter: int = 2, calc_error_from_input_variance: bool = True,
                 mask_propagation_thresholds: dict[str, float] | None = None) -> StackControl:
    """Build a `StackControl` from plane names, as LSST's ``prepareStats`` does.

    ``planes`` must already hold every plane named (see `MaskPlanes.merged`); REJECTED,
    SENSOR_EDGE and CLIPPED are the targets of the rejection mapping and NO_DATA marks
    pixels without good inputs.
    """
    bad = planes.value(list(bad_mask_planes)) if bad_mask_planes else 0
    thresholds = tuple((planes.value(name), float(thr))
                       for name, thr in (mask_propagation_thresholds or {}).items())
    return StackControl(
        statistic=statistic, bad_mask=bad, sigma_clip=sigma_clip, clip_iter=clip_iter,
        calc_error_from_input_variance=calc_error_from_input_variance,
        propagation_thresholds=thresholds, mask_map=rejected_mask_mapping(planes, bad),
        clipped_mask=planes.value_if_present(["CLIPPED"]),
        no_good_pixels_mask=planes.value_if_present(["NO_DATA"]),
    )


def good_pixels(image: np.ndarray, mask: np.ndarray, bad_mask: int) -> np.ndarray:
    """Boolean array of pixels that are finite and carry no bad bit."""
    return np.isfinite(image) & ((mask & np.uint32(bad_mask)) == 0)


# -- mask bookkeeping shared by all statistics ---------------------------------------------------

class _MaskState:
    """Accumulates the output-mask ingredients one input at a time."""

    def __init__(self, shape: tuple[int, ...], control: StackControl):
        self.control = control
        self.or_mask = np.zeros(shape, np.uint32)
        self.mapped = np.zeros(shape, np.uint32)
        self.n_good = np.zeros(shape, np.int32)
        self.rejected_weight = [np.zeros(shape) for _ in control.propagation_thresholds]

    def add(self, mask: np.ndarray, good: np.ndarray, weight: float) -> None:
        c = self.control
        # Masked in-place updates (``where=``): the same values as adding the weight times a
        # boolean, or OR-ing a ``np.where`` with zeros, without the full-size temporaries.
        np.bitwise_or(self.or_mask, mask, out=self.or_mask, where=good)
        self.n_good += good
        rejected = ~good
        for (value, _), acc in zip(c.propagation_thresholds, self.rejected_weight, strict=True):
            np.add(acc, float(weight), out=acc, where=rejected & ((mask & np.uint32(value)) != 0))
        for source, target in c.mask_map:
            hit = (mask & np.uint32(source & c.bad_mask)) != 0
            np.bitwise_or(self.mapped, np.uint32(target), out=self.mapped, where=hit)

    def finish(self, sum_w: np.ndarray, n_clipped: np.ndarray | None = None) -> np.ndarray:
        c = self.control
        out = self.or_mask.copy()
        for (value, threshold), rej in zip(c.propagation_thresholds, self.rejected_weight, strict=True):
            total = sum_w + rej
            frac = np.divide(rej, total, out=np.zeros_like(rej), where=total > 0)
            out |= np.where(frac > threshold, np.uint32(value), np.uint32(0))
        out = np.where(self.n_good == 0, np.uint32(c.no_good_pixels_mask), out)
        if n_clipped is not None and c.clipped_mask:
            out |= np.where(n_clipped > 0, np.uint32(c.clipped_mask), np.uint32(0))
        out |= self.mapped
        return out.astype(np.uint32)


# -- streaming weighted mean ---------------------------------------------------------------------

class MeanAccumulator:
    """Weighted MEAN stack built one input at a time (memory of one region, not of the stack).

    Gives the same result as `stack` with ``statistic="MEAN"`` (which uses it).

    Parameters
    ----------
    shape : (int, int)
        Shape of the region.
    control : StackControl
        Its statistic is ignored (always the mean).
    """

    def __init__(self, shape: tuple[int, int], control: StackControl):
        self.control = control
        self._masks = _MaskState(shape, control)
        self.sum_w = np.zeros(shape)
        self.sum_w2 = np.zeros(shape)
        self.sum_wx = np.zeros(shape)
        self.sum_vw2 = np.zeros(shape)
        # Weighted Welford running mean / second moment, only for the scatter-based error.
        self._need_scatter = not control.calc_error_from_input_variance
        if self._need_scatter:
            self._mean = np.zeros(shape)
            self._m2 = np.zeros(shape)

    def add(self, image: np.ndarray, variance: np.ndarray, mask: np.ndarray, weight: float) -> None:
        """Add one input (arrays over the region; missing data as NaN or a bad bit)."""
        weight = float(weight)
        good = good_pixels(image, mask, self.control.bad_mask)
        self._masks.add(mask, good, weight)
        if not self._need_scatter:
            # The sums only change where ``good``: masked in-place adds of the same products
            # (``weight * x`` is ``w * x`` there) instead of full-size zero-filled temporaries.
            np.add(self.sum_w, weight, out=self.sum_w, where=good)
            np.add(self.sum_w2, weight * weight, out=self.sum_w2, where=good)
            wx = image.astype(np.float64)
            wx *= weight
            np.add(self.sum_wx, wx, out=self.sum_wx, where=good)
            vw2 = variance.astype(np.float64)
            vw2 *= weight * weight
            np.add(self.sum_vw2, vw2, out=self.sum_vw2, where=good)
            return
        w = np.where(good, weight, 0.0)
        x = np.where(good, image, 0.0).astype(np.float64)
        self.sum_w += w
        self.sum_w2 += w * w
        self.sum_wx += w * x
        self.sum_vw2 += np.where(good, variance, 0.0) * (w * w)
        if self._need_scatter:
            delta = x - self._mean
            with np.errstate(invalid="ignore", divide="ignore"):
                self._mean += np.where(good, delta * w / self.sum_w, 0.0)
            self._m2 += w * delta * (x - self._mean)

    def result(self) -> StackResult:
        """The stacked region."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sum_wx / self.sum_w
            if self.control.calc_error_from_input_variance:
                var = self.sum_vw2 / self.sum_w**2
            else:
                var = _debiased(self._m2 / self.sum_w, self.sum_w, self.sum_w2) \
                    * self.sum_w2 / self.sum_w**2
        mask = self._masks.finish(self.sum_w)
        return StackResult(mean.astype(np.float32), var.astype(np.float32), mask, self._masks.n_good)


def _debiased(biased: np.ndarray, sum_w: np.ndarray, sum_w2: np.ndarray) -> np.ndarray:
    # afw: variance *= sumw^2 / (sumw^2 - sumw2); undefined (NaN/inf) for a single value.
    with np.errstate(invalid="ignore", divide="ignore"):
        return biased * sum_w**2 / (sum_w**2 - sum_w2)


# -- full-stack statistics -----------------------------------------------------------------------

def stack(images: np.ndarray, variances: np.ndarray, masks: np.ndarray, weights,
          control: StackControl) -> StackResult:
    """Stack ``N`` co-registered inputs pixel by pixel.

    Parameters
    ----------
    images, variances : ndarray, shape (N, ny, nx)
        Input values and variances (missing data as NaN or a bad mask bit).
    masks : ndarray of uint32, shape (N, ny, nx)
        Input masks, all in one plane layout.
    weights : array_like, shape (N,)
        Per-input weights (ignored by the MEDIAN value).
    control : StackControl

    Returns
    -------
    StackResult
    """
    images = np.asarray(images)
    variances = np.asarray(variances)
    masks = np.asarray(masks, dtype=np.uint32)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if images.ndim != 3 or images.shape != variances.shape or images.shape != masks.shape:
        raise ValueError(f"images, variances and masks must share one (N, ny, nx) shape, got "
                         f"{images.shape}, {variances.shape}, {masks.shape}")
    n_in = images.shape[0]
    if weights.shape != (n_in,):
        raise ValueError(f"need {n_in} weights, got {weights.shape[0]}")
    if n_in == 0:
        raise ValueError("cannot stack zero inputs")
    shape = images.shape[1:]
    if control.statistic == "MEAN":
        acc = MeanAccumulator(shape, control)
        for i in range(n_in):
            acc.add(images[i], variances[i], masks[i], weights[i])
        return acc.result()

    state = _MaskState(shape, control)
    for i in range(n_in):
        state.add(masks[i], good_pixels(images[i], masks[i], control.bad_mask), weights[i])
    npix = int(np.prod(shape))
    flat_img = images.reshape(n_in, npix)
    flat_var = variances.reshape(n_in, npix)
    flat_mask = masks.reshape(n_in, npix)
    value = np.empty(npix, np.float32)
    var = np.empty(npix, np.float32)
    sum_w = np.empty(npix)
    n_clipped = np.zeros(npix, np.int32)
    step = max(1, _BLOCK_PIXELS // max(n_in, 1))
    for start in range(0, npix, step):
        sl = slice(start, min(start + step, npix))
        x = flat_img[:, sl].astype(np.float64)
        # the variances are read only for an input-variance error (a scatter-based one ignores them)
        v = flat_var[:, sl].astype(np.float64) if control.calc_error_from_input_variance else None
        good = good_pixels(x, flat_mask[:, sl], control.bad_mask)
        if control.statistic == "MEDIAN":
            val, vv, sw = _median_columns(x, v, good, weights, control)
        else:
            val, vv, sw, nclip = _clipped_columns(x, v, good, weights, control)
            n_clipped[sl] = nclip
        value[sl], var[sl], sum_w[sl] = val, vv, sw
    mask = state.finish(sum_w.reshape(shape),
                        n_clipped.reshape(shape) if control.statistic == "MEANCLIP" else None)
    return StackResult(value.reshape(shape), var.reshape(shape), mask, state.n_good)


def _sorted_quantiles(x: np.ndarray, good: np.ndarray, fractions) -> tuple[list[np.ndarray], np.ndarray]:
    """Quantiles of the good values of each column, interpolated linearly at ``f (n-1)``."""
    srt = np.sort(np.where(good, x, np.nan), axis=0)  # NaN (bad) sorts last
    n = good.sum(axis=0)
    cols = np.arange(x.shape[1])
    out = []
    for f in fractions:
        idx = f * np.maximum(n - 1, 0)
        lo = np.floor(idx).astype(np.intp)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        frac = idx - lo
        q = (1.0 - frac) * srt[lo, cols] + frac * srt[hi, cols]
        out.append(np.where(n > 0, q, np.nan))
    return out, n


def _weighted_moments(x, v, use, weights, calc_error_from_input_variance):
    """Weighted mean, debiased variance and error variance of the ``use`` values per column."""
    w = np.where(use, weights[:, None], 0.0)
    xs = np.where(use, x, 0.0)
    sum_w = w.sum(axis=0)
    sum_w2 = (w * w).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * xs).sum(axis=0) / sum_w
        dev = np.where(use, xs - mean, 0.0)
        sample_var = _debiased((w * dev * dev).sum(axis=0) / sum_w, sum_w, sum_w2)
        if calc_error_from_input_variance:
            err_var = (np.where(use, v, 0.0) * w * w).sum(axis=0) / sum_w**2
        else:
            err_var = sample_var * sum_w2 / sum_w**2
    return mean, sample_var, err_var, sum_w


def _clipped_columns(x, v, good, weights, control: StackControl):
    (median, q1, q3), n = _sorted_quantiles(x, good, (0.5, 0.25, 0.75))
    center = median
    hwidth = control.sigma_clip * IQ_TO_STDEV * (q3 - q1)
    mean = np.full(x.shape[1], np.nan)
    err_var = np.full(x.shape[1], np.nan)
    sum_w = np.zeros(x.shape[1])
    n_keep = np.zeros(x.shape[1], np.int64)
    active = n > 0
    for _ in range(int(control.clip_iter)):
        with np.errstate(invalid="ignore"):
            keep = good & (np.abs(x - center) <= hwidth)
        m, s2, ev, sw = _weighted_moments(x, v, keep, weights, control.calc_error_from_input_variance)
        update = active & (sw > 0)
        mean = np.where(update, m, mean)
        err_var = np.where(update, ev, err_var)
        sum_w = np.where(update, sw, sum_w)
        n_keep = np.where(update, keep.sum(axis=0), n_keep)
        # afw: next centre = clipped mean; next half-width from the clipped variance (or the
        # IQR again for a single input). Where that is undefined, freeze the pixel.
        new_hwidth = np.where(n > 1, control.sigma_clip * np.sqrt(np.abs(s2)), hwidth)
        active = update & np.isfinite(m) & np.isfinite(new_hwidth)
        center = np.where(active, m, center)
        hwidth = np.where(active, new_hwidth, hwidth)
    n_clipped = np.where(n > 0, n - n_keep, 0)
    return mean.astype(np.float32), err_var.astype(np.float32), sum_w, n_clipped.astype(np.int32)


def _median_columns(x, v, good, weights, control: StackControl):
    (median,), n = _sorted_quantiles(x, good, (0.5,))
    mean, s2, ev, sum_w = _weighted_moments(x, v, good, weights, control.calc_error_from_input_variance)
    with np.errstate(invalid="ignore", divide="ignore"):
        if control.calc_error_from_input_variance:
            err_var = 0.5 * np.pi * ev
        else:
            err_var = 0.5 * np.pi * s2 / n
    return median.astype(np.float32), err_var.astype(np.float32), sum_w


# -- clipped statistics of a 1-d sample ---------------------------------------------------------

def sorted_percentiles(values: np.ndarray, q) -> np.ndarray:
    """``np.percentile(values, q)`` bit for bit, about three times faster on large samples.

    numpy's percentile selects with ``partition``, far slower on a million values than its
    vectorized sort; the selection it then makes on the sorted copy is nearly free and picks the
    same values, so the interpolated percentiles are the same.
    """
    return np.percentile(np.sort(np.asarray(values).ravel()), q)


def clipped_mean(values: np.ndarray, sigma_clip: float = 3.0, clip_iter: int = 2) -> tuple[float, float, int]:
    """afw ``MEANCLIP`` / ``VARIANCECLIP`` of a 1-d sample (unweighted, finite values only).

    Returns
    -------
    mean, variance, n : float, float, int
        Clipped mean, clipped (debiased) variance and the number of values kept; NaNs and
        0 when there are no finite values.
    """
    x = np.asarray(values).ravel()
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    x = x[np.isfinite(x)]  # float32 stays float32 (whole-warp samples); sums are float64
    n = x.size
    if n == 0:
        return float("nan"), float("nan"), 0
    q1, median, q3 = (float(q) for q in sorted_percentiles(x, (25.0, 50.0, 75.0)))
    center, hwidth = median, sigma_clip * IQ_TO_STDEV * (q3 - q1)
    mean, var, kept = float("nan"), float("nan"), 0
    for _ in range(int(clip_iter)):
        sel = x[np.abs(x - x.dtype.type(center)) <= hwidth]
        if sel.size == 0:
            break
        mean = float(sel.mean(dtype=np.float64))
        var = float(sel.var(ddof=1, dtype=np.float64)) if sel.size > 1 else float("nan")
        kept = int(sel.size)
        new_hwidth = sigma_clip * np.sqrt(var) if n > 1 else hwidth
        if not np.isfinite(new_hwidth):
            break
        center, hwidth = mean, new_hwidth
    return mean, var, kept
