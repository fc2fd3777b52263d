"""`dcrcoadd demo`: the README's main job, on a smaller field."""

import json

import pytest

pytest.importorskip("galsim")

from dcrcoadd.cli import main  # noqa: E402


def test_demo_writes_outputs_and_the_dcr_template_wins_at_high_airmass(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "96", "--n-visits", "8"]) == 0
    table = capsys.readouterr().out
    rows = [line.split() for line in table.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 2
    high = max(rows, key=lambda r: float(r[1]))  # visit, airmass, rms dcr, rms coadd, n dcr, n coadd
    assert float(high[2]) < float(high[3]) and int(high[4]) < int(high[5])
    # what `assemble` writes, plus the held-out visits' templates and the simulation
    assemble_outputs = {"coadd.fits", "dcr_coadd.fits", "model.fits", "subfilter_0.fits", "subfilter_1.fits",
                        "subfilter_2.fits", "report.png", "config.toml", "metadata.json"}
    templates = {f"visit_{row[0]}_template.fits" for row in rows}
    assert {p.name for p in out.iterdir()} == assemble_outputs | templates | {"sim"}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["dcr"] is True and len(meta["inputs"]) == 8 and meta["command"]
    assert len(list((out / "sim" / "warps").glob("*.fits"))) == 10
