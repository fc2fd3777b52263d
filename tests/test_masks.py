"""Mask planes: lookup, unions, adding planes, header cards and translation between bit layouts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcrcoadd.core.masks import DEFAULT_BITS, LSST_PLANES, MaskPlanes

DESIGN_PLANES = ["BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "SUSPECT",
                 "NO_DATA", "CLIPPED", "REJECTED", "SENSOR_EDGE", "INEXACT_PSF", "BRIGHT_OBJECT", "STREAK",
                 "UNMASKEDNAN"]


def test_default_planes_are_the_lsst_ones():
    planes = MaskPlanes()
    assert set(DESIGN_PLANES) <= set(planes)
    assert set(planes) == set(LSST_PLANES)
    assert sorted(planes.values()) == list(range(len(planes)))  # distinct bits, packed from 0
    assert planes.bit("BAD") == DEFAULT_BITS["BAD"]


def test_lookup_is_case_insensitive_and_unknown_names_are_named():
    planes = MaskPlanes({"SAT": 3, "bad": 5})
    assert planes["sat"] == planes.bit("Sat") == 3
    assert planes.bit("BAD") == 5 and "BAD" in planes
    with pytest.raises(KeyError, match="STREAK"):
        planes.bit("STREAK")
    with pytest.raises(KeyError, match="NOPE"):
        planes.value("SAT", "NOPE")


def test_value_is_the_union_of_bits():
    planes = MaskPlanes({"SAT": 3, "BAD": 5, "TOP": 31})
    assert planes.value("SAT") == 8
    assert planes.value("SAT", "BAD") == planes.value(["SAT", "BAD"]) == 8 | 32
    assert planes.value("TOP") == 2**31  # bit 31 works with uint32 masks
    assert planes.value() == 0
    assert planes.value_if_present(["SAT", "MISSING", "TOP"]) == 8 | 2**31
    assert planes.names_in(8 | 2**31 | 2**20) == ["SAT", "TOP"]
    mask = np.array([0, 8, 32, 2**31, 40], dtype=np.uint32)
    np.testing.assert_array_equal(mask & np.uint32(planes.value("SAT", "TOP")) != 0,
                                  [False, True, False, True, True])


def test_with_plane_uses_lowest_free_bit_and_is_idempotent():
    planes = MaskPlanes({"A": 0, "B": 1, "C": 3})
    added = planes.with_plane("new")
    assert added.bit("NEW") == 2 and planes is not added and "NEW" not in planes
    assert added.with_plane("NEW") is added
    assert added.with_plane("a") is added
    merged = planes.merged({"X": 9, "A": 7, "Y": 0})
    assert merged.bit("A") == 0  # existing planes keep their bits
    assert {merged.bit("X"), merged.bit("Y")} == {2, 4}


def test_adding_a_plane_when_all_bits_are_used_fails():
    full = MaskPlanes({f"P{i}": i for i in range(32)})
    with pytest.raises(ValueError, match="no free mask bit"):
        full.with_plane("ONE_MORE")


@pytest.mark.parametrize("bits", [{"A": 32}, {"A": -1}, {"A": 1, "B": 1}])
def test_invalid_bit_layouts(bits):
    with pytest.raises(ValueError, match="bit"):
        MaskPlanes(bits)


def test_header_cards_round_trip():
    planes = MaskPlanes({"SAT": 3, "DETECTED_NEGATIVE": 31, "BAD": 0})
    cards = planes.to_header_cards()
    assert cards == {"MP_SAT": 3, "MP_DETECTED_NEGATIVE": 31, "MP_BAD": 0}
    header = {**cards, "NAXIS": 2, "EXTNAME": "MASK"}
    assert MaskPlanes.from_header(header) == planes
    assert MaskPlanes.from_header({"NAXIS": 2}) is None


def test_equality_and_hash():
    a, b = MaskPlanes({"A": 1, "B": 2}), MaskPlanes({"B": 2, "A": 1})
    assert a == b and hash(a) == hash(b)
    assert a != MaskPlanes({"A": 2, "B": 1})


def test_translation_of_a_foreign_layout_keeps_named_planes():
    """A mask written with different bit numbers reads as the same named planes."""
    foreign = MaskPlanes({"SAT": 31, "BAD": 4, "CR": 0, "ODD": 7})
    ours = MaskPlanes()
    rng = np.random.default_rng(0)
    where = {name: rng.random((20, 30)) < 0.3 for name in foreign}
    mask = np.zeros((20, 30), dtype=np.uint32)
    for name, w in where.items():
        mask[w] |= np.uint32(1 << foreign.bit(name))
    out = ours.translate(mask, foreign)
    assert out.dtype == np.uint32
    for name in ("SAT", "BAD", "CR"):
        np.testing.assert_array_equal(out & np.uint32(1 << ours.bit(name)) != 0, where[name])
    # ODD is unknown to ours: dropped, and no other bit is set
    assert not np.any(out & ~np.uint32(ours.value("SAT", "BAD", "CR")))
    # keeping it: merge first
    merged = ours.merged(foreign)
    out2 = merged.translate(mask, foreign)
    np.testing.assert_array_equal(out2 & np.uint32(1 << merged.bit("ODD")) != 0, where["ODD"])
    assert ours.translation(foreign) == {31: ours.bit("SAT"), 4: ours.bit("BAD"), 0: ours.bit("CR")}


def test_translation_accepts_signed_masks_with_bit_31():
    foreign = {"NO_DATA": 31}
    signed = np.array([[-(2**31), 0]], dtype=np.int32)  # bit 31 as a FITS int32 stores it
    out = MaskPlanes().translate(signed, foreign)
    np.testing.assert_array_equal(out, [[1 << DEFAULT_BITS["NO_DATA"], 0]])


def test_identity_translation_is_a_copy():
    planes = MaskPlanes()
    mask = np.arange(12, dtype=np.uint32).reshape(3, 4)
    out = planes.translate(mask, planes)
    np.testing.assert_array_equal(out, mask)
    out[0, 0] = 99
    assert mask[0, 0] == 0


layouts = st.permutations(range(32)).map(lambda p: dict(zip(DESIGN_PLANES, p[:len(DESIGN_PLANES)],
                                                            strict=True)))


@given(layouts, layouts, st.integers(0, 2**32 - 1))
def test_translation_round_trips_between_any_two_layouts(a, b, seed):
    pa, pb = MaskPlanes(a), MaskPlanes(b)
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**32, size=16, dtype=np.uint64).astype(np.uint32)
    mask = values & np.uint32(pa.value(DESIGN_PLANES))  # only bits that name a plane
    there = pb.translate(mask, pa)
    back = pa.translate(there, pb)
    np.testing.assert_array_equal(back, mask)
    for name in DESIGN_PLANES:
        np.testing.assert_array_equal(there & np.uint32(1 << pb.bit(name)) != 0,
                                      mask & np.uint32(1 << pa.bit(name)) != 0)


@pytest.mark.parametrize("source", [MaskPlanes({"SAT": 1, "BAD": 0}), MaskPlanes({"SAT": 0, "BAD": 1})])
def test_bits_naming_no_plane_are_dropped_whatever_the_layout(source):
    ours = MaskPlanes({"BAD": 0, "SAT": 1})
    mask = np.array([1 | (1 << 20), 2 | (1 << 31)], dtype=np.uint32)
    out = ours.translate(mask, source)
    assert not np.any(out & ~np.uint32(3))
    assert ours.names_in(int(out[0])) == source.names_in(1)
    assert ours.names_in(int(out[1])) == source.names_in(2)


def test_other_pipelines_plane_names_are_read_as_the_lsst_planes():
    # a warp's MP_SATURATED, MP_BADPIX, MP_NODATA, MP_COSMICRAY were planes no setting named: its
    # saturated and bad pixels went into the coadd, and the run said nothing
    planes = MaskPlanes.from_header({"MP_SATURATED": 1, "MP_BADPIX": 0, "MP_NODATA": 8, "MP_COSMICRAY": 3,
                                     "MP_DETECTED": 5})
    assert dict(planes) == {"SAT": 1, "BAD": 0, "NO_DATA": 8, "CR": 3, "DETECTED": 5}
    # both names on one bit agree (they were refused as two planes sharing a bit); on two bits, which
    # one holds the saturated pixels cannot be known (the alias's were used as good data, in silence)
    assert dict(MaskPlanes.from_header({"MP_SAT": 1, "MP_SATURATED": 1})) == {"SAT": 1}
    with pytest.raises(ValueError, match="MP_SAT = 1 and MP_SATURATED = 2 are two bits for one plane"):
        MaskPlanes.from_header({"MP_SAT": 1, "MP_SATURATED": 2})


def test_planes_that_are_no_lsst_plane_are_noted_by_info(tmp_path):
    from dcrcoadd.core.exposure import Exposure
    from dcrcoadd.io import read_info, write_exposure

    exp = Exposure(image=np.zeros((8, 8)), variance=np.ones((8, 8)),
                   mask_planes=MaskPlanes({"BAD": 0, "GLINT": 4}))
    info = read_info(write_exposure(exp, tmp_path / "e.fits"))
    assert any(n.startswith("mask: planes GLINT are not LSST planes: their pixels are used as good")
               for n in info.notes)
