"""The field's sources: the catalogue, their SEDs, and the band's wavelength grids.

Fluxes are in nJy (AB). Stars are black bodies, emission-line sources have a
quasar-like SED, galaxies a CWW template SED (from GalSim's data) at a
redshift and a bulge + disk profile. A source's subfilter fluxes are the
integrals of its photon SED × throughput over each subfilter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.errors import ConfigError
from dcrcoadd.sim.config import SimulationConfig
from dcrcoadd.sim.photometry import AB_NJY_ZERO_POINT
from dcrcoadd.sim.streams import Stream

__all__ = [
    "SpectralGrid",
    "band_support",
    "complete_catalog",
    "galaxy_profile",
    "make_catalog",
    "source_photons",
    "subfilter_fluxes",
]

_HC_OVER_K_NM_K = 1.438776877e7  # h c / k in nm K, for the Planck function
_CWW_TEMPLATES = ("CWW_E_ext", "CWW_Sbc_ext", "CWW_Scd_ext", "CWW_Im_ext")


def _photons_blackbody(wavelength: np.ndarray, temperature: float) -> np.ndarray:
    """Photon flux density of a black body, arbitrary scale (f_λ λ ∝ λ^-4 / (e^{hc/λkT} - 1))."""
    return wavelength ** -4.0 / np.expm1(_HC_OVER_K_NM_K / (wavelength * temperature))


def _photons_emission(wavelength: np.ndarray, line: float, ew: float, sigma: float = 3.0) -> np.ndarray:
    """Quasar-like photon SED: f_ν ∝ ν^-0.5 continuum plus a Gaussian line of equivalent width ``ew``."""
    continuum = wavelength ** -1.5  # f_λ
    gauss = np.exp(-0.5 * ((wavelength - line) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return (continuum + ew * line ** -1.5 * gauss) * wavelength


_SED_CACHE: dict[str, object] = {}


def _cww_sed(name: str):
    import galsim

    if name not in _SED_CACHE:
        _SED_CACHE[name] = galsim.SED(f"{name}.sed", wave_type="Ang", flux_type="flambda")
    return _SED_CACHE[name]


def source_photons(row, wavelength: np.ndarray) -> np.ndarray:
    """Photon SED (arbitrary scale) of a catalogue row at ``wavelength`` (nm)."""
    kind = str(row["sed"])
    if kind == "blackbody":
        return _photons_blackbody(wavelength, float(row["temperature"]))
    if kind == "emission":
        return _photons_emission(wavelength, float(row["line_wavelength"]), float(row["line_ew"]))
    if kind.startswith("CWW_"):
        sed = _cww_sed(kind).atRedshift(float(row["redshift"]))
        return np.asarray(sed(wavelength), dtype=float)  # GalSim SEDs evaluate to photons
    raise ConfigError(f"unknown SED {kind!r} in the catalogue (use blackbody, emission or "
                      f"{', '.join(_CWW_TEMPLATES)})")


def band_support(bandpass: Bandpass) -> tuple[float, float]:
    """Wavelength range (nm) where the throughput is above 1e-3 of its peak (or the top hat)."""
    if bandpass.transmission is None:
        return bandpass.wavelength_range
    wl = bandpass.transmission[0].to_value(u.nm)
    thr = bandpass.transmission[1]
    above = np.nonzero(thr >= 1e-3 * thr.max())[0]
    return float(wl[max(above[0] - 1, 0)]), float(wl[min(above[-1] + 1, wl.size - 1)])


def _trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    dx = np.diff(grid)
    w = np.zeros_like(grid)
    w[:-1] += 0.5 * dx
    w[1:] += 0.5 * dx
    return w


@dataclass(frozen=True)
class SpectralGrid:
    """Wavelength grids of one band: the rendering grid with its quadrature weights (× throughput),
    and a fine grid for the subfilter integrals."""

    waves: np.ndarray
    weights: np.ndarray
    fine: np.ndarray
    fine_throughput: np.ndarray
    edges: np.ndarray  # nominal subfilter edges, (M, 2)

    @classmethod
    def build(cls, bandpass: Bandpass, n_subfilters: int, step: float,
              edges: np.ndarray | None = None) -> SpectralGrid:
        lo, hi = band_support(bandpass)
        edges = bandpass.subfilter_edges(n_subfilters) if edges is None else np.asarray(edges, float)
        if edges.ndim != 2 or edges.shape[1] != 2 or np.any(edges[:, 1] <= edges[:, 0]):
            raise ValueError(f"subfilter edges must be an increasing (M, 2) array in nm, got {edges!r}")
        # A uniform grid: refraction and seeing change slowly with wavelength, so a 5 nm step
        # already puts a star's chromatic centroid within 1e-3 px of a 0.1 nm grid; the
        # weights are normalized, so fluxes are exact whatever the step.
        waves = np.linspace(lo, hi, max(int(math.ceil((hi - lo) / step)), 2) + 1)
        fine = np.union1d(np.arange(lo, hi, 0.1), np.clip(np.concatenate([[lo, hi], edges.ravel()]), lo, hi))
        return cls(waves=waves, weights=_trapezoid_weights(waves) * bandpass.throughput(waves),
                   fine=fine, fine_throughput=bandpass.throughput(fine), edges=edges)

    def render_weights(self, row) -> np.ndarray:
        """Normalized chromatic weights of a source on the rendering grid (sum 1)."""
        w = source_photons(row, self.waves) * self.weights
        total = w.sum()
        if not total > 0:
            raise ConfigError(f"source {row['id']} has no flux in the band")
        return w / total

    def subfilter_fractions(self, row) -> np.ndarray:
        """Fraction of a source's band counts in each subfilter (sum 1).

        The first and last subfilters also take the throughput beyond the
        nominal range, so the fractions add up to the whole band.
        """
        g = source_photons(row, self.fine) * self.fine_throughput
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(self.fine))])
        inner = np.interp(self.edges[1:, 0], self.fine, cum)
        bounds = np.concatenate([[0.0], inner, [cum[-1]]])
        return np.diff(bounds) / cum[-1]


def subfilter_fluxes(catalog: Table, bandpass: Bandpass, edges: np.ndarray) -> np.ndarray:
    """Flux (nJy) of each catalogue source in each of the given subfilters.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        A simulation's truth catalogue (``flux`` and the SED columns).
    bandpass : Bandpass
    edges : array_like, shape (M, 2)
        Subfilter ranges (nm), blue to red, contiguous. Throughput beyond
        them goes to the first and last subfilters, so the fluxes of a source
        add up to its band flux.

    Returns
    -------
    ndarray, shape (n_sources, M)
    """
    spectral = SpectralGrid.build(bandpass, len(edges), 5.0, edges=np.asarray(edges, dtype=float))
    fractions = np.array([spectral.subfilter_fractions(row) for row in catalog]).reshape(len(catalog), -1)
    return np.asarray(catalog["flux"], dtype=float)[:, None] * fractions


_CATALOG_DEFAULTS = {
    "kind": "star", "sed": "blackbody", "temperature": 6000.0, "redshift": np.nan,
    "line_wavelength": np.nan, "line_ew": np.nan, "hlr": 0.0, "bulge_fraction": 0.0,
    "q": 1.0, "beta": 0.0,
}


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))


def _magnitudes(rng: np.random.Generator, lo: float, hi: float, n: int, slope: float = 0.2) -> np.ndarray:
    """Magnitudes with dN/dm ∝ 10^(slope m) on [lo, hi] (inverse CDF)."""
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + rng.uniform(size=n) * (b - a)) / slope


def make_catalog(config: SimulationConfig) -> Table:
    """Random sources of the field: positions, magnitudes and SED parameters (no subfilter fluxes).

    Columns: ``kind`` (star, emission, galaxy), ``x``, ``y`` (parent-grid pixels),
    ``mag`` (AB), ``sed`` (``blackbody``, ``emission`` or a CWW template name),
    ``temperature`` (K), ``redshift``, ``line_wavelength`` and ``line_ew`` (nm),
    and for galaxies ``hlr`` (disk half-light radius, arcsec), ``bulge_fraction``,
    ``q`` (axis ratio) and ``beta`` (position angle from +x towards +y, degrees).
    `simulate` completes it with ``id``, ``ra``, ``dec``, ``flux`` and ``subfilter_flux``.
    """
    rng = np.random.default_rng([config.seed, Stream.CATALOG])
    ny, nx = config.shape
    x0, y0 = config.origin
    bandpass = config.resolve_bandpass()
    lo, hi = bandpass.wavelength_range
    columns = ["kind", "x", "y", "mag"] + [k for k in _CATALOG_DEFAULTS if k != "kind"]
    rows: dict[str, list] = {k: [] for k in columns}

    def add(kind, n, mags, **cols):
        rows["kind"] += [kind] * n
        rows["x"] += list(x0 + rng.uniform(-0.5, nx - 0.5, size=n))
        rows["y"] += list(y0 + rng.uniform(-0.5, ny - 0.5, size=n))
        rows["mag"] += list(mags)
        for key, default in _CATALOG_DEFAULTS.items():
            if key == "kind":
                continue
            value = cols.get(key, default)
            rows[key] += list(value) if isinstance(value, np.ndarray | list) else [value] * n

    t_lo, t_hi = config.temperature_range
    n = config.n_stars
    add("star", n, _magnitudes(rng, *config.star_mag_range, n), temperature=_log_uniform(rng, t_lo, t_hi, n))
    n = config.n_bright_stars
    add("star", n, rng.uniform(*config.bright_mag_range, size=n),
        temperature=_log_uniform(rng, t_lo, t_hi, n))
    n = config.n_emission
    add("emission", n, rng.uniform(*config.star_mag_range, size=n), sed="emission",
        temperature=np.full(n, np.nan), line_wavelength=rng.uniform(lo, hi, size=n),
        line_ew=rng.uniform(20.0, 80.0, size=n))
    n = config.n_galaxies
    add("galaxy", n, rng.uniform(*config.galaxy_mag_range, size=n),
        sed=list(rng.choice(_CWW_TEMPLATES, size=n)), temperature=np.full(n, np.nan),
        redshift=rng.uniform(0.05, 1.0, size=n), hlr=_log_uniform(rng, 0.3, 1.2, n),
        bulge_fraction=rng.uniform(0.0, 0.5, size=n), q=rng.uniform(0.3, 1.0, size=n),
        beta=rng.uniform(0.0, 180.0, size=n))
    table = Table({k: np.asarray(v) if v else np.zeros(0) for k, v in rows.items()})
    table["kind"] = table["kind"].astype(str)
    table["sed"] = table["sed"].astype(str)
    return table


def complete_catalog(catalog: Table, config: SimulationConfig, wcs: WCS, spectral: SpectralGrid,
                      band_name: str) -> Table:
    """Fill ids, sky/pixel positions, fluxes and subfilter fluxes; validate the columns."""
    cat = Table(catalog, copy=True)
    n = len(cat)
    x0, y0 = config.origin
    if "x" not in cat.colnames or "y" not in cat.colnames:
        if "ra" not in cat.colnames or "dec" not in cat.colnames:
            raise ConfigError("the catalogue needs x, y (parent pixels) or ra, dec (degrees) columns")
        px, py = wcs.world_to_pixel(SkyCoord(np.asarray(cat["ra"]) * u.deg, np.asarray(cat["dec"]) * u.deg))
        cat["x"], cat["y"] = np.asarray(px) + x0, np.asarray(py) + y0
    sky = wcs.pixel_to_world(np.asarray(cat["x"], float) - x0, np.asarray(cat["y"], float) - y0)
    cat["ra"], cat["dec"] = sky.ra.deg, sky.dec.deg
    if "flux" not in cat.colnames:
        if "mag" not in cat.colnames:
            raise ConfigError("the catalogue needs a flux (nJy) or mag (AB) column")
        cat["flux"] = 10 ** (-0.4 * (np.asarray(cat["mag"], float) - AB_NJY_ZERO_POINT))
    cat["mag"] = AB_NJY_ZERO_POINT - 2.5 * np.log10(np.asarray(cat["flux"], float))
    for key, default in _CATALOG_DEFAULTS.items():
        if key not in cat.colnames and key != "kind":
            cat[key] = [default] * n if n else np.zeros(0, dtype=type(default))
    if "kind" not in cat.colnames:
        sed = np.asarray(cat["sed"]).astype(str)
        cat["kind"] = np.where(np.asarray(cat["hlr"], float) > 0, "galaxy",
                               np.where(sed == "emission", "emission", "star")) if n else np.zeros(0, str)
    cat["kind"] = np.asarray(cat["kind"]).astype(str)
    cat["sed"] = np.asarray(cat["sed"]).astype(str)
    if np.any(~(np.asarray(cat["flux"], float) > 0)):
        raise ConfigError("catalogue fluxes must be positive")
    if "id" not in cat.colnames:
        cat["id"] = np.arange(1, n + 1)
    fractions = np.array([spectral.subfilter_fractions(row) for row in cat]).reshape(n, len(spectral.edges))
    cat["subfilter_flux"] = np.asarray(cat["flux"], float)[:, None] * fractions
    order = ["id", "kind", "x", "y", "ra", "dec", "mag", "flux", "subfilter_flux", "sed", "temperature",
             "redshift", "line_wavelength", "line_ew", "hlr", "bulge_fraction", "q", "beta"]
    cat = cat[order + [c for c in cat.colnames if c not in order]]
    for name, unit in (("x", u.pix), ("y", u.pix), ("ra", u.deg), ("dec", u.deg), ("mag", u.mag),
                       ("flux", u.nJy), ("subfilter_flux", u.nJy), ("temperature", u.K),
                       ("line_wavelength", u.nm), ("line_ew", u.nm), ("hlr", u.arcsec), ("beta", u.deg)):
        cat[name].unit = unit
    cat.meta.update({
        "band": band_name, "n_subfilters": int(len(spectral.edges)),
        "subfilter_edges_nm": [[float(a), float(b)] for a, b in spectral.edges],
        "subfilter_note": "equal-width partition of [lambda_eff - bw/2, lambda_eff + bw/2]; the first and "
                          "last subfilters also hold the throughput beyond that range",
        "seed": int(config.seed), "flux_unit": "nJy (AB)",
    })
    return cat


def galaxy_profile(row):
    """GalSim profile (unit flux) of a catalogue galaxy: exponential disk plus de Vaucouleurs bulge."""
    import galsim

    hlr = float(row["hlr"])
    bf = float(row["bulge_fraction"])
    parts = [galsim.Exponential(half_light_radius=hlr, flux=1.0 - bf)]
    if bf > 0:
        parts.append(galsim.DeVaucouleurs(half_light_radius=0.3 * hlr, flux=bf))
    profile = galsim.Add(parts) if len(parts) > 1 else parts[0]
    return profile.shear(q=float(row["q"]), beta=float(row["beta"]) * galsim.degrees)
