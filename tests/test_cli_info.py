"""The ``dcrcoadd`` command line skeleton: --help, --version, info, and its error contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dcrcoadd
from dcrcoadd.cli import main
from dcrcoadd.errors import InputError
from dcrcoadd.io import write_exposure


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"dcrcoadd {dcrcoadd.__version__}"


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dcrcoadd") and "info" in out and "--debug" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: dcrcoadd" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["frobnicate"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("compress", [False, True])
def test_info_summarizes_an_exposure(tmp_path, capsys, exposure, compress):
    path = write_exposure(exposure, tmp_path / "exp.fits", compress=compress)
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out
    assert str(path) in out
    assert "50x40 at origin (x0=1000, y0=2000)" in out
    assert ("tile-compressed" in out) is compress
    assert "2024031500123" in out and "30.5 s" in out  # visit id and exposure time
    assert "airmass:     1.1849" in out
    assert "band:        g (effective 477.0 nm, width 150.0 nm, with throughput curve)" in out
    assert "RA---TAN" in out and "0.2000 arcsec/px" in out
    assert "SAT=1" in out and "BIT31=31" in out
    assert "9x9 kernel, FWHM 0.62 arcsec (3.10 px)" in out
    assert "57.544 nJy" in out


def test_info_shows_parallactic_angle_and_dcr_shifts(tmp_path, capsys, exposure):
    from dcrcoadd.physics.dcr import dcr_shifts

    path = write_exposure(exposure, tmp_path / "exp.fits")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    visit = exposure.visit.completed()
    assert f"parallactic angle {visit.parallactic_angle.deg:.4f} deg" in out
    shifts = dcr_shifts(visit, exposure.wcs, exposure.bandpass, 3)
    line = next(line for line in out.splitlines() if line.startswith("DCR (dy,dx):"))
    for dy, dx in shifts:
        assert f"({dy:+.3f}, {dx:+.3f})" in line
    assert "site:" in out and "weather:" in out


def test_info_without_optional_parts(tmp_path, capsys, make_exposure):
    path = write_exposure(make_exposure(wcs=None, psf=False, visit=None, bandpass=None), tmp_path / "e.fits")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "wcs:         none" in out and "psf:         none" in out
    assert "visit:       none" in out and "band:        unknown" in out


def test_info_several_files(tmp_path, capsys, make_exposure):
    paths = [write_exposure(make_exposure(seed=i), tmp_path / f"e{i}.fits") for i in range(2)]
    assert main(["info", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    assert all(str(p) in out for p in paths)


def test_info_of_a_directory_lists_its_files_and_goes_on_past_a_bad_one(tmp_path, capsys, make_exposure):
    # a directory was "not a FITS file"; a bad file ended the listing of the rest
    paths = [write_exposure(make_exposure(seed=i), tmp_path / f"e{i}.fits") for i in range(2)]
    (tmp_path / "bad.fits").write_bytes(b"not FITS\n" * 10)
    assert main(["info", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert [line for line in captured.out.splitlines() if line.startswith("file:")] == [
        f"file:        {p}" for p in paths]
    assert captured.err.splitlines() == [line for line in captured.err.splitlines()
                                         if line.startswith(f"error: {tmp_path / 'bad.fits'}: ")]
    assert len(captured.err.splitlines()) == 1


def _truncated(tmp_path: Path, exposure) -> Path:
    path = write_exposure(exposure, tmp_path / "broken.fits")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])
    return path


def _bad_files(tmp_path: Path, exposure) -> dict[str, Path]:
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"definitely not FITS\n" * 100)
    (empty := tmp_path / "empty").mkdir()
    return {
        "truncated": _truncated(tmp_path, exposure),
        "junk": junk,
        "missing": tmp_path / "missing.fits",
        "empty directory": empty,
    }


@pytest.mark.parametrize("kind", ["truncated", "junk", "missing", "empty directory"])
def test_info_on_a_bad_file_prints_one_error_line(tmp_path, capsys, exposure, kind):
    path = _bad_files(tmp_path, exposure)[kind]
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {path}: ")
    assert len(lines[0]) > len(f"error: {path}: ") + 5  # there is a reason
    assert "Traceback" not in captured.err


def test_debug_shows_the_traceback(tmp_path, exposure, capsys):
    """With --debug the error propagates, so Python prints its full traceback."""
    path = _truncated(tmp_path, exposure)
    with pytest.raises(InputError, match="truncated") as err:
        main(["--debug", "info", str(path)])
    assert err.traceback[-1].path.name == "fits.py"  # raised where the problem was found
    assert capsys.readouterr().err == ""  # and not also summarized as "error: ..."


def _console_script() -> str:
    """The installed ``dcrcoadd`` script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "dcrcoadd"
    found = str(script) if script.exists() else shutil.which("dcrcoadd")
    if found is None:
        pytest.skip("dcrcoadd console script is not installed")
    return found


def test_console_script_error(tmp_path, exposure):
    script = _console_script()
    path = _truncated(tmp_path, exposure)
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # any stray warning would show up on stderr
    run = subprocess.run([script, "info", str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [run.stderr.strip()]
    assert run.stderr.startswith(f"error: {path}: ") and "truncated" in run.stderr


# -- help texts, presets, start-up -----------------------------------------------------------------

def _subcommands():
    import argparse

    from dcrcoadd.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


def test_every_option_of_every_command_has_help_text():
    import argparse

    parser, commands = _subcommands()
    assert {"info", "simulate", "assemble", "template", "warp", "demo", "config"} <= set(commands)
    for name, p in [("dcrcoadd", parser), *commands.items()]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            label = "/".join(action.option_strings) or action.dest
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {label} has no help"


def test_info_presets_lists_bands_sites_and_instruments(capsys):
    from dcrcoadd.core.bandpass import preset_names
    from dcrcoadd.core.instrument import INSTRUMENTS
    from dcrcoadd.core.observatory import SITES

    assert main(["info", "--presets"]) == 0
    out = capsys.readouterr().out
    for name in (*preset_names(), *SITES, *INSTRUMENTS):
        assert name in out, name
    assert "OUT-TMP in K" in out and "TELRA" in out  # which cards the instrument presets map


def test_info_without_files_or_presets_is_an_error(capsys):
    assert main(["info"]) == 2
    assert "--presets" in capsys.readouterr().err


HEAVY = ("matplotlib", "dask", "distributed", "galsim", "reproject")


def _imported_heavy(argv: list[str], tmp_path: Path) -> list[str]:
    """The heavy optional packages a fresh process imports to run ``dcrcoadd ARGV``."""
    code = ("import sys\nfrom dcrcoadd.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(Path(dcrcoadd.__file__).parents[1]), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])


def test_version_info_and_template_import_no_heavy_optional_package(tmp_path, exposure):
    from conftest import write_warps
    from dcrcoadd.pipeline import run_patch

    path = write_exposure(exposure, tmp_path / "exp.fits")
    warps = write_warps(tmp_path / "w", 4)
    run = run_patch(warps, None, tmp_path / "run")
    assert _imported_heavy(["--version"], tmp_path) == []
    assert _imported_heavy(["info", str(path)], tmp_path) == []
    assert _imported_heavy(["template", str(run.outputs["model"]), str(warps[0]), "--out",
                            str(tmp_path / "t"), "--diff"], tmp_path) == []
    assert (tmp_path / "t" / "warp_0_template.fits").exists()


def test_info_into_a_reader_that_stops_early_is_not_an_error(tmp_path):
    # `dcrcoadd info *.fits | head -1` ended with "error: Broken pipe" (and status 2)
    from conftest import write_warps

    paths = write_warps(tmp_path, 40, shape=(8, 8))
    proc = subprocess.Popen([sys.executable, "-m", "dcrcoadd", "info", *map(str, paths)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # (as head does after its line)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 141) and b"error" not in err and b"Traceback" not in err, err


def test_info_of_a_model_describes_its_solver_subfilters_and_inputs(tmp_path, capsys):
    # (it described the DCR coadd alone, as if the file were any exposure)
    from test_template import make_model

    model = make_model()
    model.solver, model.solver_settings = "exact", {"colour_strength": 0.15}
    model.input_conditions = np.array([[1.1, -30.0], [1.6, 45.0], [1.3, 10.0]])
    path = model.write(tmp_path / "model.fits")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    edges = model.subfilter_edges
    assert "model:       solver exact; forward model shifts (interpolation order 1)" in out
    assert (f"subfilters:  3: {edges[0, 0]:.1f}-{edges[0, 1]:.1f}, {edges[1, 0]:.1f}-{edges[1, 1]:.1f}, "
            f"{edges[2, 0]:.1f}-{edges[2, 1]:.1f} nm") in out
    assert "settings:    colour_strength = 0.15" in out
    assert "fitted to:   3 warps, airmass 1.10-1.60, parallactic angle -30.0 to +45.0 deg\n" in out
    # and the PSFs it was fitted through, when it records them (a template sharper than all is warned about)
    model.input_psf_fwhm = [3.5, 4.25, 3.1]
    assert main(["info", str(model.write(tmp_path / "model2.fits"))]) == 0
    assert "parallactic angle -30.0 to +45.0 deg, PSF FWHM 3.10-4.25 px" in capsys.readouterr().out
