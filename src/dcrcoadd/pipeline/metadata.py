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


class _Forward(logging.Handler):
    """Hands the records of at least ``level`` on to ``handlers`` (the quieted logger's own), then to
    its parents' handlers as propagation would (``propagate``)."""

    def __init__(self, logger: logging.Logger, level: int, handlers: list[logging.Handler], propagate: bool):
        super().__init__(level)
        self.logger, self.handlers, self.propagate = logger, handlers, propagate

    def emit(self, record: logging.LogRecord) -> None:
        for handler in self.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)
        parent = self.logger.parent if self.propagate else None
        while parent is not None:
            for handler in parent.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
            parent = parent.parent if parent.propagate else None


_quieted_lock = threading.Lock()
_quieted = {"runs": 0, "restore": None}


@contextlib.contextmanager
def _warnings_logged(logger: logging.Logger) -> Iterator[None]:
    """Let ``logger`` log warnings while the block runs, for the collectors, even where the caller
    has set it quieter (a notebook's ``getLogger("dcrcoadd").setLevel(logging.ERROR)`` left a run's
    recorded warnings empty); its handlers, and those it propagates to, still see only what they
    asked for. Runs in several threads share one change, undone when the last ends."""
    with _quieted_lock:
        if _quieted["runs"] == 0:
            _quieted["restore"] = _lower(logger)
        _quieted["runs"] += 1
    try:
        yield
    finally:
        with _quieted_lock:
            _quieted["runs"] -= 1
            if _quieted["runs"] == 0 and _quieted["restore"] is not None:
                _quieted["restore"]()
                _quieted["restore"] = None


def _lower(logger: logging.Logger) -> Callable[[], None] | None:
    """Set ``logger`` to WARNING with its handlers and propagation behind a `_Forward` at its old
    level; returns what undoes it (None when it logs warnings already, or logging is disabled)."""
    level = logger.getEffectiveLevel()
    if level <= logging.WARNING or logging.root.manager.disable >= logging.WARNING:
        return None
    saved_level, saved_propagate = logger.level, logger.propagate
    handlers = [h for h in logger.handlers if not isinstance(h, WarningCollector)]
    forward = _Forward(logger, level, handlers, saved_propagate)
    for handler in handlers:
        logger.removeHandler(handler)
    logger.addHandler(forward)
    logger.propagate = False
    logger.setLevel(logging.WARNING)

    def restore() -> None:
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate
        logger.removeHandler(forward)
        for handler in handlers:
            logger.addHandler(handler)

    return restore


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
