"""The PNG report: pure helpers (colour grouping, stretch, table) and the atomic file it writes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from dcrcoadd.errors import ConfigError, InputError  # noqa: E402
from dcrcoadd.report import figure as report  # noqa: E402
from dcrcoadd.report.figure import (  # noqa: E402
    false_colour_rgb,
    inputs_table_rows,
    make_report,
    subfilter_groups,
)


def _gaussian(ny: int, nx: int, y0: float, x0: float, sigma: float = 1.6) -> np.ndarray:
    y, x = np.mgrid[:ny, :nx]
    g = np.exp(-0.5 * ((y - y0) ** 2 + (x - x0) ** 2) / sigma**2)
    return g / g.sum()


def _star_field(n: int = 40, m: int = 3, noise: float = 0.5, seed: int = 1) -> np.ndarray:
    """M subfilter images with a blue star (left) and a red star (right) on a noisy sky."""
    rng = np.random.default_rng(seed)
    blue = np.linspace(1.0, 0.15, m)  # flux fraction per subfilter, bluest first
    red = blue[::-1]
    images = np.empty((m, n, n))
    for a in range(m):
        images[a] = (2000.0 * blue[a] * _gaussian(n, n, n / 2, n / 4)
                     + 2000.0 * red[a] * _gaussian(n, n, n / 2, 3 * n / 4)
                     + rng.normal(0.0, noise, (n, n)) + 3.0)
    return images


def _dipole(n: int, amplitude: float, dy: float = 0.6, dx: float = 0.25) -> np.ndarray:
    """Difference of a star with its shifted copy, at the two star positions."""
    out = np.zeros((n, n))
    for x0 in (n / 4, 3 * n / 4):
        out += amplitude * (_gaussian(n, n, n / 2 + dy, x0 + dx) - _gaussian(n, n, n / 2, x0))
    return out


def _report_inputs(n_inputs: int = 5, n_histories: int = 2, n: int = 40):
    rng = np.random.default_rng(7)
    histories = {}
    for k in range(n_histories):
        conv0 = 0.5 + 0.2 * rng.random()
        n_it = 6 + k % 4
        hist = [(0, conv0, None)]
        for it in range(1, n_it):
            hist.append((it, conv0 * 0.45**it * (1 + 0.1 * rng.random()), min(1.0, 0.5 + 0.1 * it)))
        histories[f"patch[{k % 3},{k // 3}]"] = hist
    inputs = [{"visit": 1000 + i, "airmass": 1.0 + 0.15 * (i % 8),
               "parallactic_angle": -60.0 + 30.0 * (i % 5),
               "seeing": 0.7 + 0.05 * (i % 6), "weight": 1.0 / (1.0 + 0.2 * i)} for i in range(n_inputs)]
    sky_noise = 1.0
    science = 3000.0 * (_gaussian(n, n, n / 2, n / 4) + _gaussian(n, n, n / 2, 3 * n / 4))
    science += np.random.default_rng(3).normal(0.0, sky_noise, (n, n))
    showcase = {
        "visit": 1004, "airmass": 1.6, "science": science,
        "diff_baseline": _dipole(n, 3000.0) + np.random.default_rng(4).normal(0, sky_noise, (n, n)),
        "diff_dcr": _dipole(n, 300.0) + np.random.default_rng(5).normal(0, sky_noise, (n, n)),
        "noise": sky_noise,
    }
    return dict(subfilter_images=_star_field(n), histories=histories, inputs=inputs, showcase=showcase)


# --------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, expected", [
    (1, [[0], [0], [0]]),
    (2, [[0], [0, 1], [1]]),
    (3, [[0], [1], [2]]),
    (4, [[0, 1], [2], [3]]),
    (5, [[0, 1], [2], [3, 4]]),
    (6, [[0, 1], [2, 3], [4, 5]]),
    (8, [[0, 1, 2], [3, 4], [5, 6, 7]]),
])
def test_subfilter_groups_contiguous_blue_to_red(m, expected):
    groups = subfilter_groups(m)
    assert groups == expected
    if m >= 3:  # every subfilter used exactly once, in order
        assert sum(groups, []) == list(range(m))


def test_false_colour_blue_star_is_blue_and_red_star_is_red():
    images = _star_field(m=3)
    rgb = false_colour_rgb(images)
    assert rgb.shape == (40, 40, 3)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    blue_px = rgb[20, 10]
    red_px = rgb[20, 30]
    assert blue_px[2] > 2 * blue_px[0]   # B > R at the blue star
    assert red_px[0] > 2 * red_px[2]     # R > B at the red star
    # The colour is the flux ratio: the blue star's B/R equals the input 1/0.15 (shared stretch).
    np.testing.assert_allclose(blue_px[2] / blue_px[0], 1.0 / 0.15, rtol=0.1)
    # Sky is dark.
    assert np.median(rgb) < 0.05


def test_false_colour_saturated_pixels_keep_their_hue():
    images = _star_field(m=3)
    rgb = false_colour_rgb(images, stretch=1.0)  # far too bright: cores would clip
    core = rgb[20, 10]
    assert core.max() == pytest.approx(1.0)
    np.testing.assert_allclose(core[2] / core[0], 1.0 / 0.15, rtol=0.1)


def test_false_colour_many_subfilters_average_and_nan_is_black():
    images = _star_field(m=6)
    images[:, 0, 0] = np.nan
    rgb = false_colour_rgb(images)
    assert np.all(rgb[0, 0] == 0.0)
    assert rgb[20, 10, 2] > rgb[20, 10, 0]
    with pytest.raises(ValueError, match="shape"):
        false_colour_rgb(images[0])


def test_inputs_table_truncates_in_the_middle_and_labels_units():
    inputs = [{"visit": i, "airmass": 1.0 + 0.01 * i, "parallactic_angle": float(i),
               "fwhm_px": 3.0, "weight": 2e-4} for i in range(40)]
    header, rows, n = inputs_table_rows(inputs, max_rows=9)
    assert n == 40
    assert len(rows) == 9
    assert header[3] == "seeing (px)"
    assert header[4] == "weight (rel.)"  # tiny inverse-variance weights shown relative to the max
    assert rows[0][0] == "0" and rows[-1][0] == "39"
    assert rows[4][0] == "… 32 more"
    assert rows[4][1] == "1.04–1.35"  # airmass range of the rows left out
    assert rows[0][4] == "1"


def test_inputs_table_from_astropy_table_with_units_and_missing_values():
    import astropy.units as u
    from astropy.table import Table
    t = Table({"visit": [1, 2], "airmass": [1.2, 1.5], "parallactic_angle": [0.5, -0.5] * u.rad,
               "seeing": [0.8, 0.9] * u.arcsec})
    header, rows, n = inputs_table_rows(t)
    assert n == 2
    assert header[3] == "seeing (arcsec)"
    assert rows[0][2] == "28.6"          # radians shown in degrees
    assert rows[0][4] == "—"             # no weight column


# --------------------------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------------------------

def test_make_report_writes_a_complete_png_and_nothing_else(tmp_path):
    out = make_report(tmp_path / "report.png", title="synthetic patch", convergence_threshold=1e-3,
                      **_report_inputs())
    assert out == tmp_path / "report.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.png"]  # no temporary left
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    img = imread(out)
    h, w = img.shape[:2]
    assert (h, w) == (1000, 1600)  # 16 x 10 inches at 100 dpi
    # Not blank: many distinct colours, some strongly blue and some strongly red pixels.
    rgb = np.round(img[..., :3] * 255).astype(int)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    assert len(np.unique(packed)) > 200
    assert np.any((rgb[..., 2] > 150) & (rgb[..., 0] < 80))
    assert np.any((rgb[..., 0] > 150) & (rgb[..., 2] < 80))


def test_make_report_without_showcase_and_many_subregions(tmp_path):
    data = _report_inputs(n_inputs=60, n_histories=25)
    data["showcase"] = None
    data["subfilter_images"] = _star_field(m=5)
    # Histories may also be the solver's own records (dicts).
    data["histories"]["solver"] = [{"iteration": 0, "convergence": 0.4, "gain": None},
                                     {"iteration": 1, "convergence": 0.1, "gain": 0.5}]
    out = make_report(tmp_path / "r.png", **data)
    img = imread(out)
    assert img.shape[1] == 1600 and 400 < img.shape[0] < 700  # only the top row: a shorter page
    assert img[..., :3].std() > 0.05


def test_wide_showcase_shrinks_the_page_not_the_images():
    data = _report_inputs()
    rng = np.random.default_rng(2)
    data["showcase"] = {**data["showcase"], **{k: rng.normal(0.0, 1.0, (20, 60))
                                               for k in ("science", "diff_baseline", "diff_dcr")}}
    # Layout only (no rendering): the figure is as wide, and shorter by the unused image height.
    square = report.build_figure(**_report_inputs()).get_size_inches()
    wide = report.build_figure(**data).get_size_inches()
    assert wide[0] == square[0] == 16.0
    # Images 3.7 inches wide: a 1:3 image is 3.7 / 3 tall, so the page loses 2/3 of 3.7 inches.
    assert wide[1] == pytest.approx(square[1] - 3.7 * 2 / 3)


def test_block_mean_averages_blocks_and_ignores_nan():
    images = np.arange(2 * 4 * 6, dtype=float).reshape(2, 4, 6)
    images[1, 0, 0] = np.nan
    binned = report._block_mean(images, 2)
    assert binned.shape == (2, 2, 3)
    assert binned[0, 0, 0] == np.mean([0, 1, 6, 7])
    assert binned[1, 0, 0] == np.mean([25, 30, 31])


def test_failure_while_drawing_leaves_no_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(report, "_draw_inputs_table", boom)
    with pytest.raises(RuntimeError, match="drawing failed"):
        make_report(tmp_path / "report.png", **_report_inputs())
    assert list(tmp_path.iterdir()) == []


def test_failure_while_saving_keeps_previous_report_and_removes_partial(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    target = tmp_path / "report.png"
    target.write_bytes(b"previous report")

    def half_written(self, fh, **kwargs):
        fh.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError, match="disk full"):
        make_report(target, **_report_inputs())
    assert target.read_bytes() == b"previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.png"]


def test_bad_arguments_are_named(tmp_path):
    data = _report_inputs()
    with pytest.raises(InputError, match="output directory does not exist"):
        make_report(tmp_path / "missing" / "report.png", **data)
    with pytest.raises(ValueError, match="subfilter_images"):
        make_report(tmp_path / "r.png", **{**data, "subfilter_images": data["subfilter_images"][0]})
    with pytest.raises(ValueError, match="diff_dcr"):
        bad = {k: v for k, v in data["showcase"].items() if k != "diff_dcr"}
        make_report(tmp_path / "r.png", **{**data, "showcase": bad})
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_says_which_extra_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"dcrcoadd\[plot\]"):
        make_report(tmp_path / "r.png", **_report_inputs())
    assert list(tmp_path.iterdir()) == []
