"""The forward model: subfilter sky images → the template each warp sees, its adjoint, contribution counts.

One object per tile (`ForwardModel`), built once from the visits' DCR at the tile's sky
position (`subfilter_shifts`). The iterative solver, its convergence metric, nImages and every
template go through it.

Real space (this module): warp ``i``'s template is ``Σ_a B_ia y_a`` with ``B_ia`` a sub-pixel shift
by the DCR of subfilter ``a`` in visit ``i`` (bilinear or cubic-spline interpolation). In split
mode (LSST's ``splitSubfilters``) a subfilter is the mean of two copies shifted by the DCR at its
two ends, a two-point approximation of the wavelength average inside the subfilter.

Back-projection (`ForwardModel.adjoint`) uses the unsplit shifts, as LSST's iterative update
does: with split mode on it is therefore the transpose of the unsplit forward operator, not of
the split one (the two differ by the within-subfilter spread, a fraction of a pixel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy import fft

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.dcr import fourier
from dcrcoadd.ops.shift import shift_image, shift_image_adjoint, spline_prefilter
from dcrcoadd.physics.dcr import dcr_shifts


def subfilter_shifts(visits: Sequence[VisitInfo], wcs: WCS, origin: tuple[int, int], bandpass: Bandpass,
                     edges: np.ndarray, at: tuple[float, float], *, split: bool = False) -> np.ndarray:
    """DCR shifts of every visit and subfilter at parent-grid pixel ``at = (x, y)``.

    ``wcs`` maps the pixels of an array whose first pixel is ``origin`` in the parent grid.
    Returns ``(N, M, 2)`` ``(dy, dx)``, or ``(N, M, 2, 2)`` when ``split``. DCR varies across a
    tile by far less than the interpolation error, so one position per tile (its centre) is enough.
    """
    position = (at[0] - origin[0], at[1] - origin[1])
    return np.stack([dcr_shifts(v, wcs, bandpass, len(edges), position=position, split=split, edges=edges)
                     for v in visits])


def wavelength_sample_shifts(visits: Sequence[VisitInfo], wcs: WCS, origin: tuple[int, int],
                             bandpass: Bandpass, edges: np.ndarray, n_samples: int,
                             at: tuple[float, float], *,
                             linear: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """DCR of ``n_samples`` wavelength bins inside each subfilter, for the Fourier forward model.

    Returns ``shifts`` ``(N, M, L, 2)`` of ``(dy, dx)`` at parent-grid pixel ``at`` and the
    bins' throughput shares ``(M, L)`` (`dcrcoadd.dcr.fourier.wavelength_samples`): the exact
    finite-bandwidth form of which LSST's split mode is the two-point approximation. With
    ``linear`` (the default) the source spectrum is piecewise linear instead of flat inside
    the subfilters: every subfilter gets the bins of the whole band, ``(N, M, M·L, 2)``, with
    the weights ``(M, M·L)`` of `dcrcoadd.dcr.fourier.linear_spectrum_weights` (without it the
    exact solver's subfilter colours come out stretched by ``M²/(M²−1)``).
    """
    sample_edges, weights = fourier.wavelength_samples(bandpass, edges, n_samples)
    position = (at[0] - origin[0], at[1] - origin[1])
    shifts = np.stack([fourier.sample_shifts(v, wcs, bandpass, sample_edges, position) for v in visits])
    if not linear:
        return shifts, weights
    m, n = weights.shape
    every_bin = np.repeat(shifts.reshape(len(visits), 1, m * n, 2), m, axis=1)
    return every_bin, fourier.linear_spectrum_weights(bandpass, sample_edges)


def matched_template(models: np.ndarray, shifts: np.ndarray, *, order: int = 1,
                     split_threshold: float = 0.1) -> np.ndarray:
    """``Σ_a B_a y_a``: shift each subfilter image by its DCR and sum.

    Parameters
    ----------
    models : ndarray, shape (M, ny, nx)
        Subfilter images.
    shifts : ndarray, shape (M, 2) or (M, 2, 2)
        ``(dy, dx)`` per subfilter, or two per subfilter in split mode; a split
        subfilter is the mean of its two shifted copies when the two shifts
        differ by at least ``split_threshold`` pixels, else it is shifted once
        by their mean.
    order : int
        Interpolation order (1 bilinear, 3 cubic spline).
    """
    shifts = np.asarray(shifts, dtype=float)
    if shifts.shape[0] != models.shape[0]:
        raise ValueError(f"{shifts.shape[0]} shifts for {models.shape[0]} subfilters")
    out = np.zeros(models.shape[1:], dtype=np.float64)
    for image, shift in zip(models, shifts, strict=True):
        coeffs = spline_prefilter(image) if order > 1 else image
        if shift.ndim == 2:
            if np.max(np.abs(shift[0] - shift[1])) >= split_threshold:
                out += 0.5 * shift_image(coeffs, shift[0], order, prefiltered=True)
                out += 0.5 * shift_image(coeffs, shift[1], order, prefiltered=True)
                continue
            shift = shift.mean(axis=0)
        out += shift_image(coeffs, shift, order, prefiltered=True)
    return out.astype(np.float32)


def back_projector(order: int, exact_adjoint: bool = True):
    """``B*`` of one shift: the exact transpose of the forward shift, or LSST's reverse shift.

    Both agree away from the image edges. At the edges only the transpose makes an
    iterative update a true gradient step of the least-squares problem; with the reverse
    shift, residuals of sources near a tile edge are fed back inconsistently and can grow
    from one iteration to the next (seen on near-zenith data).
    """
    if exact_adjoint:
        return lambda image, shift: shift_image_adjoint(image, shift, order)

    def reverse(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
        coeffs = spline_prefilter(image) if order > 1 else image
        return shift_image(coeffs, -np.asarray(shift), order, prefiltered=True)

    return reverse


@dataclass(frozen=True)
class ForwardModel:
    """The forward operator of one tile for N warps and M subfilters.

    Attributes
    ----------
    shifts : ndarray, shape (N, M, 2)
        Per-warp, per-subfilter DCR ``(dy, dx)`` (no split).
    split_shifts : ndarray, shape (N, M, 2, 2), optional
        The same at the two ends of each subfilter, for forward modelling in split mode.
    order : int
        Shift interpolation (1 bilinear, 3 cubic spline).
    split_threshold : float
        Split only where the two shifts differ by at least this (pixels).
    exact_adjoint : bool
        `adjoint` is the exact transpose of the shift (else LSST's reverse shift).
    sample_shifts : ndarray, shape (N, M, L, 2), optional
        DCR of L wavelength bins inside each subfilter (`wavelength_sample_shifts`), for
        the Fourier forward model of the exact solver (`dcrcoadd.dcr.fourier`).
    sample_weights : ndarray, shape (M, L), optional
        Their throughput shares (rows sum to 1).
    psf_scales : ndarray, shape (M,), optional
        Width of each subfilter's seeing relative to a warp's band-averaged PSF (chromatic
        seeing of a PSF-aware model, `dcrcoadd.dcr.psf_ratio.seeing_scales`); None: all 1.
    psf_transfers : ndarray, shape (N, ny, nx // 2 + 1), optional
        Each warp's PSF ratio ``P_i / P_ref`` on the ``rfft2`` grid of the tile
        (`dcrcoadd.dcr.psf_ratio.ratio_transfer`): the shifted-and-summed template of warp ``i``
        is seen through it (periodic over the tile, whose buffer takes the wrap), and `adjoint`
        applies its conjugate first. None: every warp shares the model's PSF.
    """

    shifts: np.ndarray
    split_shifts: np.ndarray | None = None
    order: int = 1
    split_threshold: float = 0.1
    exact_adjoint: bool = True
    sample_shifts: np.ndarray | None = None
    sample_weights: np.ndarray | None = None
    psf_scales: np.ndarray | None = None
    psf_transfers: np.ndarray | None = None

    @property
    def n_warps(self) -> int:
        return self.shifts.shape[0]

    @property
    def n_subfilters(self) -> int:
        return self.shifts.shape[1]

    def apply_one(self, models: np.ndarray, i: int) -> np.ndarray:
        """Warp ``i``'s template from subfilter images ``models`` (M, ny, nx)."""
        shifts = self.split_shifts if self.split_shifts is not None else self.shifts
        template = matched_template(models, shifts[i], order=self.order, split_threshold=self.split_threshold)
        if self.psf_transfers is None:
            return template
        seen = fft.irfft2(fft.rfft2(template) * self.psf_transfers[i], s=template.shape)
        return seen.astype(template.dtype)

    def apply(self, models: np.ndarray) -> np.ndarray:
        """Every warp's template, ``(N, ny, nx)``."""
        return np.stack([self.apply_one(models, i) for i in range(self.n_warps)])

    def adjoint(self, residual: np.ndarray, i: int) -> np.ndarray:
        """Back-project warp ``i``'s residual into each subfilter, ``(M, ny, nx)`` float64."""
        back = back_projector(self.order, self.exact_adjoint)
        if self.psf_transfers is not None:
            residual = fft.irfft2(fft.rfft2(residual) * np.conj(self.psf_transfers[i]), s=residual.shape)
        return np.stack([back(residual, s) for s in self.shifts[i]]).astype(np.float64)

    def counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-subfilter inverse contribution counts and integer nImages (LSST ``calculateNImage``).

        Each warp's good-pixel map (``weights``, (N, ny, nx)) is back-projected exactly as its
        residuals will be, and summed. Where every subfilter has at least one contribution the
        weight is the inverse of the sum; elsewhere it is 0 and nImage is 0.

        Returns
        -------
        inverse : ndarray, shape (M, ny, nx), float32
        n_images : ndarray of uint16, shape (M, ny, nx)
        """
        back = back_projector(self.order, self.exact_adjoint)
        m = self.n_subfilters
        total = np.zeros((m, *weights.shape[1:]), dtype=np.float64)
        counts = np.zeros((m, *weights.shape[1:]), dtype=np.int32)
        for i in range(self.n_warps):
            for a in range(m):
                shifted = back(weights[i], self.shifts[i, a])
                total[a] += shifted
                counts[a] += np.rint(shifted).astype(np.int32)
        good = np.all(total >= 1.0 - 1e-4, axis=0)
        inverse = np.zeros_like(total)
        np.divide(1.0, total, out=inverse, where=good[None] & (total > 0))
        counts[:, ~good] = 0
        return inverse.astype(np.float32), np.clip(counts, 0, None).astype(np.uint16)


def template_margin(max_shift: float, order: int) -> int:
    """Pixels a template region must extend beyond its box so that light shifted in across the
    box edges is right: the largest shift plus one, plus 10 for cubic splines (whose prefilter's
    edge transient decays as 0.268^n, 2e-6 after 10 pixels)."""
    return int(np.ceil(max_shift)) + 1 + (10 if order > 1 else 0)
