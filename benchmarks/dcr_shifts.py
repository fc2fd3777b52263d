"""Benchmark per-subfilter DCR shifts for a grid of subregion centres across an LSST-sized field.

A 3.5-degree field at 0.2 arcsec/pixel (63000 pixels across) is tiled into
subregions (default 2000 pixels, i.e. a 32x32 grid of centres). For a visit at
elevation ~50 degrees the benchmark times

* ``dcr_shifts_at`` for all centres at once, with a fresh VisitInfo (includes
  the one astropy transformation that places the zenith) and with a reused one;
* a loop of single-position ``dcr_shifts`` calls (the per-subregion pattern);
* many visits (default 30) times all centres, the whole DCR geometry of a patch,

and checks a sample of centres against an independent astropy construction
(AltAz -> ICRS -> WCS pixels), and reports how much the shifts change across
the field compared with using the boresight value everywhere. Prints a table
and writes ``benchmarks/results/dcr_shifts.json``.

Usage::

    .venv/bin/python benchmarks/dcr_shifts.py [--subregion 2000] [--visits 30] [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, AltAz, SkyCoord
from astropy.time import Time
from astropy.wcs import WCS

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.observatory import Observatory
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.physics.dcr import dcr_shifts, dcr_shifts_at
from dcrcoadd.physics.refraction import differential_refraction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS_DIR, machine_info, timeit, write_results_to  # noqa: E402

FIELD_DEG = 3.5
SCALE = 0.2  # arcsec / pixel
N_SUB = 3


def _to_icrs(az, alt, t, obs):
    frame = AltAz(obstime=t, location=obs.to_earth_location(), pressure=0 * u.hPa)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SkyCoord(az=np.atleast_1d(az) * u.deg, alt=np.atleast_1d(alt) * u.deg,
                        frame=frame).transform_to(ICRS())


def _reference(wcs, x, y, t, obs, band):
    """Independent shifts: move each centre along altitude by the subfilter DCR with astropy."""
    sky = SkyCoord(*wcs.all_pix2world(x, y, 0), unit="deg")
    frame = AltAz(obstime=t, location=obs.to_earth_location(), pressure=0 * u.hPa)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aa = sky.transform_to(frame)
    edges = np.linspace(*band.wavelength_range, N_SUB + 1)
    d_edge = differential_refraction(edges[None] * u.nm, band.effective_wavelength,
                                     aa.alt.deg[:, None] * u.deg, obs).deg
    d = 0.5 * (d_edge[:, :-1] + d_edge[:, 1:])
    moved = _to_icrs(np.repeat(aa.az.deg, N_SUB), (aa.alt.deg[:, None] + d).ravel(), t, obs)
    x1, y1 = wcs.all_world2pix(moved.ra.deg, moved.dec.deg, 0)
    x0, y0 = wcs.all_world2pix(sky.ra.deg, sky.dec.deg, 0)
    return np.stack([y1.reshape(-1, N_SUB) - y0[:, None], x1.reshape(-1, N_SUB) - x0[:, None]], axis=-1)


def run(subregion, n_visits, repeat):
    obs = Observatory.from_site("rubin")
    band = Bandpass("g", 477.0 * u.nm, 150.0 * u.nm)
    t = Time("2024-03-15T05:00:00")
    bore = _to_icrs(140.0, 50.0, t, obs)
    npix = int(round(FIELD_DEG * 3600 / SCALE))
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [bore.ra.deg[0], bore.dec.deg[0]]
    wcs.wcs.crpix = [npix / 2 + 0.5, npix / 2 + 0.5]
    wcs.wcs.cd = np.array([[-SCALE, 0.0], [0.0, SCALE]]) / 3600.0
    wcs.wcs.set()
    centres = (np.arange(0, npix, subregion) + subregion / 2 - 0.5)
    xs, ys = np.meshgrid(centres, centres)
    x, y = xs.ravel(), ys.ravel()
    n = x.size
    kwargs = dict(time=t, boresight_ra=bore.ra[0], boresight_dec=bore.dec[0], observatory=obs)

    def fresh():
        return dcr_shifts_at(VisitInfo(1, **kwargs), wcs, band, N_SUB, (x, y))

    visit = VisitInfo(1, **kwargs)
    shifts = dcr_shifts_at(visit, wcs, band, N_SUB, (x, y))
    timings = {
        "vectorized_fresh_visit": timeit(fresh, repeat),
        "vectorized_reused_visit": timeit(lambda: dcr_shifts_at(visit, wcs, band, N_SUB, (x, y)), repeat),
        "vectorized_split": timeit(lambda: dcr_shifts_at(visit, wcs, band, N_SUB, (x, y), split=True),
                                    repeat),
    }
    n_loop = min(n, 256)
    loop = timeit(lambda: [dcr_shifts(visit, wcs, band, N_SUB, position=(x[k], y[k]))
                            for k in range(n_loop)], max(2, repeat // 3))
    timings["single_call_loop_per_position"] = {k: v / n_loop for k, v in loop.items()}
    # a patch's worth of geometry: many visits (fresh VisitInfo each), all centres
    hours = np.linspace(-2.5, 2.5, n_visits)
    visits = [VisitInfo(v, time=t + h * u.hour, boresight_ra=bore.ra[0], boresight_dec=bore.dec[0],
                        observatory=obs) for v, h in enumerate(hours)]
    t0 = time.perf_counter()
    for v in visits:
        dcr_shifts_at(v, wcs, band, N_SUB, (x, y), split=True)
    timings["all_visits_all_centres_split"] = {"total_s": time.perf_counter() - t0}

    # accuracy against the independent astropy construction on a sample of centres
    rng = np.random.default_rng(0)
    pick = rng.choice(n, size=min(n, 64), replace=False)
    ref = _reference(wcs, x[pick], y[pick], t, obs, band)
    max_err = float(np.abs(shifts[pick] - ref).max())
    centre_shift = dcr_shifts(visit, wcs, band, N_SUB)
    variation = float(np.abs(shifts - centre_shift[None]).max())
    return {"field_deg": FIELD_DEG, "pixel_scale_arcsec": SCALE, "field_pixels": npix, "subregion": subregion,
            "n_centres": n, "n_subfilters": N_SUB, "n_visits": n_visits, "timings": timings,
            "max_error_vs_astropy_px": max_err, "max_shift_px": float(np.abs(shifts).max()),
            "max_change_across_field_px": variation}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subregion", type=int, default=2000)
    parser.add_argument("--visits", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "dcr_shifts.json")
    args = parser.parse_args(argv)
    result = {"benchmark": "dcr_shifts", "machine": machine_info(),
              **run(args.subregion, args.visits, args.repeat)}
    tm = result["timings"]
    print(f"{result['field_deg']} deg field, {result['field_pixels']} px across, subregions of "
          f"{args.subregion} px: {result['n_centres']} centres, {N_SUB} subfilters")
    for name in ("vectorized_fresh_visit", "vectorized_reused_visit", "vectorized_split"):
        print(f"  {name:32s} {1e3 * tm[name]['median_s']:8.2f} ms (median of {args.repeat})")
    print(f"  {'single dcr_shifts call':32s} {1e3 * tm['single_call_loop_per_position']['median_s']:8.3f} ms "
          "per position")
    total = tm["all_visits_all_centres_split"]["total_s"]
    print(f"  {args.visits} visits x all centres, split: {total:.3f} s")
    print(f"max |shift - astropy construction| = {result['max_error_vs_astropy_px']:.2e} px "
          f"(largest shift {result['max_shift_px']:.2f} px); "
          f"shifts change by up to {result['max_change_across_field_px']:.3f} px across the field")
    write_results_to(args.out, "dcr_shifts", result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
