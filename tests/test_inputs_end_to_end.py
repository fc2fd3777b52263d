"""`assemble` then `template` through the command line on files laid out as their producers write them
(issue 15): LSST afw calexps, DECam Community-Pipeline cutouts (recognised from their headers, or
named with ``--instrument decam`` when nothing in them says DECam) and HSC calexps.

Each set is six visits of one field on one pixel grid, taken hours apart (so that the airmass and
the parallactic angle differ), and a fifth visit as the science exposure; the images are tiny so that
the whole run takes a few seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import TimeDelta

from dcrcoadd.cli import main
from dcrcoadd.io import read_exposure, read_info
from test_inputs_layouts import (
    AFW_TIME,
    DECAM_TIME,
    HSC_START,
    SHAPE,
    pointing,
    write_afw,
    write_decam_cutout,
    write_hsc,
)

HOURS = (0.0, 0.9, 1.8, 2.9, 3.8, 4.6)  # the model's visits: two per subfilter
SCIENCE_HOURS = 2.4
OUTPUTS = ("coadd.fits", "dcr_coadd.fits", "model.fits", "subfilter_0.fits", "subfilter_2.fits",
           "config.toml", "metadata.json")


def _later(time, hours):
    return time + TimeDelta(hours * 3600.0, format="sec")


def afw_visits(directory):
    field = pointing("rubin", AFW_TIME, 100.0, 45.0)

    def write(i, hours, name):
        return write_afw(directory / name, visit_id=2025112000100 + i, time=_later(AFW_TIME, hours),
                         radec=field, seed=20 + i)
    return write, []


def decam_visits(directory):
    field = pointing("ctio", DECAM_TIME, 65.0, 40.0)

    def write(i, hours, name):
        return write_decam_cutout(directory / name, expnum=812345 + i, time=_later(DECAM_TIME, hours),
                                  radec=field, seed=30 + i)
    return write, []


def decam_unrecognisable_visits(directory):
    """DECam cutouts that lost INSTRUME and whose FILTER is a bare ``g``: only --instrument says DECam
    (and with it that OBS-LONG is west-positive, the site, the card units and the g curve)."""
    field = pointing("ctio", DECAM_TIME, 65.0, 40.0)

    def write(i, hours, name):
        path = write_decam_cutout(directory / name, expnum=812345 + i, time=_later(DECAM_TIME, hours),
                                  radec=field, seed=30 + i, filter_text="g")
        with fits.open(path) as hdul:
            hdus = [h.copy() for h in hdul]
        del hdus[0].header["INSTRUME"]
        fits.HDUList(hdus).writeto(path, overwrite=True)
        return path
    return write, ["--instrument", "decam"]


def hsc_visits(directory):
    field = pointing("subaru", HSC_START, 100.0, 45.0)

    def write(i, hours, name):
        return write_hsc(directory / name, exp_id=12346 + 2 * i, start=_later(HSC_START, hours), radec=field,
                         seed=40 + i)
    # hscPipe's PSF (PsfexPsf) needs the LSST stack to evaluate: without a PSF per warp, compare-warp
    # artifact rejection cannot run
    return write, ["--set", "artifacts.enabled=false"]


LAYOUTS = {"afw": afw_visits, "decam": decam_visits, "decam --instrument": decam_unrecognisable_visits,
           "hsc": hsc_visits}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_assemble_and_template_on_each_layout(tmp_path, capsys, layout):
    warps_dir, science_dir = tmp_path / "warps", tmp_path / "science"
    warps_dir.mkdir()
    science_dir.mkdir()
    write, options = LAYOUTS[layout](warps_dir)
    for i, hours in enumerate(HOURS):
        write(i, hours, f"visit_{i}.fits")
    science = write(len(HOURS), SCIENCE_HOURS, "../science/science.fits")

    out = tmp_path / "out"
    status = main(["assemble", str(warps_dir), "--out", str(out), "-q", *options])
    err = capsys.readouterr().err
    assert status == 0, err
    for name in OUTPUTS:
        assert (out / name).exists(), name
    meta = json.loads((out / "metadata.json").read_text())
    assert len(meta["inputs"]) == len(HOURS)

    read_args = [a for a in options if a != "--set" and not a.startswith("artifacts.")]
    templates = tmp_path / "templates"
    status = main(["template", str(out / "model.fits"), str(science), "--out", str(templates), "--diff", "-q",
                   *read_args])
    err = capsys.readouterr().err
    assert status == 0, err
    template = read_exposure(templates / "science_template.fits")
    science_info = read_info(science, instrument="decam" if read_args else None)
    assert template.bbox == science_info.bbox and template.image.shape == SHAPE
    assert template.visit.id == science_info.visit.id
    assert np.isfinite(template.image).all() and np.nanmax(template.image) > 0
    assert (templates / "science_diff.fits").exists()


def test_an_unrecognisable_decam_file_needs_the_instrument(tmp_path, capsys):
    """Without --instrument the same files are read as generic FITS: OBS-LONG taken as east puts the
    field below the horizon, and that is refused naming the file, with the fix."""
    write, _ = decam_unrecognisable_visits(tmp_path)
    paths = [write(i, hours, f"v{i}.fits") for i, hours in enumerate(HOURS)]
    status = main(["assemble", *map(str, paths), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    [line] = [x for x in err.splitlines() if x.startswith("error: ")]
    assert str(paths[0]) in line and "below the horizon" in line and "name the instrument" in line
    assert not (tmp_path / "out").exists()
    assert main(["info", str(paths[0]), "--instrument", "decam"]) == 0
    out = capsys.readouterr().out
    assert "read with the decam preset" in out and "band:        decam-g" in out
