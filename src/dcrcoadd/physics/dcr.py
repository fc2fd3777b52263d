"""Per-subfilter DCR pixel shifts of a visit, at any position of a WCS.

For subfilter ``α`` covering ``[λ0, λ1]``, the DCR amplitude is refraction
relative to the band's effective wavelength ``λ_eff`` (Stone 1996, see
`dcrcoadd.physics.refraction`):

* without a throughput curve: the mean of the DCR at the two edges (LSST);
* with a curve: the throughput-weighted mean of the DCR over the subfilter;
* ``split`` mode: two shifts per subfilter, at ``3/4 d0 + 1/4 d1`` and
  ``1/4 d0 + 3/4 d1`` of the edge DCRs ``d0, d1`` (LSST forward modelling of
  wide subfilters).

Refraction is ``R(λ, z) = A(λ) tan z + B(λ) tan³ z``, so each subfilter's
(weighted) mean reduces to mean coefficients ``ΔA_α, ΔB_α``, computed once per
call; every position then costs a few multiplications.

Direction: light bluer than ``λ_eff`` (positive DCR) moves towards the zenith.
At each position the zenith lies at position angle ``q`` (the parallactic
angle relative to ICRS north, `dcrcoadd.core.visit.sky_geometry`), i.e. along
``(east, north) = (sin q, cos q)`` in the tangent plane. The local Jacobian of
the WCS (central differences of its pixel-to-sky map, projected onto the
tangent plane at the position) turns that sky offset into pixels, so any
orientation, flip, rotation or distortion of the WCS is handled alike.

Shifts are ``(dy, dx)`` in pixels of the WCS's 0-based array grid: where a
source's light in that subfilter lands relative to where light at ``λ_eff``
lands.

Last line of defence: every amplitude is compared with what the densest
atmosphere an observatory can have (`DENSEST_WEATHER`: the coldest plausible air
at the highest plausible pressure, dry) gives for the same subfilter at the same
zenith distance. Refraction grows with the air's density (``∝ P/T``), so no
admissible weather refracts more; a larger amplitude can only come from weather
that slipped past the input checks (a unit mistake) or from a bug, and is refused
instead of being turned into absurd shifts. The bound is at most a few arcseconds
at ordinary airmasses (about 1" for the bluest third of g at airmass 2).
"""

from __future__ import annotations

import logging

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, Angle, BaseCoordinateFrame, SkyCoord
from astropy.wcs import WCS
from astropy.wcs.utils import skycoord_to_pixel, wcs_to_celestial_frame

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.observatory import PRESSURE_RANGE_PA, TEMPERATURE_RANGE_C, Observatory, Weather
from dcrcoadd.core.visit import VisitInfo, _sky_geometry_rad, parallactic_angle
from dcrcoadd.errors import InputError
from dcrcoadd.physics.refraction import refraction_coefficients

__all__ = ["celestial_frame", "dcr_direction", "dcr_shifts", "dcr_shifts_at", "icrs_like", "sky_and_jacobian",
           "subfilter_dcr", "to_icrs"]

log = logging.getLogger("dcrcoadd.physics.dcr")

#: The densest air the input checks admit (coldest, highest pressure, dry): an upper bound on
#: refraction, hence on DCR, for any admissible weather (see module notes).
DENSEST_WEATHER = Weather(TEMPERATURE_RANGE_C[0] * u.deg_C, PRESSURE_RANGE_PA[1] * u.Pa, 0.0)
#: Slack on that bound for what the density argument leaves out (gravity, humidity, rounding).
_BOUND_MARGIN = 1.05


# ---------------------------------------------------------------------------------------------
# DCR amplitudes per subfilter
# ---------------------------------------------------------------------------------------------

def _edges(bandpass: Bandpass, n_subfilters: int, edges, partition: str) -> np.ndarray:
    if edges is None:
        return bandpass.subfilter_edges(n_subfilters, method=partition)
    edges = np.asarray(edges, dtype=float)
    if edges.shape != (n_subfilters, 2) or np.any(edges[:, 1] <= edges[:, 0]):
        raise ValueError(f"edges must be an increasing ({n_subfilters}, 2) array of wavelength ranges in nm, "
                         f"got shape {edges.shape}")
    return edges


def _coefficients(bandpass: Bandpass, edges: np.ndarray, observatory: Observatory, weather,
                  split: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(ΔA, ΔB)`` in radians relative to ``λ_eff``: shape (M,), or (M, 2) when split."""
    m = edges.shape[0]
    weighted = not split and bandpass.transmission is not None
    nodes = bandpass.subfilter_quadrature(edges) if weighted else []
    # one refraction call for every wavelength involved: [λ_eff, edges, quadrature nodes]
    lam = np.concatenate([[bandpass.effective_wavelength.to_value(u.nm)], edges.ravel()]
                         + [n for n, _ in nodes])
    a, b = refraction_coefficients(lam, observatory, weather)
    a_ref, b_ref = a[0], b[0]
    a_edge, b_edge = a[1:1 + 2 * m].reshape(m, 2), b[1:1 + 2 * m].reshape(m, 2)
    if split:
        mix = np.array([[0.75, 0.25], [0.25, 0.75]])  # rows: the two shifts; columns: edges
        return a_edge @ mix.T - a_ref, b_edge @ mix.T - b_ref
    if not weighted:
        return a_edge.mean(axis=1) - a_ref, b_edge.mean(axis=1) - b_ref
    weights = np.concatenate([w for _, w in nodes])
    starts = np.cumsum([0] + [n.size for n, _ in nodes[:-1]])
    a_q, b_q = weights * a[1 + 2 * m:], weights * b[1 + 2 * m:]
    return np.add.reduceat(a_q, starts) - a_ref, np.add.reduceat(b_q, starts) - b_ref


def subfilter_dcr(bandpass: Bandpass, n_subfilters: int, elevation, observatory: Observatory,
                  weather=None, *, split: bool = False, edges=None, partition: str = "equal-width") -> Angle:
    """DCR amplitude of each subfilter relative to the band's effective wavelength.

    Parameters
    ----------
    bandpass : Bandpass
    n_subfilters : int
    elevation : Angle or array_like
        Elevation(s) (plain numbers: degrees), any shape ``S``.
    observatory : Observatory
    weather : Weather, optional
        Default: standard atmosphere for the site (see `dcrcoadd.physics.refraction.refraction`).
    split : bool
        Two values per subfilter (see module notes).
    edges : array_like, optional
        ``(n_subfilters, 2)`` subfilter ranges in nm; default from ``partition``.
    partition : {"equal-width", "equal-throughput"}
        How to split the band when ``edges`` is not given.

    Returns
    -------
    Angle
        Shape ``S + (n_subfilters,)`` (``+ (2,)`` when split); positive towards the zenith.
    """
    edges = _edges(bandpass, n_subfilters, edges, partition)
    da, db = _coefficients(bandpass, edges, observatory, weather, split)
    el = np.asarray(Angle(elevation, u.deg).rad, dtype=float)
    if np.any(~((el > 0) & (el <= np.pi / 2 + 1e-12))):
        raise ValueError("elevation must lie in (0, 90] degrees")
    tan_z = np.tan(np.pi / 2 - el)[(...,) + (None,) * da.ndim]
    return Angle(da * tan_z + db * tan_z**3, u.rad)


# ---------------------------------------------------------------------------------------------
# Positions and the WCS
# ---------------------------------------------------------------------------------------------

def celestial_frame(wcs: WCS) -> BaseCoordinateFrame:
    """The sky frame of a WCS's celestial axes (RADESYS, EQUINOX; galactic, ecliptic, ...)."""
    try:
        return wcs_to_celestial_frame(wcs)
    except ValueError:
        ctype = "/".join(wcs.celestial.wcs.ctype)
        radesys = wcs.wcs.radesys or "none"
        raise InputError(f"WCS sky frame is unknown (CTYPE {ctype}, RADESYS {radesys})", "wcs") from None


def icrs_like(frame: BaseCoordinateFrame) -> bool:
    """ICRS, or FK5 at J2000 (20 mas from it: taken as ICRS, as surveys do)."""
    if frame.name == "icrs":
        return True
    equinox = getattr(frame, "equinox", None)
    return frame.name == "fk5" and equinox is not None and abs(equinox.jyear - 2000.0) < 1e-6


def to_icrs(frame: BaseCoordinateFrame, lon_deg, lat_deg) -> tuple[np.ndarray, np.ndarray]:
    """ICRS (ra, dec) in degrees of world coordinates in ``frame`` (unchanged where `icrs_like`)."""
    if icrs_like(frame):
        return np.asarray(lon_deg, float), np.asarray(lat_deg, float)
    sky = SkyCoord(np.asarray(lon_deg, float) * u.deg, np.asarray(lat_deg, float) * u.deg,
                   frame=frame).icrs
    return sky.ra.deg, sky.dec.deg


def _check_wcs(wcs: WCS) -> None:
    if not isinstance(wcs, WCS) or wcs.naxis != 2 or not wcs.has_celestial:
        raise InputError("need a 2-d celestial astropy WCS to project DCR into pixels", "wcs")
    celestial_frame(wcs)


def _tangent_plane(ra0, dec0, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic standard coordinates (east, north) in radians of (ra, dec) about (ra0, dec0)."""
    dra = ra - ra0
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(dra)
    xi = np.cos(dec) * np.sin(dra) / cos_c
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(dra)) / cos_c
    return xi, eta


def sky_and_jacobian(wcs: WCS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ICRS (ra, dec) in radians at pixels (x, y) and the Jacobian d(east, north)/d(x, y), (N, 2, 2).

    East and north are ICRS's whatever the WCS's frame (FK4, galactic, ...): its world coordinates
    are converted before the differences are taken.
    """
    h = 1.0  # pixels; WCS distortions do not vary on this scale
    px = np.concatenate([x, x + h, x - h, x, x])
    py = np.concatenate([y, y, y, y + h, y - h])
    lon, lat = wcs.all_pix2world(px, py, 0)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise InputError("WCS does not map the requested pixel positions to the sky", "wcs")
    ra, dec = (np.radians(v).reshape(5, -1) for v in to_icrs(celestial_frame(wcs), lon, lat))
    xi, eta = _tangent_plane(ra[0], dec[0], ra[1:], dec[1:])
    jac = np.empty((x.size, 2, 2))
    jac[:, 0, 0] = (xi[0] - xi[1]) / (2 * h)
    jac[:, 1, 0] = (eta[0] - eta[1]) / (2 * h)
    jac[:, 0, 1] = (xi[2] - xi[3]) / (2 * h)
    jac[:, 1, 1] = (eta[2] - eta[3]) / (2 * h)
    return ra[0], dec[0], jac


def _pixels(wcs: WCS, positions) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel (x, y) arrays, flattened, from a SkyCoord or an (x, y) pair."""
    if isinstance(positions, SkyCoord):
        x, y = skycoord_to_pixel(positions, wcs, origin=0, mode="all")  # (into the WCS's own frame)
    else:
        try:
            x, y = positions
        except (TypeError, ValueError):
            raise ValueError("positions must be a SkyCoord or an (x, y) pair of pixel coordinates") from None
        x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.ravel(x).astype(float), np.ravel(y).astype(float)


def _default_position(visit: VisitInfo, wcs: WCS):
    """The boresight if its RA/Dec is known or derivable, else the WCS reference pixel."""
    if visit.boresight_ra is None or visit.boresight_dec is None:
        visit = visit.completed()
    if visit.boresight_ra is not None and visit.boresight_dec is not None:
        return SkyCoord(visit.boresight_ra, visit.boresight_dec, frame=ICRS())
    return (np.array([wcs.wcs.crpix[0] - 1.0]), np.array([wcs.wcs.crpix[1] - 1.0]))


def _with_site(visit: VisitInfo, bandpass: Bandpass) -> VisitInfo:
    if visit.observatory is not None:
        return visit
    if bandpass.site is None:
        raise InputError("no observatory: the visit has no site and the bandpass names no camera",
                         f"visit {visit.id}")
    log.info("visit %s has no observatory; using the %s site of bandpass %s",
             visit.id, bandpass.site, bandpass.name)
    return visit.replace(observatory=Observatory.from_site(bandpass.site))


def _geometry(visit: VisitInfo, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, ...]:
    """Elevation and parallactic angle (radians) at each position; without a zenith position (no
    time and RA/Dec) the boresight's everywhere (the DCR stage warns once per visit and run)."""
    if visit.zenith is not None:
        return _sky_geometry_rad(visit, ra, dec)
    alt = visit.completed().boresight_alt
    if visit.boresight_az is None or alt is None:
        raise InputError("cannot find the zenith direction: needs time and RA/Dec (or alt/az), or "
                         "boresight alt/az", f"visit {visit.id}")
    q = parallactic_angle(visit.boresight_az, alt, visit.observatory.latitude).rad
    return np.full(ra.shape, alt.rad), np.full(ra.shape, q)


def dcr_bound(bandpass: Bandpass, edges: np.ndarray, observatory: Observatory, tan_z, *,
              split: bool = False) -> np.ndarray:
    """Largest DCR amplitude (radians) any admissible weather gives each subfilter at ``tan z``.

    The amplitude under `DENSEST_WEATHER`, with both terms of the refraction taken at
    full size, times a 5 % margin, plus 2 % of the band's largest bound: near ``λ_eff``
    the amplitudes are small differences, and water vapour changes the shape of the
    dispersion (not only its scale) by about that much. Shapes as for the amplitudes
    of `subfilter_dcr`: ``tan_z`` broadcasts against ``(M,)`` (``(M, 2)`` when split).
    """
    da, db = _coefficients(bandpass, edges, observatory, DENSEST_WEATHER, split)
    tan_z = np.asarray(tan_z, dtype=float)
    bound = _BOUND_MARGIN * (np.abs(da) * tan_z + np.abs(db) * tan_z**3)
    axes = tuple(range(-da.ndim, 0))
    return bound + 0.02 * np.max(bound, axis=axes, keepdims=True)


def _check_amplitude(amplitude: np.ndarray, tan_z: np.ndarray, bandpass: Bandpass, edges: np.ndarray,
                     visit: VisitInfo, split: bool) -> None:
    """Raise InputError when a DCR amplitude is not finite or exceeds `dcr_bound`."""
    bound = dcr_bound(bandpass, edges, visit.observatory, tan_z, split=split)
    bad = ~(np.abs(amplitude) <= bound)
    if not np.any(bad):
        return
    i = np.unravel_index(int(np.argmax(bad)), bad.shape)
    arcsec = 206264.80624709636
    airmass = float(np.sqrt(1.0 + np.asarray(tan_z, float)[i[:1] + (0,) * (tan_z.ndim - 1)] ** 2))
    w = visit.weather
    weather = "the standard atmosphere" if w is None else (
        f"weather {w.temperature.value:g} C, {w.pressure.value:g} Pa, {w.humidity:g} %")
    raise InputError(f"DCR of subfilter {i[1]} would be {amplitude[i] * arcsec:.4g} arcsec at airmass "
                     f"{airmass:.3f}, beyond the {bound[i] * arcsec:.3g} arcsec the densest plausible "
                     f"atmosphere gives there; check the visit's {weather} (a unit mistake?)",
                     f"visit {visit.id}")


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------

def dcr_shifts_at(visit: VisitInfo, wcs: WCS, bandpass: Bandpass, n_subfilters: int, positions, *,
                  split: bool = False, edges=None, partition: str = "equal-width") -> np.ndarray:
    """DCR shifts of every subfilter at many positions at once.

    Parameters
    ----------
    visit : VisitInfo
        Needs an observatory (else the bandpass camera's site) and either time
        with boresight RA/Dec or alt/az, or boresight alt/az (then the same
        geometry applies everywhere).
    wcs : astropy.wcs.WCS
        Maps the array's 0-based pixel coordinates to the sky, in any celestial frame astropy knows
        (ICRS, FK5, FK4, galactic, ...).
    bandpass : Bandpass
    n_subfilters : int
    positions : SkyCoord or (x, y)
        Sky positions (any frame, any shape), or 0-based pixel coordinates
        ``(x, y)`` as two broadcastable arrays. Flattened to N positions.
    split : bool
        Two shifts per subfilter (see module notes).
    edges : array_like, optional
        ``(n_subfilters, 2)`` subfilter ranges in nm (e.g. a model's); default from ``partition``.
    partition : {"equal-width", "equal-throughput"}

    Returns
    -------
    ndarray
        ``(N, n_subfilters, 2)`` of ``(dy, dx)`` pixels, or ``(N, n_subfilters, 2, 2)`` when split.

    Raises
    ------
    InputError
        The visit lacks the geometry, a position is below the horizon, or the WCS is unusable.
    """
    _check_wcs(wcs)
    visit = _with_site(visit, bandpass)
    edges = _edges(bandpass, n_subfilters, edges, partition)
    x, y = _pixels(wcs, positions)
    ra, dec, jac = sky_and_jacobian(wcs, x, y)
    elevation, q = _geometry(visit, ra, dec)
    if np.any(elevation <= 0):
        raise InputError("a requested position is below the horizon", f"visit {visit.id}")
    da, db = _coefficients(bandpass, edges, visit.observatory, visit.weather, split)
    tan_z = np.tan(np.pi / 2 - elevation)
    extra = (None,) * da.ndim
    amplitude = da * tan_z[(...,) + extra] + db * tan_z[(...,) + extra] ** 3  # (N, M[, 2]) radians
    _check_amplitude(amplitude, tan_z[(...,) + extra], bandpass, edges, visit, split)
    # zenith direction on the tangent plane, then into pixels through the inverse Jacobian
    to_pixels = np.linalg.inv(jac) @ np.stack([np.sin(q), np.cos(q)], axis=-1)[..., None]  # (N, 2, 1)
    dx_dy = to_pixels[..., 0][(slice(None),) + extra + (slice(None),)]  # (N, 1[, 1], 2) as (dx, dy)
    shifts = amplitude[..., None] * dx_dy
    return shifts[..., ::-1].copy()  # (dy, dx)


def dcr_shifts(visit: VisitInfo, wcs: WCS, bandpass: Bandpass, n_subfilters: int, *, position=None,
               split: bool = False, edges=None, partition: str = "equal-width") -> np.ndarray:
    """Per-subfilter DCR shifts of ``visit`` at one position.

    Parameters
    ----------
    visit, wcs, bandpass, n_subfilters, split, edges, partition
        As for `dcr_shifts_at`.
    position : SkyCoord or (x, y), optional
        A sky position, or 0-based pixel coordinates ``(x, y)`` in the WCS's
        array grid. Default: the visit's boresight (RA/Dec, given or derived
        from alt/az, time and site), else the WCS reference pixel.

    Returns
    -------
    ndarray
        ``(n_subfilters, 2)`` of ``(dy, dx)`` pixels (``(n_subfilters, 2, 2)``
        when split), blue subfilters towards the zenith.
    """
    if position is None:
        _check_wcs(wcs)
        pos = _default_position(visit, wcs)
    elif isinstance(position, SkyCoord):
        if not position.isscalar:
            raise ValueError("position must be a single SkyCoord; use dcr_shifts_at for many")
        pos = position
    else:
        x, y = position
        pos = (np.array([float(x)]), np.array([float(y)]))
    return dcr_shifts_at(visit, wcs, bandpass, n_subfilters, pos, split=split, edges=edges,
                         partition=partition)[0]


def dcr_direction(visit: VisitInfo, wcs: WCS, bandpass: Bandpass, *, position=None) -> np.ndarray:
    """``(dy, dx)`` pixels from where the red half of the band lands to where the blue half does:
    the direction (and roughly the length) of the smear DCR gives a star in this visit."""
    shifts = dcr_shifts(visit, wcs, bandpass, 2, position=position)
    return shifts[0] - shifts[-1]
