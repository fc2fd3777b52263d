"""The dispatcher: tiles in a fixed order, results keyed by task index whatever the mapper."""

import pytest

from dcrcoadd.core.geom import Box
from dcrcoadd.errors import ConfigError
from dcrcoadd.parallel import ProcessMapper, make_mapper, map_tasks, process_map, run_tasks, serial_map, tiles


def test_tiles_cover_the_patch_row_by_row_with_clipped_buffers():
    patch = Box(5, 7, 50, 30)
    parts = tiles(patch, (20, 16), buffer=3)
    assert [t.index for t in parts] == list(range(6))
    assert [t.box for t in parts] == list(patch.subregions((20, 16)))  # the order checkpoints rely on
    assert parts[0].box == Box(5, 7, 20, 16) and parts[1].box.x0 == 25 and parts[3].box.y0 == 23
    assert sum(t.box.area for t in parts) == patch.area
    assert parts[0].buffered == Box(5, 7, 23, 19)  # clipped at the patch's corner
    assert parts[4].buffered == Box(22, 20, 26, 17)
    assert all(patch.contains(t.buffered) and t.buffered.contains(t.box) for t in parts)
    assert all(t.buffered == t.box for t in tiles(patch, 16))
    with pytest.raises(ValueError):
        tiles(patch, 16, buffer=-1)
    # a box cut from a larger grid: the same tiles, their buffers reaching beyond it (the DCR stage's
    # margin), clipped to where there are data
    grown = tiles(patch, (20, 16), buffer=3, within=Box(0, 0, 56, 100))
    assert [t.box for t in grown] == [t.box for t in parts]
    assert grown[0].buffered == Box(2, 4, 26, 22) and grown[5].buffered == Box(42, 20, 14, 20)


def test_even_tiles_split_each_side_into_equal_parts_without_thin_strips():
    # LSST's layout leaves a 48-px strip of a 2048-px side at 2000; the even cut halves it
    patch = Box(0, 0, 2048, 4096)
    assert [t.box.width for t in tiles(patch, 2000)][:2] == [2000, 48]
    parts = tiles(patch, 2000, buffer=48, even=True)
    assert len(parts) == 6 and [t.index for t in parts] == list(range(6))
    assert {t.box.width for t in parts} == {1024} and {t.box.height for t in parts} <= {1365, 1366}
    assert sum(t.box.area for t in parts) == patch.area
    assert parts[1].box.x0 == 1024 and parts[2].box.y0 == 1365  # row by row
    assert parts[0].buffered == Box(0, 0, 1072, 1413)
    odd = Box(3, 5, 101, 37)
    cut = tiles(odd, (40, 40), even=True)
    assert [t.box.width for t in cut] == [33, 34, 34] and [t.box.height for t in cut] == [37] * 3
    assert [t.box for t in tiles(odd, 200, even=True)] == [odd]


def backwards(fn, tasks):
    return (fn(t) for t in reversed(list(tasks)))


def test_results_are_keyed_by_index_whatever_order_they_finish_in():
    tasks = {3: -3, 0: 0, 7: -7}
    seen = []
    out = run_tasks(abs, tasks, backwards, on_result=lambda i, r: seen.append(i))
    assert out == {0: 0, 3: 3, 7: 7} and list(out) == [0, 3, 7]
    assert seen == [7, 0, 3]
    assert dict(map_tasks(abs, ((i, -i) for i in range(4)))) == {0: 0, 1: 1, 2: 2, 3: 3}


def test_process_mapper_reuses_its_pool_and_matches_serial():
    tasks = {i: -i for i in range(6)}
    with ProcessMapper(2) as mapper:
        first = run_tasks(abs, tasks, mapper)
        pool = mapper._pool
        assert run_tasks(abs, tasks, mapper) == first == run_tasks(abs, tasks, serial_map)
        assert mapper._pool is pool
    assert mapper._pool is None


def test_make_mapper_follows_workers_and_scheduler():
    assert make_mapper() is serial_map and make_mapper(1) is serial_map
    assert isinstance(make_mapper(2), ProcessMapper)
    with pytest.raises(ConfigError, match="at least 1"):
        process_map(0)
