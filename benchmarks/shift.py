"""Benchmark dcrcoadd.ops.shift against scipy.ndimage.shift (what LSST's applyDcr calls).

Times a constant sub-pixel shift of a float32 image (default 2000x2000, a typical
solver subregion) for bilinear (order 1) and cubic B-spline (order 3) interpolation,
with the spline prefilter included and reused, plus the true adjoint, and reports
Mpix/s and the speed-up over scipy on the same array, and the largest difference
from a float64 scipy reference. Prints a table and writes
``benchmarks/results/shift.json`` with machine information.

Usage::

    .venv/bin/python benchmarks/shift.py [--size 2000] [--repeat 7] [--out benchmarks/results/shift.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from dcrcoadd.ops.shift import shift_image, shift_image_adjoint, shift_many, spline_prefilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS_DIR, machine_info, timeit, write_results_to  # noqa: E402

SHIFT = (0.37, -1.61)


def _entry(name, npix, ours, ref=None):
    row = {"case": name, "ours": ours, "ours_mpix_s": npix / 1e6 / ours["median_s"]}
    if ref is not None:
        row["scipy"] = ref
        row["scipy_mpix_s"] = npix / 1e6 / ref["median_s"]
        row["speedup"] = ref["median_s"] / ours["median_s"]
    return row


def run(size, repeat):
    rng = np.random.default_rng(42)
    image = (100.0 + 10.0 * rng.normal(size=(size, size))).astype(np.float32)
    npix = image.size
    out = np.empty_like(image)
    rows = []

    # order 1: bilinear, LSST's default image_interp_order
    rows.append(_entry(
        "order1", npix,
        timeit(lambda: shift_image(image, SHIFT, 1, out=out), repeat),
        timeit(lambda: ndimage.shift(image, SHIFT, order=1, mode="constant"), max(3, repeat // 2)),
    ))
    # order 3 including the prefilter, vs scipy's own prefilter=True path
    rows.append(_entry(
        "order3_with_prefilter", npix,
        timeit(lambda: shift_image(image, SHIFT, 3, out=out), repeat),
        timeit(lambda: ndimage.shift(image, SHIFT, order=3, mode="constant"), max(3, repeat // 2)),
    ))
    # order 3 on reused coefficients (LSST's applyDcr: float64 spline_filter, then prefilter=False)
    coef32 = spline_prefilter(image)
    coef64 = ndimage.spline_filter(image, order=3)
    rows.append(_entry(
        "order3_prefiltered", npix,
        timeit(lambda: shift_image(coef32, SHIFT, 3, out=out, prefiltered=True), repeat),
        timeit(lambda: ndimage.shift(coef64, SHIFT, order=3, prefilter=False), max(3, repeat // 2)),
    ))
    rows.append(_entry(
        "spline_prefilter_only", npix,
        timeit(lambda: spline_prefilter(image), repeat),
        timeit(lambda: ndimage.spline_filter(image, order=3), max(3, repeat // 2)),
    ))
    # true adjoints (no scipy counterpart)
    for order in (1, 3):
        rows.append(_entry(f"adjoint_order{order}", npix,
                           timeit(lambda o=order: shift_image_adjoint(image, SHIFT, o, out=out), repeat)))
    # one image, three subfilter shifts (M = 3), order 3: one prefilter for all
    shifts = np.array([[0.4, -0.3], [0.0, 0.0], [-0.4, 0.3]]) + np.array(SHIFT)
    stack = np.empty((3,) + image.shape, dtype=np.float32)

    def scipy_many():
        coef = ndimage.spline_filter(image, order=3)
        return [ndimage.shift(coef, s, order=3, prefilter=False) for s in shifts]

    rows.append(_entry(
        "shift_many_order3_x3", 3 * npix,
        timeit(lambda: shift_many(image, shifts, 3, out=stack), repeat),
        timeit(scipy_many, max(3, repeat // 2)),
    ))

    # precision against a float64 scipy reference, relative to the image scale
    ref64 = image.astype(np.float64)
    scale = float(np.abs(image).max())
    precision = {}
    for order in (1, 3):
        ref = ndimage.shift(ref64, SHIFT, order=order, mode="constant")
        ours = shift_image(image, SHIFT, order)
        precision[f"order{order}_ours_max_rel"] = float(np.abs(ours - ref).max()) / scale
        precision[f"order{order}_scipy_f32_max_rel"] = float(
            np.abs(ndimage.shift(image, SHIFT, order=order, mode="constant") - ref).max()) / scale

    # overhead at smaller subregion sizes
    sweep = []
    for n in sorted({min(n, size) for n in (256, 512, 1024, size)}):
        img = image[:n, :n].copy()
        cf = spline_prefilter(img)
        o = np.empty_like(img)
        t1 = timeit(lambda img=img, o=o: shift_image(img, SHIFT, 1, out=o), repeat)
        t3 = timeit(lambda cf=cf, o=o: shift_image(cf, SHIFT, 3, out=o, prefiltered=True), repeat)
        s1 = timeit(lambda img=img: ndimage.shift(img, SHIFT, order=1, mode="constant"), max(3, repeat // 2))
        sweep.append({"size": n, "order1_mpix_s": n * n / 1e6 / t1["median_s"],
                      "order1_speedup": s1["median_s"] / t1["median_s"],
                      "order3_prefiltered_mpix_s": n * n / 1e6 / t3["median_s"]})
    return {"size": size, "shift": SHIFT, "repeat": repeat, "dtype": "float32", "cases": rows,
            "precision": precision, "size_sweep": sweep}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "shift.json")
    args = parser.parse_args(argv)

    result = {"benchmark": "shift", "machine": machine_info(), **run(args.size, args.repeat)}
    print(f"{args.size}x{args.size} float32, shift {SHIFT}, median of {args.repeat}")
    print(f"{'case':26s} {'ours ms':>9s} {'Mpix/s':>8s} {'scipy ms':>9s} {'Mpix/s':>8s} {'speed-up':>8s}")
    for row in result["cases"]:
        line = f"{row['case']:26s} {1e3 * row['ours']['median_s']:9.1f} {row['ours_mpix_s']:8.0f}"
        if "scipy" in row:
            line += (f" {1e3 * row['scipy']['median_s']:9.1f} {row['scipy_mpix_s']:8.0f}"
                     f" {row['speedup']:7.1f}x")
        print(line)
    print("max |ours - scipy float64| / max|image|:",
          ", ".join(f"{k}={v:.2e}" for k, v in result["precision"].items()))
    for s in result["size_sweep"]:
        print(f"size {s['size']:5d}: order1 {s['order1_mpix_s']:6.0f} Mpix/s "
              f"({s['order1_speedup']:.1f}x scipy), "
              f"order3 prefiltered {s['order3_prefiltered_mpix_s']:6.0f} Mpix/s")
    write_results_to(args.out, "shift", result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
