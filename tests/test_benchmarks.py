"""The benchmark suite runs, writes well-formed results and regenerates the README section.

The numbers themselves are not checked here (they are the suite's output); the
structure is: every file is strict JSON (no NaN), records the machine, versions
and command, and holds the keys the README generator and readers rely on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch):
    """The ``benchmarks`` package, importable from the repository root."""
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.common
    import benchmarks.run

    return benchmarks


def _strict_json(path: Path) -> dict:
    def reject(token):
        raise ValueError(f"{path.name}: non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=reject)


def test_replace_between_markers_touches_only_the_section(bench):
    run = bench.run
    head, tail = "# Title\n\nintro\n\n## Validation\n\n", "\n\n## After\ntail\n"
    text = f"{head}{run.START_MARKER}\nold\nlines\n{run.END_MARKER}{tail}"
    new = run.replace_between_markers(text, "new body\n")
    assert new == f"{head}{run.START_MARKER}\nnew body\n{run.END_MARKER}{tail}"
    # idempotent: regenerating with the same body changes nothing
    assert run.replace_between_markers(new, "new body") == new


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all",
        "<!-- validation:start -->\nonly the start",
        "<!-- validation:end -->\n<!-- validation:start -->",
        "<!-- validation:start -->\n<!-- validation:start -->\n<!-- validation:end -->",
    ],
)
def test_replace_between_markers_rejects_bad_markers(bench, text):
    with pytest.raises(ValueError, match="validation"):
        bench.run.replace_between_markers(text, "x")


def test_write_results_is_strict_json_with_machine_and_command(bench, tmp_path):
    path = bench.common.write_results(
        "probe",
        {"value": float("nan"), "arr": np.arange(3), "x": np.float32(1.5)},
        tmp_path,
        argv=["-m", "benchmarks", "--probe"],
    )
    data = _strict_json(path)
    assert data["value"] is None  # NaN is written as null, which every JSON reader accepts
    assert data["arr"] == [0, 1, 2] and data["x"] == 1.5
    assert data["benchmark"] == "probe"
    assert data["command"].endswith("-m benchmarks --probe")
    for key in ("cpu_model", "cpu_count", "versions", "platform", "python", "date"):
        assert key in data["machine"]
    assert data["machine"]["versions"]["numpy"] == np.__version__


def test_readme_header_records_the_command_as_typed(bench):
    typed = bench.run.typed_command
    assert typed("/home/me/my venv/bin/python3.11 -m benchmarks --full") == "python -m benchmarks --full"
    assert typed("python -m benchmarks") == "python -m benchmarks"
    assert typed("/x/bin/python -m benchmarks --quick --out-dir /tmp/r --only validation") == (
        "python -m benchmarks --quick --only validation"
    )
    assert typed("python -m benchmarks --out-dir=/tmp/r") == "python -m benchmarks"


def test_scaling_exponent_recovers_a_power_law(bench):
    c = bench.common
    assert c.scaling_exponent([1, 2, 4, 8], [3 * n**1.5 for n in (1, 2, 4, 8)]) == pytest.approx(1.5)
    assert c.scaling_exponent([5, 5], [1, 2]) is None  # one distinct x: no exponent


@pytest.fixture
def validation(bench):
    import benchmarks.validation

    return benchmarks.validation


def test_one_sided_scenario_keeps_its_model_visits_east_of_the_meridian(validation):
    setup = validation.QUICK
    conditions, (two, one) = validation.scenario_conditions(setup)
    model_q = [conditions[i][1] for i in one.model]
    assert len(model_q) == setup.one_sided_n_model_visits and all(q < 0 for q in model_q)
    lo, hi = setup.one_sided_model_airmass
    assert all(lo - 1e-9 <= conditions[i][0] <= hi + 1e-9 for i in one.model)
    for (label, i), (airmass, side) in zip(one.science, setup.one_sided_science, strict=True):
        assert conditions[i][0] == pytest.approx(airmass) and label.endswith(side)
        assert (conditions[i][1] > 0) == (side == "W")
    # the two scenarios share no visit
    assert not set(one.model + [i for _, i in one.science]) & set(two.model + [i for _, i in two.science])
    # east and west of the meridian at the same airmass: mirrored parallactic angles
    east, west = validation.track_condition(1.5, "E", -20.0), validation.track_condition(1.5, "W", -20.0)
    assert east[1] == pytest.approx(-west[1])
    with pytest.raises(ValueError, match="not reached"):
        validation.track_condition(1.01, "E", 40.0)  # never that high in the sky from Rubin


def _scenario(rows, slope, rank, flux):
    fit = {"n": 50, "slope": slope, "intercept": 0.0, "scatter": 0.02, "rank": rank}
    return {
        "rows": [{"label": f"{a:.2f}", "airmass": a, "n_exact": n, "n_noise_twin": floor}
                 for a, n, floor in rows],
        "runs": {
            "exact": {"spectra": {"fit": fit, "fit_aperture": fit}, "total_flux_ratio_to_baseline": flux}
        },
    }


def test_targets_follow_issue_12(validation):
    good = _scenario([(1.1, 0, 0), (1.92, 6, 1), (2.0, 40, 0)], 1.05, 0.97, 1.002)
    bad = _scenario([(1.3, 7, 1)], 1.2, 0.97, 0.996)
    targets = validation.evaluate_targets({"two_sided": good, "one_sided": bad})
    verdicts = {(t["scenario"], t["target"].split()[1]): t["pass"] for t in targets}
    # airmass 2.0 is beyond "up to airmass 1.9"; 1.92 (the one-sided scenario's last visit) is in,
    # and 6 there is noise floor 1 + 5
    assert verdicts[("two_sided", "≤")] and verdicts[("two_sided", "colour")]
    assert verdicts[("two_sided", "DCR")]
    assert not verdicts[("one_sided", "≤")]  # 7 against a floor of 1
    assert not verdicts[("one_sided", "colour")]  # slope 1.2
    assert not verdicts[("one_sided", "DCR")]  # 0.4 % of flux lost
    low_rank = validation.evaluate_targets({"two_sided": _scenario([(1.1, 0, 0)], 1.0, 0.9, 1.0)})
    assert [t["pass"] for t in low_rank] == [True, False, False, True]


@pytest.mark.slow
def test_quick_suite_writes_well_formed_results(tmp_path):
    out = tmp_path / "results"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    files = {
        name: _strict_json(out / f"{name}.json")
        for name in ("validation", "speed", "dcr_assemble", "startup", "summary")
    }
    for name, data in files.items():
        assert data["benchmark"] == name
        assert "--quick" in data["command"]
        assert data["machine"]["cpu_count"] >= 1 and data["machine"]["cpu_model"]
        assert {"numpy", "scipy", "astropy", "dcrcoadd"} <= set(data["machine"]["versions"])

    v = files["validation"]
    assert v["mode"] == "quick"
    two, one = v["scenarios"]["two_sided"], v["scenarios"]["one_sided"]
    assert [r["elevation"] for r in two["rows"]] == list(v["setup"]["science_elevations"])
    assert len(one["rows"]) == len(v["setup"]["one_sided_science"])
    solvers = ("iterative", "exact")
    runs = [f"{s}{suffix}" for s in solvers for suffix in ("", "_low_noise")]
    for sc, extra in ((two, ("single_5deg", "single_10deg")), (one, ())):
        for row in sc["rows"]:
            for kind in ("baseline", *runs, "noise_twin", *extra):
                assert isinstance(row[f"n_{kind}"], int) and row[f"n_{kind}"] >= 0
                assert f"chi2_{kind}" in row
        for name in runs:
            assert sc["runs"][name]["solver"] == name.removesuffix("_low_noise")
            assert sc["runs"][name]["iterations"] and sc["runs"][name]["stop_reasons"]
            assert sc["runs"][name]["total_flux_ratio_to_baseline"] > 0
        for name in runs:
            spec = sc["runs"][name]["spectra"]
            for fit in ("fit", "fit_aperture"):
                assert {"slope", "intercept", "scatter", "rank", "n"} <= set(spec[fit])
        for image in ("iterative_coadd", "exact_coadd", "baseline_coadd", "truth_noise_free"):
            assert {"aperture_ratio_to_truth_median", "offset_robust_sigma_px", "dx_per_mag_color"} <= set(
                sc["flux_astrometry"][image]
            )
    assert {"n_iterative", "n_exact", "n_noise_twin"} <= set(two["zenith"])
    assert len(v["thresholds"]) == len(v["setup"]["thresholds"])
    # issue 12's targets: false detections, colours (two measures) and flux, per scenario
    assert len(v["targets"]) == 2 * 4
    assert all(isinstance(t["pass"], bool) and t["value"] for t in v["targets"])

    s = files["speed"]
    assert len(s["cases"]) == len(s["rows"]) >= 2
    for case in s["cases"]:
        for step in ("baseline", "dcr"):
            assert {"seconds", "cpu_seconds", "peak_rss_mib", "peak_rss_growth_mib"} <= set(case[step])
        assert {"seconds", "cpu_seconds", "traced_peak_mib"} <= set(case["template"])
        assert case["dcr"]["iterations_max"] >= 1
        assert case["ratio_dcr_to_baseline"] > 0
    assert {"with_pixels", "with_warps"} <= set(s["scaling"])
    assert "dcr_cpu_s" in s["scaling"]["with_warps"]
    assert {"dcrcoadd_mpix_s", "scipy_mpix_s", "speedup"} <= set(s["shift"]["summary"]["order1"])
    # issue 14: every stage against the numpy coadd of the same files, the profile, --workers 2
    for row in s["rows"]:
        assert row["numpy_cpu_s"] > 0
        assert row["end_to_end_vs_numpy"] > row["baseline_vs_numpy"] > 0
        assert row["dcr_vs_numpy"] > 0 and row["outputs_vs_numpy"] > 0
    assert set(s["profile"]["stages"]) == {"baseline_coadd", "dcr_model", "outputs"}
    assert all(st["top_own"] for st in s["profile"]["stages"].values())
    w = s["workers"]
    assert w["identical_outputs"] and w["machine_parallel_capacity"] > 0
    assert set(w["speedup"]) == {"total", "baseline_coadd", "dcr_model", "write_outputs"}

    d = files["dcr_assemble"]
    assert d["rows"] and "ratio_dcr_to_baseline" in d["rows"][0] and "dmtn037_comparison" in d
    assert set(files["summary"]["files"]) == {
        "validation", "speed", "dcr_assemble", "startup", "bad_inputs", "seeing"}
    for case in files["startup"]["cases"].values():
        assert case["wall_s_min"] > 0 and case["heavy_imported"] == []
    b = _strict_json(out / "bad_inputs.json")
    assert b["rows"] and b["n_ok"] == b["n_cases"] == len(b["rows"])

    # the README section is regenerated from these results, and nothing else in the file changes
    readme = tmp_path / "README.md"
    before, after = "# Project\n\ntext\n\n## Validation\n\n", "\n\n## Licence\n\nBSD\n"
    readme.write_text(f"{before}<!-- validation:start -->\nplaceholder\n<!-- validation:end -->{after}")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--update-readme",
            "--out-dir",
            str(out),
            "--readme",
            str(readme),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = readme.read_text()
    assert text.startswith(before + "<!-- validation:start -->\n") and text.endswith(
        "<!-- validation:end -->" + after
    )
    assert "placeholder" not in text
    assert "False detections" in text and "Speed and memory" in text and "Bad inputs" in text
    assert "One-sided coverage" in text and "Issue 12's targets" in text
    assert "Variable seeing" in text and "issue 13 target" in text
    assert "residual RMS" not in text  # the zenith line quotes the one statistic, χ² per source pixel
    # the command as a user types it, never this interpreter's path
    assert "from the results of `python -m benchmarks --quick`" in text and sys.executable not in text
    assert str(out) not in text
    assert "Start-up" in text
    assert "numpy coadd" in text and "--workers 2" in text and "Profile of" in text


def test_the_colour_bound_needs_dcr_diversity():
    # the Fisher matrix of a point source's subfilter fluxes: without DCR the subfilters sit on one
    # another and cannot be split (singular); with it they can, and twice the warps give colours
    # sqrt(2) tighter
    from benchmarks.colour_bound import colour_fisher, colour_sigma

    from dcrcoadd.dcr import fourier

    grid = (32, 32)
    k2 = np.fft.fftfreq(32)[:, None] ** 2 + np.fft.rfftfreq(32)[None] ** 2
    gauss = np.exp(-2 * np.pi**2 * 1.5**2 * k2)  # (a Gaussian PSF of sigma 1.5 px)

    def transfers(dcr):
        shifts = np.stack([np.array([[0.0, -d], [0.0, 0.0], [0.0, d]]) for d in dcr])
        return fourier.transfer(shifts, None, grid, psf_ratio=gauss, dtype=np.complex128)

    none = colour_fisher(transfers([0.0, 0.0, 0.0]), np.ones(3), grid)
    assert np.linalg.cond(none) > 1e10
    spread = colour_fisher(transfers([0.0, 0.5, 1.0]), np.ones(3), grid)
    doubled = colour_fisher(transfers([0.0, 0.5, 1.0, 0.0, 0.5, 1.0]), np.ones(6), grid)
    one = colour_sigma(np.linalg.inv(spread), np.array([100.0]), np.array([100.0]))
    two = colour_sigma(np.linalg.inv(doubled), np.array([100.0]), np.array([100.0]))
    assert np.isfinite(one) and two == pytest.approx(one / np.sqrt(2), rel=1e-6)


def test_the_colour_bound_with_the_position_fitted():
    # a star's position is not known to the solver: fitted with the fluxes, it absorbs the part of
    # the DCR every warp shares. Where the warps' DCR is symmetric about 0 (both sides of the
    # meridian) the two are independent and the colour's bound is unchanged; where every warp has
    # the same DCR, the colour can hardly be told from a shift of the star
    from benchmarks.colour_bound import colour_fisher, colour_sigma

    from dcrcoadd.dcr import fourier

    grid = (32, 32)
    k2 = np.fft.fftfreq(32)[:, None] ** 2 + np.fft.rfftfreq(32)[None] ** 2
    gauss = np.exp(-2 * np.pi**2 * 1.5**2 * k2)
    fluxes = np.array([120.0, 100.0, 80.0])

    def sigmas(dcr):
        shifts = np.stack([np.array([[0.0, -d], [0.0, 0.0], [0.0, d]]) for d in dcr])
        b = fourier.transfer(shifts, None, grid, psf_ratio=gauss, dtype=np.complex128)
        known = colour_fisher(b, np.ones(len(dcr)), grid)
        fitted = colour_fisher(b, np.ones(len(dcr)), grid, fluxes)
        assert fitted.shape == (5, 5) and np.allclose(fitted[:3, :3], known)
        return [float(colour_sigma(np.linalg.inv(f)[:3, :3], fluxes[:1], fluxes[2:])[0])
                for f in (known, fitted)]

    known, fitted = sigmas([-0.9, 0.0, 0.9])
    assert fitted == pytest.approx(known, rel=1e-3)
    known, fitted = sigmas([0.6, 0.6, 0.6])
    assert fitted > 10 * known


def test_startup_counts_the_packages_own_top_level_imports():
    # `python -X importtime -m dcrcoadd info F`: the lazy package, then the command line it loads on
    # first use, each a top-level import; numpy (imported by the command line) is inside the latter
    from benchmarks.startup import package_import_seconds, parse_importtime

    text = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:       500 |        500 | dcrcoadd",
        "import time:    300000 |     300000 |   numpy",
        "import time:     20000 |     400000 | dcrcoadd.cli",
        "import time:       100 |        100 | dcrcoadd._entry",
        "import time:      1000 |       1000 | dcrcoadderror",
    ])
    rows = parse_importtime(text)
    assert package_import_seconds(rows) == pytest.approx(0.4006)
    assert package_import_seconds(rows, "galsim") is None
