"""Reader options reach every reader (issue 15): ``--instrument``, ``inputs.header_map`` /
``--header-map`` and ``--weights`` weight-map companion files, in headers and in pixel reads alike."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from conftest import write_warps
from dcrcoadd.cli import main
from dcrcoadd.coadd.baseline import prepare_inputs
from dcrcoadd.config import Config, apply_override
from dcrcoadd.core.geom import Box
from dcrcoadd.errors import ConfigError, InputError
from dcrcoadd.io import read_exposure, read_info
from dcrcoadd.io.fits import read_region
from dcrcoadd.io.options import ReadOptions
from dcrcoadd.io.weights import check_weights_pattern, weight_path
from test_inputs_layouts import write_decam_cutout


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


def rename_card(path, old, new, hdu=0):
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus[hdu].header[new] = hdus[hdu].header[old]
    del hdus[hdu].header[old]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


# -- header map -------------------------------------------------------------------------------------

def test_header_map_in_the_configuration():
    c = Config()
    apply_override(c, "inputs.header_map.airmass=airmass2")
    apply_override(c, "inputs.header_map.temperature=HIERARCH ESO TEL AMBI TEMP")
    c.validate()
    assert ReadOptions.from_config(c).header_map == {"airmass": "AIRMASS2",
                                                     "temperature": "ESO TEL AMBI TEMP"}
    apply_override(c, "inputs.header_map.airmass=none")  # removes the entry
    assert c.inputs.header_map == {"temperature": "HIERARCH ESO TEL AMBI TEMP"}


@pytest.mark.parametrize("override, words", [
    ("inputs.header_map.airmas=AIRMASS2", "inputs.header_map.airmas: not a header field"),
    ("inputs.header_map.airmass=AIR MASS=2", "must be a FITS keyword"),
    ("inputs.header_map.airmass=1.5", "must be a FITS keyword"),
])
def test_bad_header_map_is_refused_naming_the_field(tmp_path, capsys, override, words):
    paths = write_warps(tmp_path / "w")
    status = main(["assemble", *map(str, paths), "--out", str(tmp_path / "out"), "--set", override])
    [line] = error_lines(capsys.readouterr().err)
    assert status == 2 and words in line
    assert not (tmp_path / "out").exists()


def test_header_map_reaches_the_header_and_the_pixel_reads(tmp_path):
    """A saturation level under another card: the preflight headers and every region read by the coadd
    use the map (the pixels of the mask come from it)."""
    path = rename_card(write_decam_cutout(tmp_path / "c.fits"), "SATURATB", "SATLEVB", hdu=1)
    rename_card(path, "SATURATA", "SATLEVA", hdu=1)
    assert read_info(path).pixels.saturation is None
    config = Config()
    apply_override(config, "inputs.header_map.saturation=SATLEVB")
    prepared = prepare_inputs([path], config)
    [inp] = prepared.inputs
    box = Box(5, 5, 30, 30)
    exp = inp.read(box)
    data = fits.getdata(path, "N6")[5:35, 5:35]
    np.testing.assert_array_equal(exp.mask & exp.mask_planes.value("SAT") != 0, data >= 1500.0)
    assert (data >= 1500.0).any()


def test_header_map_on_the_command_line(tmp_path, capsys):
    path = rename_card(write_decam_cutout(tmp_path / "c.fits"), "FWHM", "SEEINGPX", hdu=1)
    assert main(["info", str(path)]) == 0
    assert "psf:         none" in capsys.readouterr().out
    assert main(["info", str(path), "--header-map", "seeing=SEEINGPX"]) == 0
    out = capsys.readouterr().out
    assert "psf: Gaussian of FWHM 4.12 px from SEEINGPX" in out
    with pytest.raises(SystemExit):  # argparse: FIELD=CARD expected
        main(["info", str(path), "--header-map", "seeing"])
    assert "FIELD=CARD" in capsys.readouterr().err
    assert main(["info", str(path), "--header-map", "seing=SEEINGPX"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "inputs.header_map.seing: not a header field" in line


def test_a_header_map_to_a_card_that_is_not_the_airmass_is_one_error(tmp_path, capsys):
    # airmass=EXPTIME: a warning per warp that EXPTIME = 30 contradicted the airmass, and the run went on
    paths = write_warps(tmp_path / "w", 4)
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["EXPTIME"] = 30.0
    assert main(["assemble", *map(str, paths), "--header-map", "airmass=EXPTIME",
                 "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    [line] = error_lines(err)
    assert "the header map's airmass = EXPTIME (--header-map, inputs.header_map) reads EXPTIME = " in line
    assert "map airmass to the card that holds it" in line and "WARNING" not in err


# -- weight maps ------------------------------------------------------------------------------------

@pytest.mark.parametrize("image, pattern, expected", [
    ("d/c4d_190310_031200_ooi_g_v1.fits.fz", "{name/_ooi_/_oow_}", "d/c4d_190310_031200_oow_g_v1.fits.fz"),
    ("d/img.fits", "{stem}_wtmap.fits", "d/img_wtmap.fits"),
    ("d/img.fits.gz", "{stem}.weight{ext}", "d/img.weight.fits.gz"),
    ("d/img.fits", "../weights/{stem}.fits", "d/../weights/img.fits"),
    ("d/img.fits", "{dir}/w/{name}", "d/w/img.fits"),
])
def test_weight_pattern_substitutions(tmp_path, image, pattern, expected):
    image, expected = tmp_path / image, tmp_path / expected
    for p in (image, expected):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    assert weight_path(image, pattern) == expected


def test_weight_pattern_dir_with_a_relative_image_path(tmp_path, monkeypatch):
    # {dir} of a relative path named the directory twice ("d/d/w/img.fits")
    (tmp_path / "d" / "w").mkdir(parents=True)
    (tmp_path / "d" / "img.fits").write_bytes(b"")
    (tmp_path / "d" / "w" / "img.fits").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert weight_path(Path("d/img.fits"), "{dir}/w/{name}").resolve() == tmp_path / "d" / "w" / "img.fits"


def test_weight_pattern_globs_must_match_one_file(tmp_path):
    image = tmp_path / "img.fits"
    image.write_bytes(b"")
    with pytest.raises(InputError, match="matches no file") as err:
        weight_path(image, "{stem}*wt*.fits")
    assert err.value.source == str(image)
    (tmp_path / "img_wt_v1.fits").write_bytes(b"")
    assert weight_path(image, "{stem}*wt*.fits") == tmp_path / "img_wt_v1.fits"
    (tmp_path / "img_wt_v2.fits").write_bytes(b"")
    with pytest.raises(InputError, match="matches 2 files"):
        weight_path(image, "{stem}*wt*.fits")
    with pytest.raises(InputError, match="does not exist"):
        weight_path(image, "{stem}_nothing.fits")
    with pytest.raises(InputError, match="the image itself"):
        weight_path(image, "{name}")


@pytest.mark.parametrize("pattern, words", [
    ("weights.fits", "must contain {name} or {stem}"),
    ("{base}_w.fits", "{base} is not a field"),
    ("{stem}_w.fits}", "unmatched brace"),
    ("{name/ooi}", "not a field"),
])
def test_bad_weight_patterns(pattern, words):
    with pytest.raises(ConfigError, match=words.replace("{", r"\{").replace("}", r"\}")):
        check_weights_pattern(pattern)


def write_weight_map(image_path, *, name="N6", extra_hdus=True, shape=None, seed=0):
    """A CP-style weight file (``oow``): the same extension names as the image, inverse variance."""
    data = fits.getdata(image_path, "N6")
    rng = np.random.default_rng(seed)
    weight = rng.uniform(0.002, 0.006, data.shape if shape is None else shape).astype(np.float32)
    weight[4, 5] = 0.0  # a bad pixel
    hdus = [fits.PrimaryHDU()]
    if extra_hdus:
        hdus.append(fits.ImageHDU(np.ones_like(weight), name="N5"))
    hdus.append(fits.ImageHDU(weight, name=name))
    out = image_path.with_name(image_path.name.replace("_ooi_", "_oow_"))
    fits.HDUList(hdus).writeto(out, overwrite=True)
    return out, weight


def test_weight_map_gives_the_variance_and_masks_zero_weight(tmp_path):
    image = write_decam_cutout(tmp_path / "c4d_190310_031200_ooi_g_v1.fits")
    wpath, weight = write_weight_map(image)
    exp = read_exposure(image, weights="{name/_ooi_/_oow_}")
    good = weight > 0
    np.testing.assert_allclose(exp.variance[good], 1.0 / weight[good], rtol=1e-6)
    bad = exp.mask_of("BAD")
    assert bad[4, 5] and bad.sum() == 1 and np.isnan(exp.variance[4, 5])
    sub = read_exposure(image, Box(3, 2, 20, 15), weights="{name/_ooi_/_oow_}")
    np.testing.assert_array_equal(sub.variance, exp.variance[2:17, 3:23])
    np.testing.assert_array_equal(sub.mask, exp.mask[2:17, 3:23])
    notes = "\n".join(read_info(image, weights="{name/_ooi_/_oow_}").notes)
    assert f"1/weight from the weight map {wpath} [HDU 2]" in notes and "BAD where the weight is 0" in notes


def test_weight_map_problems_name_the_image_and_the_weight_file(tmp_path):
    image = write_decam_cutout(tmp_path / "c_ooi_g.fits")
    with pytest.raises(InputError, match="does not exist") as err:
        read_info(image, weights="{name/_ooi_/_oow_}")
    assert err.value.source == str(image) and "c_oow_g.fits" in str(err.value)
    wpath, _ = write_weight_map(image, shape=(10, 10))
    with pytest.raises(InputError, match=r"has shape \(10, 10\), the image \(40, 44\)"):
        read_info(image, weights="{name/_ooi_/_oow_}")
    write_weight_map(image, name="S1", extra_hdus=True)
    with pytest.raises(InputError, match="no 2-D image named N6"):
        read_info(image, weights="{name/_ooi_/_oow_}")


def test_a_file_with_its_own_variance_ignores_the_weight_map(tmp_path):
    [path] = write_warps(tmp_path, 1)
    wpath = tmp_path / "warp_0_wtmap.fits"
    fits.PrimaryHDU(np.full((40, 40), 0.25, np.float32)).writeto(wpath)
    exp = read_exposure(path, weights="{stem}_wtmap.fits")
    np.testing.assert_array_equal(exp.variance, 1.0)
    assert any("its weight map is not used" in n for n in read_info(path, weights="{stem}_wtmap.fits").notes)


def test_assemble_with_weight_maps(tmp_path, capsys):
    """--weights and --masks reach the preflight, the weights of the coadd and the DCR solve;
    config.toml keeps them."""
    from astropy.time import TimeDelta

    from test_inputs_end_to_end import HOURS
    from test_inputs_layouts import DECAM_TIME, pointing

    field = pointing("ctio", DECAM_TIME, 65.0, 40.0)
    for i, hours in enumerate(HOURS):
        image = write_decam_cutout(tmp_path / f"c4d_{i}_ooi_g.fits", expnum=900 + i, radec=field, seed=50 + i,
                                   time=DECAM_TIME + TimeDelta(hours * 3600, format="sec"))
        write_weight_map(image, seed=i)
        write_quality_map(image, {(20, 20): 5})  # a cosmic ray in every visit
    out = tmp_path / "out"
    status = main(["assemble", *sorted(map(str, tmp_path.glob("*_ooi_*.fits"))), "--out", str(out), "-q",
                   "--weights", "{name/_ooi_/_oow_}", "--masks", "{name/_ooi_/_ood_}"])
    assert status == 0, capsys.readouterr().err
    config = (out / "config.toml").read_text()
    assert 'weights = "{name/_ooi_/_oow_}"' in config and 'masks = "{name/_ooi_/_ood_}"' in config
    # a weight of 0 is a BAD pixel, not a pixel with an invalid variance
    warnings = json.loads((out / "metadata.json").read_text())["warnings"]
    assert not any("negative variance" in w for w in warnings)
    # a missing weight file stops the run before any pixel, naming the image
    (tmp_path / "c4d_3_oow_g.fits").unlink()
    status = main(["assemble", str(tmp_path / "c4d_*_ooi_g.fits"), "--out", str(tmp_path / "out2"),
                   "--weights", "{name/_ooi_/_oow_}"])
    [line] = error_lines(capsys.readouterr().err)
    assert status == 2 and "c4d_3_ooi_g.fits: weight map" in line and "does not exist" in line
    assert not (tmp_path / "out2").exists()


# -- data-quality maps (--masks) --------------------------------------------------------------------

#: DECam CP codes (PLVER >= 3.5) at the pixels (y, x) a test map holds, and the plane each must give.
CP_CODES = {(3, 3): (1, "BAD"), (3, 9): (2, "NO_DATA"), (9, 3): (3, "SAT"), (9, 9): (4, "SAT"),
            (15, 3): (5, "CR"), (15, 9): (6, "BAD"), (21, 9): (8, "STREAK"), (27, 3): (11, "BAD")}


def write_quality_map(image_path, values: dict, *, plver="V4.8.2", dtype=np.int16, shape=(40, 44)):
    """A CP-style data-quality file (``ood``): the image's extension name, integer codes."""
    dq = np.zeros(shape, dtype)
    for (y, x), value in values.items():
        dq[y, x] = value
    primary = fits.PrimaryHDU()
    if plver:
        primary.header["PLVER"] = plver
    out = image_path.with_name(image_path.name.replace("_ooi_", "_ood_"))
    fits.HDUList([primary, fits.ImageHDU(np.ones(shape, dtype), name="N5"),
                  fits.ImageHDU(dq, name="N6")]).writeto(out, overwrite=True)
    return out


def test_quality_map_gives_the_planes_of_the_decam_community_pipeline_codes(tmp_path):
    image = write_decam_cutout(tmp_path / "c4d_190310_031200_ooi_g_v1.fits")
    # (code 7, a transient the CP found by comparing exposures, is left to compare-warp: unmasked)
    qpath = write_quality_map(image, {**{yx: code for yx, (code, _) in CP_CODES.items()}, (27, 9): 7})
    plain = read_exposure(image)
    exp = read_exposure(image, masks="{name/_ooi_/_ood_}")
    for (y, x), (code, plane) in CP_CODES.items():
        assert exp.mask_of(plane)[y, x], (code, plane)
    added = exp.mask & ~plain.mask
    assert np.count_nonzero(added) == len(CP_CODES)  # nothing else, and the image's own planes kept
    np.testing.assert_array_equal(exp.mask & plain.mask, plain.mask)
    np.testing.assert_array_equal(exp.variance, plain.variance)  # (the image's own, as without the map)
    sub = read_exposure(image, Box(2, 2, 20, 25), masks="{name/_ooi_/_ood_}")
    np.testing.assert_array_equal(sub.mask, exp.mask[2:27, 2:22])
    notes = "\n".join(read_info(image, masks="{name/_ooi_/_ood_}").notes)
    assert f"data-quality map {qpath} [HDU 2] (DECam Community Pipeline codes (PLVER 4.8)" in notes


def test_quality_map_before_version_3_5_holds_bits_and_nonzero_is_all_bad(tmp_path):
    image = write_decam_cutout(tmp_path / "c4d_ooi_g.fits")
    values = {(3, 3): 1, (3, 9): 2 | 16, (9, 3): 4, (9, 9): 64, (15, 3): 128, (15, 9): 8}
    qpath = write_quality_map(image, values, plver="V3.4.1")
    plain = read_exposure(image)
    exp = read_exposure(image, masks="{name/_ooi_/_ood_}")
    assert exp.mask_of("BAD")[3, 3] and exp.mask_of("SAT")[3, 9] and exp.mask_of("CR")[3, 9]
    assert exp.mask_of("INTRP")[9, 3] and exp.mask_of("SAT")[9, 9]
    assert exp.mask[15, 3] == plain.mask[15, 3]  # a transient: left to compare-warp
    assert exp.mask_of("BAD")[15, 9]  # a bit the pipeline does not define
    nonzero = read_exposure(image, masks="{name/_ooi_/_ood_}", mask_codes="nonzero")
    assert nonzero.mask_of("BAD")[3, 9] and not nonzero.mask_of("CR")[3, 9]
    assert np.count_nonzero(nonzero.mask_of("BAD")) == 6
    # an unreadable PLVER in the extension does not hide the primary header's
    with fits.open(qpath, mode="update") as hdul:
        hdul["N6"].header["PLVER"] = "unknown"
    assert read_exposure(image, masks="{name/_ooi_/_ood_}").mask_of("INTRP")[9, 3]


def test_quality_map_problems_are_refused_naming_the_image(tmp_path):
    image = write_decam_cutout(tmp_path / "c_ooi_g.fits")
    with pytest.raises(InputError, match=r"data-quality map .*c_ood_g.fits \(from --masks") as err:
        read_info(image, masks="{name/_ooi_/_ood_}")
    assert err.value.source == str(image)
    write_quality_map(image, {(3, 3): 1}, dtype=np.float32)  # the weight map under the wrong option
    with pytest.raises(InputError, match="floating-point values .* is it the weight map"):
        read_info(image, masks="{name/_ooi_/_ood_}")
    write_quality_map(image, {(3, 3): 1}, shape=(10, 10))
    with pytest.raises(InputError, match=r"data-quality map .* has shape \(10, 10\)"):
        read_info(image, masks="{name/_ooi_/_ood_}")
    qpath = write_quality_map(image, {(3, 3): 1})
    with fits.open(qpath, mode="update") as hdul:
        hdul["N6"].header["BZERO"] = 0.5
    with pytest.raises(InputError, match="scaled values"):
        read_info(image, masks="{name/_ooi_/_ood_}")
    # a map gone after the headers were read: the image and the map named, one line
    qpath = write_quality_map(image, {(3, 3): 1})
    info = read_info(image, masks="{name/_ooi_/_ood_}")
    qpath.unlink()
    with pytest.raises(InputError, match="data-quality map .*c_ood_g.fits no longer exists") as err:
        read_region(info)
    assert err.value.source == str(image)
    with pytest.raises(ConfigError, match="masks pattern 'dq.fits' must contain"):
        ReadOptions(masks="dq.fits")
    with pytest.raises(ConfigError, match="mask codes 'hst' unknown"):
        ReadOptions(mask_codes="hst")
    c = Config()
    apply_override(c, "inputs.mask_codes=bits")
    with pytest.raises(ConfigError, match="inputs.mask_codes"):
        c.validate()


def test_a_file_with_its_own_mask_ignores_the_quality_map(tmp_path):
    [path] = write_warps(tmp_path, 1)
    fits.PrimaryHDU(np.ones((40, 40), np.int16)).writeto(tmp_path / "warp_0_dq.fits")
    exp = read_exposure(path, masks="{stem}_dq.fits")
    np.testing.assert_array_equal(exp.mask, read_exposure(path).mask)
    assert any("data-quality map is not used" in n for n in read_info(path, masks="{stem}_dq.fits").notes)


def test_info_and_assemble_take_the_quality_maps(tmp_path, capsys):
    image = write_decam_cutout(tmp_path / "c4d_0_ooi_g.fits")
    write_quality_map(image, {(5, 5): 5})
    assert main(["info", str(image), "--masks", "{name/_ooi_/_ood_}", "--mask-codes", "nonzero"]) == 0
    out = capsys.readouterr().out
    assert "c4d_0_ood_g.fits [HDU 2] (every nonzero value BAD; --masks {name/_ooi_/_ood_})" in out
    assert main(["info", str(image), "--mask-codes", "nonzero"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "--mask-codes nonzero needs --masks" in line
    # a missing data-quality file stops assemble before any pixel, naming the image
    status = main(["assemble", str(image), "--out", str(tmp_path / "out"), "--masks", "{stem}_dq.fits"])
    [line] = error_lines(capsys.readouterr().err)
    assert status == 2 and "c4d_0_ooi_g.fits: data-quality map" in line and "does not exist" in line
    assert not (tmp_path / "out").exists()


# -- output errors ----------------------------------------------------------------------------------

def test_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    paths = write_warps(tmp_path / "w")

    def full_disk(self, name, *args, **kwargs):
        with open(name, "wb") as f:
            f.write(b"SIMPLE  =                    T")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", full_disk)
    out = tmp_path / "out"
    status = main(["assemble", *map(str, paths), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    [line] = error_lines(err)
    assert status == 2 and "Traceback" not in err
    assert line.startswith(f"error: {out / 'coadd.fits'}: cannot write: the disk is full")
    assert not list(out.glob("*.fits")) and not list(out.glob(".*.tmp"))  # no partial file


def test_warp_reads_with_the_instrument_and_the_weight_maps(tmp_path, capsys):
    """`dcrcoadd warp` on DECam cut-outs that do not say DECam, with their weight maps: the visit is
    read with the preset (site, band) and the warped variance comes from the weight map."""
    pytest.importorskip("reproject")
    from test_inputs_end_to_end import decam_unrecognisable_visits

    write, options = decam_unrecognisable_visits(tmp_path)
    image = write(0, 0.0, "c4d_0_ooi_g.fits")
    _, weight = write_weight_map(image)
    args = ["warp", str(image), "--out", str(tmp_path / "warps"), *options, "--weights", "{name/_ooi_/_oow_}"]
    assert main(args) == 0, capsys.readouterr().err
    warp = read_exposure(tmp_path / "warps" / "c4d_0_ooi_g_warp.fits")
    assert warp.band == "decam-g" and warp.visit.observatory.longitude.deg == pytest.approx(-70.81489)
    inside = warp.mask == 0
    median_var = float(np.median(warp.variance[inside]))
    assert median_var == pytest.approx(float(np.median(1 / weight[weight > 0])), rel=0.2)
    assert main(["warp", str(image), "--out", str(tmp_path / "warps2")]) == 2  # read as generic FITS
    assert "below the horizon" in capsys.readouterr().err


def test_a_warp_of_a_seeing_card_psf_keeps_it_a_fallback(tmp_path):
    # the warp writes the seeing card's Gaussian as its PSF extension; marked so, assemble still
    # measures the PSF from the stars first, as for the original file
    from dcrcoadd.resample import warp_exposures

    path = write_decam_cutout(tmp_path / "c.fits")
    assert read_info(path, instrument="decam").psf_origin == "seeing card"
    (outcome,) = warp_exposures([path], tmp_path / "w", grid=path, read_options=ReadOptions("decam"))
    assert outcome.error is None
    warped = read_info(outcome.warp_path)
    assert warped.psf is not None and warped.psf_origin == "seeing card"


def test_a_header_map_card_no_input_has_is_warned_about(tmp_path, caplog):
    # airmass=AIRMAS2 (a typo): every file falls back to its usual cards; say so once
    import logging

    from dcrcoadd.pipeline.inputs import read_headers

    paths = [write_decam_cutout(tmp_path / f"c{i}.fits", expnum=700 + i) for i in range(2)]
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.pipeline.inputs"):
        read_headers(paths, ReadOptions("decam", {"airmass": "AIRMAS2"}))
    assert caplog.text.count("inputs.header_map.airmass = AIRMAS2: no input has that card") == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.pipeline.inputs"):
        read_headers(paths, ReadOptions("decam", {"airmass": "AIRMASS"}))
    assert "no input has that card" not in caplog.text
    info = read_info(paths[0], instrument="decam", header_map={"airmass": "AIRMAS2"})
    assert info.absent_header_map == ("airmass",)


def test_weights_that_no_input_needs_are_warned_about(tmp_path, caplog):
    # every input has a VARIANCE extension: the weight maps are never read, which said nothing
    import logging

    from dcrcoadd.pipeline.inputs import read_headers

    paths = write_warps(tmp_path / "w", n=2)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.pipeline.inputs"):
        read_headers(paths, ReadOptions(weights="{stem}.weight.fits"))
    assert "inputs.weights = '{stem}.weight.fits' is not used" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.pipeline.inputs"):
        read_headers(paths, ReadOptions())
    assert "is not used" not in caplog.text
