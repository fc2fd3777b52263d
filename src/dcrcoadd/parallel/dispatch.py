"""Running a stage's independent tasks through a mapper, results keyed by task index.

Every stage that splits its work (baseline weights and stacking, compare-warp's static sky and
per-warp detection, the DCR solve) builds ``{index: task}`` and calls `map_tasks` or `run_tasks`
with the run's mapper (`dcrcoadd.parallel.mappers`). A task's result depends only on the task,
and results are placed by index, so serial, process and Dask runs give identical outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from dcrcoadd.parallel.mappers import Mapper, serial_map

T = TypeVar("T")
R = TypeVar("R")


class _Keyed:
    """``fn`` applied to the task of an ``(index, task)`` pair, returning ``(index, result)``;
    picklable whenever ``fn`` is (a module-level function)."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, item: tuple[int, Any]) -> tuple[int, Any]:
        index, task = item
        return index, self.fn(task)


def map_tasks(fn: Callable[[T], R], tasks: Mapping[int, T] | Iterable[tuple[int, T]],
              mapper: Mapper | None = None) -> Iterator[tuple[int, R]]:
    """Yield ``(index, fn(task))`` for every task, in the order the mapper finishes them.

    Parameters
    ----------
    fn : callable
        A pure function of one task; module-level (picklable) for process and Dask mappers.
    tasks : mapping of int to task, or iterable of ``(index, task)`` pairs
        A lazy iterable lets `serial_map` build each task only when it runs.
    mapper : Mapper, optional
        Default `serial_map`.
    """
    items = tasks.items() if isinstance(tasks, Mapping) else tasks
    yield from (mapper or serial_map)(_Keyed(fn), items)


def run_tasks(fn: Callable[[T], R], tasks: Mapping[int, T] | Iterable[tuple[int, T]],
              mapper: Mapper | None = None, *,
              on_result: Callable[[int, R], None] | None = None) -> dict[int, R]:
    """Run every task and return ``{index: fn(task)}``, sorted by index.

    ``on_result(index, result)`` is called as each result arrives (progress, checkpoints).
    """
    results: dict[int, R] = {}
    for index, result in map_tasks(fn, tasks, mapper):
        results[index] = result
        if on_result is not None:
            on_result(index, result)
    return dict(sorted(results.items()))


def threads_per_task(mapper: Mapper | None, n_tasks: int) -> int:
    """Threads each of ``n_tasks`` tasks may use so that a local process pool's cores are all busy
    when it has fewer tasks than workers (a small patch is one DCR tile): ``workers // n_tasks``,
    at least 1; 1 for serial and Dask mappers (a cluster's workers have their own threads)."""
    workers = getattr(mapper, "workers", 1) or 1
    return max(1, workers // max(n_tasks, 1))
