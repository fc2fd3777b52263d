"""Checks of every configuration field; `ConfigError` names the first bad one (``section.field``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dcrcoadd.errors import ConfigError

if TYPE_CHECKING:
    from dcrcoadd.config.schema import (
        ArtifactConfig,
        CoaddConfig,
        DcrConfig,
        ExactSettings,
        InputsConfig,
        IterativeSettings,
    )

#: Statistics `dcrcoadd.ops.stack` can stack with.
STACK_STATISTICS = ("MEAN", "MEANCLIP", "MEDIAN")

#: The DCR solvers (`dcrcoadd.dcr.solvers` implements one per name; its settings are the
#: `DcrConfig` field of the same name).
SOLVER_NAMES = ("iterative", "exact")

#: Smallest side of ``coadd.subregion_size`` (pixels): below it a subregion is mostly the buffer its
#: DCR solve reads round it, and [1, 1] (a count of subregions?) would run for hours on a CCD.
MIN_SUBREGION = 8


def _unique_upper(names) -> list[str]:
    out: list[str] = []
    for n in names:
        n = str(n).upper()
        if n not in out:
            out.append(n)
    return out


def _fail(name: str, problem: str, value) -> None:
    raise ConfigError(f"{name} {problem}, got {value!r}")


def _check_number(name: str, value, *, positive=False, non_negative=False, lo=None, hi=None,
                  integer=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(name, "must be a number", value)
    if integer and int(value) != value:
        _fail(name, "must be an integer", value)
    if not math.isfinite(value):
        _fail(name, "must be finite", value)
    if positive and not value > 0:
        _fail(name, "must be positive", value)
    if non_negative and value < 0:
        _fail(name, "must not be negative", value)
    if lo is not None and value < lo:
        _fail(name, f"must be at least {lo}", value)
    if hi is not None and value > hi:
        _fail(name, f"must be at most {hi}", value)


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        _fail(name, "must be true or false", value)


def _check_planes(name: str, value) -> None:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(name, "must be a list of mask plane names", value)
    for plane in value:
        if not isinstance(plane, str) or not plane.strip() or not plane.replace("_", "").isalnum():
            _fail(name, "must hold mask plane names (letters, digits, _)", value)


def _check_statistic(name: str, value) -> None:
    if not isinstance(value, str) or value.upper() not in STACK_STATISTICS:
        _fail(name, f"must be one of {', '.join(STACK_STATISTICS)}", value)


def validate_inputs(i: InputsConfig, prefix: str = "inputs") -> None:
    """Validate an `InputsConfig`: a known instrument, header-map fields that exist and cards that
    are FITS keywords, a weights pattern that names each image; `ConfigError` names the field."""
    from dcrcoadd.core.instrument import INSTRUMENTS, check_header_map
    from dcrcoadd.io.quality import MASK_CODES
    from dcrcoadd.io.weights import check_weights_pattern

    p = prefix + "."
    if i.instrument is not None and str(i.instrument).lower() not in INSTRUMENTS:
        _fail(p + "instrument", f"must be one of {', '.join(INSTRUMENTS)}", i.instrument)
    try:
        check_header_map(i.header_map)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("inputs.", p, 1)) from None
    _check_bool(p + "measure_psf", i.measure_psf)
    if i.weights is not None:
        try:
            check_weights_pattern(i.weights)
        except ConfigError as exc:
            raise ConfigError(f"{p}weights: {exc}") from None
    if i.masks is not None:
        try:
            check_weights_pattern(i.masks, "masks")
        except ConfigError as exc:
            raise ConfigError(f"{p}masks: {exc}") from None
    if i.mask_codes not in MASK_CODES:
        _fail(p + "mask_codes", f"must be one of {', '.join(MASK_CODES)}", i.mask_codes)


def _check_stacking(p: str, s) -> None:
    """The fields every stacking section has (statistic, clipping, bad planes, error model)."""
    _check_statistic(p + "statistic", s.statistic)
    _check_number(p + "sigma_clip", s.sigma_clip, positive=True)
    _check_number(p + "clip_iter", s.clip_iter, integer=True, lo=1)
    _check_planes(p + "bad_mask_planes", s.bad_mask_planes)
    _check_bool(p + "calc_error_from_input_variance", s.calc_error_from_input_variance)


def validate_coadd(c: CoaddConfig, prefix: str = "coadd") -> None:
    """Validate a `CoaddConfig`; `ConfigError` names the field as ``<prefix>.<field>``."""
    p = prefix + "."
    _check_stacking(p, c)
    _check_planes(p + "remove_mask_planes", c.remove_mask_planes)
    if not isinstance(c.mask_propagation_thresholds, dict):
        _fail(p + "mask_propagation_thresholds", "must be a table of plane = fraction",
              c.mask_propagation_thresholds)
    _check_planes(p + "mask_propagation_thresholds", list(c.mask_propagation_thresholds))
    for plane, thr in c.mask_propagation_thresholds.items():
        _check_number(f"{p}mask_propagation_thresholds.{plane}", thr, lo=0.0, hi=1.0)
    size = c.subregion_size
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        _fail(p + "subregion_size", "must be [width, height]", size)
    for v in size:
        _check_number(p + "subregion_size", v, integer=True, lo=1)
    if min(size) < MIN_SUBREGION:
        # (each DCR subregion is solved with a buffer of up to 48 px round it: [1, 1] ran for more
        # than 300 s on a 128-px field, where [2000, 2000] takes seconds)
        _fail(p + "subregion_size",
              f"must be at least {MIN_SUBREGION} pixels a side (pixels, not a number of subregions)", size)
    for flag in ("do_interp", "do_airmass_weight", "do_mask_bright_objects"):
        _check_bool(p + flag, getattr(c, flag))
    _check_planes(p + "bright_object_mask_name", [c.bright_object_mask_name])
    if c.bright_object_mask_file is not None and not isinstance(c.bright_object_mask_file, str):
        _fail(p + "bright_object_mask_file", "must be a path or null", c.bright_object_mask_file)
    if c.do_mask_bright_objects and not c.bright_object_mask_file:
        _fail(p + "bright_object_mask_file", "must be set when do_mask_bright_objects is true",
              c.bright_object_mask_file)


def validate_artifacts(a: ArtifactConfig, prefix: str = "artifacts") -> None:
    """Validate an `ArtifactConfig`; `ConfigError` names the field as ``<prefix>.<field>``."""
    p = prefix + "."
    for flag in ("enabled", "do_preserve_contained_by_source", "do_scale_warp_variance",
                 "do_prefilter_artifacts", "do_write_artifact_masks"):
        _check_bool(p + flag, getattr(a, flag))
    if a.model_psf_fwhm is not None:
        _check_number(p + "model_psf_fwhm", a.model_psf_fwhm, positive=True)
    s = a.assemble_static_sky_model
    sp = p + "assemble_static_sky_model."
    _check_stacking(sp, s)
    d = a.detect
    _check_number(p + "detect.threshold_value", d.threshold_value, positive=True)
    if d.threshold_polarity not in ("positive", "negative", "both"):
        _fail(p + "detect.threshold_polarity", "must be positive, negative or both", d.threshold_polarity)
    _check_number(p + "detect.min_pixels", d.min_pixels, integer=True, lo=1)
    _check_number(p + "detect.n_sigma_to_grow", d.n_sigma_to_grow, non_negative=True)
    t = a.detect_template
    _check_number(p + "detect_template.threshold_value", t.threshold_value, positive=True)
    _check_number(p + "detect_template.n_sigma_to_grow", t.n_sigma_to_grow, non_negative=True)
    _check_number(p + "max_num_epochs", a.max_num_epochs, integer=True, lo=0)
    _check_number(p + "max_fraction_epochs_low", a.max_fraction_epochs_low, lo=0.0, hi=1.0)
    _check_number(p + "max_fraction_epochs_high", a.max_fraction_epochs_high, lo=0.0, hi=1.0)
    _check_number(p + "spatial_threshold", a.spatial_threshold, lo=0.0, hi=1.0)
    _check_planes(p + "prefilter_artifacts_mask_planes", a.prefilter_artifacts_mask_planes)
    _check_number(p + "prefilter_artifacts_ratio", a.prefilter_artifacts_ratio, lo=0.0, hi=1.0)


def validate_iterative(s: IterativeSettings, n_subfilters: int, prefix: str = "dcr.iterative") -> None:
    """Check the iterative solver's settings; `ConfigError` names the first bad field."""
    for name in ("max_num_iter", "min_num_iter"):
        value = getattr(s, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            _fail(f"{prefix}.{name}", "must be a positive integer or None", value)
    lo = s.min_num_iter if s.min_num_iter is not None else n_subfilters
    hi = s.max_num_iter if s.max_num_iter is not None else 3 * n_subfilters
    if lo > hi:
        _fail(f"{prefix}.min_num_iter", f"must not exceed max_num_iter ({hi})", lo)
    _check_number(f"{prefix}.convergence_threshold", s.convergence_threshold, positive=True)
    if s.base_gain is not None:
        _check_number(f"{prefix}.base_gain", s.base_gain, positive=True)
    _check_bool(f"{prefix}.use_progressive_gain", s.use_progressive_gain)
    _check_number(f"{prefix}.accelerate_model", s.accelerate_model, lo=1.0)
    _check_number(f"{prefix}.regularize_model_iterations", s.regularize_model_iterations, non_negative=True)
    _check_number(f"{prefix}.regularize_model_frequency", s.regularize_model_frequency, non_negative=True)
    if not isinstance(s.regularization_width, int) or s.regularization_width < 0:
        _fail(f"{prefix}.regularization_width", "must be a non-negative integer", s.regularization_width)
    _check_bool(f"{prefix}.use_model_weights", s.use_model_weights)
    if s.use_model_weights and not s.model_weights_width >= 0:
        _fail(f"{prefix}.model_weights_width", "must not be negative when use_model_weights is on",
              s.model_weights_width)
    _check_bool(f"{prefix}.use_exact_adjoint", s.use_exact_adjoint)


def validate_exact(s: ExactSettings, prefix: str = "dcr.exact") -> None:
    """Check the exact solver's settings; `ConfigError` names the first bad field."""
    for name, allowed in (("prior", ("colour", "flat", "none")), ("interpolation", ("exact", "bilinear")),
                          ("precision", ("single", "double")), ("boundary", ("pad", "taper"))):
        if getattr(s, name) not in allowed:
            _fail(f"{prefix}.{name}", f"must be one of {', '.join(allowed)}", getattr(s, name))
    for name in ("flat_strength", "colour_strength", "cutoff_strength", "colour_floor", "colour_tolerance",
                 "pad_weight", "cg_tolerance"):
        _check_number(f"{prefix}.{name}", getattr(s, name), non_negative=True)
    for name in ("psf_sigma", "colour_scale"):
        if getattr(s, name) is not None:
            _check_number(f"{prefix}.{name}", getattr(s, name), positive=True)
    for name, lo in (("colour_iterations", 0), ("cg_max_iter", 1), ("refit_cg_max_iter", 1),
                     ("wavelength_samples", 1), ("workers", 1), ("cache_bytes", 0), ("min_buffer", 0),
                     ("fill_iterations", 1)):
        value = getattr(s, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            _fail(f"{prefix}.{name}", f"must be an integer >= {lo}", value)
    if s.pad is not None and (not isinstance(s.pad, int) or s.pad < 0):
        _fail(f"{prefix}.pad", "must be a non-negative integer or None", s.pad)
    if s.taper_width is not None and (not isinstance(s.taper_width, int) or s.taper_width < 0):
        _fail(f"{prefix}.taper_width", "must be a non-negative integer or None", s.taper_width)


def validate_dcr(d: DcrConfig, prefix: str = "dcr") -> None:
    """Check the DCR section and its solvers' settings; `ConfigError` names the first bad field."""
    if not isinstance(d.dcr_num_subfilters, int) or d.dcr_num_subfilters < 2:
        _fail(f"{prefix}.dcr_num_subfilters", "must be an integer >= 2", d.dcr_num_subfilters)
    if d.subfilter_partition not in ("equal-width", "equal-throughput"):
        _fail(f"{prefix}.subfilter_partition", "must be 'equal-width' or 'equal-throughput'",
              d.subfilter_partition)
    if d.solver not in SOLVER_NAMES:
        _fail(f"{prefix}.solver", f"must be one of {', '.join(SOLVER_NAMES)}", d.solver)
    if d.image_interp_order not in (1, 3):
        _fail(f"{prefix}.image_interp_order", "must be 1 (bilinear) or 3 (cubic spline)",
              d.image_interp_order)
    _check_bool(f"{prefix}.split_subfilters", d.split_subfilters)
    _check_number(f"{prefix}.split_threshold", d.split_threshold, non_negative=True)
    _check_number(f"{prefix}.buffer_factor", d.buffer_factor, lo=1.0)
    _check_bool(f"{prefix}.do_calculate_psf", d.do_calculate_psf)
    _check_planes(f"{prefix}.convergence_mask_planes", d.convergence_mask_planes)
    if d.psf_model not in ("auto", "warp", "none", None):  # (--set dcr.psf_model=none reads as None)
        _fail(f"{prefix}.psf_model", "must be 'auto', 'warp' or 'none'", d.psf_model)
    if d.psf_reference_fwhm is not None:
        _check_number(f"{prefix}.psf_reference_fwhm", d.psf_reference_fwhm, positive=True)
    _check_number(f"{prefix}.psf_reference_scale", d.psf_reference_scale, positive=True, hi=2.0)
    _check_number(f"{prefix}.psf_ratio_floor", d.psf_ratio_floor, positive=True, hi=0.5)
    _check_number(f"{prefix}.psf_chromatic_index", d.psf_chromatic_index, lo=-1.0, hi=1.0)
    _check_number(f"{prefix}.psf_refits", d.psf_refits, non_negative=True, integer=True, hi=10)
    validate_iterative(d.iterative, d.dcr_num_subfilters, f"{prefix}.iterative")
    validate_exact(d.exact, f"{prefix}.exact")
