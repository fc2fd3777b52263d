"""`dcrcoadd assemble` on bad inputs: one line naming the file, exit status 2, no partial output."""

import re

import astropy.units as u
import pytest

from conftest import write_warps
from dcrcoadd.cli import main
from dcrcoadd.core.bandpass import Bandpass


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_error_line(err, *fragments):
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_good_set_assembles(tmp_path, capsys):
    paths = write_warps(tmp_path / "w")
    status, out, _ = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "out"), "-q")
    assert status == 0
    for name in ("coadd.fits", "dcr_coadd.fits", "model.fits", "subfilter_0.fits", "config.toml",
                 "metadata.json"):
        assert (tmp_path / "out" / name).exists()
    assert not (tmp_path / "out" / ".checkpoints").exists()


def test_truncated_warp(tmp_path, capsys):
    paths = write_warps(tmp_path / "w")
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2 + 100])
    status, _, err = run(capsys, "assemble", str(tmp_path / "w"), "--out", str(tmp_path / "out"))
    assert status == 2
    assert_one_error_line(err, str(paths[1]))
    assert not (tmp_path / "out").exists()


def test_warp_without_visit_metadata(tmp_path, capsys):
    paths = write_warps(tmp_path / "w", 3)
    write_warps(tmp_path / "nv", 1, visit=False)
    bad = tmp_path / "nv" / "warp_0.fits"
    status, _, err = run(capsys, "assemble", *map(str, paths), str(bad), "--out", str(tmp_path / "out"))
    assert status == 2
    assert_one_error_line(err, str(bad), "visit")
    assert not (tmp_path / "out").exists()


def test_warps_on_different_grids(tmp_path, capsys):
    paths = write_warps(tmp_path / "a", 3)
    other = write_warps(tmp_path / "b", 1, crpix=(25.3, 20.5))[0]
    status, _, err = run(capsys, "assemble", *map(str, paths), str(other), "--out", str(tmp_path / "out"))
    assert status == 2
    assert_one_error_line(err, str(other))


def test_warps_in_different_bands(tmp_path, capsys):
    paths = write_warps(tmp_path / "a", 3)
    r = Bandpass("r", 620 * u.nm, 140 * u.nm)
    other = write_warps(tmp_path / "b", 1, band=r)[0]
    status, _, err = run(capsys, "assemble", *map(str, paths), str(other), "--out", str(tmp_path / "out"))
    assert status == 2
    assert_one_error_line(err, str(other))


def test_all_nan_warps(tmp_path, capsys):
    paths = write_warps(tmp_path / "w", 2, nan=True)
    status, _, err = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "out"))
    assert status == 2
    assert_one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_single_warp_gives_the_baseline_coadd_or_refuses(tmp_path, capsys):
    path = write_warps(tmp_path / "w", 1)[0]
    status, out, err = run(capsys, "assemble", str(path), "--out", str(tmp_path / "out"), "-q")
    assert status == 0 and "underdetermined" in err
    assert (tmp_path / "out" / "coadd.fits").exists() and not (tmp_path / "out" / "model.fits").exists()
    status, _, err = run(capsys, "assemble", str(path), "--out", str(tmp_path / "out2"), "--dcr-only")
    assert status == 2
    assert_one_error_line(err, "underdetermined")


@pytest.mark.parametrize("airmasses, azimuths", [([1.3] * 3, [100.0] * 3),
                                                 # (nearly one DCR: not warned about when only identical
                                                 # conditions were)
                                                 ([1.49, 1.50, 1.51], [100.0, 100.5, 101.0])])
def test_degenerate_conditions_warn(tmp_path, capsys, airmasses, azimuths):
    paths = write_warps(tmp_path / "w", 3, airmasses=airmasses, azimuths=azimuths)
    status, _, err = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "out"), "-q")
    assert status == 0
    assert "all 3 warps share nearly one DCR" in err and "degenerate" in err


def test_warps_that_span_a_dcr_range_are_not_degenerate():
    from dcrcoadd.dcr.model import degenerate_conditions

    assert not degenerate_conditions([[1.3, 100.0], [1.4, 100.0], [1.5, 100.0]])
    assert not degenerate_conditions([[1.3, 100.0], [1.3, 110.0]])
    assert degenerate_conditions([[1.0001, 10.0], [1.0002, 170.0]])  # (at the zenith: no DCR at all)


@pytest.mark.parametrize("override", ["coadd.statistic=NOPE", "dcr.iterative.min_num_iter=50",
                                      "nosection.x=1"])
def test_invalid_set(tmp_path, capsys, override):
    paths = write_warps(tmp_path / "w", 2)
    status, _, err = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "out"),
                         "--set", override)
    assert status == 2
    assert_one_error_line(err, override.split("=")[0].split(".")[-1])
    assert not (tmp_path / "out").exists()


def test_instrument_preset_fills_band_and_site(tmp_path, capsys):
    paths = write_warps(tmp_path / "w", 3, band_name="g", site=False)  # FILTER only, no site
    status, _, err = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "a"), "-q")
    assert status == 2
    assert_one_error_line(err)
    status, _, err = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "b"), "-q",
                         "--instrument", "lsst")
    assert status == 0, err
    from dcrcoadd.dcr.model import DcrModel

    model = DcrModel.read(tmp_path / "b" / "model.fits")
    assert model.bandpass.name == "lsst-g" and model.bandpass.transmission is not None


def test_instrument_preset_never_overrides_the_file(tmp_path, capsys):
    paths = write_warps(tmp_path / "w", 3)  # files carry BANDLAM/BANDWID of their own g band
    assert run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "o"), "-q",
               "--instrument", "hsc")[0] == 0
    from dcrcoadd.dcr.model import DcrModel

    model = DcrModel.read(tmp_path / "o" / "model.fits")
    assert model.bandpass.name == "g" and model.bandpass.transmission is None
    assert model.flux_unit == "nJy"  # (the warps carry FLUXCAL)


def test_quiet_prints_no_wrote_lines(tmp_path, capsys):
    paths = write_warps(tmp_path / "w", 3)
    status, out, _ = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "q"), "-q")
    assert status == 0 and "wrote" not in out
    status, out, _ = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "v"))
    assert status == 0 and f"wrote {tmp_path / 'v' / 'model.fits'}" in out


def test_a_band_without_wavelengths_is_refused_before_the_coadd_saying_what_fixes_it(tmp_path, capsys):
    paths = write_warps(tmp_path / "w", 3, band_name="g")  # FILTER only
    status, out, err = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "out"))
    assert status == 2 and out == ""  # no inputs table: the baseline coadd never started
    assert_one_error_line(err, str(paths[0]), "BANDLAM", "--instrument")
    assert not (tmp_path / "out").exists()


def test_template_error_is_printed_once_and_leaves_no_directory(tmp_path, capsys):
    paths = write_warps(tmp_path / "w", 3)
    assert run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "a"), "-q")[0] == 0
    missing = tmp_path / "missing.fits"
    status, _, err = run(capsys, "template", str(tmp_path / "a" / "model.fits"), str(missing),
                         "--out", str(tmp_path / "t"))
    assert status == 2
    assert_one_error_line(err, str(missing))
    assert not (tmp_path / "t").exists()
    status, out, err = run(capsys, "template", str(tmp_path / "a" / "model.fits"), str(paths[0]),
                           str(missing), "--out", str(tmp_path / "t"), "-q")
    assert status == 2 and out == "" and (tmp_path / "t" / "warp_0_template.fits").exists()
    assert_one_error_line(err, str(missing))
    assert "1 of 2 science exposures failed" in err


def test_a_warning_about_a_science_card_is_printed_once(tmp_path, capsys):
    """The science file's header is read by the template's checks and again with its pixels."""
    from astropy.io import fits
    from astropy.time import Time

    paths = write_warps(tmp_path / "w", 3)
    assert run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "a"), "-q")[0] == 0
    with fits.open(paths[0], mode="update") as hdul:
        hdul[0].header["DATE-OBS"] = "2023-05-01T03:00:00"
        hdul[0].header["MJD-OBS"] = Time("2023-05-01T03:00:00", scale="utc").mjd + 0.25
    status, _, err = run(capsys, "template", str(tmp_path / "a" / "model.fits"), str(paths[0]),
                         "--out", str(tmp_path / "t"), "-q")
    assert status == 0
    assert err.count("DATE-OBS and MJD-OBS disagree by 6.0 h") == 1, err


def test_a_bad_box_is_one_line(tmp_path, capsys):
    from dcrcoadd.cli import main

    assert main(["assemble", str(tmp_path), "--out", str(tmp_path / "out"), "--box", "0,0,-5,10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--box" in err and "\n" not in err
    # a box starting left of the grid's origin is a value, not an unknown option (argparse's reading)
    assert main(["assemble", str(tmp_path), "--out", str(tmp_path / "out"), "--box", "-10,0,-5,10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--box" in err and "-10,0,-5,10" in err and "\n" not in err


def test_a_box_off_the_warps_is_one_error_before_any_warp_is_read(tmp_path, capsys):
    # it was a "skipping ...: does not overlap" warning per warp, then "no warp has usable pixels"
    paths = write_warps(tmp_path / "w", 4)
    status, _, err = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "out"),
                         "--box", "5000,5000,30,30", "-q")
    assert status == 2 and "WARNING" not in err and "skipping" not in err
    assert_one_error_line(err, "does not overlap the warps, which cover")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("value", "reason"), [
    ("0", "positive number of pixels"), ("-3", "positive"), ("nan", "positive"), ("inf", "positive"),
    ("0.8", "below one pixel.*arcseconds"), ("500", "above 100 px"), ("two", "number of pixels"),
])
def test_template_psf_fwhm_is_refused_in_one_line_naming_the_unit(tmp_path, capsys, value, reason):
    with pytest.raises(SystemExit) as stop:  # refused by argparse, before any file is opened
        main(["template", str(tmp_path / "model.fits"), str(tmp_path / "sci.fits"),
              "--out", str(tmp_path / "t"), f"--psf-fwhm={value}"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]  # (after argparse's usage lines)
    assert stop.value.code == 2 and len(errors) == 1
    assert re.search(f"argument --psf-fwhm: .*{reason}", errors[0])
    assert not (tmp_path / "t").exists()


def test_a_psf_too_sharp_for_the_reference_names_its_warp(tmp_path, capsys):
    # a PSF extension holding a delta (no sampled width): the reference PSF cannot be made from it;
    # the error names that warp and the setting that set the reference, not an unset option
    import numpy as np
    from astropy.io import fits

    paths = write_warps(tmp_path / "w", 4)
    with fits.open(paths[2], mode="update") as hdus:
        delta = np.zeros(hdus["PSF"].data.shape, np.float32)
        delta[delta.shape[0] // 2, delta.shape[1] // 2] = 1.0
        hdus["PSF"].data = delta
    status, _, err = run(capsys, "assemble", *map(str, paths), "--out", str(tmp_path / "out"), "-q")
    assert status == 2
    assert_one_error_line(err, "warp_2.fits", "cannot make a reference PSF", "dcr.psf_reference_scale",
                          "check its PSF extension")


def test_running_out_of_memory_is_one_error_line(tmp_path, capsys, monkeypatch):
    # e.g. `simulate --size 100000` or `warp` onto a grid far too fine: no traceback
    import dcrcoadd.cli as cli

    def huge(args):
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (100000, 100000)")

    monkeypatch.setattr(cli, "_cmd_info", huge)
    status, _, err = run(capsys, "info", str(tmp_path))
    assert status == 2
    assert_one_error_line(err, "info: not enough memory", "74.5 GiB", "--box")


@pytest.mark.parametrize("command", ["assemble", "survey", "warp"])
@pytest.mark.parametrize("address", ["nonsense", "tcp://localhost", "http://host:8786"])
def test_a_malformed_scheduler_address_is_a_usage_error(tmp_path, capsys, command, address):
    # (it was a Python traceback from inside Dask, after the plan or the warps had been read)
    with pytest.raises(SystemExit) as stop:
        main([command, str(tmp_path / "x.fits"), "--out", str(tmp_path / "o"), "--scheduler", address])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert stop.value.code == 2 and len(errors) == 1
    assert "argument --scheduler: not a Dask scheduler address" in errors[0]


@pytest.mark.parametrize("name", ["warp_0.fits", "plan.toml"])
def test_a_log_file_named_like_an_input_is_refused_before_it_is_touched(tmp_path, capsys, name):
    # (the log is appended: --log-file warps/warp_0.fits damaged the warp, then the run blamed it)
    paths = write_warps(tmp_path / "w", 3)
    target = paths[0] if name.endswith(".fits") else tmp_path / name
    if not target.exists():
        target.write_text("[[patch]]\n")
    before = target.read_bytes()
    assert main(["--log-file", str(target), "assemble", *map(str, paths), "--out", str(tmp_path / "o")]) == 2
    assert_one_error_line(capsys.readouterr().err, "--log-file", "give a .log or .txt file")
    assert target.read_bytes() == before and not (tmp_path / "o").exists()


def test_an_unwritable_log_file_and_a_config_that_is_not_text_are_one_line_errors(tmp_path, capsys):
    # (both were tracebacks: FileNotFoundError, IsADirectoryError, UnicodeDecodeError)
    for where in (tmp_path / "missing" / "x.log", tmp_path):
        assert main(["--log-file", str(where), "config", "show"]) == 2
        assert_one_error_line(capsys.readouterr().err, "--log-file", "cannot write it")
    binary = tmp_path / "image.fits"
    binary.write_bytes(b"SIMPLE  =                    T" + bytes(range(256)))
    assert main(["config", "show", "--config", str(binary)]) == 2
    assert_one_error_line(capsys.readouterr().err, str(binary), "not valid TOML (not UTF-8 text)")


def test_an_invalid_value_in_a_config_file_names_the_file(tmp_path, capsys):
    # (the error named the field alone: with a plan and several files, which one was to fix?)
    bad = tmp_path / "bad.toml"
    bad.write_text("[dcr]\ndcr_num_subfilters = 0\n")
    assert main(["config", "show", "--config", str(bad)]) == 2
    assert_one_error_line(capsys.readouterr().err, str(bad), "dcr.dcr_num_subfilters must be an integer >= 2")
    # fixed by --set: valid; made invalid by --set: the option, not the file, is named
    assert main(["config", "show", "--config", str(bad), "--set", "dcr.dcr_num_subfilters=3"]) == 0
    capsys.readouterr()
    good = tmp_path / "good.toml"
    good.write_text("[dcr]\ndcr_num_subfilters = 3\n")
    assert main(["config", "show", "--config", str(good), "--set", "dcr.dcr_num_subfilters=1"]) == 2
    err = capsys.readouterr().err
    assert "dcr.dcr_num_subfilters must be an integer >= 2" in err and str(good) not in err


@pytest.mark.parametrize("argv, words", [
    (["demo", "--n-visits", "1"], "--n-visits: must be at least 3"),
    (["demo", "--size", "8"], "--size: must be at least 64"),
    (["demo", "--seed=-1"], "--seed: must be at least 0"),
    (["simulate", "x", "--seed=-1"], "--seed: must be at least 0"),
    (["simulate", "x", "--n-visits", "0"], "--n-visits: must be at least 1"),
])
def test_simulation_sizes_that_cannot_work_are_usage_errors(tmp_path, capsys, argv, words):
    # (a traceback with partial outputs, a numpy seed error, or a demo of NaN scores that read as perfect)
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(tmp_path / "o")] if argv[0] == "demo" else
             [argv[0], str(tmp_path / "o"), *argv[2:]])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert stop.value.code == 2 and len(errors) == 1 and words in errors[0]
    assert not (tmp_path / "o").exists()


def test_simulate_takes_its_output_directory_as_the_other_commands_do(tmp_path, capsys):
    pytest.importorskip("galsim")
    argv = ["simulate", "--size", "32", "--n-visits", "1", "--n-stars", "3", "--no-defects"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "a" / "warps").glob("*.fits"))) == 1
    for extra in ([], [str(tmp_path / "b"), "--out", str(tmp_path / "c")]):
        capsys.readouterr()
        assert main([*argv, *extra]) == 2
        assert_one_error_line(capsys.readouterr().err, "simulate: give one output directory")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_config_command_refuses_what_it_would_ignore(tmp_path, capsys):
    (tmp_path / "six.toml").write_text("[dcr]\ndcr_num_subfilters = 6\n")
    # a FILE after show was ignored: the defaults printed as if they were the file's
    assert main(["config", "show", str(tmp_path / "six.toml")]) == 2
    assert_one_error_line(capsys.readouterr().err, "takes no FILE", "--config")
    assert main(["config", "show", "--config", str(tmp_path / "six.toml")]) == 0
    assert "dcr_num_subfilters = 6" in capsys.readouterr().out
    # a second --config replaced the first silently
    with pytest.raises(SystemExit) as stop:
        six = str(tmp_path / "six.toml")
        main(["config", "show", "--config", six, "--config", six])
    assert stop.value.code == 2 and "--config given twice" in capsys.readouterr().err
    assert main(["config", "dump", str(tmp_path), "--force"]) == 2
    assert_one_error_line(capsys.readouterr().err, "is a directory")


def test_a_simulation_larger_than_memory_is_refused_before_rendering(tmp_path, capsys, monkeypatch):
    # (--n-visits 100000 ran silently for hours, holding every visit, towards a MemoryError)
    import dcrcoadd.sim.run as sim_run

    calls = []
    monkeypatch.setattr(sim_run, "visit_renderer", lambda *a: calls.append(a))
    status, _, err = run(capsys, "simulate", str(tmp_path / "sim"), "--n-visits", "100000")
    assert status == 2 and not calls and not (tmp_path / "sim").exists()
    assert_one_error_line(err, "100000 visits of 256x256 px need about", "--n-visits", "--size")
    # (an allocation that fails anyway names the simulation's own options, not assemble's)
    monkeypatch.setattr(sim_run, "_check_fits_in_memory", lambda config: None)
    monkeypatch.setattr(sim_run, "field_wcs", lambda config: (_ for _ in ()).throw(MemoryError()))
    status, _, err = run(capsys, "simulate", str(tmp_path / "sim"), "--size", "64")
    assert status == 2
    assert_one_error_line(err, "simulate: not enough memory", "--size")
    assert "--box" not in err


@pytest.mark.parametrize("command", [["assemble", "{warps}"], ["template", "{model}", "{warps}"],
                                     ["survey", "{plan}"], ["warp", "{warps}"], ["simulate"]])
def test_an_output_directory_that_is_a_dangling_link_is_named_as_one(tmp_path, capsys, command):
    # (it was "File exists", the link's target unnamed; simulate found it only after rendering)
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "gone")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.fits").write_bytes(b"not read: the output directory is checked first")
    (tmp_path / "plan.toml").write_text('[[patch]]\nname = "a"\ninputs = "w/*.fits"\n')
    names = {"warps": str(tmp_path / "w"), "model": str(tmp_path / "model.fits"),
             "plan": str(tmp_path / "plan.toml")}
    status, _, err = run(capsys, *(a.format(**names) for a in command), "--out", str(out))
    assert status == 2
    assert_one_error_line(err, f"{out}: is a link to {tmp_path / 'gone'}, which does not exist")
    assert not (tmp_path / "gone").exists()


def test_one_mistake_shared_by_many_files_is_shown_for_three_and_counted(tmp_path, capsys):
    # every warp with HUMIDITY as a fraction printed its own warning (a hundred warps, a hundred lines)
    from astropy.io import fits

    def warps(directory):
        paths = write_warps(directory, 7)
        for i, path in enumerate(paths):
            with fits.open(path, mode="update") as hdul:
                hdul[0].header["HUMIDITY"] = 0.4 + 0.01 * i
        return [str(p) for p in paths]

    paths = warps(tmp_path / "w")
    status, _, err = run(capsys, "info", *paths)
    assert status == 0
    shown = [line for line in err.splitlines() if "relative humidity" in line and "same as above" not in line]
    assert len(shown) == 3 and paths[0] in shown[0]
    assert "the same as above for 4 more files (HUMIDITY = 0.4 is taken as" in err and "-v shows each" in err
    status, _, err = run(capsys, "-v", "info", *warps(tmp_path / "v"))
    assert len([line for line in err.splitlines() if "relative humidity" in line]) == 7
    assert "same as above" not in err
