"""`dcrcoadd demo`: the README's main job, on a smaller field."""

import json

import pytest

pytest.importorskip("galsim")

from dcrcoadd.cli import main  # noqa: E402


def test_demo_writes_outputs_and_the_dcr_template_wins_at_high_airmass(tmp_path, capsys):
    from dcrcoadd.io import read_exposure
    from dcrcoadd.report.scores import score_exposure

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "96", "--n-visits", "8"]) == 0
    captured = capsys.readouterr()
    table = captured.out
    assert "chi2/src" in table and "N5sig" in table
    rows = [line.split() for line in table.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 2
    high = max(rows, key=lambda r: float(r[1]))  # visit, airmass, chi2 dcr, chi2 coadd, n dcr, n coadd
    assert float(high[2]) < float(high[3]) and int(high[4]) < int(high[5])
    # what `assemble` writes, plus the held-out visits' templates and the simulation
    assemble_outputs = {"coadd.fits", "dcr_coadd.fits", "model.fits", "subfilter_0.fits", "subfilter_1.fits",
                        "subfilter_2.fits", "report.png", "config.toml", "metadata.json"}
    templates = {f"visit_{row[0]}_template.fits" for row in rows}
    assert {p.name for p in out.iterdir()} == assemble_outputs | templates | {"sim"}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["dcr"] is True and len(meta["inputs"]) == 8 and meta["command"]
    assert len(list((out / "sim" / "warps").glob("*.fits"))) == 10

    # the table is the one statistic (dcrcoadd.report.scores), recomputed here from the files
    science = read_exposure(out / "sim" / "warps" / f"visit_{high[0]}.fits")
    coadd = read_exposure(out / "coadd.fits")
    sources = coadd.mask_of("DETECTED")
    dcr = score_exposure(science, read_exposure(out / f"visit_{high[0]}_template.fits"), None, sources)
    base = score_exposure(science, coadd, None, sources)
    assert float(high[2]) == pytest.approx(dcr.chi2, abs=0.006) and int(high[4]) == dcr.n_detections
    assert float(high[3]) == pytest.approx(base.chi2, abs=0.006) and int(high[5]) == base.n_detections

    # never silent: a line as each stage starts (stderr), in order
    stages = ["simulating 10 visits", "baseline coadd", "DCR model: solving", "writing the outputs",
              "templates and scores"]
    err = captured.err
    positions = [err.find(s) for s in stages]
    assert -1 not in positions and positions == sorted(positions), err
    assert "WARNING" not in err  # a discarded last step is information, not an alarm


def test_demo_quiet_prints_only_the_table(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--size", "64", "--n-visits", "6", "-q"]) == 0
    captured = capsys.readouterr()
    assert "chi2/src" in captured.out
    assert "simulating" not in captured.err and "baseline coadd" not in captured.err
