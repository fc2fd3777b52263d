"""Ways to run independent tasks: in this process, in local processes, or on a Dask cluster.

A mapper is a ``map``-like callable ``mapper(fn, tasks)`` that yields ``fn(task)`` for every
task as it finishes, in any order. Nothing else in the package depends on the order: callers go
through `dcrcoadd.parallel.dispatch`, which keys every result by its task's index, so outputs do
not depend on the mapper. ``fn`` and the tasks must be picklable for the process and Dask
mappers (module-level functions; tasks that carry file paths rather than big arrays).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as futures_completed

from dcrcoadd.errors import ConfigError

log = logging.getLogger("dcrcoadd.parallel.mappers")

Mapper = Callable[[Callable, Iterable], Iterator]


def serial_map(fn: Callable, tasks: Iterable) -> Iterator:
    """Run tasks one after the other in this process (each task is built only when it runs)."""
    for task in tasks:
        yield fn(task)


#: How often (seconds) a pool worker checks that the process that started it is still there.
PARENT_POLL_S = 1.0


def _exit_with_parent(parent: int) -> None:
    """In a pool worker: end this process once ``parent`` (the pool's owner) is gone. A parent killed
    outright (SIGKILL, out of memory) cannot stop its pool, whose workers then ran on, holding their
    memory, long after (each blocked on a result no one would read)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="dcrcoadd-parent-watch", daemon=True).start()


class ProcessMapper:
    """Run tasks in ``workers`` local processes.

    The pool starts on first use and is kept for later calls, so the stages of one run (weights,
    static sky, artifacts, stacking, DCR) pay the workers' start-up once. `close` (or leaving a
    ``with`` block) stops it; an unclosed pool stops when the mapper is garbage-collected or the
    interpreter exits.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, fn: Callable, tasks: Iterable) -> Iterator:
        tasks = list(tasks)
        if len(tasks) == 1:
            # one task gains nothing from another process: run it here, without starting the pool or
            # pickling its pixels (it may use the idle cores as threads, `threads_per_task`)
            yield fn(tasks[0])
            return
        if self._pool is None:
            # "spawn" keeps workers independent of the parent's threads (astropy, BLAS).
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_exit_with_parent, initargs=(os.getpid(),))
        futures = [self._pool.submit(fn, t) for t in tasks]
        try:
            for future in futures_completed(futures):
                yield future.result()
        finally:  # a failed task, or a caller that stops early, leaves no queued work behind
            for future in futures:
                future.cancel()

    def close(self) -> None:
        """Stop the worker processes (a later call starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> ProcessMapper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def process_map(workers: int) -> Mapper:
    """Run tasks in ``workers`` local processes (`ProcessMapper`); one worker means `serial_map`."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        return serial_map
    return ProcessMapper(workers)


def scheduler_address(text: str) -> str:
    """``--scheduler``'s value, checked: a Dask address (``tcp://host:port``, ``host:port``, another
    protocol's ``proto://...``); `argparse.ArgumentTypeError` naming what is wrong otherwise. Without
    Dask distributed the address is passed on (connecting then says the extra is missing)."""
    text = text.strip()
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import get_backend
    except ImportError:
        return text
    try:
        scheme, location = parse_address(text)
        get_backend(scheme)  # (an unknown protocol, e.g. http://)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a Dask scheduler address ({exc}); expected e.g. "
                                         "tcp://host:8786") from None
    return text


def dask_map(address: str) -> Mapper:
    """Run tasks on an existing Dask distributed scheduler at ``address`` (the ``dask`` extra).

    Each call connects, and disconnects when its tasks are done, so no client outlives a stage
    (the cluster may go away before the run's mapper is dropped). Workers must be able to import
    dcrcoadd and read the warps' paths.
    """
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ConfigError("--scheduler needs Dask distributed: pip install 'dcrcoadd[dask]'") from None

    def mapper(fn: Callable, tasks: Iterable) -> Iterator:
        try:
            client = Client(address, timeout="10s")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
        try:
            tasks = list(tasks)
            log.info("sending %d tasks to the Dask cluster at %s", len(tasks), address)
            futures = client.map(fn, tasks, pure=False)
            for future in as_completed(futures):
                yield future.result()
        finally:  # closing the client releases every task it still holds
            client.close()

    return mapper


def make_mapper(workers: int | None = None, scheduler: str | None = None) -> Mapper:
    """The mapper for ``--workers N`` / ``--scheduler ADDRESS``: Dask if a scheduler is given, else
    ``workers`` local processes, else (``workers`` None or 1) `serial_map`."""
    if scheduler:
        return dask_map(scheduler)
    if workers is not None:
        return process_map(workers)
    return serial_map
