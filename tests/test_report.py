"""The PNG report: pure helpers (colour grouping, stretch, table, convergence), the data it is drawn
from (difference panels, scores, DCR coverage) and the atomic file it writes."""

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
    relative_improvements,
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
    masked = np.zeros((n, n), bool)
    masked[5:8, :] = True
    showcase = {
        "visit": 1004, "airmass": 1.6, "science": science, "title": "Held-out visit 1004",
        "chi_baseline": _dipole(n, 3000.0) + np.random.default_rng(4).normal(0, sky_noise, (n, n)),
        "chi_dcr": _dipole(n, 300.0) + np.random.default_rng(5).normal(0, sky_noise, (n, n)),
        "masked": masked, "dcr_vector": (0.5, -1.0), "vector_label": "held out 1004",
    }
    vectors = [{"visit": r["visit"], "airmass": r["airmass"], "dy": 0.3 * i - 0.5, "dx": 1.0 - 0.2 * i}
               for i, r in enumerate(inputs)]
    return dict(subfilter_images=_star_field(n), histories=histories, inputs=inputs, showcase=showcase,
                dcr_vectors=vectors)


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


def test_inputs_table_truncates_in_the_middle_and_shows_seeing_in_arcsec_and_pixels():
    inputs = [{"visit": i, "airmass": 1.0 + 0.01 * i, "parallactic_angle": float(i),
               "seeing_arcsec": 0.6, "seeing_px": 3.0, "weight": 2e-4} for i in range(40)]
    header, rows, n = inputs_table_rows(inputs, max_rows=9)
    assert n == 40
    assert len(rows) == 9
    assert header[3:5] == ["seeing (arcsec)", "seeing (px)"]
    assert header[5] == "weight (rel.)"  # tiny inverse-variance weights shown relative to the max
    assert rows[0][0] == "0" and rows[-1][0] == "39"
    assert rows[0][3:5] == ["0.60", "3.00"]
    assert rows[4][0] == "… 32 more"
    assert rows[4][1] == "1.04–1.35"  # airmass range of the rows left out
    assert rows[0][5] == "1"


def test_inputs_table_from_astropy_table_with_units_and_missing_values():
    import astropy.units as u
    from astropy.table import Table
    t = Table({"visit": [1, 2], "airmass": [1.2, 1.5], "parallactic_angle": [0.5, -0.5] * u.rad,
               "seeing": [0.8, 0.9] * u.arcsec, "psf_fwhm": [4.0, 4.5] * u.pix})
    header, rows, n = inputs_table_rows(t)
    assert n == 2
    assert rows[0][2] == "28.6"          # radians shown in degrees
    assert rows[0][3:5] == ["0.80", "4.00"]
    assert rows[0][5] == "—"             # no weight column


# --------------------------------------------------------------------------------------------
# convergence panel
# --------------------------------------------------------------------------------------------

def test_relative_improvement_is_what_the_solver_compares_with_its_threshold():
    history = [{"iteration": 0, "convergence": 0.2, "gain": None},
               {"iteration": 1, "convergence": 0.1, "gain": 0.5},
               {"iteration": 2, "convergence": 0.0999, "gain": 0.5},
               {"iteration": 3, "convergence": 0.1, "gain": 0.5}]
    its, imp = relative_improvements(history)
    assert list(its) == [1, 2, 3]
    # (c[i-1] - c[i]) / c[i], as dcrcoadd.dcr.solvers.iterative computes "improvement"
    np.testing.assert_allclose(imp, [1.0, 0.0001 / 0.0999, -0.0001 / 0.1])
    assert relative_improvements(history[:1])[0].size == 0  # the start alone: no step


def _convergence_axes(fig):
    return next(ax for ax in fig.axes if ax.get_title().startswith("Convergence"))


def test_threshold_is_drawn_on_the_improvement_axis_and_only_for_a_solver_that_has_one():
    data = _report_inputs()
    fig = report.build_figure(convergence_threshold=1e-3, **data)
    ax = _convergence_axes(fig)
    assert "c[i−1] − c[i]" in ax.get_ylabel() and ax.get_yscale() == "log"
    threshold = [line for line in ax.get_lines() if line.get_label().startswith("convergence_threshold")]
    assert len(threshold) == 1 and set(threshold[0].get_ydata()) == {1e-3}
    # the curves are the relative improvements of the histories, not the metric
    name, records = next(iter(data["histories"].items()))
    curve = next(line for line in ax.get_lines() if line.get_label().startswith(name))
    np.testing.assert_allclose(curve.get_ydata(), np.abs(relative_improvements(records)[1]))
    ax = _convergence_axes(report.build_figure(convergence_threshold=None, **data))
    assert not [line for line in ax.get_lines() if line.get_label().startswith("convergence_threshold")]


def test_masked_pixels_have_their_own_colour_in_every_image_panel():
    from matplotlib.colors import to_rgba

    fig = report.build_figure(**_report_inputs())
    images = [im for ax in fig.axes for im in ax.get_images()
              if ax.get_title().startswith(("Science", "Science −"))]
    assert len(images) == 3
    for im in images:
        bad = im.cmap.get_bad()
        assert np.allclose(bad, to_rgba(report.MASKED_COLOUR))
        assert not np.allclose(bad[:3], im.cmap(im.norm(0.0))[:3], atol=0.05)  # not the colour of zero
        assert np.ma.getmaskarray(im.get_array())[6].all()  # the masked rows are drawn masked


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
    assert (h, w) == (1030, 2000)  # 20 x 10.3 inches at 100 dpi
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
    assert img.shape[1] == 2000 and 400 < img.shape[0] < 700  # only the top row: a shorter page
    assert img[..., :3].std() > 0.05


def test_wide_showcase_shrinks_the_page_not_the_images():
    data = _report_inputs()
    rng = np.random.default_rng(2)
    data["showcase"] = {**data["showcase"], "masked": None,
                        **{k: rng.normal(0.0, 1.0, (20, 60)) for k in ("science", "chi_baseline", "chi_dcr")}}
    # Layout only (no rendering): the figure is as wide, and shorter by the unused image height.
    square = report.build_figure(**_report_inputs()).get_size_inches()
    wide = report.build_figure(**data).get_size_inches()
    assert wide[0] == square[0] == 20.0
    # Images 3.7 inches wide: a 1:3 image is 3.7 / 3 tall, so the page loses 2/3 of 3.7 inches.
    assert wide[1] == pytest.approx(square[1] - 3.7 * 2 / 3)


def test_block_mean_averages_blocks_and_ignores_nan():
    images = np.arange(2 * 4 * 6, dtype=float).reshape(2, 4, 6)
    images[1, 0, 0] = np.nan
    binned = report._block_mean(images, 2)
    assert binned.shape == (2, 2, 3)
    assert binned[0, 0, 0] == np.mean([0, 1, 6, 7])
    assert binned[1, 0, 0] == np.mean([25, 30, 31])
    # a model's float32 planes are averaged in double precision, not rounded to float32
    single = report._block_mean(images.astype(np.float32), 2)
    assert single.dtype == np.float64
    np.testing.assert_array_equal(single, binned)


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
    with pytest.raises(ValueError, match="chi_dcr"):
        bad = {k: v for k, v in data["showcase"].items() if k != "chi_dcr"}
        make_report(tmp_path / "r.png", **{**data, "showcase": bad})
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_says_which_extra_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"dcrcoadd\[plot\]"):
        make_report(tmp_path / "r.png", **_report_inputs())
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# the one statistic (dcrcoadd.report.scores)
# --------------------------------------------------------------------------------------------

def test_chi2_per_source_pixel_is_one_for_noise_and_large_for_a_dipole():
    from dcrcoadd.report.scores import difference_score

    rng = np.random.default_rng(11)
    n = 64
    var_s, var_t = np.full((n, n), 4.0), np.full((n, n), 1.0)
    sources = np.zeros((n, n), bool)
    sources[16:48, 16:48] = True
    template = np.zeros((n, n))
    noise = rng.normal(0.0, np.sqrt(5.0), (n, n))  # the variance of the difference: var_s + var_t
    pure = difference_score(template + noise, var_s, template, var_t, sources)
    assert pure.chi2 == pytest.approx(1.0, abs=0.1)
    assert pure.n_source_pixels == 32 * 32 and pure.n_detections == 0
    dipole = 2000.0 * (_gaussian(n, n, 32.6, 32.0) - _gaussian(n, n, 32.0, 32.0))
    bad = difference_score(template + noise + dipole, var_s, template, var_t, sources)
    assert bad.chi2 > 2.0 and bad.n_detections == 2  # one positive and one negative footprint
    assert "χ²/src px" in bad.describe() and "2 det. (5σ)" in bad.describe()


def test_masked_edge_and_non_source_pixels_are_not_scored():
    from dcrcoadd.report.scores import EDGE_MARGIN, difference_score

    n = 40
    science = np.zeros((n, n))
    science[20, 20] = 100.0       # a residual at a source pixel that is masked
    science[2, 2] = 100.0         # one in the border
    science[30, 10] = 100.0       # one outside the sources
    sources = np.ones((n, n), bool)
    sources[30, 10] = False
    good = np.ones((n, n), bool)
    good[20, 20] = False
    score = difference_score(science, np.ones((n, n)), np.zeros((n, n)), np.zeros((n, n)), sources, good=good)
    assert score.chi2 == 0.0
    assert score.n_source_pixels == (n - 2 * EDGE_MARGIN) ** 2 - 2


def test_score_exposure_converts_to_njy_and_reads_both_masks():
    from dcrcoadd.core.exposure import Exposure
    from dcrcoadd.report.scores import score_exposure

    n = 40
    rng = np.random.default_rng(3)
    science = Exposure(image=rng.normal(0.0, 1.0, (n, n)).astype(np.float32), variance=np.ones((n, n)),
                       flux_calibration=2.0)  # 2 nJy per image unit: variance 4 nJy²
    template = Exposure(image=np.zeros((n, n), np.float32), variance=np.full((n, n), 1.0))
    y, x = np.mgrid[:n, :n]
    template.set_mask("NO_DATA", y < 20)
    science.set_mask("SAT", x < 20)
    score = score_exposure(science, template, None, np.ones((n, n), bool))
    assert score.n_source_pixels == 12 * 12  # rows >= 20 and columns >= 20, inside the margin
    assert score.chi2 == pytest.approx(4.0 / 5.0, rel=0.3)  # (2 x noise)² / (4 + 1)
    with pytest.raises(ValueError, match="same box"):
        score_exposure(science, template.subexposure(template.bbox.grow(-1)), None, np.ones((n, n), bool))


# --------------------------------------------------------------------------------------------
# coverage of the inputs' DCR
# --------------------------------------------------------------------------------------------

def _vectors(angles_deg, lengths):
    from dcrcoadd.report.coverage import DcrVector

    return [DcrVector(visit=i, airmass=1.0 + 0.1 * i, parallactic_angle=a,
                      dy=length * np.cos(np.radians(a)), dx=-length * np.sin(np.radians(a)))
            for i, (a, length) in enumerate(zip(angles_deg, lengths, strict=True))]


def test_coverage_says_whether_the_subfilters_are_constrained():
    from dcrcoadd.report.coverage import coverage

    both = coverage(_vectors([-60, -20, 30, 70], [1.0, 2.0, 1.5, 2.5]), 3)
    assert not both.one_side_of_meridian and both.constrained == "both directions"
    assert "both sides of the meridian" in both.line() and "airmass 1.00–1.30" in both.line()
    one = coverage(_vectors([40, 40, 40], [0.5, 1.5, 2.5]), 3)
    assert one.one_side_of_meridian and one.constrained == "one direction"
    assert "one side of the meridian only (hour angle > 0" in one.line()
    assert "along one direction only" in one.line()
    none = coverage(_vectors([-30, -31, -32], [2.0, 2.01, 2.02]), 3)
    assert none.one_side_of_meridian and none.constrained == "none"
    assert "hour angle < 0" in none.line() and "NOT constrained" in none.line()
    assert "nothing to separate" in coverage(_vectors([-30, 40], [0.0, 0.0]), 1).line()


# --------------------------------------------------------------------------------------------
# what a run's report is drawn from (dcrcoadd.pipeline.outputs.report_data)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A run over four warps (airmass 1.0-1.8, azimuths 60-300 deg) and a fifth, held-out warp."""
    from conftest import write_warps
    from dcrcoadd.io import read_exposure
    from dcrcoadd.pipeline import run_patch

    tmp = tmp_path_factory.mktemp("report_run")
    paths = write_warps(tmp / "warps", 5, airmasses=[1.0, 1.2, 1.5, 1.8, 1.4],
                        azimuths=[60.0, 140.0, 220.0, 300.0, 100.0])
    run = run_patch(paths[:4], None, tmp / "out")
    return run, read_exposure(paths[4])


def test_report_leaves_out_the_highest_airmass_input_when_nothing_is_held_out(solved):
    from dcrcoadd.pipeline.outputs import report_data
    from dcrcoadd.report.scores import DifferenceScore

    run, _ = solved
    data = report_data(run.dcr)
    show = data["showcase"]
    assert show["kind"] == "leave-one-out" and show["visit"] == 103  # airmass 1.8
    assert "Leave-one-out" in show["title"] and "103" in show["title"] and "re-solve" in show["title"]
    assert show["science"].shape == show["chi_dcr"].shape == show["masked"].shape == (40, 40)
    assert all(isinstance(show[k], DifferenceScore) for k in ("score_dcr", "score_baseline"))
    assert show["score_dcr"].n_source_pixels > 0
    assert data["notes"] == []
    # the left-out visit's DCR vector is marked in the coverage panel
    assert show["vector_label"] == "left out 103"
    assert show["dcr_vector"] == (data["dcr_vectors"][3].dy, data["dcr_vectors"][3].dx)


def test_report_shows_a_held_out_visit_scored_with_the_one_statistic(solved):
    from dcrcoadd.pipeline.outputs import report_data
    from dcrcoadd.report.scores import score_exposure, source_pixels

    run, science = solved
    show = report_data(run.dcr, science=science)["showcase"]
    assert show["kind"] == "held-out" and show["visit"] == 104
    assert show["title"].startswith("Held-out visit 104") and "not in the model" in show["title"]
    template = run.dcr.model.build_matched_exposure(science.visit.completed(), bbox=science.bbox,
                                                    psf=science.psf)
    coadd = run.baseline.coadd
    # these warps carry no DETECTED plane: the sources are the DCR stage's detections on the coadd
    assert not coadd.mask_of("DETECTED").any()
    model = run.dcr.model
    sources = (model.mask & np.uint32(model.mask_planes.value("DETECTED"))) != 0
    assert sources.any() and np.array_equal(show["sources"], source_pixels(coadd, sources))
    assert show["score_dcr"] == score_exposure(science, template, None, sources)
    assert show["score_baseline"] == score_exposure(science, coadd, None, sources)
    # masked pixels are those bad in either image, and they are not drawn as values
    assert np.isnan(show["chi_dcr"][show["masked"]]).all()


def test_report_data_inputs_vectors_coverage_and_threshold(solved):
    from dcrcoadd.pipeline.outputs import convergence_threshold, report_data

    run, _ = solved
    data = report_data(run.dcr)
    assert [r["visit"] for r in data["inputs"]] == [100, 101, 102, 103]
    for row in data["inputs"]:  # seeing in both units: the 1.5 px sigma Gaussian PSF at 0.2"/px
        assert row["seeing_px"] == pytest.approx(2.3548 * 1.5, rel=0.02)
        assert row["seeing_arcsec"] == pytest.approx(0.2 * row["seeing_px"], rel=0.02)
    lengths = [v.length for v in data["dcr_vectors"]]
    assert lengths[0] < 0.05 and lengths == sorted(lengths)  # zenith first, longest at airmass 1.8
    assert data["coverage_line"].startswith("Coverage: both sides of the meridian")
    assert "airmass 1.00–1.80" in data["coverage_line"]
    assert data["convergence_threshold"] is None  # the default, exact solver has no such threshold
    assert set(data["histories"]) == {f"subregion {k}" for k in run.metadata["subregions"]}
    import copy

    other = copy.deepcopy(run.baseline.config)
    other.dcr.solver = "iterative"  # it stops on the relative improvement
    assert convergence_threshold(other) == other.dcr.iterative.convergence_threshold


def test_report_without_enough_inputs_for_a_leave_one_out_says_why(tmp_path):
    from conftest import write_warps
    from dcrcoadd.config import Config, apply_override
    from dcrcoadd.pipeline import run_patch
    from dcrcoadd.pipeline.outputs import report_data

    two = Config()
    apply_override(two, "dcr.dcr_num_subfilters=2")
    run = run_patch(write_warps(tmp_path / "w2", 2), two, tmp_path / "out2")
    data = report_data(run.dcr)
    assert data["showcase"] is None
    assert len(data["notes"]) == 1 and "too few" in data["notes"][0]
    # three inputs for three subfilters: without one of them the model cannot be solved
    run = run_patch(write_warps(tmp_path / "w3", 3), None, tmp_path / "out3")
    data = report_data(run.dcr)
    assert data["showcase"] is None
    assert "without visit 102 the model cannot be solved" in data["notes"][0]
