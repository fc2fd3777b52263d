"""Benchmark: DCR assembly (`dcrcoadd.dcr.assemble.assemble_dcr_coadd`) against the baseline coadd.

For each case (``WIDTHxHEIGHTxWARPS``) a fresh single-threaded child process

1. synthesizes warps cheaply with numpy (see `synthetic_field`): a star field
   rendered once in ``RENDER_BANDS`` narrow bands with a Gaussian PSF, each band
   shifted per visit by its DCR (`dcrcoadd.physics.dcr.dcr_shifts`, cubic spline) and
   summed, plus Gaussian noise; visits at airmass 1.0-2.0 over a range of
   parallactic angles (`dcrcoadd.sim.make_visits` for the geometry), the
   DETECTED plane from the noise-free image; GalSim plays no part, because
   rendering a DECam-CCD-sized field with it takes far longer than the assembly;
2. writes them as FITS files to a temporary directory (untimed), as the CLI reads them;
3. times each step in a fresh single-threaded process of its own, with its CPU and
   wall time and its peak resident memory (`benchmarks.common.PeakMemory`): the
   baseline coadd (`assemble_coadd`); the DCR assembly (`assemble_dcr_coadd`, which
   builds its own baseline coadd first, as a user's run does), followed in the same
   process by one DCR-matched template (`make_template` of a held-out visit, best of
   3, and its memory from ``tracemalloc``).

Reports the ratio DCR / baseline, the iterations to convergence (per subregion),
and compares with DMTN-037 (about 10 minutes for the model of a 2048x4096 DECam
CCD and 1-2 s per template, on one laptop core).

Cases: 1024x1024x12 and 2048x4096x12 (M = 3; about 6 minutes on one core, most of it the
DECam-sized case); ``--case`` for others.

Run::

    .venv/bin/python -m benchmarks.dcr_assemble            # 1024x1024 and 2048x4096, 12 warps
    .venv/bin/python -m benchmarks.dcr_assemble --case 512x512x6
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    from . import common
except ImportError:  # run as a script: python benchmarks/dcr_assemble.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import common

DEFAULT_CASES = ["1024x1024x12", "2048x4096x12"]
RENDER_BANDS = 6  # narrow bands the synthetic spectra are sampled in (finer than the model's M)
SEEING_ARCSEC = 0.8
NOISE_NJY = 30.0  # sky noise per pixel
NJY_PER_COUNT = 0.48  # LSST g, 30 s (Poisson term of the variance)
STAR_DENSITY = 1.0 / 400.0  # stars per pixel
SYNTHETIC_DATA = (
    "numpy star field (1 star per 400 px, AB 17-24, black-body spectra 3000-30000 K) rendered once in "
    f"{RENDER_BANDS} narrow bands of LSST g with a Gaussian PSF (FWHM {SEEING_ARCSEC} arcsec, "
    "0.2 arcsec/px); "
    "per visit each band is shifted by its DCR (dcrcoadd.dcr_shifts, cubic spline) and the bands summed; "
    f"Gaussian noise ({NOISE_NJY:g} nJy sky + Poisson); airmass 1.0-2.0, parallactic angles 100-260 deg; "
    "DETECTED from the noise-free image; written as FITS files before timing"
)
DMTN037 = {
    "model_s": 600.0,
    "template_s": [1.0, 2.0],
    "size": [2048, 4096],
    "n_warps": 12,
    "note": "DMTN-037: about 10 min for the DCR model of a full DECam CCD, 1-2 s per template, "
    "one laptop core (12 inputs in its DECam example)",
}


@dataclass(frozen=True)
class Case:
    width: int
    height: int
    n_warps: int

    @classmethod
    def parse(cls, text: str) -> Case:
        parts = [int(v) for v in text.lower().split("x")]
        if len(parts) == 2:  # SIZExWARPS: square
            parts = [parts[0], parts[0], parts[1]]
        if len(parts) != 3 or min(parts) < 1:
            raise ValueError(f"case must be WIDTHxHEIGHTxWARPS or SIZExWARPS, got {text!r}")
        return cls(*parts)

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}x{self.n_warps}"

    @property
    def pixels(self) -> int:
        return self.width * self.height


# -- synthetic warps --------------------------------------------------------------------------------


def visit_conditions(n: int, seed: int = 0) -> list[tuple[float, float]]:
    """``n`` (airmass, parallactic angle in degrees) pairs: airmass evenly over 1.0-2.0, angles over
    100-260 degrees in shuffled order (all reachable from Rubin's latitude at these airmasses)."""
    airmass = np.linspace(1.0, 2.0, n) if n > 1 else np.array([1.3])
    angles = np.linspace(100.0, 260.0, n)[np.random.default_rng([seed, 1]).permutation(n)]
    return [(float(a), float((q + 180.0) % 360.0 - 180.0)) for a, q in zip(airmass, angles, strict=True)]


def _photons_blackbody(wavelength: np.ndarray, temperature: np.ndarray) -> np.ndarray:
    return wavelength**-4.0 / np.expm1(1.438776877e7 / (wavelength * temperature))


def _render_bands(shape, xs, ys, fractions, flux, sigma) -> np.ndarray:
    """Point sources with a circular Gaussian PSF, one image per narrow band (float32)."""
    ny, nx = shape
    out = np.zeros((fractions.shape[1], ny, nx), np.float32)
    r = int(math.ceil(4 * sigma))
    off = np.arange(-r, r + 1)
    norm = 1.0 / (2 * math.pi * sigma * sigma)
    for x, y, frac, f in zip(xs, ys, fractions, flux, strict=True):
        ix, iy = int(round(x)), int(round(y))
        x0, x1, y0, y1 = max(ix - r, 0), min(ix + r + 1, nx), max(iy - r, 0), min(iy + r + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        gx = np.exp(-0.5 * ((ix + off - x) / sigma) ** 2)[x0 - (ix - r) : x1 - (ix - r)]
        gy = np.exp(-0.5 * ((iy + off - y) / sigma) ** 2)[y0 - (iy - r) : y1 - (iy - r)]
        stamp = (f * norm) * np.outer(gy, gx)
        out[:, y0:y1, x0:x1] += frac[:, None, None].astype(np.float32) * stamp[None].astype(np.float32)
    return out


def synthetic_field(
    width: int, height: int, n_warps: int, *, seed: int = 1, n_science: int = 1
) -> tuple[list, list]:
    """Warps (and held-out science exposures) of a synthetic star field with DCR, in memory.

    Returns
    -------
    warps, science : list of Exposure
        ``n_warps`` model inputs and ``n_science`` held-out visits (airmass 1.3-1.5), all
        on one TAN grid at 0.2 arcsec/pixel in LSST g, nJy (``flux_calibration`` 1).
    """
    from dcrcoadd.core.exposure import Exposure
    from dcrcoadd.core.psf import Psf
    from dcrcoadd.ops.shift import shift_image, spline_prefilter
    from dcrcoadd.physics.dcr import dcr_shifts
    from dcrcoadd.sim import SimulationConfig, field_wcs, make_visits

    conditions = visit_conditions(n_warps, seed) + [
        (1.3 + 0.2 * k / max(n_science - 1, 1), 150.0 - 20 * k) for k in range(n_science)
    ]
    config = SimulationConfig(
        size=(width, height),
        n_visits=len(conditions),
        conditions=tuple(conditions),
        seeing=(SEEING_ARCSEC, SEEING_ARCSEC),
        seed=seed,
        defects=False,
    )
    visits = make_visits(config)
    wcs = field_wcs(config)
    bandpass = config.resolve_bandpass()
    rng = np.random.default_rng([seed, 2])
    n_stars = max(int(width * height * STAR_DENSITY), 1)
    xs, ys = rng.uniform(-0.5, width - 0.5, n_stars), rng.uniform(-0.5, height - 0.5, n_stars)
    mags = 17.0 + 7.0 * np.sqrt(rng.uniform(size=n_stars))  # more faint stars than bright ones
    flux = 10 ** (-0.4 * (mags - 31.4))  # nJy
    temperature = np.exp(rng.uniform(np.log(3000.0), np.log(30000.0), n_stars))
    lo, hi = bandpass.wavelength_range
    centres = lo + (np.arange(RENDER_BANDS) + 0.5) * (hi - lo) / RENDER_BANDS
    photons = _photons_blackbody(centres[None, :], temperature[:, None]) * bandpass.throughput(centres)[None]
    fractions = photons / photons.sum(axis=1, keepdims=True)
    fwhm_px = SEEING_ARCSEC / config.pixel_scale
    sigma = fwhm_px / 2.3548
    bands = _render_bands((height, width), xs, ys, fractions, flux, sigma)
    truth = bands.sum(axis=0)
    coeffs = [spline_prefilter(b) for b in bands]
    del bands
    from dcrcoadd.ops.detection import grow

    detected = grow(truth > NOISE_NJY, 2.0)
    del truth
    psf = Psf.gaussian(fwhm=fwhm_px)
    edges = np.column_stack(
        [centres - 0.5 * (hi - lo) / RENDER_BANDS, centres + 0.5 * (hi - lo) / RENDER_BANDS]
    )
    exposures = []
    for i, sv in enumerate(visits):
        shifts = dcr_shifts(sv.visit, wcs, bandpass, RENDER_BANDS, edges=edges)
        model = np.zeros((height, width), np.float32)
        for c, s in zip(coeffs, shifts, strict=True):
            model += shift_image(c, s, 3, prefiltered=True)
        variance = (NOISE_NJY**2 + NJY_PER_COUNT * np.maximum(model, 0.0)).astype(np.float32)
        noise = np.random.default_rng([seed, 3, i]).standard_normal((height, width), dtype=np.float32)
        exp = Exposure(
            image=model + noise * np.sqrt(variance),
            variance=variance,
            wcs=wcs.deepcopy(),
            psf=psf,
            visit=sv.visit,
            bandpass=bandpass,
            flux_calibration=1.0,
        )
        exp.set_mask("DETECTED", detected)
        exposures.append(exp)
    return exposures[:n_warps], exposures[n_warps:]


# -- one measured case (child process) --------------------------------------------------------------


def _iterations(metadata: dict) -> dict:
    subs = metadata.get("subregions", {}).values()
    its = [s["history"][-1]["iteration"] if s["history"] else 0 for s in subs]
    return {
        "iterations_per_subregion": its,
        "iterations_max": max(its, default=0),
        "iterations_mean": float(np.mean(its)) if its else 0.0,
        "stop_reasons": sorted({s["stop_reason"] for s in subs}),
        "converged_fraction": float(np.mean([s["converged"] for s in subs])) if its else None,
        "n_subregions": len(its),
    }


def _config(subfilters: int):
    from dcrcoadd.config.schema import Config

    config = Config()
    config.dcr.dcr_num_subfilters = subfilters
    return config


def measure_outputs(result) -> dict:
    """CPU and wall time of a run's output stage (`write_dcr_outputs`, then `write_report`: the FITS
    products, the leave-one-out re-solve and the figure), into a temporary directory."""
    from dcrcoadd.pipeline.outputs import write_dcr_outputs, write_report

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        write_dcr_outputs(result, tmp)
        c1 = time.process_time()
        products = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        write_report(result, Path(tmp) / "report.png")
        return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                "fits_cpu_s": c1 - c0, "report_cpu_s": time.process_time() - c1,
                "products_mib": products / common.MiB}


def memory_goal(case: Case, input_mib: float, products_mib: float) -> float:
    """Issue 14's bound on a run's peak memory, in MiB: twice one subregion of all warps (the
    default ``coadd.subregion_size``, as the warp files store it: image, mask and variance) plus
    the outputs (the FITS products of the run)."""
    from dcrcoadd.config import Config

    sub_w, sub_h = Config().coadd.subregion_size
    share = min(sub_w, case.width) * min(sub_h, case.height) / (case.width * case.height)
    return 2.0 * share * input_mib + products_mib


#: Mask planes the numpy coadd leaves out (the pipeline's default bad planes that the synthetic
#: warps can carry).
NUMPY_BAD_PLANES = ("BAD", "SAT", "NO_DATA", "CR", "INTRP", "SUSPECT", "EDGE")


def numpy_coadd(paths: list[Path]) -> np.ndarray:
    """The yardstick of issue 14: an inverse-variance weighted mean of the warps with numpy and
    astropy alone, bad pixels left out; reads every file once."""
    from astropy.io import fits

    num = den = None
    for p in paths:
        with fits.open(p, memmap=False) as hdul:
            image = hdul["IMAGE"].data.astype(np.float32)
            variance = hdul["VARIANCE"].data.astype(np.float32)
            mask = hdul["MASK"].data
            bits = 0
            for k, v in hdul["MASK"].header.items():
                if k.startswith("MP_") and k[3:] in NUMPY_BAD_PLANES:
                    bits |= 1 << int(v)
        w = np.where(((mask & bits) == 0) & (variance > 0) & np.isfinite(image), 1.0 / variance, 0.0)
        w = w.astype(np.float32)
        if num is None:
            num, den = np.zeros_like(image), np.zeros_like(image)
        num += w * np.nan_to_num(image)
        den += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def time_numpy_coadd(paths: list[Path], repeat: int = 3) -> dict:
    """Best CPU and wall time of `numpy_coadd` of ``paths`` (after one untimed run that warms the
    page cache, as the pipeline's steps find it)."""
    numpy_coadd(paths)
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        numpy_coadd(paths)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"seconds": min(wall), "cpu_seconds": min(cpu), "repeat": repeat}


def measure_step(step: str, directory: Path, subfilters: int = 3, template_repeat: int = 3) -> dict:
    """Time one step on the warps in ``directory`` in this (fresh) process.

    ``baseline``: `assemble_coadd`. ``dcr``: `assemble_dcr_coadd`, then `make_template` of
    ``science.fits`` ``template_repeat`` times (CPU and wall time), and once more under
    ``tracemalloc`` for its memory (small, short-lived arrays that the resident high-water
    mark cannot see once the allocator holds the DCR step's freed memory).
    """
    import tracemalloc

    from dcrcoadd.coadd import assemble_coadd
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.io import read_exposure
    from dcrcoadd.template.build import make_template

    config = _config(subfilters)
    paths = sorted(Path(directory).glob("warp_*.fits"))
    if step == "baseline":
        with common.PeakMemory() as mem:
            assemble_coadd(paths, config)
        return mem.as_dict()
    if step != "dcr":
        raise ValueError(f"unknown step {step!r}")
    with common.PeakMemory() as mem:
        # as a run does (`run_patch`): the baseline coadd, then the DCR stage started from it
        c0 = time.process_time()
        baseline = assemble_coadd(paths, config)
        c1 = time.process_time()
        result = assemble_dcr_coadd(paths, config, baseline=baseline)
        c2 = time.process_time()
    out = {"dcr": mem.as_dict()}
    meta = result.metadata
    out["dcr"].update(
        baseline_cpu_s=c1 - c0,
        stage_cpu_s=c2 - c1,
        timings_s=meta["timings_s"],
        initial_convergence=meta["initial_convergence"],
        final_convergence=meta["final_convergence"],
        **_iterations(meta),
    )
    out["outputs"] = measure_outputs(result)
    model = result.model
    del result, baseline
    gc.collect()
    science = read_exposure(Path(directory) / "science.fits")
    times, cpu = [], []
    for _ in range(template_repeat):
        t1, c1 = time.perf_counter(), time.process_time()
        make_template(model, science)
        times.append(time.perf_counter() - t1)
        cpu.append(time.process_time() - c1)
    tracemalloc.start()
    make_template(model, science)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out["template"] = {
        "seconds": float(np.median(times)),
        "cpu_seconds": float(np.median(cpu)),
        "best_s": min(times),
        "best_cpu_s": min(cpu),
        "repeat": template_repeat,
        "traced_peak_mib": traced_peak / common.MiB,
    }
    return out


def measure(case: Case, *, seed: int = 1, subfilters: int = 3, tmp: str | None = None) -> dict:
    """Synthesize and write one case here, then time each step in a fresh child process.

    A fresh process per step makes each peak-memory figure that step's own: in one
    process the allocator keeps memory an earlier step freed, which then hides a
    later step's arrays from the resident high-water mark.
    """
    from dcrcoadd.io import write_exposure

    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    warps, science = synthetic_field(case.width, case.height, case.n_warps, seed=seed)
    out = {
        "case": case.name,
        "width": case.width,
        "height": case.height,
        "n_warps": case.n_warps,
        "pixels": case.pixels,
        "subfilters": subfilters,
        "synthesize_s": time.perf_counter() - t0,
        "load_average_start": load0,
    }
    with tempfile.TemporaryDirectory(dir=tmp) as tmpdir:
        t0 = time.perf_counter()
        paths = [write_exposure(w, Path(tmpdir) / f"warp_{i:03d}.fits") for i, w in enumerate(warps)]
        write_exposure(science[0], Path(tmpdir) / "science.fits")
        out["write_s"] = time.perf_counter() - t0
        out["input_mib"] = sum(p.stat().st_size for p in paths) / common.MiB
        del warps, science
        gc.collect()
        out["numpy_coadd"] = time_numpy_coadd(paths)
        out["baseline"] = common.run_child("dcr_assemble", ["baseline", tmpdir, subfilters], flag="--step")
        out.update(common.run_child("dcr_assemble", ["dcr", tmpdir, subfilters], flag="--step"))
    out["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out["ratio_dcr_to_baseline"] = out["dcr"]["cpu_seconds"] / out["baseline"]["cpu_seconds"]
    out["ratio_dcr_to_baseline_wall"] = out["dcr"]["seconds"] / out["baseline"]["seconds"]
    # the solver's share of the CPU time (the in-process timings are wall clock)
    share = out["dcr"]["timings_s"]["dcr_model"] / max(out["dcr"]["seconds"], 1e-9)
    out["dcr"]["model_cpu_s"] = out["dcr"]["cpu_seconds"] * min(share, 1.0)
    out["dcr"]["model_cpu_s_per_iteration"] = out["dcr"]["model_cpu_s"] / max(
        out["dcr"]["iterations_mean"], 1.0
    )
    out["vs_numpy"] = stage_ratios(out)
    out["memory_goal_mib"] = memory_goal(case, out["input_mib"], out["outputs"]["products_mib"])
    return out


def stage_ratios(r: dict) -> dict:
    """CPU seconds of each stage of a run and their ratios to the numpy coadd of the same files
    (issue 14's yardstick): the baseline coadd with compare-warp (its own step), the DCR stage
    after it, the outputs, and the run end to end (the three in the DCR step's process)."""
    numpy_s = r["numpy_coadd"]["cpu_seconds"]
    d = r["dcr"]
    seconds = {
        "numpy_coadd": numpy_s,
        "baseline": r["baseline"]["cpu_seconds"],
        "dcr": d["stage_cpu_s"],
        "outputs": r["outputs"]["cpu_seconds"],
        "end_to_end": d["baseline_cpu_s"] + d["stage_cpu_s"] + r["outputs"]["cpu_seconds"],
    }
    return {"cpu_seconds": seconds,
            "ratio": {k: v / numpy_s for k, v in seconds.items() if k != "numpy_coadd"}}


def measure_in_child(case: Case, *, seed: int = 1, subfilters: int = 3, timeout: float | None = None) -> dict:
    """`measure` in a fresh single-threaded process (which starts one more per step)."""
    return common.run_child("dcr_assemble", [case.name, seed, subfilters], timeout=timeout)


# -- report -----------------------------------------------------------------------------------------


def summarize(results: list[dict]) -> dict:
    """Per-case table rows and the comparison with DMTN-037 for the DECam-CCD-sized case."""
    rows = []
    for r in results:
        rows.append(
            {
                "case": r["case"],
                "baseline_cpu_s": r["baseline"]["cpu_seconds"],
                "dcr_cpu_s": r["dcr"]["cpu_seconds"],
                "dcr_model_cpu_s": r["dcr"]["model_cpu_s"],
                "baseline_wall_s": r["baseline"]["seconds"],
                "dcr_wall_s": r["dcr"]["seconds"],
                "ratio_dcr_to_baseline": r["ratio_dcr_to_baseline"],
                "iterations_max": r["dcr"]["iterations_max"],
                "template_cpu_s": r["template"]["best_cpu_s"],
                "template_wall_s": r["template"]["best_s"],
                "baseline_peak_mib": r["baseline"]["peak_rss_growth_mib"],
                "dcr_peak_mib": r["dcr"]["peak_rss_growth_mib"],
                "template_traced_peak_mib": r["template"]["traced_peak_mib"],
                "memory_goal_mib": r.get("memory_goal_mib"),  # (absent from earlier results)
            }
        )
        v = r.get("vs_numpy")  # results of earlier versions lack the per-stage numbers
        if v:
            rows[-1].update(
                numpy_cpu_s=v["cpu_seconds"]["numpy_coadd"],
                dcr_stage_cpu_s=v["cpu_seconds"]["dcr"],
                outputs_cpu_s=v["cpu_seconds"]["outputs"],
                end_to_end_cpu_s=v["cpu_seconds"]["end_to_end"],
                **{f"{k}_vs_numpy": x for k, x in v["ratio"].items()},
            )
    decam = next((r for r in results if (r["width"], r["height"]) == (2048, 4096)), None)
    comparison = None
    if decam is not None:
        comparison = {
            "case": decam["case"],
            "dcr_model_cpu_s": decam["dcr"]["model_cpu_s"],
            "dcr_total_cpu_s": decam["dcr"]["cpu_seconds"],
            "template_cpu_s": decam["template"]["best_cpu_s"],
            "iterations_max": decam["dcr"]["iterations_max"],
            "dmtn037": DMTN037,
            "model_speedup_vs_dmtn037": DMTN037["model_s"] / decam["dcr"]["model_cpu_s"],
        }
    return {"rows": rows, "dmtn037_comparison": comparison}


def print_table(results: list[dict]) -> None:
    f = common.fmt
    print(
        f"{'case':>14} {'baseline s':>10} {'DCR s':>8} {'model s':>8} {'DCR/base':>8} {'iter':>5} "
        f"{'template s':>10} {'base MiB':>9} {'DCR MiB':>8} {'tmpl MiB':>8}"
    )
    for row in summarize(results)["rows"]:
        print(
            f"{row['case']:>14} {f(row['baseline_cpu_s'], '10.2f')} {f(row['dcr_cpu_s'], '8.2f')} "
            f"{f(row['dcr_model_cpu_s'], '8.2f')} {f(row['ratio_dcr_to_baseline'], '8.1f')} "
            f"{row['iterations_max']:>5d} {f(row['template_cpu_s'], '10.3f')} "
            f"{f(row['baseline_peak_mib'], '9.0f')} {f(row['dcr_peak_mib'], '8.0f')} "
            f"{f(row['template_traced_peak_mib'], '8.0f')}"
        )
    print(
        "times: CPU seconds of one core (template: best of 3); MiB: peak resident memory of a fresh "
        "process per step above its size after imports (inputs are files), template: tracemalloc peak; "
        "DCR s includes its own baseline coadd."
    )
    rows = [r for r in summarize(results)["rows"] if "numpy_cpu_s" in r]
    if rows:
        print(f"{'case':>14} {'numpy s':>8} {'baseline':>14} {'DCR stage':>14} {'outputs':>14} "
              f"{'end to end':>15}")
        for r in rows:
            cells = [f"{f(r[s], '6.2f')} {f(r[k], '5.1f')}x" for s, k in (
                ("baseline_cpu_s", "baseline_vs_numpy"), ("dcr_stage_cpu_s", "dcr_vs_numpy"),
                ("outputs_cpu_s", "outputs_vs_numpy"), ("end_to_end_cpu_s", "end_to_end_vs_numpy"))]
            print(f"{r['case']:>14} {f(r['numpy_cpu_s'], '8.3f')} " + " ".join(f"{c:>14}" for c in cells))
        print("CPU seconds and ratio to a numpy inverse-variance coadd of the same files (issue 14); "
              "DCR stage without its baseline; end to end = baseline + DCR stage + outputs.")


def run(cases: list[Case], *, seed: int = 1, log=print) -> list[dict]:
    results = []
    for case in cases:
        t0 = time.perf_counter()
        results.append(measure_in_child(case, seed=seed))
        log(f"  {case.name}: done in {time.perf_counter() - t0:.0f} s")
    return results


def payload(results: list[dict], mode: str) -> dict:
    return {
        "mode": mode,
        "synthetic_data": SYNTHETIC_DATA,
        "threads": "1 (child process)",
        "timing_note": "cpu_s: CPU time of the single-threaded child (robust to other load on the "
        "machine); seconds: wall time",
        "cases": results,
        **summarize(results),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--case", action="append", help=f"WIDTHxHEIGHTxWARPS (repeatable; default {DEFAULT_CASES})"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)"
    )
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--step", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:
        step, directory, m = args.step
        print(json.dumps(common._clean(measure_step(step, Path(directory), int(m)))))
        return 0
    if args.child:
        case, seed, m = args.child
        print(json.dumps(common._clean(measure(Case.parse(case), seed=int(seed), subfilters=int(m)))))
        return 0
    names = args.case or DEFAULT_CASES
    cases = [Case.parse(c) for c in names]
    results = run(cases, seed=args.seed)
    print_table(results)
    summary = summarize(results)
    if summary["dmtn037_comparison"]:
        c = summary["dmtn037_comparison"]
        print(
            f"DMTN-037 (2048x4096, one laptop core): model ~600 s, template 1-2 s; here: model "
            f"{c['dcr_model_cpu_s']:.0f} s, template {c['template_cpu_s']:.2f} s (CPU, one core)"
        )
    mode = "custom" if args.case else "default"
    path = common.write_results(
        "dcr_assemble",
        payload(results, mode),
        args.out_dir,
        argv=["-m", "benchmarks.dcr_assemble", *(argv or sys.argv[1:])],
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
