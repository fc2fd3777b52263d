"""A survey plan: the patches of a survey, each with its warps and region, and the settings they share.

Two ways to give the patches, in one plan file (``dcrcoadd survey PLAN``):

- a list: TOML ``[[patch]]`` tables, or a CSV file with columns ``name``, ``inputs`` and
  optionally ``box``::

      # plan.toml                                 # plan.csv
      config = "dcrcoadd.toml"   # optional        name,inputs,box
      set = ["dcr.dcr_num_subfilters=3"]          p1,warps/p1/*.fits,
      band = "g"                 # optional        p2,warps/p2/*.fits;extra/p2_*.fits,"0,0,2048,4096"

      [[patch]]
      name = "p1"
      inputs = ["warps/p1/*.fits"]
      box = [0, 0, 2048, 4096]   # x0, y0, width, height; optional

- a tiling (TOML ``[tiling]``), LSST's tract/patch scheme: the warps lie on one tangent-plane
  pixel grid (the tract; ``dcrcoadd warp`` makes such warps), whose footprint (the union of the
  warps' boxes) is cut into a regular lattice of ``patch_size`` cells; each patch is its cell
  grown by ``overlap`` pixels on every side (clipped to the footprint), named
  ``<prefix><ix>_<iy>``, and gets the warps that overlap it::

      [tiling]
      inputs = ["tract/*.fits"]
      patch_size = 2000          # or [width, height]
      overlap = 100              # optional, default 0; less than half patch_size
      prefix = "patch_"          # optional

Relative paths are relative to the plan file. Every patch runs with one configuration: the
plan's ``config`` file (or ``--config``), then the plan's ``set`` overrides, then ``--set``.
Nothing here reads pixels: the list form reads nothing at all, the tiling reads headers.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcrcoadd.config import Config, apply_override, load_toml, validate_from
from dcrcoadd.core.geom import Box
from dcrcoadd.errors import ConfigError, InputError
from dcrcoadd.pipeline.survey_summary import SUMMARY_FILES

log = logging.getLogger("dcrcoadd.pipeline.survey_plan")

#: A patch name is a directory name under the survey's output directory.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,+=-]*")
#: Longest patch name: the name, with ``.json`` and an atomic write's temporary prefix and suffix, must
#: fit the 255 bytes a file name may have on common file systems.
MAX_NAME_LENGTH = 200
_TOP_KEYS = {"config", "set", "band", "patch", "tiling"}
_PATCH_KEYS = {"name", "inputs", "box"}
_TILING_KEYS = {"inputs", "patch_size", "overlap", "prefix"}


@dataclass(frozen=True)
class PatchSpec:
    """One patch of a survey: what `run_patch` needs besides the shared settings.

    Attributes
    ----------
    name : str
        Its output directory under the survey's (``OUT/<name>``).
    inputs : tuple of str
        Warp files, directories or glob patterns (absolute), expanded when the patch runs.
    box : Box or None
        Region of the warps' grid (None: the union of the warps).
    """

    name: str
    inputs: tuple[str, ...]
    box: Box | None = None


@dataclass
class SurveyPlan:
    """The patches of a survey and the settings every patch runs with."""

    patches: list[PatchSpec]
    config: Config
    band: str | None = None
    source: str = "plan"


# -- reading a plan --------------------------------------------------------------------------------

def read_plan(path: str | os.PathLike, *, config: str | os.PathLike | None = None,
              overrides: Sequence[str] = (), band: str | None = None) -> SurveyPlan:
    """Read a TOML (``.toml``) or CSV plan (any other name).

    Parameters
    ----------
    path : path-like
    config : path-like, optional
        Configuration file used instead of the plan's ``config``.
    overrides : sequence of str
        ``section.field=value`` applied after the plan's ``set``.
    band : str, optional
        Overrides the plan's ``band``.

    Raises
    ------
    InputError
        An unreadable or malformed plan (naming the plan and, where there is one, the patch),
        a tiling whose warps are not on one grid (naming the warp).
    ConfigError
        An invalid configuration.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # (a spreadsheet's byte-order mark is not a column name)
    except OSError as exc:
        raise InputError(f"cannot read the survey plan ({exc.strerror or exc})", path) from None
    except UnicodeDecodeError:
        raise InputError("is not a text file: a survey plan is TOML or CSV (the warps go in its inputs)",
                         path) from None
    if path.suffix.lower() == ".toml":
        data = _parse_toml(text, path)
    else:
        data = {"patch": _parse_csv(text, path)}
    base = path.parent.resolve()
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(sorted(unknown))} "
                         f"(expected: {', '.join(sorted(_TOP_KEYS))})", path)
    settings = _settings(data, base, path, config, overrides)
    entries = _table_list(data.get("patch", []), path)
    patches = [_patch(entry, base, path, i) for i, entry in enumerate(entries)]
    if "tiling" in data:
        patches += _tiling(data["tiling"], base, path, settings.inputs.instrument)
    if not patches:
        raise InputError("lists no patches (give [[patch]] tables, CSV rows or a [tiling])", path)
    _check_unique(patches, path)
    chosen_band = band if band is not None else data.get("band")
    if chosen_band is not None and not isinstance(chosen_band, str):
        raise InputError(f"band must be a string, got {chosen_band!r}", path)
    return SurveyPlan(patches, settings, chosen_band, str(path))


def _parse_toml(text: str, path: Path) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", path) from None


def _parse_csv(text: str, path: Path) -> list[dict]:
    rows = [r for r in csv.reader(line for line in text.splitlines() if not line.lstrip().startswith("#"))
            if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError("is empty (a CSV plan needs a header row: name,inputs[,box])", path)
    header = [h.strip().lower() for h in rows[0]]
    if "name" not in header or "inputs" not in header or set(header) - _PATCH_KEYS:
        raise InputError(f"CSV header must be name,inputs[,box], got {','.join(rows[0])}", path)
    entries = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) > len(header):
            raise InputError(f"line {number}: {len(row)} columns for a {len(header)}-column header "
                             "(quote a box: \"x0,y0,width,height\")", path)
        cells = dict(zip(header, (c.strip() for c in row), strict=False))
        entry = {"name": cells.get("name", ""),
                 "inputs": [p.strip() for p in cells.get("inputs", "").split(";") if p.strip()]}
        if cells.get("box"):
            entry["box"] = cells["box"]
        entries.append(entry)
    return entries


def _settings(data: dict, base: Path, path: Path, config: str | os.PathLike | None,
              overrides: Sequence[str]) -> Config:
    """The configuration every patch runs with (validated)."""
    plan_config = data.get("config")
    if plan_config is not None and not isinstance(plan_config, str):
        raise InputError(f"config must be a file name, got {plan_config!r}", path)
    plan_set = data.get("set", [])
    if isinstance(plan_set, str):
        plan_set = [plan_set]
    if not isinstance(plan_set, list) or not all(isinstance(s, str) for s in plan_set):
        raise InputError("set must be a list of \"section.field=value\" strings", path)
    source = config if config is not None else None if plan_config is None else _resolve(plan_config, base)
    settings = Config() if source is None else load_toml(source)
    for text in plan_set:
        try:
            apply_override(settings, text)
        except ConfigError as exc:  # (the plan's own entries: the plan is what to fix)
            raise InputError(f"set: {exc}", path) from None
    if plan_set:  # (a value of the right type that no run takes: the plan is what to fix too)
        try:
            validate_from(settings, source)
        except ConfigError as exc:
            if source is not None and str(exc).startswith(f"{source}: "):
                raise
            raise InputError(f"set: {exc}", path) from None
    for text in overrides:
        apply_override(settings, text)
    validate_from(settings, source)
    return settings


def _table_list(value, path: Path) -> list[dict]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError("patch must be an array of tables ([[patch]])", path)
    return value


def _resolve(pattern: str, base: Path) -> str:
    """A path or glob pattern relative to the plan's directory, made absolute (``~`` expanded)."""
    expanded = os.path.expanduser(pattern)
    return expanded if os.path.isabs(expanded) else os.path.join(base, expanded)


def _inputs(value, where: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(f"{where}: inputs must be a non-empty list of paths or glob patterns", path)
    return tuple(value)


def _is_int(value) -> bool:
    # TOML's true and false are Python bools, which are ints: patch_size = true made 1x1 patches
    return isinstance(value, int) and not isinstance(value, bool)


def _box(value, where: str, path: Path) -> Box | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            box = Box.parse(value)
        elif isinstance(value, list) and len(value) == 4 and all(_is_int(v) for v in value):
            box = Box(*value)
        else:
            raise ValueError(f"expected [x0, y0, width, height], got {value!r}")
    except ValueError as exc:
        raise InputError(f"{where}: bad box ({exc})", path) from None
    if box.is_empty:
        raise InputError(f"{where}: the box {box} is empty", path)
    return box


def _patch(entry: dict, base: Path, path: Path, index: int) -> PatchSpec:
    name = entry.get("name")
    where = f"patch {name!r}" if isinstance(name, str) and name else f"patch #{index + 1}"
    unknown = set(entry) - _PATCH_KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(expected: {', '.join(sorted(_PATCH_KEYS))})", path)
    _check_name(name, where, path)
    inputs = tuple(_resolve(p, base) for p in _inputs(entry.get("inputs"), where, path))
    return PatchSpec(name, inputs, _box(entry.get("box"), where, path))


def _check_name(name, where: str, path: Path) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"{where}: the name must be a directory name (letters, digits and _ . , + = -, "
                         f"not starting with a punctuation mark), got {name!r}", path)
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(f"{where}: the name has {len(name)} characters; at most {MAX_NAME_LENGTH} make a "
                         "file name every file system takes", path)
    if name.lower() in SUMMARY_FILES:
        raise InputError(f"{where}: {name!r} is the name of the survey's summary file "
                         f"({', '.join(SUMMARY_FILES)}): give the patch another name", path)


def _check_unique(patches: list[PatchSpec], path: Path) -> None:
    # (names that differ only in case share one output directory on macOS's and Windows's file systems)
    seen: dict[str, str] = {}
    for p in patches:
        other = seen.get(p.name.casefold())
        if other == p.name:
            raise InputError(f"patch name {p.name!r} is used twice", path)
        if other is not None:
            raise InputError(f"patch names {other!r} and {p.name!r} differ only in case: on a "
                             "case-insensitive file system they would share one output directory", path)
        seen[p.name.casefold()] = p.name


# -- tiling ----------------------------------------------------------------------------------------

def patch_boxes(footprint: Box, size: int | tuple[int, int], overlap: int = 0) -> list[tuple[int, int, Box]]:
    """A regular lattice of patches over ``footprint``: ``(ix, iy, box)`` row by row.

    Cell ``(ix, iy)`` covers ``size`` (``(width, height)``) pixels from the footprint's origin
    (the last row and column are cut by the footprint); its patch is the cell grown by
    ``overlap`` pixels on every side and clipped to the footprint, so neighbouring patches
    share ``2 * overlap`` pixels (LSST's inner patch and border).
    """
    sx, sy = (size, size) if isinstance(size, int) else size
    if sx <= 0 or sy <= 0:
        raise ValueError(f"patch size must be positive, got {size!r}")
    if overlap < 0 or 2 * overlap >= min(sx, sy):
        raise ValueError(f"patch overlap must lie in [0, half the patch size {min(sx, sy)}), got {overlap}")
    return [((cell.x0 - footprint.x0) // sx, (cell.y0 - footprint.y0) // sy,
             cell.grow(overlap).clip(footprint) if overlap else cell)
            for cell in footprint.subregions((sx, sy))]


def _tiling(table, base: Path, path: Path, instrument: str | None) -> list[PatchSpec]:
    if not isinstance(table, dict):
        raise InputError("tiling must be a table ([tiling])", path)
    unknown = set(table) - _TILING_KEYS
    if unknown:
        raise InputError(f"tiling: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(expected: {', '.join(sorted(_TILING_KEYS))})", path)
    size = table.get("patch_size")
    if _is_int(size):
        size = (size, size)
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(_is_int(v) and v > 0 for v in size)):
        raise InputError(f"tiling: patch_size must be a positive integer or [width, height], got {size!r}",
                         path)
    overlap = table.get("overlap", 0)
    if not _is_int(overlap) or overlap < 0:
        raise InputError(f"tiling: overlap must be a non-negative integer, got {overlap!r}", path)
    if 2 * overlap >= min(size):
        # (each pixel solved in three patches or more a side; where the footprint clips them, patches
        # come out identical: 64-px patches with overlap 64 over a 128-px footprint were four copies)
        raise InputError(f"tiling: overlap {overlap} must be less than half the patch size {min(size)} "
                         "(pixels a patch shares with each neighbour, on every side)", path)
    prefix = table.get("prefix", "patch_")
    if not isinstance(prefix, str):
        raise InputError(f"tiling: prefix must be a string, got {prefix!r}", path)
    patterns = [_resolve(p, base) for p in _inputs(table.get("inputs"), "tiling", path)]
    return tile_inputs(patterns, tuple(size), overlap, prefix=prefix, instrument=instrument, source=path)


def tile_inputs(inputs: Sequence[str | os.PathLike], size: tuple[int, int], overlap: int = 0, *,
                prefix: str = "patch_", instrument: str | None = None,
                source: str | os.PathLike = "tiling") -> list[PatchSpec]:
    """Patches over the footprint of warps on one grid (`patch_boxes`), each with the warps that
    overlap it; cells no warp reaches are left out.

    Raises
    ------
    InputError
        A warp that cannot be read, or is not on the first warp's pixel grid (naming it).
    """
    from dcrcoadd.io import read_info
    from dcrcoadd.pipeline.inputs import expand_inputs

    paths = [str(p) for p in expand_inputs(inputs, quiet=True)]
    infos = [read_info(p, instrument=instrument) for p in paths]
    footprint = infos[0].bbox
    for info in infos[1:]:
        footprint = footprint.union(info.bbox)
    for info in infos[1:]:
        _check_same_grid(infos[0], info, footprint)
    patches = []
    for ix, iy, box in patch_boxes(footprint, size, overlap):
        members = tuple(p for p, info in zip(paths, infos, strict=True) if info.bbox.overlaps(box))
        if members:
            patches.append(PatchSpec(f"{prefix}{ix}_{iy}", members, box))
    if patches:
        _check_name(patches[0].name, "tiling", Path(source))
    log.info("tiling: %d warps over %s give %d patches of %dx%d px (overlap %d)", len(paths), footprint,
             len(patches), size[0], size[1], overlap)
    return patches


def _check_same_grid(ref, other, footprint: Box) -> None:
    """Refuse a tiling of warps that are not on one grid: the lattice would not be one tract."""
    if (ref.wcs is None) != (other.wcs is None):
        raise InputError(f"a tiling needs warps on one grid, but only one of this warp and {ref.path} "
                         "has a WCS", other.path)
    if ref.wcs is None:
        return
    # parent-grid corners of the footprint, as pixel coordinates of each file's own array
    xs = np.array([footprint.x0, footprint.x1 - 1, footprint.x0, footprint.x1 - 1], float)
    ys = np.array([footprint.y0, footprint.y0, footprint.y1 - 1, footprint.y1 - 1], float)
    try:
        world = ref.wcs.pixel_to_world_values(xs - ref.bbox.x0, ys - ref.bbox.y0)
        back = other.wcs.world_to_pixel_values(*world)
        offset = float(np.nanmax(np.hypot(back[0] + other.bbox.x0 - xs, back[1] + other.bbox.y0 - ys)))
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on odd WCSs
        raise InputError(f"cannot compare its WCS with {ref.path}'s ({exc})", other.path) from None
    if not offset <= 0.01:
        raise InputError(f"a tiling needs warps on one grid (dcrcoadd warp makes them), but this warp's grid "
                         f"is {offset:.3g} px off {ref.path}'s", other.path)


__all__ = ["PatchSpec", "SurveyPlan", "patch_boxes", "read_plan", "tile_inputs"]
