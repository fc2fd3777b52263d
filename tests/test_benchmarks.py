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


def test_scaling_exponent_recovers_a_power_law(bench):
    c = bench.common
    assert c.scaling_exponent([1, 2, 4, 8], [3 * n**1.5 for n in (1, 2, 4, 8)]) == pytest.approx(1.5)
    assert c.scaling_exponent([5, 5], [1, 2]) is None  # one distinct x: no exponent


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
    assert [r["elevation"] for r in v["dipoles"]] == list(v["setup"]["science_elevations"])
    for row in v["dipoles"]:
        for kind in ("dcr", "baseline", "single_5deg", "single_10deg", "noise_twin"):
            assert isinstance(row[f"n_{kind}"], int) and row[f"n_{kind}"] >= 0
            assert f"chi2_{kind}" in row
    labels = [s["label"] for s in v["spectra"]]
    assert labels[0] == "default" and len(labels) == 1 + len(v["setup"]["thresholds"])
    for s in v["spectra"]:
        assert {"slope", "intercept", "scatter", "n"} <= set(s["spectra"]["fit"])
        assert s["iterations"] and s["stop_reasons"]
    for image in ("dcr_coadd", "baseline_coadd", "truth_noise_free"):
        assert {"aperture_ratio_to_truth_median", "offset_robust_sigma_px", "dx_per_mag_color"} <= set(
            v["flux_astrometry"][image]
        )

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
    # the command as a user types it, never this interpreter's path
    assert "from the results of `python -m benchmarks --quick" in text and sys.executable not in text
    assert "Start-up" in text
