"""`dcrcoadd.pipeline.run_patch`, called directly: outputs, resume, refusal, clean failures, and
damaged checkpoints (reported, discarded and recomputed; never a crash)."""

import json
import logging
import shutil

import numpy as np
import pytest
from astropy.io import fits

from conftest import write_warps
from dcrcoadd.config import Config, apply_override
from dcrcoadd.core.geom import Box
from dcrcoadd.errors import InputError
from dcrcoadd.io import read_exposure
from dcrcoadd.parallel import map_tasks
from dcrcoadd.parallel.mappers import process_map
from dcrcoadd.pipeline import checkpoint, run_patch
from dcrcoadd.pipeline.metadata import keeping_warnings

FITS = ("coadd.fits", "dcr_coadd.fits", "model.fits", "subfilter_0.fits", "subfilter_1.fits",
        "subfilter_2.fits")
RUN_FILES = {*FITS, "report.png", "config.toml", "metadata.json"}


def config(*overrides):
    c = Config()
    for text in ("coadd.subregion_size=[16,16]", *overrides):
        apply_override(c, text)
    return c


def files(directory):
    return {p.name for p in directory.iterdir()}


def same_fits(a, b, names=FITS):
    for name in names:
        if name == "coadd.fits":  # astropy's checksum comment carries the time of writing
            continue
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


class Interrupt(Exception):
    pass


def stop_after(n):
    """A progress callback that interrupts the run after ``n`` solved subregions."""
    solved = []

    def progress(event):
        if event.outcome is not None:
            solved.append(event.outcome.index)
            if len(solved) >= n:
                raise Interrupt

    return progress


@pytest.fixture(scope="module")
def warps(tmp_path_factory):
    return write_warps(tmp_path_factory.mktemp("warps"), 4, shape=(40, 40))


@pytest.fixture(scope="module")
def reference(warps, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return run_patch(warps, config(), out)


def test_a_run_writes_exactly_its_outputs_and_metadata(reference):
    out = reference.out_dir
    assert files(out) == RUN_FILES  # no checkpoints left
    assert set(reference.outputs) == {"coadd", "dcr_coadd", "model", "subfilter_0", "subfilter_1",
                                      "subfilter_2", "report", "config", "metadata"}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["dcr"] is True and meta["n_subfilters"] == 3 and meta["resumed_subregions"] == []
    assert len(meta["inputs"]) == 4 and len(meta["input_paths"]) == 4
    assert set(meta["timings_s"]) >= {"baseline_coadd", "dcr_model", "write_outputs"}
    assert len(meta["subregions"]) == 9 and "numpy" in meta["versions"]
    assert meta["warnings"] == reference.warnings


def test_in_memory_exposures_give_the_same_outputs(warps, reference, tmp_path):
    run = run_patch([read_exposure(p) for p in warps], config(), tmp_path)
    same_fits(reference.out_dir, tmp_path)
    assert run.metadata["input_paths"][0].startswith("exposure[0] (visit 100) sha256:")


def test_interrupted_run_resumes_to_identical_outputs(warps, reference, tmp_path):
    with pytest.raises(Interrupt):
        run_patch(warps, config(), tmp_path, progress=stop_after(3))
    assert checkpoint.count(tmp_path) == 3 and not (tmp_path / "model.fits").exists()
    events = []
    run = run_patch(warps, config(), tmp_path, progress=events.append)
    first = next(e for e in events if e.stage == "dcr")
    assert (first.done, first.total) == (3, 9)
    assert run.resumed == [0, 1, 2] and run.metadata["resumed_subregions"] == [0, 1, 2]
    same_fits(reference.out_dir, tmp_path)
    assert files(tmp_path) == RUN_FILES


def test_a_failure_while_writing_leaves_no_finished_looking_outputs(warps, reference, tmp_path, monkeypatch):
    # the report fails (or Ctrl-C arrives) after the coadds and the model are written: they are removed
    # with it, the checkpoints stay, and the rerun resumes to the same outputs
    import sys

    rp = sys.modules["dcrcoadd.pipeline.run_patch"]  # (the package's name is the function)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(rp, "write_report", fail)
        with pytest.raises(KeyboardInterrupt):
            run_patch(warps, config(), tmp_path)
    assert files(tmp_path) == {checkpoint.CHECKPOINT_DIR} and checkpoint.count(tmp_path) == 9
    run = run_patch(warps, config(), tmp_path)
    assert run.resumed == list(range(9))
    same_fits(reference.out_dir, tmp_path)
    assert files(tmp_path) == RUN_FILES


def test_an_input_rewritten_since_the_interruption_is_not_resumed_from(tmp_path, caplog):
    # the same file names with other pixels: the checkpoints solved from the old pixels are dropped
    from astropy.io import fits

    paths = write_warps(tmp_path / "w", 4, shape=(40, 40))
    with pytest.raises(Interrupt):
        run_patch(paths, config(), tmp_path / "out", progress=stop_after(3))
    assert checkpoint.count(tmp_path / "out") == 3
    with fits.open(paths[1], mode="update") as hdus:
        hdus["IMAGE"].data[10:20, 10:20] += 500.0
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.pipeline.run_patch"):
        run = run_patch(paths, config(), tmp_path / "out")
    assert run.resumed == [] and "input files changed since the interrupted run" in caplog.text
    fresh = run_patch(paths, config(), tmp_path / "fresh")
    same_fits(fresh.out_dir, tmp_path / "out")


def test_other_settings_are_refused_unless_clobbered(warps, tmp_path):
    with pytest.raises(Interrupt):
        run_patch(warps, config(), tmp_path, progress=stop_after(2))
    with pytest.raises(InputError, match=r"--clobber-config.*dcr\.iterative\.max_num_iter: \(default\) -> 4"):
        run_patch(warps, config("dcr.iterative.max_num_iter=4"), tmp_path)
    assert checkpoint.count(tmp_path) == 2  # refused: checkpoints left alone
    run = run_patch(warps, config("dcr.iterative.max_num_iter=4"), tmp_path, clobber_config=True)
    assert run.resumed == []
    with pytest.raises(InputError, match="box"):  # a finished run is a stored run too
        run_patch(warps, config("dcr.iterative.max_num_iter=4"), tmp_path, bbox=Box(0, 0, 32, 32))


def test_clobbering_to_fewer_subfilters_leaves_no_stale_subfilter(warps, tmp_path):
    run_patch(warps, config("dcr.dcr_num_subfilters=4"), tmp_path)
    assert "subfilter_3.fits" in files(tmp_path)
    run = run_patch(warps, config(), tmp_path, clobber_config=True)
    assert files(tmp_path) == RUN_FILES
    assert set(run.outputs) >= {"subfilter_2"} and "subfilter_3" not in run.outputs


def test_a_users_files_named_like_outputs_are_not_deleted(warps, tmp_path):
    # a fresh output directory already holding the user's own files with output-like names: the
    # run writes its 3 subfilters and must not take subfilter_7.fits for a stale one of its own
    (tmp_path / "subfilter_7.fits").write_text("my notes")
    np.zeros((4, 4), np.float32).tofile(tmp_path / "raw.bin")
    fits.PrimaryHDU(np.ones((4, 4), np.float32)).writeto(tmp_path / "subfilter_5.fits")
    run_patch(warps, config(), tmp_path)
    assert files(tmp_path) == RUN_FILES | {"subfilter_7.fits", "subfilter_5.fits", "raw.bin"}
    assert (tmp_path / "subfilter_7.fits").read_text() == "my notes"
    # a baseline-only rerun removes its own earlier DCR outputs, and still not the user's
    run_patch(warps[:1], config(), tmp_path, clobber_config=True)
    assert files(tmp_path) == {"coadd.fits", "config.toml", "metadata.json", "subfilter_7.fits",
                               "subfilter_5.fits", "raw.bin"}


def test_a_baseline_only_rerun_removes_the_dcr_outputs(warps, tmp_path):
    run_patch(warps, config(), tmp_path)
    run = run_patch(warps[:1], config(), tmp_path, clobber_config=True)
    assert run.dcr is None
    assert files(tmp_path) == {"coadd.fits", "config.toml", "metadata.json"}
    assert json.loads((tmp_path / "metadata.json").read_text())["dcr"] is False


def test_a_failure_before_the_first_subregion_leaves_nothing(warps, tmp_path):
    out = tmp_path / "out"

    def fail_at_dcr_start(event):
        if event.stage == "dcr":
            raise Interrupt

    with pytest.raises(Interrupt):
        run_patch(warps, config(), out, progress=fail_at_dcr_start)
    assert not out.exists()
    # the corrected rerun, with other settings, is not blocked
    run_patch(warps, config("dcr.iterative.max_num_iter=4"), out)
    assert files(out) == RUN_FILES


def test_a_manifest_without_checkpoints_does_not_block_other_settings(warps, tmp_path):
    # what a run killed between writing its manifest and its first checkpoint leaves behind
    checkpoint.write_manifest(tmp_path, checkpoint.manifest("[dcr.iterative]\nmax_num_iter = 4\n", [], {}))
    run_patch(warps, config(), tmp_path)
    assert files(tmp_path) == RUN_FILES


def test_problems_found_before_the_first_pixel(warps, tmp_path):
    events = []
    no_band = write_warps(tmp_path / "g", 3, band_name="g")  # FILTER only: no wavelengths
    with pytest.raises(InputError, match="--instrument") as err:
        run_patch(no_band, config(), tmp_path / "a", progress=events.append)
    assert str(no_band[0]) in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        run_patch(warps, config(), tmp_path / "file" / "out", progress=events.append)
    with pytest.raises(InputError, match="no warps in band 'r'.*g"):
        run_patch(warps, config(), tmp_path / "b", band="r", progress=events.append)
    with pytest.raises(InputError, match="underdetermined"):
        run_patch(warps[:1], config(), tmp_path / "c", dcr_only=True, progress=events.append)
    with pytest.raises(InputError, match="bright-object mask file does not exist"):
        run_patch(warps, config("coadd.do_mask_bright_objects=true",
                                f"coadd.bright_object_mask_file={json.dumps(str(tmp_path / 'none.ecsv'))}"),
                  tmp_path / "d", progress=events.append)
    no_psf = [read_exposure(p) for p in warps]
    no_psf[2].psf = None
    with pytest.raises(InputError, match=r"exposure\[2\] \(visit 102\): has no PSF"):
        run_patch(no_psf, config("inputs.measure_psf=false"), tmp_path / "e", progress=events.append)
    assert events == []  # no stage started
    assert files(tmp_path) == {"g", "file"}


def subregion_warnings(run):
    return [w for w in run.warnings if w.startswith("subregion ")]


def test_warnings_of_worker_processes_and_resumed_subregions_are_kept(warps, tmp_path):
    iterative = "dcr.solver=iterative"  # it warns per subregion without sources
    expected = subregion_warnings(run_patch(warps, config(iterative), tmp_path / "s"))
    assert expected  # the three-star field leaves some subregions without sources
    parallel = run_patch(warps, config(iterative), tmp_path / "p", mapper=process_map(2))
    assert subregion_warnings(parallel) == expected
    with pytest.raises(Interrupt):
        run_patch(warps, config(iterative), tmp_path / "r", progress=stop_after(8))
    resumed = run_patch(warps, config(iterative), tmp_path / "r")
    assert subregion_warnings(resumed) == expected
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert [w for w in meta["warnings"] if w.startswith("subregion ")] == expected


class Task:
    def __init__(self, index):
        self.index = index


def warn_and_return(task):
    logging.getLogger("dcrcoadd.test").warning("warned in task %d", task.index)
    return task


def test_keeping_warnings_brings_back_worker_warnings(caplog):
    sink = {}
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        mapper = keeping_warnings(process_map(2), sink)
        results = dict(map_tasks(warn_and_return, {0: Task(0), 1: Task(1)}, mapper))
    assert sorted(r.index for r in results.values()) == [0, 1]
    assert sink == {0: ["dcrcoadd.test: warned in task 0"], 1: ["dcrcoadd.test: warned in task 1"]}
    # and shown here, as a serial run would show them
    assert sorted(r.getMessage() for r in caplog.records) == ["warned in task 0", "warned in task 1"]


def test_a_run_keeps_its_warnings_when_the_package_logger_is_quieted(warps, tmp_path):
    # a notebook's getLogger("dcrcoadd").setLevel(ERROR) quiets the console; the run's recorded
    # warnings (RunResult.warnings, metadata.json) were left empty by it
    expected = run_patch(warps, config("dcr.solver=iterative"), tmp_path / "a").warnings
    assert expected
    seen = []

    class Shown(logging.Handler):
        def emit(self, record):
            seen.append(record)

    package, root = logging.getLogger("dcrcoadd"), logging.getLogger()
    propagate = package.propagate
    shown, own = Shown(), Shown()
    root.addHandler(shown)
    package.addHandler(own)
    package.setLevel(logging.ERROR)
    try:
        run = run_patch(warps, config("dcr.solver=iterative"), tmp_path / "b")
        logging.getLogger("dcrcoadd.test").error("an error is still shown")
    finally:
        package.setLevel(logging.NOTSET)
        root.removeHandler(shown)
        package.removeHandler(own)
    assert run.warnings == expected
    assert json.loads((tmp_path / "b" / "metadata.json").read_text())["warnings"] == expected
    # what the caller asked for, and no more, reached its handlers (twice: the package's and the root's)
    assert [r.getMessage() for r in seen] == ["an error is still shown"] * (2 if propagate else 1)
    assert package.level == logging.NOTSET and package.propagate == propagate


# -- damaged checkpoints ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def interrupted(warps, tmp_path_factory):
    """An output directory holding the checkpoints of subregions 0-2 of an interrupted run."""
    out = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(Interrupt):
        run_patch(warps, config(), out, progress=stop_after(3))
    assert checkpoint.count(out) == 3
    return out


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_a_bit(path):
    with np.load(path) as npz:
        pixels = npz["models"].tobytes()
    data = bytearray(path.read_bytes())
    start = bytes(data).find(pixels)  # (np.savez stores the arrays uncompressed)
    assert start >= 0
    data[start + len(pixels) // 2] ^= 0x10  # inside the model pixels
    path.write_bytes(bytes(data))


def empty(path):
    path.write_bytes(b"")


def alter(path):
    """A well-formed checkpoint whose pixels are not those its digest was computed from."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["models"] = arrays["models"] + np.float32(1.0)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def no_digest(path):
    """A checkpoint as written before checkpoints carried a digest."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "sha256"}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("damage", [truncate, flip_a_bit, empty, alter, no_digest])
@pytest.mark.parametrize("clobber", [False, True])
def test_a_damaged_checkpoint_is_reported_and_recomputed(warps, reference, interrupted, tmp_path, caplog,
                                                         damage, clobber):
    out = tmp_path / "out"
    shutil.copytree(interrupted, out)
    damaged = out / checkpoint.CHECKPOINT_DIR / "subregion_00001.npz"
    damage(damaged)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        run = run_patch(warps, config(), out, clobber_config=clobber)
    reports = [r.getMessage() for r in caplog.records if "damaged checkpoint" in r.getMessage()]
    assert len(reports) == 1 and str(damaged) in reports[0]
    assert run.resumed == [0, 2]  # subregion 1 recomputed
    for name in FITS[1:]:
        assert (out / name).read_bytes() == (reference.out_dir / name).read_bytes(), name
    meta = json.loads((out / "metadata.json").read_text())
    assert any("damaged checkpoint" in w for w in meta["warnings"])
    assert not (out / checkpoint.CHECKPOINT_DIR).exists()


def test_a_damaged_manifest_discards_the_checkpoints(warps, reference, interrupted, tmp_path, caplog):
    out = tmp_path / "out"
    shutil.copytree(interrupted, out)
    (out / checkpoint.CHECKPOINT_DIR / checkpoint.MANIFEST).write_text('{"config": ')
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        run = run_patch(warps, config(), out)
    assert any("manifest is damaged" in r.getMessage() for r in caplog.records)
    assert run.resumed == []
    assert (out / "model.fits").read_bytes() == (reference.out_dir / "model.fits").read_bytes()


def test_save_and_load_round_trip(interrupted, tmp_path):
    path = interrupted / checkpoint.CHECKPOINT_DIR / "subregion_00000.npz"
    restored = checkpoint.load(path)
    assert restored.outcome.index == 0 and restored.outcome.history
    copy = checkpoint.save(tmp_path, restored.outcome, ["x: y"])
    again = checkpoint.load(copy)
    np.testing.assert_array_equal(again.outcome.models, restored.outcome.models)
    assert again.warnings == ["x: y"]
    with pytest.raises(checkpoint.DamagedCheckpoint, match="holds subregion 0"):
        checkpoint.load(copy.rename(copy.with_name("subregion_00004.npz")))


def test_serial_runs_report_each_solver_iteration(warps, tmp_path):
    events = []
    run_patch(warps, config(), tmp_path, progress=events.append)
    iterations = [e for e in events if e.stage == "iteration"]
    assert iterations and all("convergence" in e.record and e.tile is not None for e in iterations)
    # the records are the ones the metadata keeps
    per_tile = {}
    for e in iterations:
        per_tile.setdefault(e.tile, []).append(e.record["iteration"])
    assert all(its == sorted(its) for its in per_tile.values())


def test_sigterm_while_writing_outputs_leaves_no_finished_looking_model(warps, tmp_path):
    # what a batch system sends before killing a job: it stopped the process mid-output, leaving a
    # model.fits without the run's metadata.json (and template took that model)
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    script = (
        "import sys, time\n"
        "import dcrcoadd.pipeline.run_patch as rp\n"
        "def slow(*args, **kwargs):\n"
        "    time.sleep(60)\n"
        "rp.write_metadata = slow\n"
        "from dcrcoadd.cli import main\n"
        f"sys.exit(main(['assemble', *{[str(w) for w in warps]!r}, '--out', {str(out)!r}, '-q',"
        " '--set', 'coadd.subregion_size=[16, 16]']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "model.fits").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (out / "model.fits").exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "terminated" in err
    assert not (out / "model.fits").exists() and not (out / "metadata.json").exists()
    assert any(out.glob(".checkpoints/*"))  # (a rerun resumes)


def test_a_rerun_removes_the_temporary_files_of_an_attempt_killed_mid_write(warps, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference.out_dir, out)
    (out / ".report.png.0123456789ab.tmp").write_bytes(b"half a png")
    (out / "metadata.json").unlink()  # (the killed attempt never finished)
    run_patch(warps, config(), out)
    assert not list(out.glob(".*.tmp")) and files(out) == RUN_FILES


def test_a_second_run_into_a_busy_directory_is_refused_and_a_dead_runs_lock_taken_over(warps, tmp_path,
                                                                                       caplog):
    import socket
    import subprocess
    import sys

    from dcrcoadd.pipeline.lock import LOCK_NAME

    out = tmp_path / "out"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(f"{socket.gethostname()} {live.pid}\n")
        with pytest.raises(InputError, match=f"another dcrcoadd run \\(process {live.pid} on"):
            run_patch(warps, config(), out)
        assert files(out) == {LOCK_NAME}  # (nothing of its own written)
    finally:
        live.kill()
        live.wait()
    # that process is gone now: its lock is stale
    with caplog.at_level(logging.INFO, logger="dcrcoadd"):
        run = run_patch(warps, config(), out)
    assert files(out) == RUN_FILES and any("no longer exists" in r.getMessage() for r in caplog.records)
    assert not any("lock" in w for w in run.warnings)  # (a stopped run is no warning about this one)

    # a directory where the lock goes is refused in one line (it was a warning, then IsADirectoryError)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / LOCK_NAME).mkdir()
    with pytest.raises(InputError, match="is not a lock file dcrcoadd wrote"):
        run_patch(warps, config(), tmp_path / "odd")


def test_a_rerun_into_the_inputs_directory_skips_its_own_outputs(warps, reference, tmp_path, caplog):
    # (the rerun read its own coadd.fits back as a warp and failed: "no visit metadata")
    from dcrcoadd.io.products import product_of

    here = tmp_path / "warps"
    here.mkdir()
    for path in warps:
        shutil.copy(path, here)
    run_patch([str(here)], config(), here)
    assert {product_of(here / name) for name in FITS} == {"baseline coadd", "DCR coadd", "DCR model",
                                                           "subfilter coadd"}
    assert all(product_of(p) is None for p in warps)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.pipeline.inputs"):
        run = run_patch([str(here)], config(), here, clobber_config=True)
    assert "skipped 6 file(s) dcrcoadd wrote" in caplog.text
    assert len(run.dcr.baseline.inputs) == len(warps)
    same_fits(here, reference.out_dir)
    # named one by one (as the shell expands warps/*.fits), they are skipped too
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.pipeline.inputs"):
        run = run_patch(sorted(str(p) for p in here.glob("*.fits")), config(), here, clobber_config=True)
    assert "skipped 6 file(s) dcrcoadd wrote" in caplog.text and len(run.dcr.baseline.inputs) == len(warps)
    with pytest.raises(InputError, match="every file is one dcrcoadd wrote"):
        run_patch([str(here / "model.fits")], config(), tmp_path / "other")


def test_a_visit_with_only_a_boresight_geometry_is_warned_about_once(warps, tmp_path, caplog):
    # (once by the up-front check of the headers, once more by the DCR stage)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        run = run_patch(warps, config(), tmp_path)
    said = [m for m in run.warnings if "has no time or boresight RA/Dec" in m]
    assert len(said) == len(warps) == len({m.split()[2] for m in said})
    assert caplog.text.count("has no time or boresight RA/Dec") == len(warps)


def test_runs_in_threads_keep_their_warnings_while_the_logger_is_quieted():
    # run A ended while run B went on: A restored the quiet level, and B's later warnings were lost
    import threading

    from dcrcoadd.pipeline.metadata import collecting_warnings

    package = logging.getLogger("dcrcoadd")
    handler = logging.NullHandler()
    package.addHandler(handler)
    handlers, propagate = list(package.handlers), package.propagate
    package.setLevel(logging.ERROR)
    a_in, a_out, b_go = threading.Event(), threading.Event(), threading.Event()
    kept = {}

    def run_a():
        with collecting_warnings(this_thread=True):
            a_in.set()
            b_go.wait()
        a_out.set()

    def run_b():
        a_in.wait()
        with collecting_warnings(this_thread=True) as messages:
            logging.getLogger("dcrcoadd.test").warning("before A ends")
            b_go.set()
            a_out.wait()
            logging.getLogger("dcrcoadd.test").warning("after A ends")
        kept["b"] = list(messages)

    try:
        threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert kept["b"] == ["dcrcoadd.test: before A ends", "dcrcoadd.test: after A ends"]
        assert package.level == logging.ERROR and package.propagate == propagate
        assert package.handlers == handlers
    finally:
        package.setLevel(logging.NOTSET)
        package.removeHandler(handler)


def test_an_input_with_a_non_ascii_name_is_coadded(warps, tmp_path):
    # (visité.fits failed writing the coadd's INPUTS table, after the whole solve, and every rerun)
    from astropy.table import Table

    here = tmp_path / "in"
    here.mkdir()
    for i, path in enumerate(warps):
        shutil.copy(path, here / (f"visité_{i}.fits" if i == 1 else f"w_{i}.fits"))
    run_patch([str(here)], config("artifacts.do_write_artifact_masks=true"), tmp_path / "out")
    names = list(Table.read(tmp_path / "out" / "coadd.fits", hdu="INPUTS")["name"])
    assert any(n.endswith("visit\\xe9_1.fits") for n in names)


def test_a_warp_named_twice_is_used_once_with_a_warning(warps, tmp_path, caplog):
    # (a file and its directory: "repeats visit 100 of" the same file, refused)
    from dcrcoadd.pipeline.inputs import expand_inputs

    directory = str(warps[0].parent)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        found = expand_inputs([str(warps[0]), directory, str(warps[0])])
    assert sorted(map(str, found)) == sorted(map(str, warps)) and len(found) == len(warps)
    assert any("2 file(s) given twice, used once" in r.getMessage() for r in caplog.records)


def test_a_box_writes_the_box_and_reads_round_it(warps, tmp_path):
    # the DCR stage reads the warps' pixels beyond the box (its margin); every file holds the box only
    box = Box(8, 6, 20, 24)
    run = run_patch(warps, config(), tmp_path / "dcr", bbox=box)
    for name in FITS:
        exposure = read_exposure(tmp_path / "dcr" / name)
        assert exposure.bbox == box, name
    assert all(Box(*s["box"]).area and box.contains(Box(*s["box"]))
               for s in run.metadata["subregions"].values())
    # a baseline-only run (one warp) cuts its margin too
    run_patch(warps[:1], config(), tmp_path / "one", bbox=box)
    assert read_exposure(tmp_path / "one" / "coadd.fits").bbox == box
