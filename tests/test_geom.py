"""Box algebra, checked pixel by pixel against boolean coverage arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcrcoadd.core.geom import Box

# 50 examples per property keep the whole module well under a second or two.
FAST = settings(max_examples=50, deadline=None)
coords = st.integers(-30, 30)
sizes = st.integers(0, 25)
boxes = st.builds(Box, coords, coords, sizes, sizes)
nonempty = st.builds(Box, coords, coords, st.integers(1, 25), st.integers(1, 25))

# Pixels of every box drawn above fit inside this frame, so coverage arrays compare exactly.
FRAME = Box(-80, -80, 200, 200)


def coverage(box: Box) -> np.ndarray:
    """Boolean image of the frame with the box's pixels set."""
    out = np.zeros(FRAME.shape, dtype=bool)
    if not box.is_empty:
        out[box.slices(FRAME)] = True
    return out


@FAST
@given(boxes, boxes)
def test_intersection_is_commutative_and_inside_both(a, b):
    ab, ba = a.intersection(b), b.intersection(a)
    assert ab == ba
    assert a.contains(ab) and b.contains(ab)
    # exactly the pixels the two share
    np.testing.assert_array_equal(coverage(ab), coverage(a) & coverage(b))
    assert a.overlaps(b) == (not ab.is_empty) == b.overlaps(a)
    assert a.clip(b) == ab


@FAST
@given(boxes, boxes)
def test_union_contains_both_and_is_smallest(a, b):
    c = a.union(b)
    assert c.contains(a) and c.contains(b)
    if not (a.is_empty or b.is_empty):
        assert c == b.union(a)
        # smallest: every edge of the union is an edge of one of the two
        assert c.x0 == min(a.x0, b.x0) and c.x1 == max(a.x1, b.x1)
        assert c.y0 == min(a.y0, b.y0) and c.y1 == max(a.y1, b.y1)


@FAST
@given(boxes, st.integers(0, 10), st.integers(0, 10))
def test_grow_then_shrink_is_identity(box, nx, ny):
    assert box.grow(nx).shrink(nx) == box
    assert box.grow((nx, ny)).shrink((nx, ny)) == box
    grown = box.grow((nx, ny))
    assert grown.width == box.width + 2 * nx and grown.height == box.height + 2 * ny
    assert grown.contains(box)
    assert grown.center == box.center


def test_grow_accepts_numpy_integers():
    box = Box(0, 0, 4, 4)
    assert box.grow(np.int64(2)) == Box(-2, -2, 8, 8)
    assert box.shrink(np.int32(1)) == Box(1, 1, 2, 2)


@FAST
@given(nonempty, st.integers(0, 20))
def test_shrink_never_goes_below_zero_size(box, n):
    small = box.shrink(n)
    assert small.width >= 0 and small.height >= 0
    assert box.contains(small)
    if 2 * n < min(box.width, box.height):
        assert small.area == (box.width - 2 * n) * (box.height - 2 * n)
    else:
        assert small.is_empty


@FAST
@given(boxes, st.integers(1, 12), st.integers(1, 12))
def test_subregions_tile_the_box_exactly(box, sx, sy):
    tiles = list(box.subregions((sx, sy)))
    count = np.zeros(FRAME.shape, dtype=int)
    for t in tiles:
        assert not t.is_empty
        assert box.contains(t)
        assert t.width <= sx and t.height <= sy
        count[t.slices(FRAME)] += 1
    # every pixel of the box in exactly one tile, nothing outside it
    np.testing.assert_array_equal(count, coverage(box).astype(int))
    assert sum(t.area for t in tiles) == box.area
    # row by row: sorted by (y0, x0)
    assert [(t.y0, t.x0) for t in tiles] == sorted((t.y0, t.x0) for t in tiles)


def test_subregions_square_size_and_bad_size():
    tiles = list(Box(10, 20, 5, 3).subregions(2))
    assert tiles[0] == Box(10, 20, 2, 2) and tiles[-1] == Box(14, 22, 1, 1)
    assert len(tiles) == 3 * 2
    with pytest.raises(ValueError, match="positive"):
        list(Box(0, 0, 5, 5).subregions(0))


@FAST
@given(nonempty, st.data())
def test_slices_relative_to_another_box_index_the_right_pixels(outer, data):
    # an inner box anywhere inside the outer one
    x0 = data.draw(st.integers(outer.x0, outer.x1 - 1))
    y0 = data.draw(st.integers(outer.y0, outer.y1 - 1))
    inner = Box(x0, y0, data.draw(st.integers(0, outer.x1 - x0)), data.draw(st.integers(0, outer.y1 - y0)))
    # an array covering ``outer`` whose values encode their parent coordinates
    y, x = np.mgrid[outer.y0:outer.y1, outer.x0:outer.x1]
    values = x * 1000 + y
    sub = values[inner.slices(outer)]
    assert sub.shape == inner.shape
    yy, xx = np.mgrid[inner.y0:inner.y1, inner.x0:inner.x1]
    np.testing.assert_array_equal(sub, xx * 1000 + yy)


@FAST
@given(nonempty, nonempty)
def test_slices_of_a_box_not_inside_is_an_error(a, b):
    if not b.contains(a):
        with pytest.raises(ValueError, match="does not lie inside"):
            a.slices(b)


def test_slices_default_reference_is_origin_zero():
    arr = np.arange(100).reshape(10, 10)
    np.testing.assert_array_equal(arr[Box(2, 3, 4, 1).slices()], [[32, 33, 34, 35]])


@FAST
@given(boxes, st.integers(-5, 5), st.integers(-5, 5))
def test_shifted_and_contains_points(box, dx, dy):
    moved = box.shifted(dx, dy)
    assert moved.shape == box.shape and moved.origin == (box.x0 + dx, box.y0 + dy)
    if not box.is_empty:
        assert box.contains((box.x0, box.y0)) and box.contains((box.x1 - 0.5, box.y1 - 0.5))
        assert not box.contains((box.x1, box.y0)) and not box.contains((box.x0, box.y1))


def test_constructors_and_properties():
    b = Box.from_shape((3, 5), origin=(10, 20))
    assert b == Box(10, 20, 5, 3) and b.shape == (3, 5) and b.origin == (10, 20)
    assert (b.x1, b.y1, b.area) == (15, 23, 15)
    assert b.center == (12.0, 21.0)
    assert Box.from_corners(4, 5, 2, 9) == Box(4, 5, 0, 4)
    assert Box.parse("1,-2,3,4") == Box(1, -2, 3, 4)
    assert Box(1.0, 2.0, 3.0, 4.0) == Box(1, 2, 3, 4)
    assert isinstance(Box(np.int64(1), 0, 1, 1).x0, int)


@pytest.mark.parametrize("args", [(0.5, 0, 1, 1), (0, 0, -1, 1), (0, 0, 1, -3)])
def test_invalid_boxes(args):
    with pytest.raises(ValueError):
        Box(*args)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,3,4,5", ""])
def test_parse_errors(text):
    with pytest.raises(ValueError, match="x0,y0,width,height"):
        Box.parse(text)


def test_grow_by_a_fraction_is_an_error_not_a_truncation():
    with pytest.raises(ValueError, match="integer"):
        Box(0, 0, 3, 3).grow((1.5, 1))
