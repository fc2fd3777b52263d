"""Damaged checkpoints are reported, discarded and recomputed; they never crash a rerun."""

import json
import logging
import shutil

import numpy as np
import pytest

from conftest import write_warps
from dcrcoadd.config.schema import Config, apply_override
from dcrcoadd.pipeline import checkpoint, run_patch

OUTPUTS = ("dcr_coadd.fits", "model.fits", "subfilter_0.fits", "subfilter_2.fits")


def config():
    c = Config()
    apply_override(c, "coadd.subregion_size=[16,16]")
    return c


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def warps(tmp_path_factory):
    return write_warps(tmp_path_factory.mktemp("warps"), 4, shape=(40, 40))


@pytest.fixture(scope="module")
def reference(warps, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    run_patch(warps, config(), out)
    return out


@pytest.fixture(scope="module")
def interrupted(warps, tmp_path_factory):
    """An output directory holding the checkpoints of subregions 0-2 of an interrupted run."""
    out = tmp_path_factory.mktemp("interrupted")

    def stop(event):
        if event.outcome is not None and event.done >= 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_patch(warps, config(), out, progress=stop)
    assert checkpoint.count(out) == 3
    return out


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the model pixels
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
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
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
    assert (out / "model.fits").read_bytes() == (reference / "model.fits").read_bytes()


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
