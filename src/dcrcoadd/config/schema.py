"""Typed configuration: a plain tree of dataclasses.

Field names are the LSST pipeline config fields in snake_case (``sigmaClip`` ->
``sigma_clip``), with LSST's defaults as ``DcrAssembleCoaddTask`` inherits them
from ``CompareWarpAssembleCoaddTask`` unless an issue says otherwise; each field's
docstring names the LSST field and says where the default differs. The tree
holds only plain values (str, int, float, bool, list, tuple, dict), so
`dataclasses.asdict` serializes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dcrcoadd.errors import ConfigError

#: Statistics `dcrcoadd.ops.stack` can stack with.
STACK_STATISTICS = ("MEAN", "MEANCLIP", "MEDIAN")

#: The DCR solvers (`dcrcoadd.dcr.solvers` implements one per name; its settings are the
#: `DcrConfig` field of the same name).
SOLVER_NAMES = ("iterative",)


@dataclass
class StaticSkyConfig:
    """How the static-sky model for compare-warp is stacked (LSST ``assembleStaticSkyModel``)."""

    statistic: str = "MEANCLIP"
    """Stacking statistic of the PSF-matched warps. LSST ``assembleStaticSkyModel.statistic``
    (set to ``MEANCLIP`` by ``CompareWarpAssembleCoaddConfig``)."""

    sigma_clip: float = 2.5
    """Clipping half-width in standard deviations. LSST ``assembleStaticSkyModel.sigmaClip`` (2.5)."""

    clip_iter: int = 3
    """Clipping iterations. LSST ``assembleStaticSkyModel.clipIter`` (3)."""

    bad_mask_planes: list[str] = field(default_factory=lambda: ["NO_DATA"])
    """Planes that exclude a PSF-matched pixel. LSST ``assembleStaticSkyModel.badMaskPlanes``
    (``[NO_DATA]``)."""

    calc_error_from_input_variance: bool = False
    """Static-sky variance from the input variances (True) or from the scatter of the
    inputs (False). LSST ``assembleStaticSkyModel.calcErrorFromInputVariance`` (False): the
    empirical scatter damps detections where the inputs disagree (e.g. around sources moved
    by DCR)."""


@dataclass
class DetectConfig:
    """Detection of outliers on (PSF-matched warp - static sky) (LSST ``detect``)."""

    threshold_value: float = 7.5
    """Per-pixel significance threshold, in sigma of the difference image's own variance
    (LSST ``thresholdType = "pixel_stdev"``, no smoothing). LSST ``detect.thresholdValue`` is
    5 in ``CompareWarpAssembleCoaddConfig``; issue 5 sets 7.5."""

    threshold_polarity: str = "both"
    """Detect ``positive``, ``negative`` or ``both`` excursions. LSST ``detect.thresholdPolarity``
    (``both``)."""

    min_pixels: int = 4
    """Smallest footprint kept, in pixels above threshold. LSST ``detect.minPixels`` (4)."""

    n_sigma_to_grow: float = 0.4
    """Grow footprints isotropically by ``int(n_sigma_to_grow * sigma_psf + 0.5)`` pixels, with
    ``sigma_psf`` the Gaussian sigma of the PSF-matched model PSF. LSST ``detect.nSigmaToGrow`` (0.4)."""


@dataclass
class DetectTemplateConfig:
    """Detection of sources on the static-sky model, whose footprints protect artifact
    candidates entirely inside them (LSST ``detectTemplate``)."""

    threshold_value: float = 5.0
    """Threshold on the PSF-smoothed static sky, in units of that smoothed image's clipped
    standard deviation (LSST ``thresholdType = "stdev"``): a point-source S/N. LSST
    ``detectTemplate.thresholdValue`` (5). Issue 5 suggested protecting only S/N > 300 sources;
    on simulated high-airmass data that leaves moderately bright stars' DCR residuals in the
    extreme-airmass visits unprotected (26 footprints clipped instead of 5, -1.6% coadd flux),
    so LSST's value is kept."""

    n_sigma_to_grow: float = 2.4
    """Grow template footprints by ``int(n_sigma_to_grow * sigma_psf + 0.5)`` pixels.
    LSST ``detectTemplate.nSigmaToGrow`` (2.4)."""


@dataclass
class ArtifactConfig:
    """Compare-warp transient artifact rejection (LSST ``CompareWarpAssembleCoaddConfig``)."""

    enabled: bool = True
    """Find artifacts by comparing PSF-matched warps (``CompareWarpAssembleCoaddTask``); False
    gives a plain ``AssembleCoaddTask`` coadd. Not an LSST field (LSST picks a task class)."""

    model_psf_fwhm: float | None = None
    """FWHM (pixels) of the common Gaussian PSF every warp is matched to; None: the largest input
    PSF (Gaussian equivalent from its noise-equivalent area) broadened by a 1-pixel-sigma
    Gaussian. A value below the largest input is raised to it. LSST builds PSF-matched warps
    with ``modelPsf.defaultFwhm`` = 7.7 px; dcrcoadd matches on the fly (see `dcrcoadd.coadd.artifacts`)."""

    assemble_static_sky_model: StaticSkyConfig = field(default_factory=StaticSkyConfig)
    """LSST ``assembleStaticSkyModel``."""

    detect: DetectConfig = field(default_factory=DetectConfig)
    """LSST ``detect``."""

    detect_template: DetectTemplateConfig = field(default_factory=DetectTemplateConfig)
    """LSST ``detectTemplate``."""

    do_preserve_contained_by_source: bool = True
    """Keep (do not clip) candidates lying entirely inside one static-sky source footprint.
    LSST ``doPreserveContainedBySource`` (True)."""

    max_num_epochs: int = 2
    """Characteristic number of epochs an artifact may appear in and still be clipped; the
    effective limit is ``int(min(max_fraction_epochs_low * N, max_num_epochs +
    max_fraction_epochs_high * N))`` for ``N`` local epochs. LSST ``maxNumEpochs`` (2)."""

    max_fraction_epochs_low: float = 0.4
    """Fraction of ``N`` used as the epoch limit at low ``N``. LSST ``maxFractionEpochsLow`` (0.4)."""

    max_fraction_epochs_high: float = 0.03
    """Fraction of ``N`` added to ``max_num_epochs`` at high ``N``. LSST ``maxFractionEpochsHigh`` (0.03)."""

    spatial_threshold: float = 0.5
    """A candidate is clipped when more than this fraction of its pixels are outliers in at
    least one and at most the effective maximum number of epochs (0: clip all, 1: none).
    LSST ``spatialThreshold`` (0.5)."""

    do_scale_warp_variance: bool = True
    """Rescale each PSF-matched warp's variance to its empirical noise (pixel-based IQR
    estimate) before detection. LSST ``doScaleWarpVariance`` (True)."""

    do_prefilter_artifacts: bool = True
    """Drop candidates mostly covered by ``prefilter_artifacts_mask_planes`` before counting
    epochs. LSST ``doPrefilterArtifacts`` (True)."""

    prefilter_artifacts_mask_planes: list[str] = field(
        default_factory=lambda: ["NO_DATA", "BAD", "SAT", "SUSPECT"])
    """Planes that make a pixel bad for the prefilter. LSST ``prefilterArtifactsMaskPlanes``."""

    prefilter_artifacts_ratio: float = 0.05
    """Candidates whose good-pixel fraction is at or below this are dropped.
    LSST ``prefilterArtifactsRatio`` (0.05)."""

    do_write_artifact_masks: bool = False
    """Write one artifact-mask FITS file per warp beside the coadd (`dcrcoadd.coadd.baseline.write_coadd`).
    Not an LSST field (LSST can save the epoch-count image for debugging)."""


@dataclass
class CoaddConfig:
    """Baseline coadd assembly (LSST ``AssembleCoaddConfig`` as ``CompareWarpAssembleCoaddConfig``
    sets it)."""

    statistic: str = "MEAN"
    """Stacking statistic: ``MEAN``, ``MEANCLIP`` or ``MEDIAN`` (weighted except the median).
    LSST ``statistic``: ``MEANCLIP`` in ``AssembleCoaddConfig``, ``MEAN`` in
    ``CompareWarpAssembleCoaddConfig`` (and so for DCR)."""

    sigma_clip: float = 3.0
    """Clipping half-width in standard deviations for ``MEANCLIP``. LSST ``sigmaClip`` (3.0)."""

    clip_iter: int = 2
    """Clipping iterations for ``MEANCLIP`` (and for the per-warp mean variance). LSST ``clipIter`` (2)."""

    calc_error_from_input_variance: bool = True
    """Coadd variance from the input variances (``sum w^2 var / (sum w)^2``) rather than from
    the scatter. LSST ``calcErrorFromInputVariance`` (True)."""

    bad_mask_planes: list[str] = field(default_factory=lambda: ["NO_DATA", "BAD", "SAT", "EDGE"])
    """Input planes that exclude a pixel. LSST ``badMaskPlanes`` (``NO_DATA, BAD, SAT, EDGE``);
    with compare-warp EDGE is dropped from this list and removed from the inputs, and CLIPPED is
    added for the baseline coadd only (never for the DCR model)."""

    remove_mask_planes: list[str] = field(default_factory=lambda: ["NOT_DEBLENDED"])
    """Planes cleared from the inputs before stacking. LSST ``removeMaskPlanes`` (``NOT_DEBLENDED``;
    compare-warp appends EDGE)."""

    mask_propagation_thresholds: dict[str, float] = field(default_factory=lambda: {"SAT": 0.1})
    """Set a plane on the coadd where the fraction of weight rejected because of it exceeds the
    threshold. LSST ``maskPropagationThresholds`` (``{SAT: 0.1}``)."""

    subregion_size: tuple[int, int] = (2000, 2000)
    """Width, height (pixels) of the subregions stacked at a time; bounds memory.
    LSST ``subregionSize`` ((2000, 2000))."""

    do_interp: bool = True
    """Interpolate over NO_DATA pixels of the final coadd (flagged INTRP, variance set to
    infinity). LSST ``doInterp`` (True)."""

    do_airmass_weight: bool = False
    """Multiply each warp's weight by its airmass. LSST ``DcrAssembleCoaddConfig.doAirmassWeight`` (False)."""

    do_mask_bright_objects: bool = False
    """Set ``bright_object_mask_name`` from ``bright_object_mask_file``.
    LSST ``doMaskBrightObjects`` (False)."""

    bright_object_mask_name: str = "BRIGHT_OBJECT"
    """Plane set inside bright-object regions. LSST ``brightObjectMaskName``."""

    bright_object_mask_file: str | None = None
    """ECSV/CSV table of bright-object regions (``ra``, ``dec`` in deg; ``radius`` in arcsec for
    circles, or ``type = box`` with ``width``, ``height`` in arcsec). Not an LSST field (LSST reads
    a butler dataset)."""


@dataclass
class IterativeSettings:
    """DMTN-037's iterative solver as LSST's ``DcrAssembleCoaddTask`` runs it (``dcr.solver = iterative``)."""

    max_num_iter: int | None = None
    """Maximum iterations; None means 3 M. LSST ``maxNumIter`` (None)."""

    min_num_iter: int | None = None
    """Minimum iterations; None means M. LSST ``minNumIter`` (None)."""

    convergence_threshold: float = 0.001
    """Stop when the relative improvement of the convergence metric falls below this.
    LSST ``convergenceThreshold`` (0.001)."""

    base_gain: float | None = None
    """Weight of the new solution against the previous one; None means 1 / (M - 1).
    LSST ``baseGain`` (None)."""

    use_progressive_gain: bool = True
    """Raise the gain as the solution proves predictable. LSST ``useProgressiveGain`` (True)."""

    accelerate_model: float = 3.0
    """Factor amplifying the subfilters' deviations from their mean in the forward model.
    LSST ``accelerateModel`` (3)."""

    regularize_model_iterations: float = 2.0
    """Maximum relative change of the model between iterations; 0 disables.
    LSST ``regularizeModelIterations`` (2)."""

    regularize_model_frequency: float = 4.0
    """Maximum relative change of the model between subfilters; 0 disables.
    LSST ``regularizeModelFrequency`` (4)."""

    regularization_width: int = 2
    """Minimum radius (pixels) of a region the regularization acts on.
    LSST ``regularizationWidth`` (2)."""

    use_model_weights: bool = True
    """Taper the model to the reference image away from detected sources.
    LSST ``useModelWeights`` (True)."""

    model_weights_width: float = 3.0
    """Gaussian sigma (pixels) of that taper. LSST ``modelWeightsWidth`` (3)."""

    use_exact_adjoint: bool = True
    """Shift residuals back with the exact transpose of the forward shift. LSST shifts them by
    the reverse DCR, which is the same operator except within a few pixels of the subregion
    edges, where it feeds residuals back inconsistently: on near-zenith data (DCR ~0.2 px) the
    iteration then diverges from the first step. Not an LSST field (False reproduces LSST)."""


@dataclass
class DcrConfig:
    """The DCR model, its forward model and the choice of solver (LSST ``DcrAssembleCoaddConfig``)."""

    dcr_num_subfilters: int = 3
    """Number of subfilters M the band is split into. LSST ``dcrNumSubfilters`` (3)."""

    subfilter_partition: str = "equal-width"
    """How the band is split: ``equal-width`` (LSST) or ``equal-throughput`` (needs a curve).
    Not an LSST field."""

    solver: str = "iterative"
    """Solver for each subregion: one of `SOLVER_NAMES` (see `dcrcoadd.dcr.solvers`); its settings
    are the section of the same name. Not an LSST field."""

    image_interp_order: int = 1
    """Interpolation of the DCR shifts: 1 bilinear, 3 cubic spline. LSST ``imageInterpOrder``
    (issue 6 sets 1)."""

    split_subfilters: bool = True
    """Forward-model each subfilter as two half-weighted shifts. LSST ``splitSubfilters`` (True)."""

    split_threshold: float = 0.1
    """Minimum difference (pixels) of the two shifts for splitting to be used.
    LSST ``splitThreshold`` (0.1)."""

    buffer_factor: float = 3.0
    """Each subregion is solved over a box grown by ``buffer_factor * (ceil(max |DCR shift|) + 1)``
    pixels. LSST uses factor 1, but every iteration carries errors from the box edge inwards by
    up to two shifts, so with factor 1 tiled subregions disagree with a single region near their
    borders (by ~2 % of the peak in tests); factor 3 brings that to ~1e-4 at ~2 % more pixels for
    2000-px subregions. Not an LSST field."""

    convergence_mask_planes: list[str] = field(default_factory=lambda: ["DETECTED"])
    """Coadd planes whose pixels enter the convergence metric and model weights.
    LSST ``convergenceMaskPlanes`` ([DETECTED])."""

    do_calculate_psf: bool = False
    """Measure an empirical PSF from bright isolated stars of the final DCR coadd, keeping the
    best-seeing input PSF when that fails (with a warning). LSST ``doCalculatePsf`` (True there;
    off here as issue 6 asks: the input-based PSF is well defined on any field)."""

    iterative: IterativeSettings = field(default_factory=IterativeSettings)
    """Settings of the iterative solver."""


@dataclass
class InputsConfig:
    """How input warps are interpreted."""

    instrument: str | None = None
    """Instrument preset (``lsst``, ``decam``, ``hsc``): gives warps whose headers lack them the
    camera's filter curve for their ``FILTER`` band and the camera's site. Never overrides what
    a file says. Not an LSST field (the LSST butler knows the instrument)."""


@dataclass
class Config:
    """Root of the dcrcoadd configuration tree."""

    inputs: InputsConfig = field(default_factory=InputsConfig)
    coadd: CoaddConfig = field(default_factory=CoaddConfig)
    artifacts: ArtifactConfig = field(default_factory=ArtifactConfig)
    dcr: DcrConfig = field(default_factory=DcrConfig)

    def validate(self) -> None:
        """Check every field; raise `ConfigError` naming the first bad one."""
        if self.inputs.instrument is not None:
            from dcrcoadd.core.instrument import INSTRUMENTS

            if str(self.inputs.instrument).lower() not in INSTRUMENTS:
                _fail("inputs.instrument", f"must be one of {', '.join(INSTRUMENTS)}", self.inputs.instrument)
        validate_coadd(self.coadd, "coadd")
        validate_artifacts(self.artifacts, "artifacts")
        validate_dcr(self.dcr, "dcr")

    # -- derived settings --------------------------------------------------------------------
    def effective_bad_mask_planes(self) -> list[str]:
        """Bad planes for weights, n_image and the DCR model: with compare-warp, EDGE removed.

        CLIPPED is *not* among them: the baseline coadd adds it (`coadd_bad_mask_planes`), the
        DCR model must not, because sources moved by DCR are both DETECTED and CLIPPED.
        """
        planes = _unique_upper(self.coadd.bad_mask_planes)
        if self.artifacts.enabled:
            planes = [p for p in planes if p != "EDGE"]
        return planes

    def coadd_bad_mask_planes(self) -> list[str]:
        """Bad planes of the baseline coadd stack: `effective_bad_mask_planes` plus CLIPPED
        when compare-warp is on."""
        planes = self.effective_bad_mask_planes()
        if self.artifacts.enabled and "CLIPPED" not in planes:
            planes.append("CLIPPED")
        return planes

    def effective_remove_mask_planes(self) -> list[str]:
        """Planes cleared from the inputs before stacking: with compare-warp, EDGE appended."""
        planes = _unique_upper(self.coadd.remove_mask_planes)
        if self.artifacts.enabled and "EDGE" not in planes:
            planes.append("EDGE")
        return planes


# -- validation -----------------------------------------------------------------------------------

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


def validate_coadd(c: CoaddConfig, prefix: str = "coadd") -> None:
    """Validate a `CoaddConfig`; `ConfigError` names the field as ``<prefix>.<field>``."""
    p = prefix + "."
    _check_statistic(p + "statistic", c.statistic)
    _check_number(p + "sigma_clip", c.sigma_clip, positive=True)
    _check_number(p + "clip_iter", c.clip_iter, integer=True, lo=1)
    _check_bool(p + "calc_error_from_input_variance", c.calc_error_from_input_variance)
    _check_planes(p + "bad_mask_planes", c.bad_mask_planes)
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
    _check_statistic(sp + "statistic", s.statistic)
    _check_number(sp + "sigma_clip", s.sigma_clip, positive=True)
    _check_number(sp + "clip_iter", s.clip_iter, integer=True, lo=1)
    _check_planes(sp + "bad_mask_planes", s.bad_mask_planes)
    _check_bool(sp + "calc_error_from_input_variance", s.calc_error_from_input_variance)
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
    validate_iterative(d.iterative, d.dcr_num_subfilters, f"{prefix}.iterative")


# -- TOML files and command-line overrides ----------------------------------------------------------

def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} to TOML")


def field_docs() -> dict[str, dict[str, str]]:
    """``{class name: {field: docstring}}`` for the configuration dataclasses.

    The documentation of each field is the string literal under it in this
    module's source (the convention the dataclasses above follow).
    """
    import ast
    import inspect
    import sys

    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    docs: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, str] = {}
        body = node.body
        for item, after in zip(body, body[1:], strict=False):
            if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                fields[item.target.id] = inspect.cleandoc(after.value.value)
        docs[node.name] = fields
    return docs


def to_toml(config: Config, *, comments: bool = False) -> str:
    """The configuration as TOML text, one table per section; ``None`` fields are written as
    comments (TOML has no null), so reading the text back gives the same configuration.
    With ``comments``, each field is preceded by its documentation (meaning, unit, LSST name)."""
    import dataclasses
    import textwrap

    lines: list[str] = []
    docs = field_docs() if comments else {}

    def emit(obj, prefix: str) -> None:
        scalars = [f for f in dataclasses.fields(obj) if not dataclasses.is_dataclass(getattr(obj, f.name))]
        tables = [f for f in dataclasses.fields(obj) if dataclasses.is_dataclass(getattr(obj, f.name))]
        if scalars:
            lines.append(f"[{prefix}]")
            for f in scalars:
                doc = docs.get(type(obj).__name__, {}).get(f.name)
                if doc:
                    lines.extend("# " + line for line in textwrap.wrap(" ".join(doc.split()), 96))
                value = getattr(obj, f.name)
                lines.append(f"# {f.name} = (default: None)" if value is None
                             else f"{f.name} = {_toml_value(value)}")
                if doc:
                    lines.append("")
            lines.append("")
        for f in tables:
            emit(getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name)

    emit(config, "")
    return "\n".join(lines).rstrip() + "\n"


def to_markdown(config: Config | None = None) -> str:
    """A reference table of every field: name, default, documentation (with its LSST name)."""
    import dataclasses

    config = config or Config()
    docs = field_docs()
    out = ["# Configuration reference", "",
           "Generated by `dcrcoadd config markdown > docs/configuration.md`: every field, its default",
           "and its LSST `DcrAssembleCoaddConfig` / `CompareWarpAssembleCoaddConfig` counterpart. Set",
           "fields in a TOML file (`--config FILE`; a commented template comes from",
           "`dcrcoadd config dump FILE`) or with `--set section.field=value`.", "",
           "| field | default | meaning (LSST name) |", "|---|---|---|"]

    def emit(obj, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            name = f"{prefix}.{f.name}" if prefix else f.name
            if dataclasses.is_dataclass(value):
                emit(value, name)
                continue
            doc = " ".join(docs.get(type(obj).__name__, {}).get(f.name, "").split()).replace("|", "\\|")
            default = "None" if value is None else _toml_value(value).replace("|", "\\|")
            out.append(f"| `{name}` | `{default}` | {doc} |")

    emit(config, "")
    return "\n".join(out) + "\n"


def _assign(obj, path: list[str], value, full: str) -> None:
    import dataclasses

    name = path[0]
    names = {f.name for f in dataclasses.fields(obj)}
    if name not in names:
        # a field that lives one section deeper (dcr.max_num_iter is dcr.iterative.max_num_iter)
        deeper = [f.name for f in dataclasses.fields(obj) if dataclasses.is_dataclass(getattr(obj, f.name))
                  and name in {g.name for g in dataclasses.fields(getattr(obj, f.name))}]
        hint = f"; did you mean {full.rsplit(name, 1)[0]}{deeper[0]}.{name}?" if deeper else ""
        raise ConfigError(f"unknown configuration field {full!r} ({name!r} is not one of "
                          f"{', '.join(sorted(names))}){hint}")
    current = getattr(obj, name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{full!r}: {name!r} is a value, not a section")
        _assign(current, path[1:], value, full)
        return
    if dataclasses.is_dataclass(current):
        if not isinstance(value, dict):
            raise ConfigError(f"{full!r} is a section; give a table")
        for key, sub in value.items():
            _assign(current, [key], sub, f"{full}.{key}")
        return
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    setattr(obj, name, value)


def from_dict(data: dict, base: Config | None = None) -> Config:
    """A configuration with the values of a nested dict (e.g. parsed TOML) applied to ``base``."""
    import copy

    config = copy.deepcopy(base) if base is not None else Config()
    for key, value in data.items():
        _assign(config, [key], value, key)
    return config


def load_toml(path) -> Config:
    """Read a TOML configuration file; `ConfigError` naming the file on syntax or field errors."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def apply_override(config: Config, text: str) -> Config:
    """Apply one ``section.field=value`` override (value in TOML syntax; bare words are strings)."""
    import tomllib

    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form section.field=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if raw.lower() in ("none", "null"):
        value = None
    _assign(config, key.split("."), value, key)
    return config
