"""What a run records about itself (``metadata.json``): inputs, versions, timings and warnings.

Warnings are kept per subregion as well as for the run: a subregion solved in a worker
process logs there, so its warnings travel back with its outcome (and are shown here), and
a resumed subregion's warnings come from its checkpoint. The run's list is therefore the
same whether it ran serially, in processes, or was interrupted and resumed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from importlib import metadata as importlib_metadata

log = logging.getLogger("dcrcoadd.pipeline.metadata")

#: Packages whose versions a run records (and whose change makes a rerun start over).
VERSIONED = ("dcrcoadd", "numpy", "scipy", "astropy", "galsim", "speclite", "reproject", "matplotlib")

_REPLAYED = "dcrcoadd_replayed"
_active = threading.local()


def versions() -> dict[str, str]:
    """Installed versions of dcrcoadd and the packages its results depend on."""
    out = {}
    for name in VERSIONED:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


class WarningCollector(logging.Handler):
    """Keeps the WARNING (and above) messages of the ``dcrcoadd`` loggers as ``name: message``.

    While a subregion's collector is active in a thread, the other collectors ignore that
    thread's messages: they belong to the subregion.
    """

    def __init__(self, keep_replayed: bool = True, thread: int | None = None):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.keep_replayed = keep_replayed
        self.thread = thread

    def emit(self, record: logging.LogRecord) -> None:
        owner = getattr(_active, "collector", None)
        if owner is not None and owner is not self:
            return
        if self.thread is not None and record.thread != self.thread:
            return
        if getattr(record, _REPLAYED, False) and not self.keep_replayed:
            return
        self.messages.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def collecting_warnings(*, exclusive: bool = False, keep_replayed: bool = True,
                        this_thread: bool = False) -> Iterator[list[str]]:
    """Collect the warnings logged under ``dcrcoadd`` while the block runs.

    ``exclusive``: other collectors do not see this thread's warnings meanwhile (a subregion's
    warnings are its own, not the run's). ``keep_replayed``: also keep warnings replayed from
    worker processes (the run-level collector does not: they are counted with their subregion).
    ``this_thread``: keep only the warnings logged in this thread (runs of several patches in
    one process's threads, as survey tasks on a Dask worker, each keep their own).
    """
    collector = WarningCollector(keep_replayed, threading.get_ident() if this_thread else None)
    logger = logging.getLogger("dcrcoadd")
    previous = getattr(_active, "collector", None)
    with _warnings_logged(logger):
        logger.addHandler(collector)
        if exclusive:
            _active.collector = collector
        try:
            yield collector.messages
        finally:
            logger.removeHandler(collector)
            if exclusive:
                _active.collector = previous


class _AtLeast(logging.Filter):
    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


class _Propagate(logging.Handler):
    """Hands a record on to the handlers of ``logger``'s parents, as propagation would."""

    def __init__(self, logger: logging.Logger, level: int):
        super().__init__(level)
        self.logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        parent = self.logger.parent
        while parent is not None:
            for handler in parent.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
            if not parent.propagate:
                break
            parent = parent.parent


@contextlib.contextmanager
def _warnings_logged(logger: logging.Logger) -> Iterator[None]:
    """Let ``logger`` log warnings while the block runs, for the collectors, even where the caller
    has set it quieter (a notebook's ``getLogger("dcrcoadd").setLevel(logging.ERROR)`` left a run's
    recorded warnings empty); its handlers, and those it propagates to, still see only what they
    asked for."""
    level = logger.getEffectiveLevel()
    if level <= logging.WARNING or logging.root.manager.disable >= logging.WARNING:
        yield
        return
    saved_level, saved_propagate = logger.level, logger.propagate
    quiet = _AtLeast(level)
    handlers = [h for h in logger.handlers if not isinstance(h, WarningCollector)]
    for handler in handlers:
        handler.addFilter(quiet)
    forward = _Propagate(logger, level) if saved_propagate else None
    logger.setLevel(logging.WARNING)
    if forward is not None:
        logger.propagate = False
        logger.addHandler(forward)
    try:
        yield
    finally:
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate
        if forward is not None:
            logger.removeHandler(forward)
        for handler in handlers:
            handler.removeFilter(quiet)


def _solve_keeping_warnings(fn: Callable, task) -> tuple[object, list[str], int]:
    """Run one task and return its result with the warnings it logged and this process's id.

    Module-level (and used through `functools.partial`) so that it pickles to worker processes.
    """
    with collecting_warnings(exclusive=True) as messages:
        result = fn(task)
    return result, messages, os.getpid()


def keeping_warnings(mapper: Callable[[Callable, Iterable], Iterable],
                     sink: dict[int, list[str]]) -> Callable[[Callable, Iterable], Iterator]:
    """Wrap a mapper of keyed tasks so each result's warnings land in ``sink[index]``.

    Warnings logged in another process are logged again here (marked, so that the run-level
    collector does not count them twice), so the console shows them as in a serial run.
    """

    def mapped(fn: Callable, tasks: Iterable) -> Iterator:
        # fn returns (index, result) pairs (`dcrcoadd.parallel.map_tasks`)
        for result, messages, pid in mapper(partial(_solve_keeping_warnings, fn), tasks):
            sink[result[0]] = messages
            if pid != os.getpid():
                for message in messages:
                    name, _, text = message.partition(": ")
                    logging.getLogger(name).warning("%s", text, extra={_REPLAYED: True})
            yield result

    mapped.workers = getattr(mapper, "workers", 1)  # (`dcrcoadd.parallel.threads_per_task` reads it)
    return mapped


def all_warnings(run: list[str], subregions: dict[int, list[str]]) -> list[str]:
    """The run's warnings, then each subregion's (in index order, prefixed with the subregion)."""
    return list(run) + [f"subregion {index}: {message}" for index in sorted(subregions)
                        for message in subregions[index]]


def inputs_rows(baseline) -> list[dict]:
    """The baseline coadd's inputs table as JSON-ready rows."""
    return [dict(zip(row.colnames, [v.item() if hasattr(v, "item") else v for v in row], strict=True))
            for row in baseline.inputs_table()]
