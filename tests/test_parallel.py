"""Executors give bit-identical outputs; an interrupted run resumes to the same outputs."""

import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits

from conftest import write_warps
from dcrcoadd.cli import main

OUTPUTS = ("coadd.fits", "dcr_coadd.fits", "model.fits", "subfilter_0.fits", "subfilter_2.fits")


def assemble(paths, out, *extra):
    argv = ["assemble", *map(str, paths), "--out", str(out), "-q", "--set", "coadd.subregion_size=[16,16]",
            *extra]
    assert main(argv) == 0


def same_outputs(a, b):
    for name in OUTPUTS:
        with fits.open(a / name) as ha, fits.open(b / name) as hb:
            assert len(ha) == len(hb)
            for x, y in zip(ha, hb, strict=True):
                if x.data is None:
                    continue
                if isinstance(x, fits.BinTableHDU):
                    assert x.data.tobytes() == y.data.tobytes(), (name, x.name)
                else:
                    np.testing.assert_array_equal(x.data, y.data, err_msg=f"{name}[{x.name}]")


@pytest.fixture(scope="module")
def warps(tmp_path_factory):
    return write_warps(tmp_path_factory.mktemp("warps"), 4, shape=(40, 40))


@pytest.fixture(scope="module")
def serial(warps, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    assemble(warps, out)
    return out


def test_local_workers_match_serial(warps, serial, tmp_path):
    assemble(warps, tmp_path, "--workers", "2")
    same_outputs(serial, tmp_path)


def test_dask_cluster_matches_serial(warps, serial, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assemble(warps, tmp_path, "--scheduler", cluster.scheduler_address)
    same_outputs(serial, tmp_path)


def test_killed_run_resumes_to_identical_outputs(warps, serial, tmp_path, capsys):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dcrcoadd", "assemble", *map(str, warps), "--out", str(out), "-q",
           "--set", "coadd.subregion_size=[16,16]"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = out / ".checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(checkpoints.glob("subregion_*.npz"))) >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    done = len(list(checkpoints.glob("subregion_*.npz")))
    assert 2 <= done < 9 and not (out / "model.fits").exists()
    # other settings are refused, naming the field, and leave the checkpoints alone
    assert main(["assemble", *map(str, warps), "--out", str(out), "--set", "coadd.subregion_size=[16,16]",
                 "--set", "dcr.iterative.max_num_iter=4"]) == 2
    assert "dcr.iterative.max_num_iter" in capsys.readouterr().err
    assert len(list(checkpoints.glob("subregion_*.npz"))) == done
    assemble(warps, out)
    assert f"resuming: {done} subregion(s)" in capsys.readouterr().out
    same_outputs(serial, out)
    assert not checkpoints.exists()


def test_completed_run_refuses_other_settings_unless_clobbered(warps, tmp_path, capsys):
    assemble(warps, tmp_path)
    capsys.readouterr()
    argv = ["assemble", *map(str, warps), "--out", str(tmp_path), "-q",
            "--set", "coadd.subregion_size=[16,16]", "--set", "dcr.dcr_num_subfilters=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "dcr.dcr_num_subfilters: 3 -> 4" in err and "--clobber-config" in err
    assert main([*argv, "--clobber-config"]) == 0
    from dcrcoadd.dcr.model import DcrModel

    assert len(DcrModel.read(tmp_path / "model.fits")) == 4
    assemble(warps, tmp_path, "--set", "dcr.dcr_num_subfilters=4")  # same settings again: fine


def test_tasks_fewer_than_local_workers_get_their_spare_cores_as_threads():
    from dcrcoadd.parallel import ProcessMapper, serial_map, threads_per_task

    mapper = ProcessMapper(4)  # (its pool starts on first use only)
    assert threads_per_task(mapper, 1) == 4 and threads_per_task(mapper, 2) == 2
    assert threads_per_task(mapper, 3) == 1 and threads_per_task(mapper, 9) == 1
    assert threads_per_task(serial_map, 1) == 1 and threads_per_task(None, 1) == 1


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
def test_pool_workers_end_when_their_parent_is_killed():
    # a parent killed outright cannot stop its pool: its workers ran on for minutes, holding memory
    from pathlib import Path

    def stat(pid) -> list[str] | None:
        """``/proc/<pid>/stat``'s fields after the command name (state, parent, ...); None when gone."""
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def workers(parent: int) -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            fields = stat(proc.name) if proc.name.isdigit() else None
            try:
                spawned = fields is not None and b"spawn_main" in (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if spawned and fields[1] == str(parent):
                found.append(int(proc.name))
        return found

    script = ("import time\nfrom dcrcoadd.parallel.mappers import ProcessMapper\n"
              "list(ProcessMapper(2)(time.sleep, [60, 60]))\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while len(pids := workers(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(pids) == 2
        time.sleep(1.0)  # (the tasks are running)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in pids if (fields := stat(p)) is not None and fields[0] != "Z"]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive


def test_big_arrays_reach_local_workers_by_file_and_the_file_is_removed():
    from dcrcoadd.parallel import ProcessMapper, serial_map
    from dcrcoadd.parallel.shared import FileArray, resolve, shared

    image = np.arange(24.0, dtype=np.float32).reshape(4, 6)
    with shared(serial_map, image) as (handle,):
        assert handle is image  # in this process (and on Dask): the array itself
    mapper = ProcessMapper(2)  # (its pool starts on first use only: none here)
    with shared(mapper, image, image * 2) as (a, b):
        assert isinstance(a, FileArray) and isinstance(b, FileArray)
        part = a[1:3, 2:5]
        assert len(pickle.dumps(part)) < 500  # a task carries the file's name, not the pixels
        np.testing.assert_array_equal(resolve(part), image[1:3, 2:5])
        np.testing.assert_array_equal(resolve(b), image * 2)
        folder = os.path.dirname(a.path)
    assert not os.path.exists(folder)


def test_a_full_temporary_folder_falls_back_to_pipes(tmp_path, monkeypatch, caplog):
    import logging
    import tempfile

    from dcrcoadd.parallel import ProcessMapper
    from dcrcoadd.parallel.shared import shared

    def no_room(path, array):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", no_room)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    orphan = tmp_path / "dcrcoadd-shared-999999999-abc"  # (a pid no process has)
    orphan.mkdir()
    image = np.ones((3, 3))
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"), shared(ProcessMapper(2), image) as (handle,):
        assert handle is image
    assert "No space left on device" in caplog.text and "TMPDIR" in caplog.text
    assert list(tmp_path.iterdir()) == []  # the orphan removed, nothing left
