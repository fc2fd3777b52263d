"""Sparse pixel sets and the per-warp alternative masks compare-warp produces (LSST ``altMaskSpans``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes


@dataclass(frozen=True)
class PixelSet:
    """A set of parent-grid pixels inside ``bbox``, stored as sorted flat indices."""

    bbox: Box
    index: np.ndarray

    @classmethod
    def empty(cls, bbox: Box) -> PixelSet:
        return cls(bbox, np.zeros(0, np.int64))

    @classmethod
    def from_mask(cls, mask: np.ndarray, box: Box, bbox: Box) -> PixelSet:
        """Pixels where the boolean ``mask`` (covering ``box``, inside ``bbox``) is true."""
        y, x = np.nonzero(mask)
        index = (y + (box.y0 - bbox.y0)).astype(np.int64) * bbox.width + (x + (box.x0 - bbox.x0))
        return cls(bbox, index)

    @classmethod
    def union(cls, bbox: Box, sets: Sequence[PixelSet]) -> PixelSet:
        parts = [s.index for s in sets if len(s)]
        if not parts:
            return cls.empty(bbox)
        return cls(bbox, np.unique(np.concatenate(parts)))

    def __len__(self) -> int:
        return int(self.index.size)

    def _coordinates(self, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """``(y, x)`` of the pixels inside ``box``, relative to ``box``'s origin, in index order."""
        y, x = np.divmod(self.index, self.bbox.width)
        y = y + (self.bbox.y0 - box.y0)
        x = x + (self.bbox.x0 - box.x0)
        inside = (y >= 0) & (y < box.height) & (x >= 0) & (x < box.width)
        return y[inside], x[inside]

    def to_mask(self, box: Box) -> np.ndarray:
        """Boolean array over ``box`` (any box of the parent grid), true on this set's pixels."""
        out = np.zeros(box.shape, dtype=bool)
        if len(self):
            out[self._coordinates(box)] = True
        return out

    def restricted(self, box: Box) -> PixelSet:
        """The pixels inside ``box``, as a set over ``box`` (what a tile's task needs of it)."""
        y, x = self._coordinates(box)
        return PixelSet(box, y.astype(np.int64) * box.width + x)


@dataclass
class ArtifactMask:
    """Alternative mask planes for one warp (LSST's ``altMaskSpans``).

    Attributes
    ----------
    name : str
        The warp it belongs to.
    planes : dict of str to PixelSet
        ``CLIPPED`` (transient artifacts), ``NO_DATA`` (not covered by the PSF-matched
        warp), ``EDGE`` (PSF matching reached missing data).
    n_candidates, n_clipped : int
        Artifact candidates after the prefilter, and footprints clipped.
    """

    name: str
    planes: dict[str, PixelSet] = field(default_factory=dict)
    n_candidates: int = 0
    n_clipped: int = 0

    def apply(self, mask: np.ndarray, box: Box, planes: MaskPlanes, bad_mask: int) -> None:
        """Apply in place to ``mask`` (over ``box``, bits of ``planes``), as LSST's ``applyAltMaskPlanes``
        with PSF-matched polygons: bad bits are first cleared inside the NO_DATA region, so those
        pixels count as missing rather than rejected; then each plane is set."""
        no_data = self.planes.get("NO_DATA")
        if no_data is not None and len(no_data) and bad_mask & planes.value_if_present(["NO_DATA"]):
            where = no_data.to_mask(box)
            mask[where] &= np.uint32(~bad_mask & 0xFFFFFFFF)
        for plane, pixels in self.planes.items():
            if len(pixels):
                mask[pixels.to_mask(box)] |= np.uint32(planes.value(plane))

    def to_mask(self, box: Box, planes: MaskPlanes) -> np.ndarray:
        """uint32 mask over ``box`` with only this alternative mask's planes set."""
        out = np.zeros(box.shape, np.uint32)
        for plane, pixels in self.planes.items():
            out[pixels.to_mask(box)] |= np.uint32(planes.value(plane))
        return out

    def restricted(self, box: Box) -> ArtifactMask:
        """The same mask cut to ``box``: applies to any region inside ``box`` exactly as the whole
        mask does, and a task sent to another process carries only those pixels."""
        return ArtifactMask(self.name, {p: s.restricted(box) for p, s in self.planes.items()},
                            self.n_candidates, self.n_clipped)


__all__ = ["ArtifactMask", "PixelSet"]
