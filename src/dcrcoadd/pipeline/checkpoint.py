"""Checkpoints of finished subregions, so an interrupted `assemble` resumes where it stopped."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from dcrcoadd.core.geom import Box
from dcrcoadd.dcr.tasks import TileOutcome
from dcrcoadd.io.atomic import atomic_output

log = logging.getLogger("dcrcoadd.pipeline.checkpoint")

CHECKPOINT_DIR = ".checkpoints"


def checkpoint_dir(outdir: str | os.PathLike) -> Path:
    return Path(outdir) / CHECKPOINT_DIR


def save(outdir: str | os.PathLike, outcome: TileOutcome) -> Path:
    """Write one finished subregion atomically."""
    path = checkpoint_dir(outdir) / f"subregion_{outcome.index:05d}.npz"
    meta = {"index": outcome.index, "box": [outcome.box.x0, outcome.box.y0, outcome.box.width,
                                             outcome.box.height],
            "history": outcome.history,
            "converged": outcome.converged, "stop_reason": outcome.stop_reason,
            "seconds": outcome.seconds}
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, models=outcome.models, n_images=outcome.n_images, meta=json.dumps(meta))
    return path


def load_all(outdir: str | os.PathLike) -> dict[int, TileOutcome]:
    """Every readable checkpoint in ``outdir`` (a damaged one is skipped and recomputed)."""
    done: dict[int, TileOutcome] = {}
    for path in sorted(checkpoint_dir(outdir).glob("subregion_*.npz")):
        try:
            with np.load(path) as data:
                meta = json.loads(str(data["meta"]))
                outcome = TileOutcome(
                    index=int(meta["index"]), box=Box(*meta["box"]), models=data["models"],
                    n_images=data["n_images"],
                    history=list(meta["history"]),
                    converged=bool(meta["converged"]), stop_reason=str(meta["stop_reason"]),
                    seconds=float(meta["seconds"]))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring damaged checkpoint %s (%s)", path, exc)
            continue
        done[outcome.index] = outcome
    return done


def manifest(config_text: str, inputs: list[str], versions: dict[str, str]) -> dict:
    return {"config": config_text, "inputs": inputs, "versions": versions}


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable list of what differs between two manifests."""
    out = []
    old_cfg = dict(_lines(old.get("config", "")))
    new_cfg = dict(_lines(new.get("config", "")))
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            out.append(f"{key}: {old_cfg.get(key, '(unset)')} -> {new_cfg.get(key, '(unset)')}")
    if old.get("inputs") != new.get("inputs"):
        out.append("input warps differ")
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
            yield f"{section}.{key.strip()}", value.strip()


def read_manifest(outdir: str | os.PathLike) -> dict | None:
    """The settings of the run in ``outdir``: an interrupted one (its checkpoint manifest) or a
    completed one (its ``config.toml`` and ``metadata.json``); None for a fresh directory."""
    path = checkpoint_dir(outdir) / "manifest.json"
    try:
        if path.exists():
            return json.loads(path.read_text())
        config, meta = Path(outdir) / "config.toml", Path(outdir) / "metadata.json"
        if config.exists() and meta.exists():
            data = json.loads(meta.read_text())
            return manifest(config.read_text(), data.get("input_paths", []), data.get("versions", {}))
    except (OSError, ValueError):
        return None
    return None


def write_manifest(outdir: str | os.PathLike, data: dict) -> None:
    path = checkpoint_dir(outdir) / "manifest.json"
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def clear(outdir: str | os.PathLike) -> None:
    shutil.rmtree(checkpoint_dir(outdir), ignore_errors=True)
