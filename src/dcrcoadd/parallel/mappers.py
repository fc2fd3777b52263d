"""Ways to run independent subregion solves: in-process, local processes, or a Dask cluster.

Each returns a ``map``-like function ``mapper(fn, tasks)`` yielding results as
they finish (in any order); callers key results by the task's index, so the
outputs do not depend on the executor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from dcrcoadd.errors import ConfigError

log = logging.getLogger("dcrcoadd.parallel.mappers")

Mapper = Callable[[Callable, Iterable], Iterator]


def serial_map(fn: Callable, tasks: Iterable) -> Iterator:
    """Run tasks one after the other in this process."""
    for task in tasks:
        yield fn(task)


def process_map(workers: int) -> Mapper:
    """Run tasks in ``workers`` local processes (each holds one subregion of all warps)."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        return serial_map

    def mapper(fn: Callable, tasks: Iterable) -> Iterator:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # "spawn" keeps workers independent of the parent's threads (astropy, BLAS).
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(fn, t) for t in tasks]
            for future in as_completed(futures):
                yield future.result()

    return mapper


def dask_map(address: str) -> Mapper:
    """Run tasks on an existing Dask distributed scheduler at ``address`` (the ``dask`` extra)."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ConfigError("--scheduler needs Dask distributed: pip install 'dcrcoadd[dask]'") from None

    def mapper(fn: Callable, tasks: Iterable) -> Iterator:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
        try:
            tasks = list(tasks)
            log.info("sending %d subregions to the Dask cluster at %s", len(tasks), address)
            futures = client.map(fn, tasks, pure=False)
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.close()

    return mapper
