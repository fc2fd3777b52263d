"""Subfilter-colour bias of the exact solver: the within-subfilter spectrum of the forward model.

A source's centroid moves with its mean wavelength. With throughput-only wavelength-bin
weights the forward model places each subfilter's light as if the source's spectrum were
flat inside the subfilter, so only the spread *between* subfilter centres moves the
centroid; the spread *within* them (variance ``w²/12`` per subfilter of width ``w``,
against ``w²(M²−1)/12`` between their centres) is missing, and the solver needs
``M²/(M²−1)`` times the true blue-red contrast to move the centroid as far: subfilter
colours stretched by 1.33 at M = 2, 1.125 at M = 3, 1.067 at M = 4.
``ExactSettings.linear_spectrum`` (`dcrcoadd.dcr.fourier.linear_spectrum_weights`) gives
the source a spectrum that is linear inside each subfilter, its slope from the neighbours.

This runs the exact solver on a small validation field (`benchmarks.validation`, 256² px,
560 stars) on the warps with 100x less noise (bias, not noise) of both scenarios, for M = 2,
3, 4 with and without ``linear_spectrum``, and prints the colour slope and rank
correlation (PSF-weighted and aperture, as the validation suite measures them) next to
``M²/(M²−1)``.

Run::

    python -m benchmarks.colour_bias [--seed 8] [--subfilters 2 3 4]   # ~2 minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

try:
    from . import validation as V
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import validation as V


def small_setup(seed: int) -> V.ValidationSetup:
    """The quick validation setup on a 256² field with 560 stars and 10 two-sided model visits."""
    return dataclasses.replace(V.QUICK, size=256, n_stars=560, n_model_visits=10, seed=seed)


def exact_colours(sim, scenario, setup: V.ValidationSetup, n_subfilters: int, linear: bool) -> dict:
    """Colour fit of the exact solver's model of ``scenario``'s low-noise warps."""
    from dcrcoadd.config.schema import Config
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    warps = [V.low_noise(sim.warps[i], sim.models[i], setup.low_noise_factor) for i in scenario.model]
    config = Config()
    config.dcr.solver = "exact"
    config.dcr.dcr_num_subfilters = n_subfilters
    config.dcr.exact.linear_spectrum = linear
    config.artifacts.enabled = False  # as the suite's low-noise runs
    t0 = time.perf_counter()
    result = assemble_dcr_coadd(warps, config)
    seconds = time.perf_counter() - t0
    sp = V.spectra(sim, result, setup)
    return {
        "scenario": scenario.name, "M": n_subfilters, "linear_spectrum": linear,
        "expected_stretch_without": n_subfilters**2 / (n_subfilters**2 - 1),
        "slope": sp["fit"]["slope"], "rank": sp["fit"]["rank"],
        "aperture_slope": sp["fit_aperture"]["slope"], "aperture_rank": sp["fit_aperture"]["rank"],
        "stars": sp["n_selected"], "seconds": seconds,
    }


def run(seed: int, subfilters: tuple[int, ...], log=print) -> list[dict]:
    setup = small_setup(seed)
    sim, scenarios = V.simulate_field(setup)
    rows = []
    for scenario in scenarios:
        for m in subfilters:
            for linear in (False, True):
                row = exact_colours(sim, scenario, setup, m, linear)
                rows.append(row)
                log(f"{row['scenario']:10s} M={m} linear_spectrum={str(linear):5s}  slope {row['slope']:.3f} "
                    f"(aperture {row['aperture_slope']:.3f}), rank {row['rank']:.3f}; "
                    f"M²/(M²−1) = {row['expected_stretch_without']:.3f}; {row['stars']} stars")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--subfilters", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    rows = run(args.seed, tuple(args.subfilters))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
