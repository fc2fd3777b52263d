"""`dcrcoadd survey`: plans, many patches serially and on a Dask cluster with identical outputs, a
worker killed mid-run, a patch with a corrupt input, resume of finished patches and tiles."""

import json
import logging
import os
import shutil
import signal

import numpy as np
import pytest
from astropy.table import Table

from conftest import random_exposure, tan_wcs, write_warps
from dcrcoadd.cli import main
from dcrcoadd.core.exposure import shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.errors import InputError
from dcrcoadd.io import write_exposure
from dcrcoadd.pipeline import checkpoint, run_patch
from dcrcoadd.pipeline.survey import exit_status, run_survey
from dcrcoadd.pipeline.survey_plan import patch_boxes, read_plan, tile_inputs

GOOD = ("p0", "p1", "p2", "p3")
# How a run went, not what it computed: its timings, the subregions it took from checkpoints, and
# its warnings (physics.dcr warns once per visit and process, so only a process's first patch has them).
VOLATILE = ("timings_s", "command", "warnings", "resumed_subregions")


def stable(meta: dict) -> dict:
    """metadata.json without what depends on the clock or on what ran earlier in the process."""
    meta = {k: v for k, v in meta.items() if k not in VOLATILE}
    meta["subregions"] = {k: {f: v for f, v in entry.items() if f not in ("seconds", "warnings")}
                          for k, entry in meta.get("subregions", {}).items()}
    for entry in meta["subregions"].values():  # the exact solver times each of its steps
        entry["history"] = [{f: v for f, v in rec.items() if f != "seconds"}
                            for rec in entry.get("history", [])]
    return meta


def same_patch_outputs(a, b):
    """Every file of two patch directories byte for byte (metadata.json apart from timings)."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert "dcr_coadd.fits" in names and "report.png" in names
    for name in names:
        if name == "metadata.json":
            assert stable(json.loads((a / name).read_text())) == stable(json.loads((b / name).read_text()))
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four patches of 32x40 px side by side on one grid of warps, and a fifth whose inputs include a
    file that is not FITS."""
    root = tmp_path_factory.mktemp("survey")
    write_warps(root / "warps", 4, shape=(40, 128))
    (root / "broken").mkdir()
    (root / "broken" / "warp_9.fits").write_bytes(b"SIMPLE  = T" + bytes(200))
    patches = "".join(f'[[patch]]\nname = "p{i}"\ninputs = ["warps/*.fits"]\nbox = [{32 * i}, 0, 32, 40]\n\n'
                      for i in range(4))
    patches += ('[[patch]]\nname = "bad"\ninputs = ["warps/*.fits", "broken/warp_9.fits"]\n'
                'box = [0, 0, 32, 40]\n')
    plan = root / "plan.toml"
    plan.write_text('set = ["coadd.subregion_size=[16,16]"]\n\n' + patches)
    return plan


@pytest.fixture(scope="module")
def serial(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    assert main(["survey", str(data), "--out", str(out), "-q"]) == exit_status(1) == 11
    return out


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


# -- plans -----------------------------------------------------------------------------------------

def test_toml_and_csv_plans_list_patches_with_paths_relative_to_the_plan(tmp_path):
    (tmp_path / "base.toml").write_text("[dcr]\ndcr_num_subfilters = 4\n")
    (tmp_path / "plan.toml").write_text(
        'config = "base.toml"\nset = ["coadd.subregion_size=[16,16]"]\nband = "g"\n'
        '[[patch]]\nname = "a"\ninputs = "w/*.fits"\n'
        '[[patch]]\nname = "b"\ninputs = ["w/b*.fits", "/abs/x.fits"]\nbox = [1, 2, 30, 40]\n')
    plan = read_plan(tmp_path / "plan.toml", overrides=["dcr.dcr_num_subfilters=5"])
    assert [p.name for p in plan.patches] == ["a", "b"]
    assert plan.patches[0].inputs == (str(tmp_path / "w/*.fits"),) and plan.patches[0].box is None
    assert plan.patches[1].inputs[1] == "/abs/x.fits" and plan.patches[1].box == Box(1, 2, 30, 40)
    assert plan.config.dcr.dcr_num_subfilters == 5 and tuple(plan.config.coadd.subregion_size) == (16, 16)
    assert plan.band == "g"

    (tmp_path / "plan.csv").write_text('# a comment\nname,inputs,box\n'
                                       'c,w/c*.fits;w/d.fits,"0,0,20,20"\nd,w/*.fits,\n')
    plan = read_plan(tmp_path / "plan.csv")
    assert [(p.name, len(p.inputs), p.box) for p in plan.patches] == [("c", 2, Box(0, 0, 20, 20)),
                                                                      ("d", 1, None)]
    # a spreadsheet's byte-order mark is not part of the first column's name
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + b"name,inputs\nc,w/c*.fits\n")
    assert [p.name for p in read_plan(tmp_path / "bom.csv").patches] == ["c"]


@pytest.mark.parametrize("text, message", [
    ('[[patch]]\nname = "a"\ninputs = "x"\nbxo = [0, 0, 1, 1]\n', "unknown key(s) bxo"),
    ('[[patch]]\nname = "a"\ninputs = "x"\n[[patch]]\nname = "a"\ninputs = "y"\n', "'a' is used twice"),
    ('[[patch]]\nname = "a"\ninputs = "x"\n[[patch]]\nname = "A"\ninputs = "y"\n',
     "'a' and 'A' differ only in case"),
    ('[[patch]]\nname = "../a"\ninputs = "x"\n', "must be a directory name"),
    ('[[patch]]\nname = "survey.csv"\ninputs = "x"\n', "is the name of the survey's summary file"),
    ('set = ["dcr.nope=3"]\n[[patch]]\nname = "a"\ninputs = "x"\n', "set: unknown configuration field"),
    ('[[patch]]\nname = "a"\ninputs = "x"\nbox = [0, 0, 0, 5]\n', "is empty"),
    ('[[patch]]\nname = "a"\ninputs = []\n', "inputs must be a non-empty list"),
    ('band = "g"\n', "lists no patches"),
    ('[tiling]\ninputs = "x"\npatch_size = 0\n', "patch_size must be a positive integer"),
    # TOML's booleans are not numbers (patch_size = true made 1x1 patches)
    ('[tiling]\ninputs = "x"\npatch_size = true\n', "patch_size must be a positive integer"),
    ('[tiling]\ninputs = "x"\npatch_size = 64\noverlap = true\n', "overlap must be a non-negative"),
    # (four identical patches, where the footprint clipped them)
    ('[tiling]\ninputs = "x"\npatch_size = [96, 64]\noverlap = 32\n', "overlap 32 must be less than half"),
    # a value the configuration refuses, from the plan's set: the plan is named
    ('set = ["dcr.dcr_num_subfilters=0"]\n[[patch]]\nname = "a"\ninputs = "x"\n',
     "set: dcr.dcr_num_subfilters must be an integer >= 2"),
    ('[[patch]]\nname = "a"\ninputs = "x"\nbox = [true, 0, 5, 5]\n', "bad box"),
    # a name no file system takes (it failed at the run, after the plan was accepted)
    (f'[[patch]]\nname = "{"a" * 300}"\ninputs = "x"\n', "the name has 300 characters"),
    ('[[patch]\n', "not valid TOML"),
])
def test_a_bad_plan_is_refused_naming_the_plan_and_the_patch(tmp_path, text, message):
    (tmp_path / "plan.toml").write_text(text)
    with pytest.raises(InputError, match="plan.toml") as err:
        read_plan(tmp_path / "plan.toml")
    assert message in str(err.value)


def test_a_plan_that_is_not_text_is_refused_in_one_line(tmp_path):
    # (a warp given as the plan was a UnicodeDecodeError traceback)
    (tmp_path / "w.fits").write_bytes(b"SIMPLE  =                    T" + bytes(range(128, 256)) * 20)
    with pytest.raises(InputError, match="w.fits: is not a text file: a survey plan is TOML or CSV"):
        read_plan(tmp_path / "w.fits")


def test_a_tiling_cuts_the_footprint_into_overlapping_patches():
    got = patch_boxes(Box(10, 20, 250, 100), (100, 60), overlap=8)
    assert [(ix, iy) for ix, iy, _ in got] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert got[0][2] == Box(10, 20, 108, 68)  # grown by 8 px, clipped to the footprint
    assert got[4][2] == Box.from_corners(102, 72, 218, 120)
    assert got[5][2] == Box.from_corners(202, 72, 260, 120)  # the last column is cut by the footprint


def test_a_tiling_gives_each_patch_the_warps_that_overlap_it(tmp_path):
    parent = tan_wcs(crpix=(1.0, 1.0))
    for name, origin in (("a", (0, 0)), ("b", (30, 0)), ("c", (70, 20))):
        write_exposure(random_exposure((30, 40), origin, wcs=shift_wcs(parent, -origin[0], -origin[1])),
                       tmp_path / f"{name}.fits")
    patches = tile_inputs([str(tmp_path / "*.fits")], (50, 25), overlap=5)
    members = {p.name: sorted(os.path.basename(f) for f in p.inputs) for p in patches}
    # footprint 110x50 px: columns of 50, 50 and 10 px, rows of 25 px, each grown by 5 px
    assert members == {"patch_0_0": ["a.fits", "b.fits"], "patch_1_0": ["b.fits", "c.fits"],
                       "patch_2_0": ["c.fits"], "patch_0_1": ["a.fits", "b.fits"],
                       "patch_1_1": ["b.fits", "c.fits"], "patch_2_1": ["c.fits"]}
    assert patches[0].box == Box(0, 0, 55, 30) and patches[5].box == Box.from_corners(95, 20, 110, 50)

    write_exposure(random_exposure((30, 40), (0, 0), wcs=tan_wcs(crval=(150.2, 2.2))), tmp_path / "d.fits")
    with pytest.raises(InputError, match="d.fits.*one grid"):
        tile_inputs([str(tmp_path / "*.fits")], (50, 25))


# -- running a survey ------------------------------------------------------------------------------

def test_a_corrupt_input_fails_its_patch_only_and_the_summary_counts_it(data, serial, capsys):
    table = Table.read(serial / "survey.ecsv")
    assert list(table["name"]) == [*GOOD, "bad"]
    assert list(table["status"]) == ["done"] * 4 + ["failed"]
    bad = table[table["name"] == "bad"][0]
    assert "warp_9.fits" in bad["error"] and not (serial / "bad").exists()
    assert bad["ra"] > 0  # its footprint is drawn from the readable inputs' headers
    good = table[:4]
    assert all(good["n_inputs"] == 4) and all(good["n_tiles"] == 6)
    assert np.allclose(good["airmass_min"], 1.0) and np.allclose(good["airmass_max"], 1.8)
    assert all(good["false_dcr"] >= 0) and all(good["proxy_visit"] == 103)
    # (4 warps for 3 subfilters: each patch warns; on a Dask worker only the count says so here)
    assert [len(json.loads((serial / p / "metadata.json").read_text())["warnings"]) for p in GOOD] \
        == list(good["n_warnings"]) and all(good["n_warnings"] > 0)
    assert (serial / "footprint.png").stat().st_size > 0 and (serial / "survey.csv").exists()
    record = json.loads((serial / ".survey" / "bad.json").read_text())
    assert record["status"] == "failed" and "warp_9.fits" in record["error"]


def test_a_rerun_skips_finished_patches_and_retries_failed_ones(data, serial, capsys):
    before = {p: (serial / p / "model.fits").stat().st_mtime_ns for p in GOOD}
    assert main(["survey", str(data), "--out", str(serial)]) == 11
    captured = capsys.readouterr()
    assert "5 patches: 0 done, 4 finished earlier, 1 failed" in captured.err
    assert "patch bad: failed" in captured.err and "patch p0: resumed" in captured.out
    assert "warning(s) in p0/metadata.json" in captured.out
    assert captured.err.count("warp_9.fits") == 1  # (printed once: it was logged as well)
    assert {p: (serial / p / "model.fits").stat().st_mtime_ns for p in GOOD} == before
    assert list(Table.read(serial / "survey.ecsv")["status"]) == ["resumed"] * 4 + ["failed"]

    # a finished patch that lost an output runs again, to the same bytes
    lost = (serial / "p3" / "subfilter_1.fits").read_bytes()
    (serial / "p3" / "subfilter_1.fits").unlink()
    assert main(["survey", str(data), "--out", str(serial), "-q"]) == 11
    assert list(Table.read(serial / "survey.ecsv")["status"]) == ["resumed"] * 3 + ["done", "failed"]
    assert (serial / "p3" / "subfilter_1.fits").read_bytes() == lost

    # ... and so does one whose output was damaged since (a truncated copy, a full disk)
    model = (serial / "p2" / "model.fits").read_bytes()
    (serial / "p2" / "model.fits").write_bytes(model[:len(model) // 2])
    assert main(["survey", str(data), "--out", str(serial)]) == 11
    assert "patch p2: model.fits changed since its run finished" in capsys.readouterr().err
    statuses = list(Table.read(serial / "survey.ecsv")["status"])
    assert statuses == ["resumed"] * 2 + ["done", "resumed", "failed"]
    assert (serial / "p2" / "model.fits").read_bytes() == model


def test_an_interrupted_patch_resumes_its_tiles_from_checkpoints(data, serial, tmp_path):
    plan = read_plan(data)
    plan.patches = [p for p in plan.patches if p.name == "p1"]

    class Stop(Exception):
        pass

    def stop_after_two(event):
        if event.outcome is not None and event.outcome.index >= 1:
            raise Stop

    spec = plan.patches[0]
    with pytest.raises(Stop):
        run_patch(list(spec.inputs), plan.config, tmp_path / "p1", bbox=spec.box, progress=stop_after_two,
                  title="dcrcoadd survey: patch p1")
    assert checkpoint.count(tmp_path / "p1") >= 1
    result = run_survey(plan, tmp_path)
    assert [o.status for o in result.outcomes] == ["done"]
    meta = json.loads((tmp_path / "p1" / "metadata.json").read_text())
    assert meta["resumed_subregions"]
    same_patch_outputs(serial / "p1", tmp_path / "p1")


def test_a_cluster_gives_the_serial_outputs(data, serial, cluster, tmp_path):
    from distributed import Client, get_task_stream

    with Client(cluster.scheduler_address) as client, get_task_stream(client) as stream:
        result = run_survey(read_plan(data), tmp_path, scheduler=cluster.scheduler_address)
    assert [o.status for o in result.outcomes] == ["done"] * 4 + ["failed"]
    # patches are tasks, and so are their baseline and DCR tiles
    ran = {record["key"].split("-")[0] for record in stream.data}
    assert {"patch", "mean_variance", "static_sky_tile", "detect_warp_candidates", "stack_tile",
            "solve_tile"} <= ran
    for name in GOOD:
        same_patch_outputs(serial / name, tmp_path / name)
    assert "warp_9.fits" in result.outcomes[-1].error
    serial_warnings = Table.read(serial / "survey.ecsv")["n_warnings"][:4]
    assert [o.n_warnings for o in result.outcomes[:4]] == list(serial_warnings)


def test_a_worker_killed_mid_run_loses_only_its_tasks(data, serial, cluster, tmp_path):
    from distributed import Client

    killed = {}
    with Client(cluster.scheduler_address) as client:

        def kill_a_busy_worker(outcome, done, total):
            if killed:
                return
            # patches still run (all five were submitted at once and each takes a second or more):
            # kill the worker process that holds the most of their tasks
            pids = client.run(os.getpid)
            busy = client.processing()
            victim = max(pids, key=lambda address: len(busy.get(address, ())))
            killed.update(pid=pids[victim], tasks=list(busy.get(victim, ())))
            os.kill(pids[victim], signal.SIGKILL)

        result = run_survey(read_plan(data), tmp_path, scheduler=cluster.scheduler_address, in_flight=5,
                            progress=kill_a_busy_worker)
        assert killed["tasks"], "the killed worker was running nothing"
        assert killed["pid"] not in client.run(os.getpid).values()
    assert [o.status for o in result.outcomes] == ["done"] * 4 + ["failed"]
    for name in GOOD:
        same_patch_outputs(serial / name, tmp_path / name)


def test_a_patch_whose_input_directory_is_missing_fails_in_one_line(tmp_path):
    (tmp_path / "plan.toml").write_text('[[patch]]\nname = "a"\ninputs = ["nowhere/warps"]\n')
    [outcome] = run_survey(read_plan(tmp_path / "plan.toml"), tmp_path / "out").outcomes
    assert outcome.status == "failed" and "Errno" not in outcome.error
    assert outcome.error == f"{tmp_path / 'nowhere' / 'warps'}: file does not exist"


def _client_gone():
    return ValueError("No clients found\nStart a client and point it to the scheduler address")


def _tiles_cancelled():
    from distributed.client import FutureCancelledError

    return FutureCancelledError("mean_variance-only-5", reason=None)


@pytest.mark.parametrize("stop", [_client_gone, _tiles_cancelled])
def test_a_patch_stopped_by_its_closing_cluster_is_not_recorded_as_failed(tmp_path, monkeypatch, stop):
    # SIGTERM to `survey --workers 2`: the patch tasks on the workers found their client gone, or their
    # tiles' futures cancelled, and were recorded as failed, each with a traceback; they were stopped,
    # and a rerun resumes them
    import dcrcoadd.pipeline.survey as survey

    if stop is _tiles_cancelled:
        pytest.importorskip("distributed")
    write_warps(tmp_path / "w", 2, shape=(20, 20))
    (tmp_path / "plan.csv").write_text(f"name,inputs\nonly,{tmp_path / 'w'}\n")
    [spec] = read_plan(tmp_path / "plan.csv").patches
    error = stop()

    def stopped(*args, **kwargs):
        raise error

    monkeypatch.setattr(survey, "run_patch", stopped)
    task = survey.PatchTask(spec, read_plan(tmp_path / "plan.csv").config, str(tmp_path / "out"))
    with pytest.raises(type(error)):
        survey.run_patch_task(task)
    assert survey.read_record(tmp_path / "out", "only") is None


def test_exit_status_counts_failed_patches():
    assert [exit_status(n) for n in (0, 1, 2, 100, 5000)] == [0, 11, 12, 110, 110]


def test_survey_settings_reach_every_patch(tmp_path):
    write_warps(tmp_path / "w", 2, shape=(20, 20))
    (tmp_path / "plan.csv").write_text(f"name,inputs\nonly,{tmp_path / 'w'}\n")
    assert main(["survey", str(tmp_path / "plan.csv"), "--out", str(tmp_path / "out"), "-q",
                 "--set", "dcr.dcr_num_subfilters=2", "--set", "coadd.subregion_size=[20,20]"]) == 0
    assert "dcr_num_subfilters = 2" in (tmp_path / "out" / "only" / "config.toml").read_text()
    assert sorted(p.name for p in (tmp_path / "out" / "only").glob("subfilter_*.fits")) == \
        ["subfilter_0.fits", "subfilter_1.fits"]


def test_runs_in_threads_of_one_process_keep_their_own_warnings():
    import logging
    import threading

    from dcrcoadd.pipeline.metadata import collecting_warnings

    got, ready = {}, threading.Barrier(2)

    def run(name):
        with collecting_warnings(this_thread=True) as messages:
            ready.wait()  # both collectors are installed before either warns
            logging.getLogger("dcrcoadd.test").warning("from %s", name)
            ready.wait()
        got[name] = list(messages)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {"a": ["dcrcoadd.test: from a"], "b": ["dcrcoadd.test: from b"]}


def test_a_patch_fingerprint_covers_the_weight_maps(tmp_path):
    # a finished patch is skipped only while its inputs are unchanged: weight maps included
    from dcrcoadd.config import Config
    from dcrcoadd.pipeline.survey import PatchTask, patch_fingerprint
    from dcrcoadd.pipeline.survey_plan import PatchSpec

    image = tmp_path / "c4d_1_ooi_g.fits"
    weights = tmp_path / "c4d_1_oow_g.fits"
    image.write_bytes(b"image")
    weights.write_bytes(b"weights")
    config = Config()
    config.inputs.weights = "{name/_ooi_/_oow_}"
    task = PatchTask(PatchSpec("p", (str(image),)), config, str(tmp_path / "out"))
    before = patch_fingerprint(task, [image])
    weights.write_bytes(b"other weights")
    assert patch_fingerprint(task, [image]) != before


def test_a_patch_stopped_by_a_closing_pool_is_not_recorded_as_failed(tmp_path, monkeypatch):
    # Ctrl-C on a parallel survey: the patches in flight see their pool refuse work; that is not a
    # failure of theirs (no record saying so), and the rerun resumes them
    import sys

    from dcrcoadd.config import Config
    from dcrcoadd.pipeline.survey import PatchTask, read_record, run_patch_task
    from dcrcoadd.pipeline.survey_plan import PatchSpec

    survey = sys.modules["dcrcoadd.pipeline.survey"]
    paths = write_warps(tmp_path / "w", 2, shape=(24, 24))
    task = PatchTask(PatchSpec("p", tuple(map(str, paths))), Config(), str(tmp_path / "out"))

    def closing(*args, **kwargs):
        raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(survey, "run_patch", closing)
    with pytest.raises(RuntimeError, match="after shutdown"):
        run_patch_task(task)
    assert read_record(task.survey_dir, "p") is None

    def broken(*args, **kwargs):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(survey, "run_patch", broken)
    assert run_patch_task(task).status == "failed"
    assert read_record(task.survey_dir, "p").status == "failed"


def test_a_second_survey_into_a_busy_directory_is_refused(data, tmp_path):
    # two surveys into one directory each recomputed every patch and each reported its own outputs
    import socket
    import subprocess
    import sys

    from dcrcoadd.pipeline.lock import LOCK_NAME

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"{socket.gethostname()} {live.pid}\n")
        with pytest.raises(InputError, match="another dcrcoadd run"):
            run_survey(read_plan(data), tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]
    finally:
        live.kill()
        live.wait()


def test_a_run_refused_for_other_settings_keeps_the_finished_patches_records(data, serial, tmp_path, capsys):
    # the refusal changed nothing in the patch directories, but recorded them as failed: the next
    # run with the original settings recomputed every patch instead of finding them finished
    out = tmp_path / "copy"
    shutil.copytree(serial, out)
    before = Table.read(out / "survey.ecsv")
    assert main(["survey", str(data), "--out", str(out), "-q", "--set", "dcr.dcr_num_subfilters=2"]) == 15
    assert "holds a run with other settings" in capsys.readouterr().err
    # its summary says what the patches still hold (it said 0 inputs and no airmass)
    refused = Table.read(out / "survey.ecsv")
    assert list(refused["status"]) == ["failed"] * 5
    held = before["status"] != "failed"
    for column in ("n_inputs", "airmass_min", "airmass_max", "false_dcr"):
        np.testing.assert_array_equal(refused[column][held], before[column][held])
    assert all("holds a run with other settings" in e for e in refused["error"][held])
    assert main(["survey", str(data), "--out", str(out)]) == 11
    assert list(Table.read(out / "survey.ecsv")["status"]) == ["resumed"] * 4 + ["failed"]


def test_a_worker_client_that_fails_to_connect_is_tried_again(monkeypatch, caplog):
    # under load a worker's first Client start failed inside distributed, and its patch was failed
    distributed = pytest.importorskip("distributed")
    from dcrcoadd.pipeline.survey import connect_worker_client

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 2:
            raise AssertionError
        return "client"

    monkeypatch.setattr(distributed, "get_client", flaky)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.pipeline.survey"):
        connect_worker_client(pause=0.0)
    assert len(calls) == 2 and "trying again (2 of 3)" in caplog.text

    def broken():
        raise OSError("scheduler gone")

    monkeypatch.setattr(distributed, "get_client", broken)
    with pytest.raises(OSError, match="scheduler gone"):
        connect_worker_client(pause=0.0)


def test_ctrl_c_while_a_local_cluster_starts_is_delivered_once_it_has_started():
    # (Ctrl-C or SIGTERM as LocalCluster started left it half made: distributed's exit hook then failed
    # on it with an AssertionError traceback)
    from dcrcoadd.pipeline.survey import _interrupts_held

    steps = []
    # (Python's own handler, as in a terminal: a shell starts a background job with SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _interrupts_held():
                os.kill(os.getpid(), signal.SIGINT)
                steps.append("started")  # the block runs to its end
            steps.append("not reached")
        assert steps == ["started"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
