"""DcrModel: the sky in M subfilters, and the forward model of a DCR-matched template."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy import fft

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.dcr import fourier, psf_ratio
from dcrcoadd.dcr.forward import (
    matched_template,
    subfilter_shifts,
    template_margin,
    wavelength_sample_shifts,
)
from dcrcoadd.errors import InputError
from dcrcoadd.io.checksum import ChecksumFailure, failed_checksums
from dcrcoadd.io.fits import exposure_hdus, read_exposure, write_hdus
from dcrcoadd.io.products import mark_product
from dcrcoadd.ops.psf_match import RoundTransfer

log = logging.getLogger("dcrcoadd.dcr.model")

#: Forward models a model can be rendered with (see `DcrModel.forward_model`).
FORWARD_MODELS = ("shift", "fourier")

#: PSF conventions of a model (see `DcrModel.psf_model`).
PSF_MODELS = ("none", "warp")
#: What a model's images times its ``flux_calibration`` are in (`DcrModel.flux_unit`).
FLUX_UNITS = ("nJy", "image")
#: Most wavelength bins per subfilter a model may ask for (NSAMPLE): the solver's default is 16, and each
#: bin costs a transform per template.
MAX_WAVELENGTH_SAMPLES = 256


def dcr_vectors(airmass: np.ndarray, parallactic_angle: np.ndarray) -> np.ndarray:
    """Each visit's DCR direction and lever arm, ``tan z (sin q, cos q)`` (plane-parallel ``tan z =
    sqrt(X² − 1)``): refraction displaces every wavelength along the parallactic angle ``q`` by
    ``R(λ) tan z``, so two visits see the same DCR when these vectors agree. Shape ``(N, 2)``."""
    airmass = np.atleast_1d(np.asarray(airmass, dtype=float))
    q = np.radians(np.atleast_1d(np.asarray(parallactic_angle, dtype=float)))
    tan_z = np.sqrt(np.maximum(airmass**2 - 1.0, 0.0))
    return np.column_stack([tan_z * np.sin(q), tan_z * np.cos(q)])


#: Visits whose DCR vectors (`dcr_vectors`, tan z) all lie within this of each other share nearly one
#: DCR. For scale: at airmass 1.5, 0.01 in airmass is 0.013 and 1° of parallactic angle 0.02; visits at
#: airmass 1.49-1.51 with angles within 1° span 0.033 (they were not warned about when only identical
#: ones were); near the zenith every visit does, having no DCR to tell the subfilters apart by.
DEGENERATE_SPREAD = 0.05


def dcr_spread(conditions: np.ndarray) -> float:
    """The largest distance between two visits' DCR vectors (`dcr_vectors`; ``conditions`` ``(N, 2)``
    airmass, parallactic angle in degrees)."""
    points = dcr_vectors(*np.asarray(conditions, dtype=float).reshape(-1, 2).T)
    return float(np.max(np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))))


def degenerate_conditions(conditions: np.ndarray) -> bool:
    """Whether visits of ``conditions`` (``(N, 2)`` airmass, parallactic angle in degrees) share nearly
    one DCR (`dcr_spread` below `DEGENERATE_SPREAD`): the subfilters of a model fitted to them are
    degenerate."""
    return dcr_spread(conditions) < DEGENERATE_SPREAD


def dcr_coverage_gap(conditions: np.ndarray, airmass: float, parallactic_angle: float) -> float:
    """Distance (in ``tan z``) of a visit's DCR vector (`dcr_vectors`) from the convex hull of the
    vectors of ``conditions`` (``(N, 2)`` airmass, parallactic angle in degrees): 0 inside it (a
    template interpolates the DCR the model was fitted to), else how far the template extrapolates.

    For scale: airmass 1.3 is ``tan z`` 0.83, airmass 2 is 1.73; visits on opposite sides of the
    meridian at airmass 1.3 are 1.66 apart. A gap is not by itself a failure: the exact solver
    extrapolates from inputs whose vectors span a range (the one-sided validation field, seed 8:
    science visits 0.56–1.72 from the inputs' hull left 0–2 false detections); from a degenerate
    set (one airmass and parallactic angle) it cannot.
    """
    from scipy.optimize import nnls

    conditions = np.asarray(conditions, dtype=float).reshape(-1, 2)
    points = dcr_vectors(conditions[:, 0], conditions[:, 1])
    target = dcr_vectors(airmass, parallactic_angle)[0]
    # the nearest convex combination: non-negative weights, their sum held to 1 by a heavy row
    heavy = 1e3
    a = np.vstack([points.T, np.full(len(points), heavy)])
    weights, _ = nnls(a, np.append(target, heavy))
    return float(np.hypot(*(points.T @ weights - target)))


@dataclass(eq=False)
class DcrModel:
    """The sky split into ``M`` subfilters over a box of the parent grid.

    Parameters
    ----------
    images : ndarray, shape (M, ny, nx)
        One image per subfilter, bluest first (float32).
    mask : ndarray
        Mask shared by all subfilters (the baseline coadd's).
    variance : ndarray
        Variance of one subfilter image (baseline coadd variance / M).
    bandpass : Bandpass
        The band; its effective wavelength is the DCR reference.
    subfilter_edges : ndarray, shape (M, 2)
        Wavelength range of each subfilter in nm.
    mask_planes, origin, wcs, psf, flux_calibration
        As for `Exposure`; ``wcs`` maps this model's array pixels.
    interp_order : int
        Shift interpolation the model was solved with (1 bilinear, 3 cubic spline); templates
        use it by default, since a model solved through one interpolation's smoothing and
        rendered through another's leaves residuals.
    forward_model : {"shift", "fourier"}
        The forward model the solver fitted, which templates reproduce exactly: "shift" —
        real-space interpolated shifts (``interp_order``, split subfilters; the iterative,
        LSST-parity solver); "fourier" — wavelength-averaged DCR phases
        (`dcrcoadd.dcr.fourier`, the exact solver).
    wavelength_samples : int
        Wavelength bins per subfilter of the "fourier" forward model.
    fourier_interpolation : {"exact", "bilinear"}
        Phase convention of the "fourier" forward model.
    linear_spectrum : bool
        The "fourier" forward model spreads each subfilter's light with the source spectrum's
        slope inside it (`dcrcoadd.dcr.fourier.linear_spectrum_weights`); False: throughput
        only (models written before it, without the SPECLIN card).
    solver : str or None
        The solver that produced the model; ``solver_settings`` its settings (name → value).
    psf_model : {"none", "warp"}
        "warp": the model is the sky seen through its reference PSF ``psf`` and warp ``i`` was
        fitted through ``P_i / P_ref`` (`dcrcoadd.dcr.psf_ratio`); templates can be rendered at a
        science exposure's own PSF (`render` with ``psf``). "none": one PSF shared by every warp.
    psf_ratio_floor : float
        The regularization ``ε`` of the ratio where the reference has no power ("warp" models).
    psf_chromatic_index : float
        Chromatic seeing of a "warp" model: subfilter ``a`` sees a warp's (and a template's) PSF
        widened by ``(λ_a/λ_eff)^index`` (`seeing_scales`, `dcrcoadd.dcr.psf_ratio`); 0: every
        subfilter sees the same PSF (models written before it, without the PSFCHROM card).
    input_conditions : ndarray, shape (N, 2), or None
        Airmass and parallactic angle (degrees) of the ``N`` warps the model was fitted to: the DCR
        directions it has seen (`dcr_coverage_gap`). None: unknown (models written before it).
    input_psf_fwhm : ndarray, shape (N,), or None
        PSF FWHM (model pixels) of each of those warps as the model was fitted through it: a template
        sharper than the sharpest of them extrapolates beyond what any warp measured. None: unknown
        (models written before it, or warps without PSFs).
    flux_unit : {"nJy", "image"} or None
        What ``flux_calibration`` converts the images to: ``"nJy"`` from calibrated inputs,
        ``"image"`` when none of them carried a calibration (their image units, `FLUX_UNITS`);
        None: unknown (models written before it).
    psfs_measured : bool
        A "warp" model whose warps' PSFs were all measured here (from their stars, fitted against
        the model, or Gaussians of seeing cards), none given by a file: the widths of its PSFs are
        then its own calibration, which a PSF from another pipeline does not share (the model fits
        every warp as well with all of them a little wider and itself a little sharper), so
        `dcrcoadd.template.build.make_template` fits a science exposure's PSF against the model
        rather than take its file's as it is.
    """

    images: np.ndarray
    mask: np.ndarray
    variance: np.ndarray
    bandpass: Bandpass
    subfilter_edges: np.ndarray
    mask_planes: MaskPlanes = field(default_factory=MaskPlanes)
    origin: tuple[int, int] = (0, 0)
    wcs: WCS | None = None
    psf: Psf | None = None
    flux_calibration: float = 1.0
    interp_order: int = 1
    forward_model: str = "shift"
    wavelength_samples: int = 1
    fourier_interpolation: str = "exact"
    linear_spectrum: bool = True
    solver: str | None = None
    solver_settings: dict = field(default_factory=dict)
    psf_model: str = "none"
    psf_ratio_floor: float = 3e-4
    psf_chromatic_index: float = 0.0
    input_conditions: np.ndarray | None = None
    input_psf_fwhm: np.ndarray | None = None
    flux_unit: str | None = None
    psfs_measured: bool = False

    def __post_init__(self):
        if self.flux_unit is not None and self.flux_unit not in FLUX_UNITS:
            raise ValueError(f"flux_unit must be one of {FLUX_UNITS} or None, got {self.flux_unit!r}")
        if self.psf_model not in PSF_MODELS:
            raise ValueError(f"psf_model must be one of {PSF_MODELS}, got {self.psf_model!r}")
        if self.interp_order not in (1, 3):
            raise ValueError(f"interp_order must be 1 or 3, got {self.interp_order}")
        if self.forward_model not in FORWARD_MODELS:
            raise ValueError(f"forward_model must be one of {FORWARD_MODELS}, got {self.forward_model!r}")
        self.images = np.asarray(self.images, dtype=np.float32)
        if self.images.ndim != 3 or self.images.shape[0] < 1:
            raise ValueError(f"images must have shape (M, ny, nx), got {self.images.shape}")
        self.mask = np.asarray(self.mask, dtype=np.uint32)
        self.variance = np.asarray(self.variance, dtype=np.float32)
        for name in ("mask", "variance"):
            if getattr(self, name).shape != self.images.shape[1:]:
                raise ValueError(f"{name} shape {getattr(self, name).shape} differs from the "
                                 f"subfilter images' {self.images.shape[1:]}")
        self.subfilter_edges = np.asarray(self.subfilter_edges, dtype=float).reshape(-1, 2)
        if len(self.subfilter_edges) != len(self):
            raise ValueError(f"{len(self.subfilter_edges)} subfilter ranges for {len(self)} images")
        self._check_convention()
        self.origin = (int(self.origin[0]), int(self.origin[1]))
        if self.input_conditions is not None:
            self.input_conditions = np.asarray(self.input_conditions, dtype=float).reshape(-1, 2)
        if self.input_psf_fwhm is not None:
            self.input_psf_fwhm = np.asarray(self.input_psf_fwhm, dtype=float).reshape(-1)

    def _check_convention(self) -> None:
        """ValueError for a forward-model convention no template can be rendered with (an edited model
        file's cards: each was a traceback at rendering time)."""
        n, most = self.wavelength_samples, MAX_WAVELENGTH_SAMPLES
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= most:
            raise ValueError(f"wavelength_samples (NSAMPLE) must be an integer from 1 to {most}, got {n!r}")
        if self.fourier_interpolation not in fourier.INTERPOLATIONS:
            raise ValueError(f"fourier_interpolation (FWDINTRP) must be one of {fourier.INTERPOLATIONS}, got "
                             f"{self.fourier_interpolation!r}")
        if not 0 < self.psf_ratio_floor <= 0.5:  # (the bounds of dcr.psf_ratio_floor)
            raise ValueError(f"psf_ratio_floor (PSFFLOOR) must lie in (0, 0.5], got {self.psf_ratio_floor!r}")
        if not -1 <= self.psf_chromatic_index <= 1:  # (and of dcr.psf_chromatic_index)
            raise ValueError("psf_chromatic_index (PSFCHROM) must lie in [-1, 1], got "
                             f"{self.psf_chromatic_index!r}")
        edges = self.subfilter_edges
        if not (np.all(np.isfinite(edges)) and np.all(edges[:, 0] < edges[:, 1])
                and np.all(edges[1:, 0] >= edges[:-1, 0])):
            raise ValueError(f"subfilter ranges must be increasing, got {edges.tolist()} nm")
        if self.bandpass is not None:
            lam = self.bandpass.effective_wavelength.to_value(u.nm)
            bw = self.bandpass.bandwidth.to_value(u.nm)
            if edges.min() < lam - 2 * bw or edges.max() > lam + 2 * bw:
                raise ValueError(f"subfilter ranges {edges.min():g}-{edges.max():g} nm lie outside the band "
                                 f"({lam:g} nm, {bw:g} nm wide): in Angstrom?")

    @classmethod
    def from_image(cls, coadd: Exposure, n_subfilters: int, *, bandpass: Bandpass | None = None,
                   psf: Psf | None = None, subfilter_edges: np.ndarray | None = None,
                   interp_order: int = 1) -> DcrModel:
        """Start a model by dividing a coadd equally among ``n_subfilters``.

        Each subfilter gets ``coadd / M`` and variance ``var / M`` (subfilters
        are treated as independent; the sum of M of them has the coadd's
        variance). Non-finite coadd pixels start at 0.
        """
        if n_subfilters < 1:
            raise ValueError(f"need at least one subfilter, got {n_subfilters}")
        bandpass = bandpass if bandpass is not None else coadd.bandpass
        if bandpass is None:
            raise InputError("the coadd has no bandpass (effective wavelength and bandwidth are "
                             "needed to compute DCR)", coadd.band or "coadd")
        if subfilter_edges is None:
            subfilter_edges = bandpass.subfilter_edges(n_subfilters)
        image = np.where(np.isfinite(coadd.image), coadd.image, 0.0) / n_subfilters
        return cls(
            images=np.repeat(image[None].astype(np.float32), n_subfilters, axis=0),
            mask=coadd.mask.copy(), variance=coadd.variance / n_subfilters, bandpass=bandpass,
            subfilter_edges=subfilter_edges, mask_planes=coadd.mask_planes, origin=coadd.origin,
            wcs=coadd.wcs, psf=psf if psf is not None else coadd.psf,
            flux_calibration=coadd.flux_calibration, interp_order=interp_order,
        )

    # -- container protocol -----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, subfilter: int) -> np.ndarray:
        if not -len(self) <= subfilter < len(self):
            raise IndexError(f"subfilter {subfilter} out of range for {len(self)} subfilters")
        return self.images[subfilter]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.images)

    @property
    def bbox(self) -> Box:
        return Box.from_shape(self.images.shape[1:], self.origin)

    def reference_image(self, bbox: Box | None = None) -> np.ndarray:
        """Mean of the subfilter images (over ``bbox``, default all)."""
        sl = (bbox or self.bbox).slices(self.bbox)
        return self.images[(slice(None), *sl)].mean(axis=0)

    def region(self, bbox: Box) -> DcrModel:
        """The model over ``bbox`` (a view of the pixel arrays)."""
        sl = bbox.slices(self.bbox)
        dx, dy = bbox.x0 - self.origin[0], bbox.y0 - self.origin[1]
        return replace(self, images=self.images[(slice(None), *sl)], mask=self.mask[sl],
                       variance=self.variance[sl], origin=bbox.origin,
                       wcs=None if self.wcs is None else shift_wcs(self.wcs, -dx, -dy))

    def assign(self, images: np.ndarray, bbox: Box, source_box: Box | None = None) -> None:
        """Copy ``images`` (covering ``source_box``, default ``bbox``) into this model over ``bbox``."""
        source_box = source_box or bbox
        self.images[(slice(None), *bbox.slices(self.bbox))] = images[(slice(None),
                                                                      *bbox.slices(source_box))]

    # -- templates --------------------------------------------------------------------------------
    @property
    def psf_aware(self) -> bool:
        """Whether templates can be rendered at another PSF (``psf_model == "warp"``)."""
        return self.psf_model == "warp" and self.psf is not None

    def seeing_scales(self) -> np.ndarray:
        """Width of each subfilter's seeing relative to a band-averaged PSF, ``(λ_a/λ_eff)^index``
        (`dcrcoadd.dcr.psf_ratio.seeing_scales`; all 1 without chromatic seeing)."""
        return psf_ratio.seeing_scales(self.bandpass, self.subfilter_edges, self.psf_chromatic_index)

    def render(self, visit: VisitInfo, box: Box | None = None, *, position: tuple[float, float] | None = None,
               order: int | None = None, split: bool = True, split_threshold: float = 0.1,
               psf: Psf | None = None, matching: RoundTransfer | None = None) -> np.ndarray:
        """The DCR-matched template image of ``visit`` over ``box`` (default the whole model).

        This is the one template path: `build_matched_exposure` and `dcrcoadd.template` use it.
        Each subfilter image is shifted by the visit's DCR in that subfilter (evaluated at
        ``position``, parent-grid pixels, default the centre of ``box``) and the shifted images
        are summed, over ``box`` grown by `template_margin` so that light shifted in across its
        edges is right. With ``psf`` a PSF-aware model (`psf_aware`) renders the template seen
        through that PSF: every subfilter's transfer is multiplied by ``P / P_ref`` (regularized
        as in the fit, `dcrcoadd.dcr.psf_ratio`); without it, at the model's reference PSF.
        Models that are not PSF-aware ignore ``psf``: their templates carry the model's PSF.
        ``matching`` (PSF-aware models, instead of ``psf``): the template at the reference PSF
        times this round transfer function, the same for every subfilter (a ratio fitted against
        the reference template, `dcrcoadd.template.build.fit_psf_to_model`).
        """
        if matching is not None and (psf is not None or not self.psf_aware):
            raise ValueError("matching applies to PSF-aware models, instead of psf")
        if self.wcs is None:
            raise InputError("the DCR model has no WCS; cannot project DCR into pixels", "model")
        if not self.psf_aware:
            psf = None  # its templates carry the model's PSF (LSST's convention)
        box = box or self.bbox
        at = box.center if position is None else position
        if self.forward_model == "fourier":
            return self._render_fourier(visit, box, at, psf, matching)
        if matching is not None:
            raise ValueError("matching applies to models of the Fourier forward model (exact solver)")
        shifts = subfilter_shifts([visit], self.wcs, self.origin, self.bandpass, self.subfilter_edges,
                                  at, split=split)[0]
        order = self.interp_order if order is None else order
        margin = template_margin(float(np.max(np.abs(shifts))), order)
        if psf is not None:  # light the science PSF spreads beyond the reference's comes in from outside
            margin += max(psf.shape) // 2 + 1
        region = box.grow(margin).clip(self.bbox)
        images = self.images[(slice(None), *region.slices(self.bbox))]
        template = matched_template(images, shifts, order=order, split_threshold=split_threshold)
        if psf is not None:
            # as the iterative solver fitted it: one ratio P / P_ref for every subfilter
            ratio = psf_ratio.ratio_transfer(psf.kernel, self.psf.kernel, template.shape,
                                             self.psf_ratio_floor)
            template = fft.irfft2(fft.rfft2(template) * ratio, s=template.shape).astype(template.dtype)
        return template[box.slices(region)]

    def _render_fourier(self, visit: VisitInfo, box: Box, at: tuple[float, float],
                        psf: Psf | None = None, matching: RoundTransfer | None = None) -> np.ndarray:
        """`render` through the Fourier forward model the exact solver fitted (module
        `dcrcoadd.dcr.fourier`): wavelength-averaged DCR phases on a padded grid, and the PSF
        ratio ``P / P_ref`` when ``psf`` is given (per subfilter with chromatic seeing)."""
        shifts, weights = wavelength_sample_shifts([visit], self.wcs, self.origin, self.bandpass,
                                                   self.subfilter_edges, self.wavelength_samples, at,
                                                   linear=self.linear_spectrum)
        margin = int(np.ceil(np.max(np.abs(shifts)))) + 2
        ratio = None
        if psf is not None:
            # light spread by the science PSF beyond the reference's comes in from outside the box
            margin += max(psf.shape) // 2 + 1
            kernel, ref, floor = psf.kernel, self.psf.kernel, self.psf_ratio_floor
            # with chromatic seeing (M, ky, kx): subfilter a sees the science PSF widened by scales[a]
            scales = self.seeing_scales()
            scales = None if np.all(scales == 1.0) else scales

            def ratio(grid):
                # in single precision, as `fourier.render` renders
                weight = psf_ratio.reference_weight(ref, grid, floor, dtype=np.complex64)
                return psf_ratio.ratio_transfers(kernel, ref, grid, floor, scales, weight=weight)[None]
        elif matching is not None:
            margin += max(self.psf.shape) // 2 + 1

            def ratio(grid):
                return matching.on_grid(grid)[None]
        region = box.grow(margin).clip(self.bbox)
        images = self.images[(slice(None), *region.slices(self.bbox))]
        template = fourier.render(images, shifts, weights, interpolation=self.fourier_interpolation,
                                  psf_ratio=ratio)[0]
        return template[box.slices(region)]

    def build_matched_template(self, visit: VisitInfo, bbox: Box | None = None, order: int | None = None,
                               split: bool = True, split_threshold: float = 0.1) -> np.ndarray:
        """The DCR-matched template image of ``visit`` over ``bbox`` (see `render`)."""
        return self.render(visit, bbox, order=order, split=split, split_threshold=split_threshold)

    def build_matched_exposure(self, visit: VisitInfo, bbox: Box | None = None, order: int | None = None,
                               split: bool = True, split_threshold: float = 0.1,
                               psf: Psf | None = None) -> Exposure:
        """The DCR-matched template as an Exposure (mask, variance M × subfilter variance, PSF, WCS);
        with ``psf`` a PSF-aware model's is seen through that PSF, which it then carries (pass the
        science exposure's PSF; models that are not PSF-aware ignore it)."""
        box = bbox or self.bbox
        sl = box.slices(self.bbox)
        image = self.render(visit, box, order=order, split=split, split_threshold=split_threshold, psf=psf)
        dx, dy = box.x0 - self.origin[0], box.y0 - self.origin[1]
        return Exposure(
            image=image, mask=self.mask[sl].copy(), variance=self.variance[sl] * len(self),
            mask_planes=self.mask_planes, origin=box.origin,
            wcs=None if self.wcs is None else shift_wcs(self.wcs, -dx, -dy),
            psf=self.psf if psf is None or not self.psf_aware else psf, visit=visit, bandpass=self.bandpass,
            flux_calibration=self.flux_calibration,
        )

    def subfilter_exposure(self, subfilter: int) -> Exposure:
        """One subfilter image as an Exposure (sharing the model's mask and variance)."""
        lo, hi = self.subfilter_edges[subfilter]
        centre = 0.5 * (lo + hi)
        band = Bandpass(f"{self.bandpass.name}_{subfilter}", centre * u.nm, (hi - lo) * u.nm)
        return Exposure(image=self.images[subfilter], mask=self.mask, variance=self.variance,
                        mask_planes=self.mask_planes, origin=self.origin, wcs=self.wcs, psf=self.psf,
                        bandpass=band, flux_calibration=self.flux_calibration)

    def stacked(self) -> Exposure:
        """Sum of the subfilter images, with variance M × subfilter variance."""
        return Exposure(image=self.images.sum(axis=0, dtype=np.float64), mask=self.mask.copy(),
                        variance=self.variance * len(self), mask_planes=self.mask_planes,
                        origin=self.origin, wcs=self.wcs, psf=self.psf, bandpass=self.bandpass,
                        flux_calibration=self.flux_calibration)

    @property
    def input_psf_range(self) -> tuple[float, float] | None:
        """Narrowest and widest `input_psf_fwhm` (model pixels); None when the model does not record
        them all."""
        widths = self.input_psf_fwhm
        if widths is None or not len(widths) or not np.all(np.isfinite(widths)):
            return None
        return float(np.min(widths)), float(np.max(widths))

    def dcr_coverage_gap(self, visit: VisitInfo) -> float | None:
        """How far ``visit``'s DCR lies outside the DCR the model was fitted to (`dcr_coverage_gap`);
        None when the model does not record its inputs or the visit lacks the geometry."""
        if self.input_conditions is None or not len(self.input_conditions):
            return None
        try:
            done = visit.completed()
            airmass, angle = float(done.airmass), float(done.parallactic_angle.deg)
        except (AttributeError, TypeError, ValueError):
            return None
        return dcr_coverage_gap(self.input_conditions, airmass, angle)

    # -- persistence ------------------------------------------------------------------------------
    def write(self, path: str | os.PathLike) -> Path:
        """Write the model as one multi-extension FITS file, atomically.

        Layout: the stacked image as an exposure file (primary header with the
        band, IMAGE, MASK, VARIANCE = subfilter variance, PSF, TRANSMISSION),
        then ``SUBFILTER_<k>`` image HDUs and a ``SUBFILTERS`` table of
        wavelength ranges.
        """
        stacked = self.stacked()
        stacked.variance = self.variance
        hdus = exposure_hdus(stacked)
        hdus[0].header["DCRMODEL"] = (True, "dcrcoadd DCR model file")
        mark_product(hdus[0].header, "model")
        hdus[0].header["NSUBFILT"] = (len(self), "number of subfilters")
        hdus[0].header["INTORDER"] = (self.interp_order, "shift interpolation order of the solution")
        hdus[0].header["FWDMODEL"] = (self.forward_model, "forward model fitted: shift or fourier")
        if self.flux_unit is not None:
            hdus[0].header["FLUXUNIT"] = (self.flux_unit, "unit of image x FLUXCAL: nJy or image")
        if self.forward_model == "fourier":
            hdus[0].header["NSAMPLE"] = (self.wavelength_samples, "wavelength bins per subfilter")
            hdus[0].header["FWDINTRP"] = (self.fourier_interpolation, "DCR phase convention")
            hdus[0].header["SPECLIN"] = (bool(self.linear_spectrum), "spectrum linear inside subfilters")
        if self.psf_model == "warp":  # (absent: "none", so earlier models and files stay as they were)
            hdus[0].header["PSFMODEL"] = (self.psf_model, "sky seen through the PSF HDU (reference)")
            hdus[0].header["PSFFLOOR"] = (self.psf_ratio_floor, "P_i/P_ref regularization floor")
            hdus[0].header["PSFCHROM"] = (self.psf_chromatic_index, "subfilter seeing FWHM ~ lambda^PSFCHROM")
            hdus[0].header["PSFMEAS"] = (bool(self.psfs_measured), "warp PSFs all measured here, none given")
        if self.solver is not None:
            hdus[0].header["SOLVER"] = (self.solver, "solver that made the model")
        image_header = hdus["IMAGE"].header
        for k, image in enumerate(self.images):
            hdu = fits.ImageHDU(data=np.ascontiguousarray(image), name=f"SUBFILTER_{k}")
            for key in ("LTV1", "LTV2", *(self.wcs.to_header(relax=True) if self.wcs else {})):
                if key in image_header:
                    hdu.header[key] = image_header[key]
            hdu.header["LAMMIN"] = (self.subfilter_edges[k, 0], "[nm] subfilter start")
            hdu.header["LAMMAX"] = (self.subfilter_edges[k, 1], "[nm] subfilter end")
            hdus.append(hdu)
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("subfilter", "J", array=np.arange(len(self))),
             fits.Column("lambda_min", "D", unit="nm", array=self.subfilter_edges[:, 0]),
             fits.Column("lambda_max", "D", unit="nm", array=self.subfilter_edges[:, 1])],
            name="SUBFILTERS"))
        if self.input_conditions is not None:
            conditions = np.asarray(self.input_conditions, dtype=float).reshape(-1, 2)
            columns = [fits.Column("airmass", "D", array=conditions[:, 0]),
                       fits.Column("parallactic_angle", "D", unit="deg", array=conditions[:, 1])]
            if self.input_psf_fwhm is not None and len(self.input_psf_fwhm) == len(conditions):
                columns.append(fits.Column("psf_fwhm", "D", unit="pix", array=self.input_psf_fwhm))
            hdus.append(fits.BinTableHDU.from_columns(columns, name="INPUTS"))
        if self.solver_settings:
            keys = sorted(self.solver_settings)
            hdus.append(fits.BinTableHDU.from_columns(
                [fits.Column("name", "A32", array=keys),
                 fits.Column("value", "A64", array=[repr(self.solver_settings[k]) for k in keys])],
                name="SOLVER"))
        return write_hdus(hdus, path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> DcrModel:
        """Read a model written by `write`; `InputError` if the file is not a DCR model."""
        path = Path(path)
        base = read_exposure(path)
        with fits.open(path, memmap=False) as hdul:
            hdul.readall()
            if not hdul[0].header.get("DCRMODEL", False):
                raise InputError("not a dcrcoadd DCR model file (no DCRMODEL keyword)", path)
            _check_checksums(failed_checksums(path, hdul), path)
            if base.bandpass is None:
                raise InputError("model file has no band (BANDLAM/BANDWID)", path)
            if base.wcs is None:  # (assemble needs one to place the DCR: a model without is damaged)
                raise InputError("model file is damaged: its IMAGE extension has no WCS (CTYPE, CRVAL, "
                                 "CRPIX, CD cards)", path)
            header = hdul[0].header
            n = header.get("NSUBFILT")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InputError(f"model file is damaged: NSUBFILT = {n!r} is not a number of subfilters "
                                 "(missing, or not a positive integer)", path)
            order = header.get("INTORDER", 1)
            if order not in (1, 3) or isinstance(order, bool):
                raise InputError(f"model file is damaged: INTORDER = {order!r} is not an interpolation order "
                                 "(1 or 3)", path)
            try:
                _check_card_groups(header)
                convention = _convention(header)
            except ValueError as exc:
                raise InputError(f"model file is damaged: {exc}", path) from None
            if convention["flux_unit"] not in (None, *FLUX_UNITS):
                raise InputError(f"unknown flux unit FLUXUNIT = {convention['flux_unit']!r} "
                                 "(written by a newer dcrcoadd?)", path)
            if convention["forward_model"] not in FORWARD_MODELS:
                raise InputError(f"unknown forward model FWDMODEL = {convention['forward_model']!r} "
                                 "(written by a newer dcrcoadd?)", path)
            if convention["psf_model"] not in PSF_MODELS:
                raise InputError(f"unknown PSF model PSFMODEL = {convention['psf_model']!r} "
                                 "(written by a newer dcrcoadd?)", path)
            if convention["psf_model"] == "warp" and base.psf is None:
                raise InputError("PSF-aware model (PSFMODEL = warp) without its reference PSF HDU", path)
            settings = {} if "SOLVER" not in hdul else {
                str(k).strip(): str(v).strip() for k, v in zip(hdul["SOLVER"].data["name"],
                                                                hdul["SOLVER"].data["value"], strict=True)}
            try:
                planes = [hdul[f"SUBFILTER_{k}"].data for k in range(n)]
                table = hdul["SUBFILTERS"].data
            except KeyError as exc:
                raise InputError(f"model file is incomplete ({exc})", path) from None
            for k, plane in enumerate(planes):
                if plane is None or np.shape(plane) != base.image.shape:
                    raise InputError(f"model file is damaged: SUBFILTER_{k} has shape {np.shape(plane)}, "
                                     f"the model's grid is {base.image.shape}", path)
                bad = np.size(plane) - np.count_nonzero(np.isfinite(plane))
                if bad:  # (one NaN spread over a whole Fourier-rendered template, which came out all NaN)
                    raise InputError(f"model file is damaged: SUBFILTER_{k} has {bad} NaN or infinite pixels "
                                     "(dcrcoadd writes finite ones only)", path)
            if np.any(base.variance < 0):
                raise InputError("model file is damaged: its VARIANCE is negative at "
                                 f"{np.count_nonzero(base.variance < 0)} pixels", path)
            images = np.stack([np.asarray(plane, dtype=np.float32) for plane in planes])
            conditions = input_fwhm = None
            if "INPUTS" in hdul:
                rows = hdul["INPUTS"].data
                conditions = np.column_stack([rows["airmass"], rows["parallactic_angle"]]).astype(float)
                if "psf_fwhm" in rows.names:
                    input_fwhm = np.asarray(rows["psf_fwhm"], dtype=float)
            if len(table) != n:
                raise InputError(f"model file is damaged: its SUBFILTERS table has {len(table)} rows for "
                                 f"NSUBFILT = {n}", path)
            edges = np.column_stack([table["lambda_min"], table["lambda_max"]]).astype(float)
        try:
            return cls(images=images, mask=base.mask, variance=base.variance, bandpass=base.bandpass,
                       subfilter_edges=edges, mask_planes=base.mask_planes, origin=base.origin,
                       wcs=base.wcs, psf=base.psf, flux_calibration=base.flux_calibration,
                       interp_order=order, solver_settings=settings, input_conditions=conditions,
                       input_psf_fwhm=input_fwhm, **convention)
        except ValueError as exc:  # (an edited card the model cannot hold: one line, not a traceback)
            raise InputError(f"model file is damaged: {exc}", path) from None


#: Cards `DcrModel.write` writes only beside another: without it, they tell of an edited header (read
#: without it, the model is rendered by the older default convention: a PSF-aware model's templates
#: without their PSF, 48 and 59 false detections on a simulated field against 0).
_CARD_GROUPS = {("PSFMODEL", "warp"): ("PSFFLOOR", "PSFCHROM", "PSFMEAS"),
                ("FWDMODEL", "fourier"): ("NSAMPLE", "FWDINTRP", "SPECLIN")}


def _check_card_groups(header) -> None:
    """ValueError where a model file's primary header lacks a card that the others it holds come with."""
    for (key, value), companions in _CARD_GROUPS.items():
        present = [c for c in companions if c in header]
        if present and str(header.get(key, "")).strip() != value:
            found = f"{key} = {header[key]}" if key in header else f"no {key}"
            raise ValueError(f"its header has {', '.join(present)}, which dcrcoadd writes only with "
                             f"{key} = {value}, but {found} (a card edited or deleted?)")
    if str(header.get("FWDMODEL", "")).strip() == "fourier" and "NSAMPLE" not in header:
        raise ValueError("FWDMODEL = fourier without NSAMPLE, the wavelength samples it was fitted with "
                         "(a card deleted?)")


def _check_checksums(failures: list[ChecksumFailure] | None, path: Path) -> None:
    """Refuse a model file whose pixels fail the checksums dcrcoadd wrote (DATASUM: changed by a disk or
    copy error, or an edit); warn of a header edited since (CHECKSUM alone), whose cards are used, and
    of a file without checksums (removed: nothing can be checked)."""
    if failures is None:
        log.warning("%s: has no checksums (dcrcoadd writes them; removed since?): its cards and pixels are "
                    "used unchecked", path)
        return
    data = [f.name for f in failures if f.data]
    if data:
        raise InputError(f"model file is damaged: the pixels of {', '.join(data)} fail the checksum dcrcoadd "
                         "wrote (DATASUM): the file changed since it was written (a disk or copy error, or "
                         "an edit); make the model again", path)
    if failures:
        log.warning("%s: the header of %s was edited since dcrcoadd wrote it (its CHECKSUM fails); its cards "
                    "are used as they are", path, ", ".join(f.name for f in failures))


def _convention(header) -> dict:
    """The forward-model convention a model file's primary header records (`DcrModel.write`);
    ValueError for a card that holds no value of its kind."""
    return dict(forward_model=str(header.get("FWDMODEL", "shift")),
                wavelength_samples=header.get("NSAMPLE", 1),
                fourier_interpolation=str(header.get("FWDINTRP", "exact")),
                linear_spectrum=bool(header.get("SPECLIN", False)),
                solver=header.get("SOLVER"),
                psf_model=str(header.get("PSFMODEL", "none")),
                psf_ratio_floor=float(header.get("PSFFLOOR", 1e-3)),
                psf_chromatic_index=float(header.get("PSFCHROM", 0.0)),
                psfs_measured=bool(header.get("PSFMEAS", False)),
                flux_unit=header.get("FLUXUNIT"))
