"""A saturated core without a SAT bit, a flat top, is found and masked (`dcrcoadd.ops.flat_top`)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from dcrcoadd.io import read_exposure
from dcrcoadd.ops.flat_top import flat_tops
from dcrcoadd.template.build import build_templates
from test_flux_scale import star_model, stars


def star_field(noise=1.0, flux=3000.0):
    return stars(np.random.default_rng(1), 1.5, noise=noise, flux=flux)


def test_a_star_clipped_at_one_level_is_found_whole():
    image = star_field(flux=3e5)
    level = 0.4 * image.max()
    clipped = image > level
    image[clipped] = level
    found = flat_tops(image, np.ones(image.shape), np.ones(image.shape, bool))
    assert found is not None and np.count_nonzero(clipped) >= 5
    np.testing.assert_array_equal(found, clipped)


@pytest.mark.parametrize("case", ["a cosmic ray on it", "its rim below the threshold"])
def test_a_clipped_star_is_found_whole_with_a_cosmic_ray_on_it_or_its_rim_faint(case):
    image = stars(np.random.default_rng(1), 2.0, flux=3e5)
    level = 0.4 * image.max()
    clipped = image > level
    image[clipped] = level
    variance = np.ones(image.shape)
    if case == "a cosmic ray on it":  # (its neighbours on the plateau have a brighter neighbour)
        ys, xs = np.nonzero(clipped)
        ray = (ys[len(ys) // 2], xs[len(xs) // 2])
        image[ray] = 1.5 * level  # (enclosed by the plateau: masked with it)
    else:  # (its west rim's noise is larger: 40 sigma there)
        variance[clipped & ~np.roll(clipped, 1, axis=1)] = (level / 40.0) ** 2
    found = flat_tops(image, variance, np.ones(image.shape, bool))
    assert found is not None
    np.testing.assert_array_equal(found, clipped)


@pytest.mark.parametrize("case", ["float noise", "integer counts", "noiseless, centred on corners"])
def test_honest_images_have_no_flat_top(case):
    if case == "float noise":
        image = star_field(flux=3e5)
    elif case == "integer counts":  # (noise of 3 counts: ties between neighbours are common)
        image = np.round(star_field(noise=3.0, flux=3e6) + 1000.0) - 1000.0
    else:  # a 2x2 tie at every peak
        y, x = np.mgrid[:64, :64]
        image = sum(np.exp(-0.5 * ((y - y0) ** 2 + (x - x0) ** 2) / 1.5**2)
                    for y0, x0 in [(10.5, 10.5), (30.5, 40.5), (50.5, 20.5)]) * 1e4
    assert flat_tops(image, np.ones(image.shape), np.ones(image.shape, bool)) is None


def test_a_science_exposure_with_an_unmasked_saturated_star_is_masked_with_a_warning(tmp_path, caplog):
    model_path, science_path = star_model(tmp_path)

    with fits.open(science_path, mode="update") as hdul:
        image = hdul["IMAGE"].data
        level = np.float32(0.5 * image.max())
        clipped = image > level
        image[clipped] = level
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        [outcome] = build_templates(model_path, [science_path], tmp_path / "out", diff=True)
    assert outcome.ok
    [message] = [r.getMessage() for r in caplog.records if "flat-topped" in r.getMessage()]
    n = ndimage.label(clipped, structure=np.ones((3, 3)))[1]  # (every star of the field is clipped)
    assert message.startswith(f"{science_path}: {n} flat-topped cores far above the noise "
                              f"({np.count_nonzero(clipped)} connected pixels of exactly one value")
    diff = read_exposure(outcome.diff_path)
    np.testing.assert_array_equal(diff.mask_of("SAT"), clipped)

    # a bad column of one value, masked BAD already (the simulator's), is no saturated core: it was
    # warned about as one and masked SAT as well
    caplog.clear()
    with fits.open(science_path, mode="update") as hdul:
        hdul["IMAGE"].data[:] = np.where(clipped, 0.0, hdul["IMAGE"].data)  # (the stars' cores gone)
        hdul["IMAGE"].data[:, 14] = 2000.76
        bad = 1 << int(hdul["MASK"].header["MP_BAD"])
        hdul["MASK"].data[:, 14] |= bad
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        build_templates(model_path, [science_path], tmp_path / "column")
    assert not [r for r in caplog.records if "flat-topped" in r.getMessage()]
