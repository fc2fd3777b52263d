"""Checkpoints of finished subregions, so an interrupted run resumes where it stopped.

``OUTDIR/.checkpoints`` holds the run's manifest (configuration, inputs, region, versions)
and one ``subregion_<index>.npz`` per solved subregion. Each checkpoint carries a SHA-256
digest of its content: a truncated, damaged or altered one is reported, deleted and its
subregion recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcrcoadd.core.geom import Box
from dcrcoadd.dcr.tasks import TileOutcome
from dcrcoadd.io.atomic import atomic_output

log = logging.getLogger("dcrcoadd.pipeline.checkpoint")

CHECKPOINT_DIR = ".checkpoints"
MANIFEST = "manifest.json"


@dataclass
class Checkpoint:
    """A finished subregion and the warnings its solve raised."""

    outcome: TileOutcome
    warnings: list[str] = field(default_factory=list)


@dataclass
class StoredRun:
    """The settings of the run an output directory holds."""

    manifest: dict
    interrupted: bool  # True: checkpoints of an unfinished run; False: a finished run's outputs


def checkpoint_dir(outdir: str | os.PathLike) -> Path:
    return Path(outdir) / CHECKPOINT_DIR


def _path(outdir: str | os.PathLike, index: int) -> Path:
    return checkpoint_dir(outdir) / f"subregion_{index:05d}.npz"


def _digest(models: np.ndarray, n_images: np.ndarray, meta: str) -> str:
    h = hashlib.sha256()
    for array in (models, n_images):
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    h.update(meta.encode())
    return h.hexdigest()


def save(outdir: str | os.PathLike, outcome: TileOutcome, warnings: list[str] | None = None) -> Path:
    """Write one finished subregion atomically, with the digest of its content."""
    meta = json.dumps({"index": outcome.index, "box": [outcome.box.x0, outcome.box.y0, outcome.box.width,
                                                         outcome.box.height],
                       "history": outcome.history, "converged": outcome.converged,
                       "stop_reason": outcome.stop_reason, "seconds": outcome.seconds,
                       "warnings": list(warnings or [])})
    path = _path(outdir, outcome.index)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, models=outcome.models, n_images=outcome.n_images, meta=meta,
                 sha256=_digest(outcome.models, outcome.n_images, meta))
    return path


class DamagedCheckpoint(Exception):
    """A checkpoint that cannot be trusted (unreadable, incomplete, or not what was written)."""


def load(path: Path) -> Checkpoint:
    """Read and verify one checkpoint; `DamagedCheckpoint` says what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"models", "n_images", "meta", "sha256"} - set(data.files)
            if missing:
                raise DamagedCheckpoint(f"missing {', '.join(sorted(missing))}")
            models, n_images = data["models"], data["n_images"]
            meta_text, digest = str(data["meta"]), str(data["sha256"])
    except DamagedCheckpoint:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged zip fails in many ways (BadZipFile, EOFError, struct.error...)
        raise DamagedCheckpoint(f"unreadable: {type(exc).__name__}: {exc}") from None
    if _digest(models, n_images, meta_text) != digest:
        raise DamagedCheckpoint("content does not match its SHA-256 digest")
    try:
        meta = json.loads(meta_text)
        outcome = TileOutcome(
            index=int(meta["index"]), box=Box(*meta["box"]), models=models, n_images=n_images,
            history=list(meta["history"]), converged=bool(meta["converged"]),
            stop_reason=str(meta["stop_reason"]), seconds=float(meta["seconds"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedCheckpoint(f"bad metadata: {exc}") from None
    if path.name != _path("", outcome.index).name:
        raise DamagedCheckpoint(f"holds subregion {outcome.index}")
    return Checkpoint(outcome, [str(w) for w in meta.get("warnings", [])])


def discard(path: Path, reason: str) -> None:
    log.warning("discarding damaged checkpoint %s (%s); its subregion is recomputed", path, reason)
    path.unlink(missing_ok=True)


def load_all(outdir: str | os.PathLike) -> dict[int, Checkpoint]:
    """Every intact checkpoint in ``outdir`` by subregion index; damaged ones are reported and deleted."""
    done: dict[int, Checkpoint] = {}
    for path in sorted(checkpoint_dir(outdir).glob("subregion_*.npz")):
        try:
            checkpoint = load(path)
        except DamagedCheckpoint as exc:
            discard(path, str(exc))
            continue
        done[checkpoint.outcome.index] = checkpoint
    return done


def count(outdir: str | os.PathLike) -> int:
    """How many subregion checkpoints ``outdir`` holds (intact or not)."""
    return len(list(checkpoint_dir(outdir).glob("subregion_*.npz")))


def manifest(config_text: str, inputs: list[str], versions: dict[str, str],
             box: list[int] | None = None, input_state: list | None = None) -> dict:
    """What a run's checkpoints were made from: settings, inputs (paths or digests), box and versions,
    which a rerun must match to resume (`differences`), and ``input_state``, the inputs' file sizes
    and times, which it must match to reuse the checkpoints (`pipeline.inputs.input_state`)."""
    return {"config": config_text, "inputs": inputs, "box": box, "versions": versions,
            "input_state": input_state}


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable list of what differs between two manifests."""
    out = []
    old_cfg = dict(_lines(old.get("config", "")))
    new_cfg = dict(_lines(new.get("config", "")))
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            out.append(f"{key}: {old_cfg.get(key, '(unset)')} -> {new_cfg.get(key, '(unset)')}")
    if old.get("inputs") != new.get("inputs"):
        before, after = list(old.get("inputs") or []), list(new.get("inputs") or [])
        added = [i for i in after if i not in before]
        removed = [i for i in before if i not in after]
        parts = [f"{len(v)} {what} (e.g. {Path(str(v[0])).name})" for v, what in ((added, "added"),
                                                                                  (removed, "removed")) if v]
        out.append("input warps differ: " + (", ".join(parts) if parts else "in order"))
    if old.get("box") != new.get("box"):
        out.append(f"box: {old.get('box') or '(all)'} -> {new.get('box') or '(all)'}")
    for name in sorted(set(old.get("versions", {})) | set(new.get("versions", {}))):
        a, b = old.get("versions", {}).get(name), new.get("versions", {}).get(name)
        if a != b:
            out.append(f"version of {name}: {a} -> {b}")
    return out


def _lines(text: str):
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line:
            key, _, value = line.lstrip("# ").partition("=")
            # an unset field is written as a comment, "# key = (default: None)"
            yield f"{section}.{key.strip()}", "(default)" if line.startswith("#") else value.strip()


def stored_run(outdir: str | os.PathLike) -> StoredRun | None:
    """The settings of the run in ``outdir``: an interrupted one (its checkpoint manifest) or a
    finished one (its ``config.toml`` and ``metadata.json``); None for a fresh directory.

    A damaged manifest is reported and the checkpoints it described are discarded.
    """
    path = checkpoint_dir(outdir) / MANIFEST
    if path.exists():
        try:
            return StoredRun(json.loads(path.read_text()), interrupted=True)
        except (OSError, ValueError) as exc:
            log.warning("discarding the checkpoints in %s: their manifest is damaged (%s)",
                        checkpoint_dir(outdir), exc)
            clear(outdir)
    config, meta = Path(outdir) / "config.toml", Path(outdir) / "metadata.json"
    if config.exists() and meta.exists():
        try:
            data = json.loads(meta.read_text())
            return StoredRun(manifest(config.read_text(), data.get("input_paths", []),
                                      data.get("versions", {}), data.get("box")), interrupted=False)
        except (OSError, ValueError, AttributeError):
            return None
    return None


def write_manifest(outdir: str | os.PathLike, data: dict) -> None:
    path = checkpoint_dir(outdir) / MANIFEST
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def clear(outdir: str | os.PathLike) -> None:
    shutil.rmtree(checkpoint_dir(outdir), ignore_errors=True)
