"""How well could any estimator measure subfilter colours on the validation field? A Cramér–Rao bound.

Issue 12 asks for subfilter colours (bluest / reddest subfilter of isolated stars) with a rank
correlation of at least 0.95 against the truth. On the one-sided validation field the exact solver
reaches about 0.93, and 0.999 with 100x less noise: noise limits it. This measures how much noise
is unavoidable. For a point source at a known position, seen through known PSFs, the best unbiased
estimate of its M subfilter fluxes ``f`` has the covariance ``F⁻¹`` with the Fisher matrix

    F_ab = Σ_i τ_i Σ_pixels h_ia h_ib,

``h_ia`` the image of a unit source of subfilter ``a`` in warp ``i`` (the solver's own forward
model: its wavelength-sampled DCR phases times the warp's PSF, `dcrcoadd.dcr.fourier.transfer`) and
``τ_i`` the warp's sky inverse variance (source noise left out, so the bound is optimistic for
bright stars). The colour's variance follows from ``F⁻¹`` by error propagation. Drawing colours with
those errors around the truth, for the stars the validation suite selects, gives the rank
correlation such an estimator would reach (mean of 300 draws).

The solver does not know where the stars are: a star's position is fitted with its fluxes, and it
absorbs the part of the DCR every warp shares. With the position fitted as well (two more
parameters, the derivatives of the star's image; `colour_fisher` with ``fluxes``) the colour's
bound is the flux block of the inverse of that larger Fisher matrix. Where the warps' DCR is
symmetric about 0 (visits on both sides of the meridian) the two bounds nearly agree; where it is
one-sided, a colour changes a star's image mostly as a shift would, and only the spread of the
visits' DCR measures it.

It prints, for one scenario of one field: the measured rank of the exact solver (defaults), the
ranks of the two bounds, and per S/N bin the median colour error of the solver's model against each
bound's.

Results (``python -m benchmarks.colour_bound --seed N [--scenario two_sided]``, default settings;
error ratios against the known-position / fitted-position bound at S/N 20-40 / 40-100 / 100-300 /
above 300)::

    one-sided  seed  8 (190 stars): rank 0.935; bounds 0.985 / 0.947; 2.7/1.4, 2.4/1.2, 3.6/1.7, 6.4/2.9
    one-sided  seed  3 (232 stars): rank 0.931; bounds 0.986 / 0.951; 2.2/1.1, 3.5/1.7, 3.1/1.4, 5.1/2.4
    one-sided  seed 12 (203 stars): rank 0.935; bounds 0.987 / 0.953; 2.7/1.3, 2.9/1.3, 3.3/1.6, 6.8/3.3
    one-sided  seed  5 (238 stars): rank 0.946; bounds 0.989 / 0.957; 1.6/0.8, 2.9/1.4, 2.8/1.4, 8.8/4.0
    one-sided  seed 11 (221 stars): rank 0.939; bounds 0.982 / 0.944; 2.0/0.9, 2.7/1.4, 4.4/2.2, 8.0/3.8
    two-sided  seed  8 (195 stars): rank 0.983; bounds 0.994 / 0.993; 1.9/1.7, 1.7/1.5, 1.9/1.7, 5.0/4.5
    two-sided  seed  3 (240 stars): rank 0.977; bounds 0.994 / 0.992; 1.8/1.6, 2.1/1.8, 2.6/2.2, 5.7/4.9

So on the one-sided field issue 12's target (rank >= 0.95) lies at what the data hold: an unbiased
estimator that has to find the stars' positions reaches 0.944-0.957 (0.950 on average over the five
fields) even with the sky noise alone and the PSFs known, and the solver, at 0.931-0.946, is within
1.1-1.7 times that bound's colour error up to S/N 300 (above it the source noise the bound leaves
out, and model errors, dominate; at S/N 20-40 the colour prior takes it below the unbiased bound).
Stronger or narrower colour priors narrowed the gap a little and traded it against false
detections or PSF-measured variable-seeing fields
(`dcrcoadd.config.schema.ExactSettings.colour_strength`).

Run::

    python -m benchmarks.colour_bound [--seed 8] [--scenario one_sided]   # ~20 s a seed
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

try:
    from . import validation as V
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import validation as V


def colour_fisher(transfers: np.ndarray, tau: np.ndarray, grid: tuple[int, int],
                  fluxes: np.ndarray | None = None) -> np.ndarray:
    """``F_ab = Σ_i τ_i <h_ia, h_ib>`` of a point source, from its transfers ``(N, M, gy, gx//2+1)`` on
    ``grid`` (the rfft2 half plane; ``h_ia`` their inverse transforms) and the warps' ``τ_i``.

    With ``fluxes`` (the source's ``M`` subfilter fluxes) the source's position ``(x, y)`` is fitted
    too: the matrix is ``(M + 2) × (M + 2)``, its last two parameters the position, whose derivative
    is that of the source's image ``Σ_a f_a h_ia`` (the colour's variance is then the flux block of the
    inverse: the position's uncertainty marginalized).
    """
    from scipy import fft

    from dcrcoadd.dcr import fourier

    m = transfers.shape[1]
    ky, kx = fourier.frequencies(grid)
    size = m if fluxes is None else m + 2
    fisher = np.zeros((size, size))
    for b, t in zip(transfers, tau, strict=True):
        rows = [fft.irfft2(b[a], s=grid) for a in range(m)]
        if fluxes is not None:
            image = np.tensordot(np.asarray(fluxes, dtype=float), b, axes=1)
            rows += [fft.irfft2(image * (2j * np.pi * kx[None, :]), s=grid),
                     fft.irfft2(image * (2j * np.pi * ky[:, None]), s=grid)]
        h = np.stack(rows).reshape(size, -1)
        fisher += float(t) * h @ h.T
    return fisher


def colour_sigma(cov: np.ndarray, blue: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Standard deviation (mag) of ``-2.5 log10(blue / red)`` for the flux covariance ``cov`` (M x M)."""
    k = 2.5 / math.log(10.0)
    var = cov[0, 0] / blue**2 + cov[-1, -1] / red**2 - 2.0 * cov[0, -1] / (blue * red)
    return k * np.sqrt(np.maximum(var, 0.0))


def expected_rank(c_true: np.ndarray, sigma: np.ndarray, draws: int = 300, seed: int = 0) -> float:
    """Mean Spearman rank correlation of ``c_true`` with ``c_true + N(0, sigma)``."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    return float(np.mean([spearmanr(c_true, c_true + rng.normal(0.0, sigma)).statistic
                          for _ in range(draws)]))


def run(seed: int, scenario: str) -> dict:
    from dcrcoadd.config.schema import Config
    from dcrcoadd.dcr import fourier
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.dcr.forward import wavelength_sample_shifts
    from dcrcoadd.dcr.psf_ratio import kernel_transfer

    setup = V.ValidationSetup(seed=seed)
    sim, scenarios = V.simulate_field(setup)
    sc = next(s for s in scenarios if s.name == scenario)
    warps = [sim.warps[i] for i in sc.model]
    config = Config()
    config.dcr.solver = "exact"
    result = assemble_dcr_coadd(warps, config)
    model = result.model
    measured = V.spectra(sim, result, setup, model.variance)
    # the stars `spectra` selects, again (isolated, S/N >= snr_min_color against the model's variance)
    cat = sim.catalog
    xs = np.asarray(cat["x"], float) - model.origin[0]
    ys = np.asarray(cat["y"], float) - model.origin[1]
    truth = V._subfilter_truth(sim, model)
    sigma = V._second_moment_fwhm(result.coadd.psf) / 2.3548
    idx = np.nonzero(V.isolated(xs, ys, np.asarray(cat["flux"], float), sigma, model.images.shape[1:],
                                setup.edge))[0]
    response = V.psf_response(result.coadd.psf.kernel, sigma)
    _, blue_err = V.gaussian_flux(model.images[0], model.variance, xs[idx], ys[idx], sigma)
    _, red_err = V.gaussian_flux(model.images[-1], model.variance, xs[idx], ys[idx], sigma)
    snr = np.minimum(truth[idx, 0] / (blue_err * response), truth[idx, -1] / (red_err * response))
    sel = idx[snr >= setup.snr_min_color]
    snr = snr[snr >= setup.snr_min_color]
    # the Fisher matrix of a point source at the field's centre, through each warp's own PSF
    grid = (64, 64)
    centre = (model.bbox.x0 + model.bbox.width / 2, model.bbox.y0 + model.bbox.height / 2)
    transfers, tau = [], []
    for w in warps:
        shifts, weights = wavelength_sample_shifts([w.visit], model.wcs, model.origin, model.bandpass,
                                                   model.subfilter_edges, model.wavelength_samples, centre,
                                                   linear=model.linear_spectrum)
        psf = kernel_transfer(w.psf.kernel, grid)
        transfers.append(fourier.transfer(shifts, weights, grid, psf_ratio=psf, dtype=np.complex128)[0])
        var = w.variance[np.isfinite(w.variance)] * w.flux_calibration**2
        tau.append(1.0 / float(np.median(var)))
    transfers, tau = np.stack(transfers), np.array(tau)
    cov = np.linalg.inv(colour_fisher(transfers, tau, grid))
    c_true = V.color(truth[sel, 0], truth[sel, -1])
    known = colour_sigma(cov, truth[sel, 0], truth[sel, -1])
    # the position fitted with the fluxes: per star, since its derivative is that of the star's image
    m = truth.shape[1]
    fitted = np.array([colour_sigma(np.linalg.inv(colour_fisher(transfers, tau, grid, truth[s]))[:m, :m],
                                    truth[s, 0], truth[s, -1]) for s in sel])
    errors = np.abs(np.asarray(measured["points"]["measured"]) - np.asarray(measured["points"]["true"]))
    bins = []
    for lo, hi in ((20, 40), (40, 100), (100, 300), (300, math.inf)):
        inside = (snr >= lo) & (snr < hi)
        if inside.sum() >= 3:
            # (a Gaussian's median absolute value is 0.674 of its sigma)
            spread = np.median(errors[inside]) / 0.674
            bins.append({"snr": [lo, hi], "n": int(inside.sum()),
                         "error_over_bound": float(spread / np.median(known[inside])),
                         "error_over_fitted_bound": float(spread / np.median(fitted[inside]))})
    return {"seed": seed, "scenario": scenario, "n_stars": int(len(sel)),
            "measured_rank": measured["fit"]["rank"], "bound_rank": expected_rank(c_true, known),
            "fitted_position_bound_rank": expected_rank(c_true, fitted),
            "bound_colour_sigma_median": float(np.median(known)),
            "fitted_position_colour_sigma_median": float(np.median(fitted)), "bins": bins}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, action="append", help="validation field seed (repeatable; default 8)")
    ap.add_argument("--scenario", default="one_sided", choices=V.SCENARIOS)
    args = ap.parse_args(argv)
    for seed in args.seed or [8]:
        r = run(seed, args.scenario)
        bins = ", ".join(f"S/N {b['snr'][0]}-{b['snr'][1]}: {b['error_over_bound']:.1f} / "
                         f"{b['error_over_fitted_bound']:.1f}" for b in r["bins"])
        print(f"seed {seed} ({args.scenario}, {r['n_stars']} stars): measured rank {r['measured_rank']:.3f}, "
              f"bound {r['bound_rank']:.3f} at the known position, {r['fitted_position_bound_rank']:.3f} "
              f"with the position fitted; median colour error / the two bounds': {bins}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
