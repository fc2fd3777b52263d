"""`run_survey`: every patch of a survey plan through `run_patch`, serially or on a Dask cluster.

::

    driver (this process)               Dask scheduler                  workers (shared storage)
    read the plan ─ PatchTask per patch  patch tasks: a PatchTask each   run_patch_task: expand the
    submit at most `in_flight` ────────▶ (paths and settings, a few KB) ─▶ inputs; skip a finished
    patch tasks; as each finishes,      tile tasks of running patches ◀─ patch; else run_patch, its
    record it and submit the next       (keys only: each tile's data     tiles sent back to the
    summary table, footprint figure     waits on its patch's worker)     cluster as nested tasks

A patch task runs on a worker and sends its baseline and DCR tiles back to the cluster
(`cluster_map`, Dask's tasks-within-tasks): while it waits it leaves its worker's thread pool,
so its tiles run on every worker and one big patch does not serialize the cluster. A worker
that dies loses only its tasks, which Dask runs again elsewhere: a lost tile is recomputed; a
lost patch task reruns on another worker, resuming its subregions from the checkpoints in its
output directory. Every task is a pure function of its inputs and every file is written
atomically, so the outputs are byte-identical to an undisturbed run's.

A patch that fails (bad input, a task that died too often) is recorded with its error and the
others go on. ``OUT/.survey/<patch>.json`` records each finished or failed patch with a
fingerprint of its settings and inputs (configuration, band, box, each input's path, size and
modification time, package versions): a rerun skips the patches finished with the same
fingerprint (status ``resumed``), reruns the failed ones and resumes interrupted ones from
their checkpoints. One survey at a time per output directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import numpy as np

from dcrcoadd.config import Config, to_toml
from dcrcoadd.errors import ConfigError, DcrCoaddError, InputError
from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.paths import check_outdir
from dcrcoadd.io.weights import weight_path
from dcrcoadd.parallel.mappers import Mapper, process_map, serial_map
from dcrcoadd.pipeline import checkpoint
from dcrcoadd.pipeline.inputs import expand_inputs
from dcrcoadd.pipeline.lock import directory_lock
from dcrcoadd.pipeline.metadata import versions
from dcrcoadd.pipeline.outputs import remove_temporaries
from dcrcoadd.pipeline.run_patch import RunResult, SettingsMismatch, run_patch
from dcrcoadd.pipeline.survey_plan import PatchSpec, SurveyPlan
from dcrcoadd.pipeline.survey_summary import false_detection_proxy, sky_corners, write_summary

log = logging.getLogger("dcrcoadd.pipeline.survey")

RECORDS = ".survey"
#: Dask priority of tile tasks: above patch tasks (0), so that running patches finish before
#: queued ones start.
TILE_PRIORITY = 10


@dataclass
class PatchOutcome:
    """What a survey records about one patch: a row of the summary table.

    ``status`` is ``done`` (computed by this run), ``resumed`` (finished by an earlier run with
    the same fingerprint; its values are that run's) or ``failed`` (``error`` says why). The
    airmass range is over the warps used; the false-detection proxy counts 5-sigma footprints
    (both signs, 3 pixels or more) in the highest-airmass warp minus its DCR-matched template
    (``false_dcr``) and minus the baseline coadd (``false_baseline``), -1 where not measured
    (`dcrcoadd.pipeline.survey_summary.false_detection_proxy`). ``ra``/``dec`` are the sky
    corners of the patch box (deg; empty when unknown). ``outputs`` names the files the patch's
    run wrote into its directory, ``output_files`` their size and modification time (ns) when it
    finished, so that a rerun does not skip a patch whose outputs were since damaged; ``n_warnings``
    counts the warnings it logged (its ``metadata.json`` lists them: a patch run on a Dask worker
    logs there, not here).
    """

    name: str
    status: str
    error: str = ""
    dcr: bool = False
    n_inputs: int = 0
    n_skipped: int = 0
    airmass_min: float = float("nan")
    airmass_max: float = float("nan")
    false_dcr: int = -1
    false_baseline: int = -1
    proxy_visit: int = -1
    proxy_airmass: float = float("nan")
    n_tiles: int = 0
    final_convergence: float = float("nan")
    box: list[int] = field(default_factory=list)
    ra: list[float] = field(default_factory=list)
    dec: list[float] = field(default_factory=list)
    seconds: float = 0.0
    n_warnings: int = 0
    fingerprint: str = ""
    outputs: list[str] = field(default_factory=list)
    output_files: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PatchOutcome:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class PatchTask:
    """Everything a worker needs to run one patch (paths and settings only: a few kilobytes)."""

    spec: PatchSpec
    config: Config
    survey_dir: str
    band: str | None = None
    clobber_config: bool = False
    command: str | None = None

    @property
    def out_dir(self) -> Path:
        return Path(self.survey_dir) / self.spec.name


@dataclass
class SurveyResult:
    """The outcome of every patch (in plan order) and the summary files written."""

    out_dir: Path
    outcomes: list[PatchOutcome]
    summary: dict[str, Path]

    @property
    def failed(self) -> list[PatchOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


# -- one patch -------------------------------------------------------------------------------------

def patch_fingerprint(task: PatchTask, sources: Sequence[str | os.PathLike]) -> str:
    """What a finished patch must match to be skipped by a rerun: settings, band, box, versions and
    the path, size and modification time of each input and of its weight and data-quality maps
    (``inputs.weights``, ``inputs.masks``)."""
    patterns = [p for p in (task.config.inputs.weights, task.config.inputs.masks) if p]
    files = []
    for source in sources:
        paths = [Path(source)]
        for pattern in patterns:
            try:  # (a file with its own variance or mask plane needs no map: it is read without one)
                paths.append(weight_path(source, pattern))
            except InputError:
                pass
        for path in paths:
            try:
                st = path.stat()
            except FileNotFoundError:
                raise InputError("file does not exist", path) from None
            files.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    box = task.spec.box
    text = json.dumps({"config": to_toml(task.config), "band": task.band,
                       "box": None if box is None else [box.x0, box.y0, box.width, box.height],
                       "inputs": files, "versions": versions()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def record_path(survey_dir: str | os.PathLike, name: str) -> Path:
    return Path(survey_dir) / RECORDS / f"{name}.json"


def write_record(survey_dir: str | os.PathLike, outcome: PatchOutcome) -> Path:
    path = record_path(survey_dir, outcome.name)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(outcome.to_dict(), indent=1))
    return path


def read_record(survey_dir: str | os.PathLike, name: str) -> PatchOutcome | None:
    """The recorded outcome of a patch; None when there is none or it cannot be read."""
    path = record_path(survey_dir, name)
    try:
        return PatchOutcome.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring the damaged survey record %s (%s); the patch runs again", path, exc)
        return None


def _finished_earlier(task: PatchTask, fingerprint: str) -> PatchOutcome | None:
    """The record of this patch when an earlier run finished it with the same fingerprint and its
    outputs are all still there."""
    record = read_record(task.survey_dir, task.spec.name)
    if record is None or record.status == "failed" or record.fingerprint != fingerprint:
        return None
    stored = checkpoint.stored_run(task.out_dir)
    if stored is None or stored.interrupted or not record.outputs:
        return None
    if not all((task.out_dir / name).exists() for name in record.outputs):
        log.warning("patch %s: some of its outputs are missing; it runs again", task.spec.name)
        return None
    # (records written before output_files was kept hold no identities to compare)
    changed = [name for name, identity in record.output_files.items()
               if _file_identity(task.out_dir / name) != identity]
    if changed:
        log.warning("patch %s: %s changed since its run finished (damaged or overwritten?); it runs again",
                    task.spec.name, ", ".join(sorted(changed)))
        return None
    return replace(record, status="resumed")


def run_patch_task(task: PatchTask, mapper: Mapper | None = None) -> PatchOutcome:
    """Run one patch of a survey and record its outcome; never raises for a bad patch.

    On a Dask worker the patch's tiles go back to the cluster (`cluster_map`); elsewhere they
    run through ``mapper`` (default serial).
    """
    t0 = time.perf_counter()
    name = task.spec.name
    try:
        sources = expand_inputs(task.spec.inputs, quiet=True)
        fingerprint = patch_fingerprint(task, sources)
    except (DcrCoaddError, OSError) as exc:
        return _record_failure(task, exc, t0)
    earlier = _finished_earlier(task, fingerprint)
    if earlier is not None:
        log.info("patch %s: finished by an earlier run with the same settings and inputs", name)
        return earlier
    if mapper is None:
        mapper = partial(cluster_map, label=name) if on_dask_worker() else serial_map
    try:
        # (the inputs as given: the run expands them again and says, in its warnings, what it skipped)
        result = run_patch(task.spec.inputs, task.config, task.out_dir, mapper=mapper, band=task.band,
                           bbox=task.spec.box, clobber_config=task.clobber_config,
                           title=f"dcrcoadd survey: patch {name}", command=task.command)
        outcome = summarize(name, result)
    except Exception as exc:  # noqa: BLE001 - any failure of one patch is recorded; the survey goes on
        if _stopped_by_shutdown(exc):
            # the survey was stopped (Ctrl-C) and its pool or cluster is closing: the patch did not fail,
            # and a rerun resumes it from its checkpoints
            log.info("patch %s: stopped (%s)", name, exc)
            raise
        return _record_failure(task, exc, t0, fingerprint)
    outcome.fingerprint = fingerprint
    outcome.seconds = time.perf_counter() - t0
    outcome.output_files = {name: _file_identity(task.out_dir / name) for name in outcome.outputs}
    write_record(task.survey_dir, outcome)
    return outcome


def _file_identity(path: Path) -> list[int]:
    try:
        st = path.stat()
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns]


def _stopped_by_shutdown(exc: BaseException) -> bool:
    """Whether ``exc`` is a pool or cluster refusing work as it closes (a stopped survey), not a failure."""
    if isinstance(exc, RuntimeError) and "after shutdown" in str(exc):  # concurrent.futures' executors
        return True
    # (Dask's: its futures cancelled, or its client closed; a lost connection stays a failure. By the
    # class or a base's name: distributed's FutureCancelledError, a CancelledError, was a failure with a
    # traceback when SIGTERM came as a patch waited on its tiles)
    if any(cls.__name__ in ("CancelledError", "ClosedClientError") for cls in type(exc).__mro__):
        return True
    # a patch task on a worker whose cluster is closing finds its client gone (SIGTERM: it was
    # recorded as failed, with a traceback)
    return isinstance(exc, ValueError) and str(exc).startswith("No clients found")


def _record_failure(task: PatchTask, exc: BaseException, t0: float, fingerprint: str = "") -> PatchOutcome:
    if isinstance(exc, (DcrCoaddError, OSError)):
        message = str(exc)
        log.debug("patch %s failed: %s", task.spec.name, message)  # (its outcome carries it: printed once)
    else:
        message = f"{type(exc).__name__}: {exc}"
        log.error("patch %s failed: %s\n%s", task.spec.name, message,
                  "".join(traceback.format_exception(exc)).rstrip())
    outcome = failed_outcome(task, message)
    outcome.fingerprint = fingerprint
    outcome.seconds = time.perf_counter() - t0
    if isinstance(exc, SettingsMismatch):
        # refused, the patch directory untouched: its record still says what it holds, and so does its
        # row of the summary (a refused rerun wrote every patch with 0 inputs and no airmass)
        earlier = read_record(task.survey_dir, task.spec.name)
        if earlier is not None and earlier.status != "failed":
            outcome = replace(earlier, status="failed", error=message, fingerprint=fingerprint,
                              seconds=outcome.seconds)
        return outcome
    try:
        write_record(task.survey_dir, outcome)
    except OSError as err:
        log.error("patch %s: cannot record its failure (%s)", task.spec.name, err)
    return outcome


def failed_outcome(task: PatchTask, message: str) -> PatchOutcome:
    """A failed patch's row, with its box and sky corners when its inputs' headers tell them."""
    box = task.spec.box
    outcome = PatchOutcome(task.spec.name, "failed", error=message,
                           box=[] if box is None else [box.x0, box.y0, box.width, box.height])
    try:  # best effort: a footprint makes the failure visible on the survey's map
        from dcrcoadd.io import read_info

        for source in expand_inputs(task.spec.inputs, quiet=True):
            try:
                info = read_info(source)
            except (DcrCoaddError, OSError):
                continue
            where = box if box is not None else info.bbox
            outcome.box = [where.x0, where.y0, where.width, where.height]
            outcome.ra, outcome.dec = sky_corners(info.wcs, where, info.bbox.origin)
            break
    except (DcrCoaddError, OSError):
        pass
    return outcome


def summarize(name: str, result: RunResult) -> PatchOutcome:
    """A finished patch's row: inputs, airmass range, tiles, convergence, false-detection proxy."""
    baseline = result.baseline
    airmass = np.array([np.nan if i.airmass is None else i.airmass for i in baseline.inputs], float)
    box = baseline.coadd.bbox
    ra, dec = sky_corners(baseline.coadd.wcs, box, baseline.coadd.origin)
    outcome = PatchOutcome(
        name, "done", dcr=result.dcr is not None, n_inputs=len(baseline.inputs),
        n_skipped=len(baseline.skipped),
        airmass_min=float(np.nanmin(airmass)) if np.isfinite(airmass).any() else float("nan"),
        airmass_max=float(np.nanmax(airmass)) if np.isfinite(airmass).any() else float("nan"),
        box=[box.x0, box.y0, box.width, box.height], ra=ra, dec=dec, n_warnings=len(result.warnings),
        outputs=sorted(str(Path(p).relative_to(result.out_dir)) for p in result.outputs.values()))
    if result.dcr is not None:
        outcome.n_tiles = len(result.metadata.get("subregions", {}))
        outcome.final_convergence = float(result.metadata.get("final_convergence", float("nan")))
        try:
            proxy = false_detection_proxy(result.dcr)
        except (DcrCoaddError, ValueError) as exc:  # a missing metric does not fail a finished patch
            log.warning("patch %s: no false-detection proxy (%s)", name, exc)
            proxy = None
        if proxy is not None:
            outcome.false_dcr, outcome.false_baseline = proxy.n_dcr, proxy.n_baseline
            outcome.proxy_visit, outcome.proxy_airmass = proxy.visit, proxy.airmass
    return outcome


# -- tiles of a patch on the cluster ---------------------------------------------------------------

def on_dask_worker() -> bool:
    """Whether this code runs inside a task on a Dask worker."""
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


def task_name(fn: Callable) -> str:
    """The name of the function a task runs, under the dispatcher's wrappers (for Dask keys)."""
    for _ in range(8):
        if isinstance(fn, partial):
            fn = fn.args[0] if fn.args and callable(fn.args[0]) else fn.func
        elif callable(getattr(fn, "fn", None)):
            fn = fn.fn
        else:
            break
    return getattr(fn, "__name__", type(fn).__name__)


#: Tries, and the pause between them (seconds), at connecting a worker's client to the scheduler.
CLIENT_TRIES = 3
CLIENT_RETRY_PAUSE = 1.0


def connect_worker_client(tries: int = CLIENT_TRIES, pause: float = CLIENT_RETRY_PAUSE) -> None:
    """Connect this Dask worker's client (which `worker_client` then reuses), trying again when the
    connection fails: on a loaded machine its start once failed inside distributed (an
    AssertionError from ``Client.start``), and the patch was recorded as failed."""
    from distributed import get_client

    for attempt in range(1, tries + 1):
        try:
            get_client()
            return
        except Exception as exc:  # noqa: BLE001 - whatever distributed raises, the last try re-raises it
            if attempt == tries:
                raise
            log.warning("connecting this worker's Dask client failed (%s: %s); trying again (%d of %d)",
                        type(exc).__name__, exc, attempt + 1, tries)
            time.sleep(pause)


def cluster_map(fn: Callable, tasks: Iterable, *, label: str = "tile") -> Iterator:
    """The mapper of a patch task on a Dask worker: its tiles as tasks on the whole cluster.

    The tile tasks are scattered into this worker's memory first, so the scheduler holds only
    their keys and states (a tile's data goes straight to the worker that runs it); they get a
    higher priority than patch tasks. While it waits, the patch task leaves the worker's thread
    pool (`worker_client`), so its own tiles, and other patches', can run on this worker too.
    Keys read ``<function>-<label>-<n>-<random>`` (``label``: the patch).
    """
    from distributed import as_completed, worker_client

    items = list(tasks)
    if not items:
        return
    prefix = f"{task_name(fn)}-{label}"
    token = uuid.uuid4().hex[:12]
    connect_worker_client()
    with worker_client() as client:
        data = client.scatter(items, hash=False)
        futures = client.map(fn, data, pure=False, priority=TILE_PRIORITY,
                             key=[f"{prefix}-{i}-{token}" for i in range(len(items))])
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:  # a failed tile, or a caller that stops early, leaves nothing behind on the cluster
            try:
                client.cancel([*futures, *data])
            except Exception as exc:  # noqa: BLE001 - a closing client (a stopped survey) cancels nothing
                log.debug("cancelling the tiles of %s: %s", label, exc)


# -- the survey ------------------------------------------------------------------------------------

def run_survey(plan: SurveyPlan, out_dir: str | os.PathLike, *, scheduler: str | None = None,
               workers: int | None = None, in_flight: int | None = None, clobber_config: bool = False,
               progress: Callable[[PatchOutcome, int, int], None] | None = None,
               command: str | None = None) -> SurveyResult:
    """Run every patch of ``plan`` into ``out_dir/<patch>``, then write the survey summary.

    Parameters
    ----------
    plan : SurveyPlan
        From `dcrcoadd.pipeline.survey_plan.read_plan`.
    out_dir : path-like
        The survey's directory (created if needed); rerunning into it skips finished patches.
    scheduler : str, optional
        Address of a Dask scheduler: patches and their tiles run as tasks on that cluster.
    workers : int, optional
        Without ``scheduler``: a local Dask cluster of ``workers`` single-threaded processes
        (without Dask installed: patches one by one, each patch's tiles on ``workers`` processes).
        Default: everything in this process, patch after patch.
    in_flight : int, optional
        On a cluster, how many patch tasks are submitted at a time (default: the cluster's
        threads), which bounds the patches held in workers' memory.
    clobber_config : bool
        Start a patch over when its directory holds a run with other settings (default: the
        patch fails, naming the differences).
    progress : callable, optional
        Called as ``progress(outcome, done, total)`` after each patch.
    command : str, optional
        The command line, recorded in each patch's ``metadata.json``.

    Returns
    -------
    SurveyResult
        ``failed`` lists the patches that failed; the others are finished.
    """
    out = Path(out_dir)
    check_outdir(out)
    with directory_lock(out):
        return _run_survey(plan, out, scheduler, workers, in_flight, clobber_config, progress, command)


def _run_survey(plan: SurveyPlan, out: Path, scheduler, workers, in_flight, clobber_config, progress,
                command) -> SurveyResult:
    remove_temporaries(out / RECORDS)
    tasks = [PatchTask(spec, plan.config, str(out.resolve()), plan.band, clobber_config, command)
             for spec in plan.patches]
    total = len(tasks)
    outcomes: dict[str, PatchOutcome] = {}

    def done(outcome: PatchOutcome) -> None:
        outcomes[outcome.name] = outcome
        if progress is not None:
            progress(outcome, len(outcomes), total)

    log.info("survey of %d patches into %s", total, out)
    if scheduler is not None:
        _on_cluster(tasks, scheduler, None, in_flight, done)
    elif workers is not None and workers > 1 and _have_dask():
        _on_cluster(tasks, None, workers, in_flight, done)
    else:
        _in_this_process(tasks, workers, done)
    ordered = [outcomes[t.spec.name] for t in tasks]
    summary = write_summary(ordered, out, title=f"dcrcoadd survey: {plan.source}")
    n_failed = sum(o.status == "failed" for o in ordered)
    log.info("survey done: %d patches, %d failed", total, n_failed)
    return SurveyResult(out, ordered, summary)


def _have_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        log.info("Dask is not installed: patches run one after another, their tiles on local processes")
        return False
    return True


def _in_this_process(tasks: list[PatchTask], workers: int | None,
                     done: Callable[[PatchOutcome], None]) -> None:
    mapper = process_map(workers) if workers is not None else serial_map
    try:
        for task in tasks:
            done(run_patch_task(task, mapper))
    finally:
        close = getattr(mapper, "close", None)
        if close is not None:
            close()


def _on_cluster(tasks: list[PatchTask], scheduler: str | None, workers: int | None, in_flight: int | None,
                done: Callable[[PatchOutcome], None]) -> None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--scheduler needs Dask distributed: pip install 'dcrcoadd[dask]'") from None
    cluster = None
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        else:
            with _interrupts_held():
                # (workers' own warnings are noise here: an "event loop was unresponsive" per long
                # patch, a "CancelledError" per patch cancelled when an interrupted survey closes;
                # the patches' warnings and errors reach the records and the summary)
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        with client:
            _submit_bounded(client, tasks, in_flight, done)
    finally:
        if cluster is not None:
            cluster.close()


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM for the block, then deliver them: a local cluster stopped as it starts
    is half made, with no handle to close it by (distributed's exit hook then failed on it with a
    traceback); started, it is closed as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):  # (only Python's own handlers raise; the others need not wait)
            previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


def _submit_bounded(client, tasks: list[PatchTask], in_flight: int | None,
                    done: Callable[[PatchOutcome], None]) -> None:
    """Keep at most ``in_flight`` patch tasks on the cluster; record each as it finishes."""
    from distributed import as_completed

    if not client.scheduler_info()["workers"]:
        log.warning("the Dask cluster has no workers yet: waiting for one")
        client.wait_for_workers(1)

    def bound() -> int:
        """``in_flight``, or the cluster's threads now (workers may come and go)."""
        if in_flight is not None:
            return in_flight
        return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))

    log.info("sending %d patch tasks to %s, %d at a time", len(tasks), client.scheduler.address, bound())
    queue = iter(tasks)
    submitted: dict[str, PatchTask] = {}
    finished = as_completed()

    def fill() -> None:
        while len(submitted) < bound():
            task = next(queue, None)
            if task is None:
                return
            future = client.submit(run_patch_task, task, key=f"patch-{task.spec.name}-{uuid.uuid4().hex[:8]}",
                                   pure=False)
            submitted[future.key] = task
            finished.add(future)

    fill()
    for future in finished:
        task = submitted.pop(future.key)
        try:
            outcome = future.result()
        except Exception as exc:  # noqa: BLE001 - the task could not run (e.g. its workers kept dying)
            outcome = _record_failure(task, exc, time.perf_counter())
        future.release()
        done(outcome)
        fill()


def exit_status(n_failed: int) -> int:
    """The command's exit status: 0 when every patch finished, else ``10 + n_failed`` (at most 110),
    apart from 2 (bad plan or usage, nothing run) and from the shell's signal statuses."""
    return 0 if n_failed == 0 else 10 + min(n_failed, 100)


__all__ = ["PatchOutcome", "PatchTask", "SurveyResult", "cluster_map", "exit_status", "run_patch_task",
           "run_survey", "summarize"]
