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

    # run again with other settings: its own earlier outputs are replaced, the user's files are not
    # (they used to be deleted: any visit_*_template.fits, and the simulation's folders' visit_*.fits)
    out = tmp_path / "d"
    before = {p.name for p in out.glob("visit_*_template.fits")}
    (out / "visit_5_template.fits").write_bytes(b"the user's template")
    (out / "sim" / "warps" / "visit_1.fits").write_bytes(b"the user's exposure")
    assert main(["demo", "--out", str(out), "--size", "64", "--n-visits", "4", "--seed", "3", "-q"]) == 0
    err = capsys.readouterr().err
    after = {p.name for p in out.glob("visit_*_template.fits")}
    # (the earlier demo's held-out visits are not this one's: their templates go, the user's stays)
    assert len(after) == 3 and "visit_5_template.fits" in after and not before & after
    assert (out / "sim" / "warps" / "visit_1.fits").read_bytes() == b"the user's exposure"
    assert len(list((out / "sim" / "warps").glob("visit_*.fits"))) == 4 + 2 + 1
    assert "did not write were left as they are (1: " in err and "warps/visit_1.fits" in err


def test_demo_refuses_a_directory_holding_another_run(tmp_path, capsys):
    # an `assemble` run there would be replaced (the demo starts over with its own settings)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text("[coadd]\n")
    meta = {"command": "dcrcoadd assemble warps --out run", "input_paths": [str(tmp_path / "w.fits")]}
    (out / "metadata.json").write_text(json.dumps(meta))
    (out / "model.fits").write_bytes(b"the user's model")
    assert main(["demo", "--out", str(out), "--size", "64", "--n-visits", "4", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an earlier demo's" in err and "another --out" in err
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "metadata.json", "model.fits"]
    assert (out / "model.fits").read_bytes() == b"the user's model"
