"""Exposure: an image with its mask, variance, WCS, PSF, visit and band."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from astropy.wcs import WCS

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo


@dataclass(eq=False)
class Exposure:
    """A calibrated image on a region of the parent pixel grid.

    Parameters
    ----------
    image : ndarray
        Pixel values (float32), indexed ``[y, x]``.
    mask : ndarray, optional
        Integer bit mask (uint32); default all zero.
    variance : ndarray, optional
        Per-pixel variance (float32); default all zero (unknown).
    mask_planes : MaskPlanes, optional
        Meaning of the mask bits; default the LSST planes.
    origin : (int, int)
        Parent-grid position ``(x0, y0)`` of pixel ``[0, 0]``.
    wcs : `~astropy.wcs.WCS`, optional
        Celestial WCS of *this array's* pixels (0-based, as astropy counts).
    psf : Psf, optional
    visit : VisitInfo, optional
    band : str, optional
        Band name; defaults to ``bandpass.name`` when a bandpass is given.
    bandpass : Bandpass, optional
    flux_calibration : float
        nJy per image unit.
    """

    image: np.ndarray
    mask: np.ndarray | None = None
    variance: np.ndarray | None = None
    mask_planes: MaskPlanes = field(default_factory=MaskPlanes)
    origin: tuple[int, int] = (0, 0)
    wcs: WCS | None = None
    psf: Psf | None = None
    visit: VisitInfo | None = None
    band: str | None = None
    bandpass: Bandpass | None = None
    flux_calibration: float = 1.0

    def __post_init__(self):
        self.image = np.asarray(self.image, dtype=np.float32)
        if self.image.ndim != 2:
            raise ValueError(f"image must be 2-D, got shape {self.image.shape}")
        if self.mask is None:
            self.mask = np.zeros(self.image.shape, dtype=np.uint32)
        if self.variance is None:
            self.variance = np.zeros(self.image.shape, dtype=np.float32)
        self.mask = np.asarray(self.mask)
        if not (self.mask.dtype == np.bool_ or np.issubdtype(self.mask.dtype, np.integer)):
            raise TypeError(f"mask must hold integer bit planes, got {self.mask.dtype} (a float mask's "
                            "fractions and NaNs have no bits)")
        if self.mask.dtype.itemsize > 4 and self.mask.size and (
                self.mask.max() >= 2**32 or self.mask.min() < -(2**31)):
            raise ValueError("mask has bits above bit 31; masks hold 32 bit planes")
        if self.mask.dtype != np.uint32:
            if np.issubdtype(self.mask.dtype, np.signedinteger) and self.mask.size and self.mask.min() < 0:
                self.mask = self.mask.view(np.uint32) if self.mask.dtype.itemsize == 4 \
                    else self.mask.astype(np.int64).astype(np.uint32)
            else:
                self.mask = self.mask.astype(np.uint32)
        self.variance = np.asarray(self.variance, dtype=np.float32)
        for name in ("mask", "variance"):
            arr = getattr(self, name)
            if arr.shape != self.image.shape:
                raise ValueError(f"{name} shape {arr.shape} differs from image shape {self.image.shape}")
        if any(float(v) != int(v) for v in self.origin):
            raise ValueError(f"origin must be whole pixels of the parent grid, got {tuple(self.origin)}")
        self.origin = (int(self.origin[0]), int(self.origin[1]))
        if self.psf is not None and not isinstance(self.psf, Psf):
            raise TypeError(f"psf must be a Psf (e.g. Psf(kernel)), got {type(self.psf).__name__}")
        if self.band is None and self.bandpass is not None:
            self.band = self.bandpass.name
        self.flux_calibration = float(self.flux_calibration)
        if not (np.isfinite(self.flux_calibration) and self.flux_calibration > 0):
            raise ValueError(f"flux calibration must be positive, got {self.flux_calibration}")

    # -- geometry -------------------------------------------------------------
    @property
    def bbox(self) -> Box:
        """Box of this exposure in the parent grid."""
        return Box.from_shape(self.image.shape, self.origin)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape

    def parent_wcs(self) -> WCS | None:
        """WCS of parent-grid pixel coordinates (``x_parent = x_local + x0``)."""
        if self.wcs is None:
            return None
        return shift_wcs(self.wcs, self.origin[0], self.origin[1])

    def __getitem__(self, box: Box) -> Exposure:
        """Sub-exposure over ``box`` (parent coordinates) sharing memory with this one."""
        return self.subexposure(box)

    def subexposure(self, box: Box) -> Exposure:
        """Sub-exposure over ``box`` (parent coordinates), view-backed.

        The WCS is adjusted so that the sub-array's pixels map to the same sky.
        """
        if not isinstance(box, Box):
            raise TypeError(f"expected a Box, got {type(box).__name__}")
        if not self.bbox.contains(box):
            raise ValueError(f"{box} is not inside the exposure's {self.bbox}")
        sl = box.slices(self.bbox)
        dx, dy = box.x0 - self.origin[0], box.y0 - self.origin[1]
        return replace(
            self,
            image=self.image[sl], mask=self.mask[sl], variance=self.variance[sl],
            origin=box.origin,
            wcs=None if self.wcs is None else shift_wcs(self.wcs, -dx, -dy),
        )

    def copy(self) -> Exposure:
        """Deep copy of the pixel arrays (metadata objects are immutable or shared)."""
        return replace(self, image=self.image.copy(), mask=self.mask.copy(),
                       variance=self.variance.copy(),
                       wcs=None if self.wcs is None else self.wcs.deepcopy())

    # -- masks ----------------------------------------------------------------
    def mask_of(self, *planes: str) -> np.ndarray:
        """Boolean array where any of the named planes is set (absent planes are ignored)."""
        value = self.mask_planes.value_if_present(planes)
        return (self.mask & np.uint32(value)) != 0

    def set_mask(self, plane: str, where: np.ndarray) -> None:
        """Set ``plane`` where ``where`` is true, adding the plane if needed.

        On a sub-exposure a newly added plane is recorded in the sub-exposure's
        `mask_planes` only (the bits do land in the shared parent array): add
        the plane to the parent first when the parent must know it.
        """
        self.mask_planes = self.mask_planes.with_plane(plane)
        self.mask[where] |= np.uint32(1 << self.mask_planes.bit(plane))

    # -- astropy interoperability ---------------------------------------------
    def to_ccddata(self, mask_planes: tuple[str, ...] | None = ("BAD", "SAT", "CR", "NO_DATA", "EDGE")):
        """Convert to `~astropy.nddata.CCDData` in units of nJy.

        The mask becomes a boolean of the given planes (all planes when None);
        the variance a `~astropy.nddata.VarianceUncertainty`. The image is
        multiplied by the flux calibration, so the data are in nJy.
        """
        from astropy.nddata import CCDData, VarianceUncertainty

        cal = self.flux_calibration
        boolean = self.mask != 0 if mask_planes is None else self.mask_of(*mask_planes)
        meta = {"LTV1": -self.origin[0], "LTV2": -self.origin[1]}
        if self.band:
            meta["FILTER"] = self.band
        return CCDData(
            self.image.astype(np.float32) * np.float32(cal), unit="nJy",
            uncertainty=VarianceUncertainty(self.variance * np.float32(cal**2)),
            mask=boolean, wcs=self.wcs, meta=meta,
        )

    @classmethod
    def from_ccddata(cls, ccd, *, mask_plane: str = "BAD", **kwargs) -> Exposure:
        """Build an Exposure from `~astropy.nddata.CCDData`.

        A boolean mask becomes ``mask_plane``; an integer mask is taken as bits
        in the LSST default layout. Variance comes from a Variance, StdDev or
        InverseVariance uncertainty. The data unit sets the flux calibration
        (nJy per unit) when it is a spectral flux density; otherwise 1.
        ``origin`` is read from ``LTV1/LTV2`` in ``ccd.meta`` unless given.
        Other keyword arguments are passed to the constructor.
        """
        import astropy.units as u
        from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

        data = np.asarray(ccd.data, dtype=np.float32)
        planes = MaskPlanes()
        mask = np.zeros(data.shape, dtype=np.uint32)
        if ccd.mask is not None:
            m = np.asarray(ccd.mask)
            if m.dtype == bool:
                mask[m] = np.uint32(1 << planes.bit(mask_plane))
            else:
                mask = m.astype(np.uint32)
        variance = None
        unc = ccd.uncertainty
        if isinstance(unc, VarianceUncertainty):
            variance = np.asarray(unc.array, dtype=np.float32)
        elif isinstance(unc, StdDevUncertainty):
            variance = np.asarray(unc.array, dtype=np.float32) ** 2
        elif isinstance(unc, InverseVariance):
            with np.errstate(divide="ignore"):
                variance = (1.0 / np.asarray(unc.array, dtype=np.float64)).astype(np.float32)
        cal = 1.0
        if ccd.unit is not None:
            try:
                cal = float((1 * ccd.unit).to_value(u.nJy))
            except u.UnitConversionError:
                cal = 1.0
        meta = ccd.meta or {}
        origin = kwargs.pop("origin", (-int(meta.get("LTV1", 0)), -int(meta.get("LTV2", 0))))
        if "band" not in kwargs and "FILTER" in meta:
            kwargs["band"] = str(meta["FILTER"])
        return cls(image=data, mask=mask, variance=variance, mask_planes=planes, origin=origin,
                   wcs=ccd.wcs, flux_calibration=kwargs.pop("flux_calibration", cal), **kwargs)


def shift_wcs(wcs: WCS, dx: float, dy: float) -> WCS:
    """A copy of ``wcs`` for pixel coordinates offset by ``(dx, dy)``: ``x_new = x_old + dx``."""
    out = wcs.deepcopy()
    out.wcs.crpix = out.wcs.crpix + np.array([dx, dy])
    if out.sip is not None:  # SIP polynomials are referred to CRPIX too
        from astropy.wcs import Sip

        out.sip = Sip(out.sip.a, out.sip.b, out.sip.ap, out.sip.bp, out.wcs.crpix)
    out.wcs.set()
    return out
