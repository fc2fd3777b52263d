"""Bandpasses: effective wavelength, bandwidth, throughput curve, presets and subfilters.

Definitions used for curves (presets and `Bandpass.from_curve`):

* effective wavelength: the *pivot* wavelength of the photon-counting
  throughput ``T(λ)``, ``λ_p = sqrt(∫ λ T dλ / ∫ T/λ dλ)`` (Tokunaga & Vacca
  2005). It does not depend on the source spectrum convention (f_ν or f_λ);
  for LSST g (speclite ``lsst2023-g``) it is 478.7 nm, close to the 476.3 nm
  of the LSST obs packages.
* bandwidth: the full width at half maximum of ``T(λ)`` (outermost crossings
  of half the peak, linearly interpolated); 148.5 nm for LSST g, against
  147 nm (405-552 nm) in the LSST obs packages.

Subfilter partitions cover ``[λ_eff − bw/2, λ_eff + bw/2]`` (`Bandpass.wavelength_range`):
``equal-width`` splits it into equal ranges (the LSST convention);
``equal-throughput`` places the interior edges so that each subfilter carries
the same integral of ``T(λ)`` over that range.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import astropy.units as u
import numpy as np

from dcrcoadd.errors import ConfigError

__all__ = [
    "BAND_LETTER_CENTRES",
    "CAMERA_SITES",
    "FIXED_BANDS",
    "PRESET_CAMERAS",
    "Bandpass",
    "band_letter",
    "fwhm_range",
    "same_band_name",
    "pivot_wavelength",
    "preset_names",
]

log = logging.getLogger("dcrcoadd.core.bandpass")

#: Camera prefix -> (speclite filter group, bands offered). Bands are spelled as speclite spells them.
#: A camera without a speclite group has `FIXED_BANDS` instead (no throughput curve).
PRESET_CAMERAS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "lsst": ("lsst2023", ("u", "g", "r", "i", "z", "y")),
    "decam": ("decam2014", ("u", "g", "r", "i", "z", "Y")),
    "hsc": ("hsc2017", ("g", "r", "r2", "i", "i2", "z", "y")),
    "sdss": ("sdss2010", ("u", "g", "r", "i", "z")),
    "ps1": ("panstarrs", ("g", "r", "i", "z", "y", "w")),
    "ztf": (None, ("g", "r", "i")),
}
#: Camera prefix -> band -> (pivot wavelength, FWHM) in nm, for cameras speclite has no curves of.
#: ZTF: computed with `pivot_wavelength` and `fwhm_range` from the P48 total-throughput curves
#: distributed with sncosmo (``ztf/P48_{g,R,I}.dat``).
FIXED_BANDS: dict[str, dict[str, tuple[float, float]]] = {
    "ztf": {"g": (479.9, 132.3), "r": (640.6, 155.4), "i": (787.1, 146.0)},
}
#: Camera prefix -> site name for `dcrcoadd.core.observatory.Observatory.from_site`.
CAMERA_SITES: dict[str, str] = {
    "lsst": "rubin", "decam": "ctio", "hsc": "subaru", "sdss": "apo", "ps1": "haleakala", "ztf": "palomar",
}
#: Rough centres (nm) of the broad bands a filter name gives by one letter, across cameras (LSST, DECam,
#: HSC, SDSS, PS1, ZTF: within 25 nm of each): only to notice a name that contradicts a file's own
#: band wavelength.
BAND_LETTER_CENTRES = {"u": 372.0, "g": 478.0, "r": 630.0, "i": 768.0, "z": 891.0, "y": 975.0}


def band_letter(name: str) -> str | None:
    """The broad band a filter name gives by one letter, as its first or last word: ``"g"`` for
    ``"g"``, ``"lsst-g"``, ``"HSC-G"``, ``"g_6"`` or ``"g DECam SDSS c0001 4720.0 1520.0"``; None for
    a name that gives none (``"r2"``, ``"N708"``)."""
    words = _words(name)
    return next((w for w in words[:1] + words[-1:] if w in BAND_LETTER_CENTRES), None)


def same_band_name(a: str, b: str) -> bool:
    """Whether two filter names give one band: by `band_letter` where both give one (``"g"``,
    ``"lsst-g"``, ``"HSC_G"``), else by their last words (``"hsc-r2"`` and ``"r2"``)."""
    la, lb = band_letter(a), band_letter(b)
    if la is not None and lb is not None:
        return la == lb
    wa, wb = _words(a), _words(b)
    return (wa[-1:] or [""]) == (wb[-1:] or [""])


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z]+", str(name).strip().lower()) if w]


_CAMERA_ALIASES = {
    "lsst": "lsst", "rubin": "lsst", "lsstcam": "lsst", "lsst2023": "lsst",
    "decam": "decam", "decam2014": "decam",
    "hsc": "hsc", "hsc2017": "hsc",
    "sdss": "sdss", "sdss2010": "sdss",
    "ps1": "ps1", "panstarrs": "ps1", "pan-starrs": "ps1", "panstarrs1": "ps1",
    "ztf": "ztf",
}


def pivot_wavelength(wavelength_nm: np.ndarray, throughput: np.ndarray) -> float:
    """Pivot wavelength (nm) ``sqrt(∫ λ T dλ / ∫ T/λ dλ)`` of a throughput curve."""
    wl = np.asarray(wavelength_nm, dtype=float)
    t = np.asarray(throughput, dtype=float)
    return float(np.sqrt(np.trapezoid(wl * t, wl) / np.trapezoid(t / wl, wl)))


def fwhm_range(wavelength_nm: np.ndarray, throughput: np.ndarray) -> tuple[float, float]:
    """Wavelengths (nm) where the curve first rises to and last falls from half its peak."""
    wl = np.asarray(wavelength_nm, dtype=float)
    t = np.asarray(throughput, dtype=float)
    half = 0.5 * np.max(t)
    above = np.nonzero(t >= half)[0]
    i0, i1 = above[0], above[-1]
    lo = wl[i0] if i0 == 0 else np.interp(half, [t[i0 - 1], t[i0]], [wl[i0 - 1], wl[i0]])
    hi = wl[i1] if i1 == wl.size - 1 else np.interp(half, [t[i1 + 1], t[i1]], [wl[i1 + 1], wl[i1]])
    return float(lo), float(hi)


def _check_curve(wl: np.ndarray, thr: np.ndarray, name: str) -> None:
    if wl.ndim != 1 or wl.shape != thr.shape or wl.size < 2:
        raise ValueError(f"bandpass {name!r}: transmission must be two 1-d arrays of equal length >= 2")
    if not (np.all(np.isfinite(wl)) and np.all(np.isfinite(thr))):
        raise ValueError(f"bandpass {name!r}: transmission contains non-finite values")
    if np.any(np.diff(wl) <= 0):
        raise ValueError(f"bandpass {name!r}: transmission wavelengths must be strictly increasing")
    if np.any(thr < 0) or not np.any(thr > 0):
        raise ValueError(f"bandpass {name!r}: throughput must be non-negative and not all zero")


def _parse_preset(name: str) -> tuple[str, str]:
    """``(camera, band)`` for a preset name such as ``"lsst-g"``, ``"HSC-G"``, ``"ps1_z"`` or ``"g"``."""
    key = name.strip()
    for sep in ("-", "_", " "):
        if sep in key:
            camera, band = key.rsplit(sep, 1)
            break
    else:
        camera, band = "lsst", key
    camera = _CAMERA_ALIASES.get(camera.lower())
    if camera is None:
        raise ConfigError(f"unknown bandpass preset {name!r}; known: {', '.join(preset_names())}")
    bands = {b.lower(): b for b in PRESET_CAMERAS[camera][1]}
    if band.lower() not in bands:
        raise ConfigError(f"unknown bandpass preset {name!r}: camera {camera!r} has bands "
                          f"{', '.join(PRESET_CAMERAS[camera][1])}")
    return camera, bands[band.lower()]


def preset_names() -> list[str]:
    """All canonical preset names, e.g. ``"lsst-g"``."""
    return [f"{cam}-{band}" for cam, (_, bands) in PRESET_CAMERAS.items() for band in bands]


@dataclass(frozen=True, eq=False)
class Bandpass:
    """A filter band.

    Parameters
    ----------
    name : str
        Band name (e.g. ``"g"``, or a preset name such as ``"lsst-g"``).
    effective_wavelength : Quantity
        Effective wavelength (nm or any length unit).
    bandwidth : Quantity
        Full width used for the subfilter partition.
    transmission : tuple of (Quantity, ndarray), optional
        Throughput curve ``(wavelength, throughput)``: wavelengths strictly
        increasing, throughput non-negative (photon-counting).
    """

    name: str
    effective_wavelength: u.Quantity
    bandwidth: u.Quantity
    transmission: tuple[u.Quantity, np.ndarray] | None = None

    def __post_init__(self):
        lam = u.Quantity(self.effective_wavelength, u.nm)
        bw = u.Quantity(self.bandwidth, u.nm)
        if not (np.isfinite(lam.value) and lam.value > 0):
            raise ValueError(f"effective wavelength must be positive, got {lam}")
        if not (np.isfinite(bw.value) and bw.value > 0):
            raise ValueError(f"bandwidth must be positive, got {bw}")
        object.__setattr__(self, "effective_wavelength", lam)
        object.__setattr__(self, "bandwidth", bw)
        if self.transmission is not None:
            wl, thr = self.transmission
            wl = u.Quantity(wl, u.nm)
            thr = np.asarray(thr, dtype=float)
            if wl.shape != thr.shape or wl.ndim != 1 or wl.size < 2:
                raise ValueError("transmission must be two 1-d arrays of equal length")
            _check_curve(wl.value, thr, self.name)
            object.__setattr__(self, "transmission", (wl, thr))

    # -- construction from curves ---------------------------------------------------------------
    @classmethod
    def from_curve(cls, name: str, wavelength, throughput) -> Bandpass:
        """A bandpass whose effective wavelength (pivot) and bandwidth (FWHM) come from its curve.

        Parameters
        ----------
        name : str
        wavelength : Quantity or array_like
            Strictly increasing wavelengths (plain numbers: nm).
        throughput : array_like
            Non-negative photon-counting throughput at those wavelengths.
        """
        wl = np.asarray(u.Quantity(wavelength, u.nm).to_value(u.nm), dtype=float)
        thr = np.asarray(throughput, dtype=float)
        _check_curve(wl, thr, name)
        # keep the support plus one zero sample on each side: presets carry long zero tails
        nz = np.nonzero(thr > 0)[0]
        keep = slice(max(nz[0] - 1, 0), min(nz[-1] + 2, wl.size))
        wl, thr = wl[keep], thr[keep]
        lo, hi = fwhm_range(wl, thr)
        return cls(name, pivot_wavelength(wl, thr) * u.nm, (hi - lo) * u.nm, (wl * u.nm, thr))

    @classmethod
    def preset(cls, name: str) -> Bandpass:
        """A real filter curve shipped by speclite (needs the ``filters`` extra).

        Names are ``<camera>-<band>``: ``lsst`` (ugrizy, ``lsst2023``), ``decam``
        (ugrizY, ``decam2014``), ``hsc`` (grizy, r2, i2, ``hsc2017``), ``sdss``
        (ugriz, ``sdss2010``), ``ps1`` (grizyw, ``panstarrs``), and ``ztf`` (gri:
        effective wavelength and width only, see `FIXED_BANDS`); case-insensitive,
        ``_`` also separates, aliases such as ``rubin-g``, ``HSC-G``,
        ``panstarrs-z`` work, and a bare band (``"g"``) means LSST. The result
        is named ``<camera>-<band>`` (e.g. ``"lsst-g"``); its camera's site is
        `site`.

        Raises
        ------
        ConfigError
            Unknown name, or speclite is not installed.
        """
        camera, band = _parse_preset(name)
        group = PRESET_CAMERAS[camera][0]
        if group is None:
            lam, width = FIXED_BANDS[camera][band]
            return cls(f"{camera}-{band}", lam * u.nm, width * u.nm)
        try:
            import speclite.filters
        except ImportError as exc:
            raise ConfigError("bandpass presets need speclite: install dcrcoadd[filters]") from exc
        curve = speclite.filters.load_filter(f"{group}-{band}")
        wl = np.asarray(curve.wavelength, dtype=float) / 10.0  # speclite tabulates in Angstrom
        return cls.from_curve(f"{camera}-{band}", wl, np.asarray(curve.response, dtype=float))

    # -- derived properties ---------------------------------------------------------------------
    @property
    def wavelength_range(self) -> tuple[float, float]:
        """``(λ_eff − bw/2, λ_eff + bw/2)`` in nm."""
        lam, bw = self.effective_wavelength.to_value(u.nm), self.bandwidth.to_value(u.nm)
        return (lam - bw / 2.0, lam + bw / 2.0)

    @property
    def camera(self) -> str | None:
        """Camera prefix of a preset-style name (``"lsst"`` for ``"lsst-g"``), else None."""
        for sep in ("-", "_"):
            if sep in self.name:
                return _CAMERA_ALIASES.get(self.name.rsplit(sep, 1)[0].lower())
        return None

    @property
    def band(self) -> str:
        """Band letter(s): ``"g"`` for ``"lsst-g"`` or ``"g"``."""
        if self.camera is None:
            return self.name
        return self.name.replace("_", "-").rsplit("-", 1)[1]

    @property
    def site(self) -> str | None:
        """Site name of the camera (for `Observatory.from_site`), or None if unknown."""
        return None if self.camera is None else CAMERA_SITES[self.camera]

    def throughput(self, wavelength) -> np.ndarray:
        """Throughput at ``wavelength`` (plain numbers: nm), linear between samples, 0 outside.

        A bandpass without a curve is a top hat of height 1 over `wavelength_range`.
        """
        lam = np.asarray(u.Quantity(wavelength, u.nm).to_value(u.nm), dtype=float)
        if self.transmission is None:
            lo, hi = self.wavelength_range
            return ((lam >= lo) & (lam <= hi)).astype(float)
        wl, thr = self.transmission
        return np.interp(lam, wl.to_value(u.nm), thr, left=0.0, right=0.0)

    # -- subfilters -----------------------------------------------------------------------------
    def subfilter_edges(self, n_subfilters: int, method: str = "equal-width") -> np.ndarray:
        """Wavelength ranges of ``n_subfilters`` subfilters covering `wavelength_range`.

        Parameters
        ----------
        n_subfilters : int
            Number of subfilters (>= 1).
        method : {"equal-width", "equal-throughput"}
            Equal wavelength ranges (LSST convention), or ranges of equal
            integrated throughput (needs a transmission curve).

        Returns
        -------
        ndarray, shape (n_subfilters, 2)
            ``[start, end]`` in nm, blue to red, contiguous.
        """
        n = int(n_subfilters)
        if n != n_subfilters or n < 1:
            raise ValueError(f"n_subfilters must be a positive integer, got {n_subfilters!r}")
        lo, hi = self.wavelength_range
        if method == "equal-width":
            edges = np.linspace(lo, hi, n + 1)
        elif method == "equal-throughput":
            edges = self._equal_throughput_edges(n, lo, hi)
        else:
            raise ValueError(f"unknown subfilter method {method!r}; use 'equal-width' or 'equal-throughput'")
        return np.column_stack([edges[:-1], edges[1:]])

    def _equal_throughput_edges(self, n: int, lo: float, hi: float) -> np.ndarray:
        if self.transmission is None:
            raise ConfigError(f"bandpass {self.name!r} has no transmission curve; "
                              "equal-throughput subfilters need one")
        wl = self.transmission[0].to_value(u.nm)
        grid = np.union1d(np.linspace(lo, hi, 2001), wl[(wl > lo) & (wl < hi)])
        t = self.throughput(grid)
        cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (t[1:] + t[:-1]) * np.diff(grid))])
        if cumulative[-1] <= 0:
            raise ConfigError(f"bandpass {self.name!r} has no throughput in {lo:.1f}-{hi:.1f} nm")
        # invert the cumulative integral; only strictly rising samples keep the inverse single-valued
        rising = np.concatenate([[True], np.diff(cumulative) > 0])
        edges = np.interp(np.linspace(0.0, 1.0, n + 1) * cumulative[-1], cumulative[rising], grid[rising])
        edges[0], edges[-1] = lo, hi
        return edges

    def subfilter_quadrature(self, edges: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Nodes and weights for throughput-weighted means over each subfilter.

        For subfilter ``[a, b]`` returns wavelengths ``λ_k`` (nm) and weights
        ``w_k`` summing to 1 with ``Σ w_k f(λ_k) ≈ ∫ T f dλ / ∫ T dλ`` over
        ``[a, b]`` (trapezoid rule on the curve's own samples plus a uniform
        grid). Without a curve, or where the curve is zero throughout, the
        weights are uniform in wavelength.
        """
        out = []
        wl = None if self.transmission is None else self.transmission[0].to_value(u.nm)
        for a, b in np.asarray(edges, dtype=float):
            grid = np.linspace(a, b, 65)
            if wl is not None:
                grid = np.union1d(grid, wl[(wl > a) & (wl < b)])
            dx = np.diff(grid)
            trap = np.zeros_like(grid)
            trap[:-1] += 0.5 * dx
            trap[1:] += 0.5 * dx
            w = trap * self.throughput(grid) if wl is not None else trap
            if not np.sum(w) > 0:
                log.warning("bandpass %r has no throughput in subfilter %.1f-%.1f nm; "
                            "using uniform weights", self.name, a, b)
                w = trap
            out.append((grid, w / np.sum(w)))
        return out

    # -- identity -------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bandpass):
            return NotImplemented
        same = (self.name == other.name
                and np.isclose(self.effective_wavelength.value, other.effective_wavelength.value)
                and np.isclose(self.bandwidth.value, other.bandwidth.value))
        return bool(same)

    def __hash__(self) -> int:
        return hash((self.name, round(float(self.effective_wavelength.value), 6)))
