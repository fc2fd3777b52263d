"""The variable-seeing experiment (`benchmarks/seeing.py`, issue 13) runs in its quick mode, gives
every visit the seeing it asks for, caches its simulations and reports every column and target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def seeing(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.seeing

    return benchmarks.seeing


def test_seeing_ranges_span_issue_13s_range(seeing):
    assert seeing.seeing_range(0.0) == pytest.approx((0.8, 0.8))
    assert seeing.seeing_range(1.0) == pytest.approx((0.6, 1.3))
    lo, hi = seeing.seeing_range(0.5)
    assert 0.6 < lo < 0.8 < hi < 1.3
    model, science = seeing.visit_seeings(seeing.DEFAULT, 1.0)
    # the model visits cover the whole range, the science visits lie inside it
    assert min(model) == pytest.approx(0.6) and max(model) == pytest.approx(1.3)
    assert all(0.6 <= s <= 1.3 for s in science)


def test_quick_run_scores_every_column_and_caches_the_simulations(seeing, tmp_path):
    setup = seeing.QUICK
    cache = tmp_path / "cache"
    res = seeing.run(setup, cache=cache, log_=lambda *a, **k: None)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"seeing_{setup.key(s)}.pkl" for s in setup.spreads)
    by_spread = {r["spread"]: r for r in res["results"]}
    assert set(by_spread) == set(setup.spreads)
    for spread, r in by_spread.items():
        assert [row["airmass"] for row in r["rows"]] == pytest.approx([s[0] for s in setup.science], abs=1e-3)
        _, science_seeing = seeing.visit_seeings(setup, spread)
        assert [row["seeing"] for row in r["rows"]] == pytest.approx(science_seeing)
        for row in r["rows"]:
            for kind in ("baseline", "iterative", "exact", "noise floor"):
                assert isinstance(row[kind], int) and row[kind] >= 0
        assert abs(r["summary"]["exact"]["flux_over_baseline"] - 1) < 0.01
    # each warp carries its own seeing: PSF widths follow the requested seeings
    wide = by_spread[max(setup.spreads)]["summary"]
    order = np.argsort(wide["model_seeing"])
    assert np.all(np.diff(np.asarray(wide["model_fwhm_px"])[order]) > 0)
    flat = by_spread[0.0]["summary"]
    assert np.ptp(flat["model_fwhm_px"]) < 1e-6
    # the plain coadd leaves DCR dipoles that the DCR templates remove at constant seeing
    rows0 = by_spread[0.0]["rows"]
    assert sum(r["exact"] for r in rows0) < sum(r["baseline"] for r in rows0)
    names = [t["target"] for t in res["targets"]]
    assert any(n.startswith("psf-aware <=") for n in names)
    assert any(n.startswith("exact DCR coadd flux") for n in names)
    # a rerun reads the simulations back
    again = seeing.run_spread(setup, 0.0, cache=cache, measured=None, only={"exact"})
    assert again["seconds"]["simulate"] == 0.0
    assert [r["exact"] for r in again["rows"]] == [r["exact"] for r in rows0]


def test_command_line_writes_strict_json(seeing, tmp_path, capsys):
    assert seeing.main(["--quick", "--spread", "1.0", "--only", "exact", "--measured", "none",
                        "--cache", str(tmp_path / "c"), "--out-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "targets (issue 13)" in printed and "spread 100%" in printed

    def reject(token):
        raise ValueError(token)

    data = json.loads((tmp_path / "seeing.json").read_text(), parse_constant=reject)
    assert data["mode"] == "quick"
    assert [r["spread"] for r in data["results"]] == [1.0]
