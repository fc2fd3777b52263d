"""What a run checks before its first pixel: input expansion, band selection, preflight.

Everything here reads headers only (or the metadata of in-memory exposures), so a run
with a bad input, an unwritable output directory or a band without wavelengths stops
before the baseline coadd reads any pixel and before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dcrcoadd.coadd.bright_objects import read_bright_object_masks
from dcrcoadd.config.schema import Config
from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.instrument import instrument_defaults
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.dcr.assemble import dcr_visits
from dcrcoadd.errors import InputError
from dcrcoadd.io.options import ReadOptions
from dcrcoadd.io.paths import expand_paths
from dcrcoadd.io.products import product_of

log = logging.getLogger("dcrcoadd.pipeline.inputs")

#: A warp given to a run: a file or an in-memory exposure.
Source = str | os.PathLike | Exposure


@dataclass(frozen=True)
class InputHeader:
    """One input as its header describes it (after the instrument preset, when one is set)."""

    name: str
    source: Source
    band: str | None
    bandpass: Bandpass | None
    visit: VisitInfo | None
    has_psf: bool = True
    weight_map: Path | None = None  # the file its variance comes from (``--weights``), if any
    quality_map: Path | None = None  # the file its mask comes from (``--masks``), if any

    @property
    def band_letter(self) -> str:
        """``g`` for ``g``, ``lsst-g`` or ``HSC-G``; empty when the input names no band."""
        name = self.band or (self.bandpass.name if self.bandpass is not None else "")
        return name.strip().lower().split("-")[-1]


def expand_inputs(items: Iterable[Source], *, quiet: bool = False) -> list[Source]:
    """Files, directories (their FITS files, sorted) and glob patterns as a list of inputs
    (`dcrcoadd.io.paths.expand_paths`); exposures pass through unchanged, in their place. The files
    dcrcoadd wrote (`dcrcoadd.io.products`: coadds, models, templates, differences) are skipped with
    one warning (``quiet``: none, for a second look at the same inputs): an output directory that is
    also the inputs' (``assemble warps/ --out warps/``, or ``warps/*.fits``, which the shell expands
    into names) read its own coadd back as a warp.

    Raises
    ------
    InputError
        A directory without FITS files, a pattern that matches nothing, or no input at all (also
        when every file given is one dcrcoadd wrote).
    """
    sources: list[Source] = []
    skipped: list[str] = []
    given: dict[Path, str] = {}
    twice: list[str] = []
    for item in items:
        if isinstance(item, Exposure):
            sources.append(item)
            continue
        for path in expand_paths([item], "input warps"):
            key = Path(path).resolve()
            if key in given:  # (a file and its directory, or a pattern and a name: one warp, used once)
                twice.append(str(path) if str(path) == given[key] else f"{path} (as {given[key]})")
                continue
            given[key] = str(path)
            kind = product_of(path)
            if kind is None:
                sources.append(path)
            else:
                skipped.append(f"{path} ({kind})")
    if skipped and not quiet:
        log.warning("skipped %d file(s) dcrcoadd wrote, not inputs: %s", len(skipped), ", ".join(skipped))
    if twice and not quiet:
        log.warning("%d file(s) given twice, used once: %s", len(twice), ", ".join(twice))
    if not sources:
        raise InputError("no input given" + (f": every file is one dcrcoadd wrote ({', '.join(skipped)})"
                                             if skipped else ""), "inputs")
    return sources


def exposure_label(exposure: Exposure, index: int) -> str:
    """The name an in-memory input goes by in tables and messages (as the baseline coadd names it)."""
    label = f"exposure[{index}]"
    return label if exposure.visit is None else f"{label} (visit {exposure.visit.id})"


def read_headers(sources: Sequence[Source], options: ReadOptions | str | None = None) -> list[InputHeader]:
    """The header-level description of every input, read with ``options`` (`ReadOptions`, or an
    instrument name) and completed from the instrument's presets where a file lacks its band curve
    or site (a preset never overrides the file)."""
    if not isinstance(options, ReadOptions):
        options = ReadOptions(instrument=options)
    instrument = options.instrument
    headers = []
    absent: list[set[str]] = []  # per file: the header-map fields whose card it lacks
    for i, source in enumerate(sources):
        if isinstance(source, Exposure):
            header = InputHeader(exposure_label(source, i), source, source.band, source.bandpass,
                                 source.visit, source.psf is not None)
        else:
            info = options.read_info(source)
            absent.append(set(info.absent_header_map))
            header = InputHeader(str(source), source, info.band, info.bandpass, info.visit,
                                 info.psf is not None,
                                 None if info.weight_map is None else Path(info.weight_map[0]),
                                 None if info.quality_map is None else Path(info.quality_map[0]))
        if instrument:
            bandpass, visit = instrument_defaults(instrument, header.band, header.bandpass, header.visit,
                                                  header.name)
            header = replace(header, band=header.band or bandpass.name, bandpass=bandpass, visit=visit)
        headers.append(header)
    for field in sorted(set.intersection(*absent)) if absent else ():
        # (a typo in the card's name, usually: the usual cards then give the value, silently)
        log.warning("inputs.header_map.%s = %s: no input has that card; their %s came from the usual cards",
                    field, options.header_map[field], field)
    files = [h for h in headers if not isinstance(h.source, Exposure)]
    if options.weights and files and all(h.weight_map is None for h in files):
        # (a weight map is only read for an image without variance: here it changed nothing)
        log.warning("inputs.weights = %r is not used: every input has its own variance extension",
                    options.weights)
    if options.masks and files and all(h.quality_map is None for h in files):
        log.warning("inputs.masks = %r is not used: every input has its own mask extension", options.masks)
    return headers


def select_band(headers: Sequence[InputHeader], band: str | None) -> list[InputHeader]:
    """The inputs in ``band`` (``g`` matches ``g``, ``lsst-g``, ``HSC-G``); all when ``band`` is None."""
    if band is None:
        return list(headers)
    want = band.strip().lower().split("-")[-1]
    keep = [h for h in headers if h.band_letter == want]
    log.info("band %s selects %d of %d warps", band, len(keep), len(headers))
    if not keep:
        present = sorted({h.band_letter or "(none)" for h in headers})
        raise InputError(f"no warps in band {band!r} (the inputs are in: {', '.join(present)})", "inputs")
    return keep


def preflight(headers: Sequence[InputHeader], config: Config, *, dcr_only: bool = False) -> None:
    """Refuse, naming the file, what would fail later: inputs that cannot give a DCR model, a
    missing PSF that compare-warp needs and nothing will measure (``inputs.measure_psf`` off; when
    it is on, `dcrcoadd.coadd.inputs.prepare_inputs` refuses a warp none could be measured for),
    an unreadable bright-object table.

    With a single input the run makes the baseline coadd only (unless ``dcr_only``), so the
    DCR requirements are checked only for two or more.
    """
    if config.artifacts.enabled and not config.inputs.measure_psf:
        for h in headers:
            if not h.has_psf:
                raise InputError("has no PSF; compare-warp artifact rejection needs one per warp "
                                 "(or set artifacts.enabled = false)", h.name)
    if config.coadd.do_mask_bright_objects:
        read_bright_object_masks(config.coadd.bright_object_mask_file)
    if len(headers) < 2:
        if dcr_only:
            raise InputError(f"only {len(headers)} warp: the DCR model is underdetermined (need at least "
                             "2 at different airmass or parallactic angle)",
                             headers[0].name if headers else "inputs")
        return
    for h in headers:
        if h.bandpass is None:
            fix = (f"or name the instrument with --instrument (config inputs.instrument) to look FILTER "
                   f"{h.band!r} up in its presets" if h.band else
                   "or a FILTER card and name the instrument with --instrument (config inputs.instrument)")
            raise InputError("no band wavelengths for the DCR model: add BANDLAM and BANDWID (nm) to the "
                             f"header, {fix}", h.name)
    dcr_visits(headers, warn=False)  # every input needs the airmass and parallactic angle


def input_state(header: InputHeader) -> list[list[int]]:
    """Size and modification time (ns) of the files an input's pixels come from (its file and its
    weight and data-quality maps): a resumed run compares them, so that it never reuses what was
    solved from older pixels under the same names. Empty for an in-memory exposure (its identity
    digests its pixels)."""
    if isinstance(header.source, Exposure):
        return []
    files = [Path(header.source)] + [f for f in (header.weight_map, header.quality_map) if f is not None]
    return [[st.st_size, st.st_mtime_ns] for st in (f.stat() for f in files)]


def input_identity(source: Source, name: str) -> str:
    """How the checkpoint manifest identifies an input: a file by its absolute path, an in-memory
    exposure by its name and a digest of its pixels (so a rerun on other data never resumes)."""
    if not isinstance(source, Exposure):
        return str(Path(source).resolve())
    digest = hashlib.sha256()
    for array in (source.image, source.mask, source.variance):
        digest.update(array.tobytes())
    digest.update(repr((source.origin, None if source.visit is None else source.visit.id)).encode())
    return f"{name} sha256:{digest.hexdigest()[:16]}"
