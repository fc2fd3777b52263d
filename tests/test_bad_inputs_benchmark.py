"""The validation suite's "bad inputs" table (issue 16): every kind of bad input, tried through the
command line, behaves as promised (refused with one line and nothing left behind, or warned, or
recovered), and the table the README shows is generated from the results."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import bad_inputs
    finally:
        sys.path.remove(str(ROOT))
    return bad_inputs, bad_inputs.run(log=lambda *_: None)


def test_every_bad_input_behaves_as_promised(results):
    _, res = results
    failures = [(r["case"], r["exit_status"], r["message"], r["left_behind"])
                for r in res["rows"] if not r["ok"]]
    assert not failures
    assert res["n_ok"] == res["n_cases"] == len(res["rows"]) >= 25
    for r in res["rows"]:
        assert r["exit_status"] in (0, 2)  # never a crash
        if r["expected"] == "refused":
            assert r["message"].startswith("error: ") and r["left_behind"] == []
    by_case = {r["case"]: r for r in res["rows"]}
    assert "kelvin" in by_case["AIRTEMP = 271 (kelvin written as °C)"]["message"]
    assert "mbar" in by_case["AIRPRESS = 731.66 (mbar written as Pa)"]["message"]
    assert "warp_4.fits" in by_case["FLUXCAL missing on one of six calibrated warps"]["message"]
    assert "out/coadd.fits" in by_case["disk full while writing the outputs"]["message"]


def test_the_readme_table_is_generated_from_the_results(results):
    bad_inputs, res = results
    lines = bad_inputs.markdown(res)
    assert lines[0] == "### Bad inputs (issue 16)"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| bad input")]
    assert len(rows) == res["n_cases"]
    assert all("not as promised" not in row for row in rows)
