"""Command-line errors of `dcrcoadd assemble` and `dcrcoadd config`: one line, exit status 2."""

import pytest

from dcrcoadd.cli import main


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_empty_directory_is_an_input_error(tmp_path, capsys):
    (tmp_path / "warps").mkdir()
    status, _, err = run(capsys, "assemble", str(tmp_path / "warps"), "--out", str(tmp_path / "out"))
    assert status == 2
    assert err.strip().count("\n") == 0 and "no FITS files" in err and err.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_not_fits_input(tmp_path, capsys):
    bad = tmp_path / "a.fits"
    bad.write_text("not a fits file")
    status, _, err = run(capsys, "assemble", str(bad), "--out", str(tmp_path / "out"))
    assert status == 2 and str(bad) in err and "FITS" in err
    assert not (tmp_path / "out").exists()


def test_invalid_set_key_and_value(tmp_path, capsys):
    status, _, err = run(capsys, "config", "show", "--set", "dcr.no_such_field=3")
    assert status == 2 and "dcr.no_such_field" in err
    status, _, err = run(capsys, "config", "show", "--set", "dcr.dcr_num_subfilters=1")
    assert status == 2 and "dcr_num_subfilters" in err


def test_output_path_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("x")
    status, _, err = run(capsys, "assemble", str(tmp_path / "missing.fits"), "--out", str(out))
    assert status == 2 and "not a directory" in err


def test_config_show_and_dump_round_trip(tmp_path, capsys):
    status, out, _ = run(capsys, "config", "show", "--set", "dcr.iterative.max_num_iter=12")
    assert status == 0 and "max_num_iter = 12" in out
    path = tmp_path / "c.toml"
    assert run(capsys, "config", "dump", str(path), "--set", "coadd.statistic=MEANCLIP")[0] == 0
    status, out, _ = run(capsys, "config", "show", "--config", str(path))
    assert status == 0 and 'statistic = "MEANCLIP"' in out


@pytest.mark.parametrize("text", ["[dcr\nx=", "dcr = 3"])
def test_bad_toml_file(tmp_path, capsys, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    status, _, err = run(capsys, "config", "show", "--config", str(path))
    assert status == 2 and str(path) in err


def test_config_dump_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text("# my edited configuration\n")
    status, _, err = run(capsys, "config", "dump", str(path))
    assert status == 2 and str(path) in err and "--force" in err
    assert path.read_text() == "# my edited configuration\n"  # untouched
    status, out, _ = run(capsys, "config", "dump", str(path), "--force")
    assert status == 0 and f"wrote {path}" in out
    assert "max_num_iter" in path.read_text()


def test_config_dump_under_a_regular_file_names_it(tmp_path, capsys):
    # it said "cannot write: File exists"
    (tmp_path / "notes.txt").write_text("mine\n")
    status, _, err = run(capsys, "config", "dump", str(tmp_path / "notes.txt" / "sub" / "c.toml"))
    assert status == 2 and err.strip().endswith(f"cannot write: {tmp_path / 'notes.txt'} is not a directory")
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_config_dump_to_standard_output_and_a_markdown_config_mistaken_for_output(tmp_path, capsys,
                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys, "config", "dump", "-", "--set", "dcr.dcr_num_subfilters=4")
    assert status == 0 and "dcr_num_subfilters = 4" in out and out.startswith("# dcrcoadd configuration")
    assert not (tmp_path / "-").exists()  # (it wrote a file named "-")
    status, _, err = run(capsys, "config", "markdown", "--config", "ref.md")
    assert status == 2 and "dcrcoadd config markdown > ref.md" in err
    (tmp_path / "arr.toml").write_text("[[dcr]]\ndcr_num_subfilters = 3\n")
    status, _, err = run(capsys, "config", "show", "--config", "arr.toml")
    assert status == 2 and "write [dcr], not [[dcr]]" in err
