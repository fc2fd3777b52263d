"""Typed configuration: a plain tree of dataclasses.

Field names are the LSST pipeline config fields in snake_case (``sigmaClip`` ->
``sigma_clip``), with LSST's defaults as ``DcrAssembleCoaddTask`` inherits them
from ``CompareWarpAssembleCoaddTask`` unless an issue says otherwise; each field's
docstring names the LSST field and says where the default differs. The tree
holds only plain values (str, int, float, bool, list, tuple, dict), so
`dataclasses.asdict` serializes it.
"""

from __future__ import annotations

import ast
import inspect
import sys
from dataclasses import dataclass, field

from dcrcoadd.config.validation import (
    _unique_upper,
    validate_artifacts,
    validate_coadd,
    validate_dcr,
    validate_inputs,
)


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
    """Write one artifact-mask FITS file per warp beside the coadd (`dcrcoadd.io.coadd.write_coadd`).
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

    bad_mask_planes: list[str] = field(default_factory=lambda: ["NO_DATA", "BAD", "SAT", "EDGE", "CR"])
    """Input planes that exclude a pixel. LSST ``badMaskPlanes`` (``NO_DATA, BAD, SAT, EDGE``) plus
    ``CR``: LSST interpolates cosmic rays before flagging them, so its CR pixels hold made-up values,
    but other pipelines (DECam's community pipeline, the simulator) flag the raw charge, and
    compare-warp clips outliers only outside source footprints: on the simulator's defect fields
    cosmic-ray charge inside footprints reached the DCR model (false detections of the held-out
    visits of ``python -m benchmarks.scenarios``, with ``dcr.psf_ratio_floor`` at 1e-3: 739 without CR,
    469 with it, never more on any of its 28 fields). With compare-warp EDGE is dropped from this list
    and removed from the inputs, and CLIPPED is added for the baseline coadd only (never the DCR model)."""

    remove_mask_planes: list[str] = field(default_factory=lambda: ["NOT_DEBLENDED"])
    """Planes cleared from the inputs before stacking. LSST ``removeMaskPlanes`` (``NOT_DEBLENDED``;
    compare-warp appends EDGE)."""

    mask_propagation_thresholds: dict[str, float] = field(default_factory=lambda: {"SAT": 0.1})
    """Set a plane on the coadd where the fraction of weight rejected because of it exceeds the
    threshold. LSST ``maskPropagationThresholds`` (``{SAT: 0.1}``)."""

    subregion_size: tuple[int, int] = (2000, 2000)
    """Width, height (pixels) of the subregions stacked at a time; bounds memory. At least 8: each
    DCR subregion is solved with a buffer of up to 48 px round it. LSST ``subregionSize`` ((2000, 2000))."""

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
class ExactSettings:
    """The exact solver (``dcr.solver = exact``): regularized least squares of the Fourier forward
    model per tile (`dcrcoadd.dcr.solvers.exact`). Prior strengths are in units of one warp's
    information. Defaults were chosen on simulated two-sided and one-sided fields
    (``benchmarks/exact_prototype.py``; the colour prior's strength and floor checked again on the
    validation fields of five seeds, see ``colour_strength``). Not LSST fields."""

    prior: str = "colour"
    """``colour``: the source-colour prior (subfilter images of a source share its shape), plus the
    flat ridge if ``flat_strength`` > 0; ``flat``: the flat-spectrum ridge alone; ``none``: plain
    least squares."""

    flat_strength: float = 0.0
    """Strength of the flat-spectrum ridge (pulls every subfilter towards F/M; never touches the
    full-band image F)."""

    colour_strength: float = 0.15
    """Strength of the colour prior at low spatial frequencies. Stronger priors sharpen the subfilter
    colours but cost templates extrapolated beyond the model visits: on the one-sided validation
    field of five seeds (``python -m benchmarks.validation --seed N``: 8, 3, 11, 5, 12), 0.2–0.4
    raised the colour rank correlation by 0.005–0.02 and lowered the χ² per source pixel by 1–2 %,
    but the false detections at the science visit at airmass 1.92 on the other side of the meridian
    went from 2/0/1/0/1 to up to 2/3/1/5/7 (0.4; seed 12: 4 at 0.2, 6 at 0.25), past the noise floor
    + 5 that issue 12 allows. With a narrower colour window as well (``colour_scale`` 1 px, 0.6 of the
    PSF's sigma) 0.3 left fewer false detections on those fields (9 against 5 in all) and raised the
    rank by 0.003–0.009, but on the PSF-measured variable-seeing field (``python -m benchmarks.seeing``,
    seed 12) it left 13 against 4 (seeds 3, 5, 7: the same), and the rank stays below 0.95. That is
    at what the data hold: an unbiased estimator that fits the stars' positions with their fluxes
    reaches 0.944–0.957 on those five fields (``python -m benchmarks.colour_bound``; 0.982–0.989 if
    it knew the positions)."""

    cutoff_strength: float = 0.01
    """Growth of the prior beyond the PSF's cut-off, ``cutoff_strength (1/|P(k)|² − 1)``, where the
    data are mostly noise."""

    psf_sigma: float | None = None
    """Sigma (pixels) of the Gaussian PSF used for that cut-off when the model has no PSF kernel;
    None: from the model PSF's FWHM (1.7 px without one)."""

    colour_scale: float | None = None
    """Sigma (pixels) of the Gaussian window of the local colour fit; None: the model PSF's sigma
    (FWHM / 2.355; 1.7 px without a PSF)."""

    colour_floor: float = 16.0
    """Where the smoothed full-band signal is not well above this many times its noise variance,
    the colour falls back to flat. (8 gave the same false detections on the five one-sided fields
    above and colour slopes 0.967–1.041 against 0.953–1.014: no better overall.)"""

    colour_iterations: int = 30
    """Maximum number of refits of the colour prior."""

    colour_tolerance: float = 0.1
    """Stop refitting when the model changes by less than this (rms, in units of the full-band
    noise)."""

    pad: int | None = None
    """With ``boundary = "pad"``: margin (pixels) added round each tile for the periodic FFT grid;
    None: twice the largest shift plus the colour window plus 4; 0: the tile is treated as periodic."""

    pad_weight: float = 0.001
    """With ``boundary = "pad"``: weight (of a real pixel) of the zero pseudo-data in the pad (speeds
    up conjugate gradients)."""

    boundary: str = "pad"
    """How the tile's edge and masked pixels are handled: ``pad``: the tile is padded by ``pad``, the
    model unknown there, every solve by conjugate gradients; ``taper``: the tile is periodic and,
    within ``taper_width`` of its edge, the data are blended (cosine taper) towards the current
    model's own prediction, masked pixels replaced by it (EM fill) and pixels no warp sees by its
    kriging from around them; every solve is direct. The taper is about twice as fast (2048 × 4096 × 12
    warps: 20 s against 37 s of one core) and as good on simulated fields without saturated stars,
    except within about 20 px of the patch's edge, where the taper leaves the model less constrained
    (more 5σ residual pixels there at airmass 2); with saturated stars it left 19–48 false
    detections at airmass 2 where ``pad`` left 2–35 (seven fields), so ``pad`` stays the default."""

    taper_width: int | None = None
    """Width (pixels) of the taper of ``boundary = "taper"``; None: twice the largest shift plus the
    colour window plus 4 (the automatic pad)."""

    fill_iterations: int = 2
    """With ``boundary = "taper"``: fill-and-solve steps before the first colour refit (fewer refits
    in all: 27 with none, 21 with one, 17 with two or five on a 1024² × 12 synthetic tile)."""

    cg_tolerance: float = 0.01
    """Conjugate gradients stop when the model is about this far from the solution (rms per pixel,
    in units of the full-band noise). The colour alternation stops at ``colour_tolerance`` (0.1), which
    limits the model's accuracy more: measured on a synthetic 512² × 12 tile against a solve 100×
    tighter, 0.01 leaves the model beyond the buffer as close to it as 0.001 (rms 0.034 against
    0.038 of the noise) with a quarter of the iterations (16 against 66); 0.02 and above, farther."""

    cg_max_iter: int = 100
    """Conjugate-gradient iterations of a solve without the colour prior, at most."""

    refit_cg_max_iter: int = 10
    """With the colour prior: conjugate-gradient iterations of each refit (three times as many for
    the first solve), at most."""

    interpolation: str = "exact"
    """DCR phases of the forward model: ``exact`` sub-pixel translation, or ``bilinear`` (the transfer
    function of bilinear interpolation)."""

    wavelength_samples: int = 16
    """Wavelength bins per subfilter over which the DCR phase is averaged (finite bandwidth)."""

    linear_spectrum: bool = True
    """The forward model spreads each subfilter's light over its wavelength bins with the source
    spectrum's slope there (estimated from the neighbouring subfilters), not by the throughput
    alone: a source's centroid moves with its mean wavelength, to which that slope contributes,
    and without it the subfilter colours come out stretched by about M²/(M²−1) (measured on the
    validation fields: slope 1.15-1.22 at M = 3, 1.31-1.37 at M = 2; with it 0.94-1.03)."""

    precision: str = "single"
    """``single`` (complex64) or ``double`` transforms and iterates."""

    workers: int = 1
    """Threads for scipy.fft within one tile."""

    cache_bytes: int = 2147483648
    """Keep all transfer functions of a tile in memory when they fit in this many bytes (``8 N M ky
    (kx/2+1)`` in single precision: 0.7 GB for a 2160² grid and 12 warps); otherwise recompute one
    warp's whenever needed, which costs about as much as its FFTs (2048 × 4096 × 12 with the taper,
    measured on a loaded machine: 94 → 75 s of CPU once they are kept)."""

    min_buffer: int = 48
    """Smallest buffer (pixels) round each tile: near a tile edge the exact solution is less
    constrained (templates differ by a few sigma up to ~20 px in on one-sided coverage)."""


@dataclass
class DcrConfig:
    """The DCR model, its forward model and the choice of solver (LSST ``DcrAssembleCoaddConfig``)."""

    dcr_num_subfilters: int = 3
    """Number of subfilters M the band is split into. LSST ``dcrNumSubfilters`` (3)."""

    subfilter_partition: str = "equal-width"
    """How the band is split: ``equal-width`` (LSST) or ``equal-throughput`` (needs a curve).
    Not an LSST field."""

    solver: str = "exact"
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
    off here as issue 6 asks: the input-based PSF is well defined on any field). A PSF-aware fit
    (``psf_model = "warp"``) does not measure: its coadds are at the reference PSF by construction."""

    psf_model: str = "auto"
    """PSF-aware forward model (issue 13): ``warp`` — the model is the sky in each subfilter seen
    through a reference PSF and warp ``i`` sees it through ``P_i / P_ref`` (its own PSF: the warp's
    PSF HDU, else measured from its stars (``inputs.measure_psf``), else a Gaussian of its seeing
    card; if some warp has none, the run falls back to ``none`` with a warning), so warps of
    different seeing are fitted as they are; ``none`` — every warp is assumed to share one PSF;
    ``auto`` (default) — ``warp`` for the exact solver, ``none`` for the iterative solver, whose
    defaults keep LSST parity. The iterative solver with ``warp`` applies one ratio per warp to the
    shifted subfilter images (no chromatic seeing). Not an LSST field."""

    psf_reference_fwhm: float | None = None
    """FWHM (arcsec) of the exact solver's reference PSF with ``psf_model = "warp"``; default
    ``psf_reference_scale`` times the narrowest input's (the iterative solver's reference is the
    coadd's PSF: its conditioning holds the model near the coadd). The reference has the narrowest input's
    shape (its transfer function raised to a power), so that every warp's ratio ``P_i / P_ref``
    stays bounded. Not an LSST field."""

    psf_reference_scale: float = 0.9
    """Default reference FWHM as a fraction of the narrowest input PSF's (a little narrower, so
    templates can be made for science exposures up to that much sharper than every input without
    deconvolving). Not an LSST field."""

    psf_ratio_floor: float = 3e-4
    """Where the reference PSF's transfer ``|P_ref(k)|`` falls below this, the ratio
    ``P_i / P_ref`` is tapered to 0 (``P_i conj(P_ref) / (|P_ref|² + floor²)``) and the model there
    is set by a prior (the full-band image towards 0 below ten times this floor, the colours towards
    the colour prior), not by division. That prior is in units of one warp's information whatever a
    source's brightness, so it rounds off the high frequencies of bright stars: at 1e-3 a 14-mag
    star left rings of 10-17σ in the templates of the sharpest warps (`python -m benchmarks.scenarios`:
    469 false detections in all, 275 at 3e-4 and 288 at 1e-4, whose fields with four model visits got
    worse). The iterative solver's PSF term (``psf_model = "warp"``) tapers its ratio with the same
    floor (the variable-seeing test field gave it the same false detections at both). Not an LSST
    field."""

    psf_refits: int = 3
    """With ``psf_model = "warp"``, how many times the PSFs of warps measured from their own stars
    (``inputs.measure_psf``) are fitted against the model, each fit followed by a new solve (so the
    DCR stage takes ``1 + psf_refits`` solves): the round transfer function that maps the model,
    rendered at the reference PSF with the warp's DCR, onto the warp (`dcrcoadd.ops.psf_match`;
    the reference PSF stays the first solve's). Stars alone give PSFs to a few per cent, which
    leaves residuals around bright stars: on the variable-seeing validation field (0.6–1.3″) 0, 1, 2,
    3 and 4 refits left at most 75, 26, 7, 2 and 3 false detections per science visit, where the
    true PSFs left 0 (README Validation). 0: use the measured PSFs as they are. Not an LSST field."""

    psf_chromatic_index: float = -0.2
    """Chromatic seeing of the PSF-aware forward model (``psf_model = "warp"``): seeing FWHM ∝
    λ^index, −0.2 for Kolmogorov turbulence. A warp's PSF is taken as the band average at the
    band's effective wavelength ``λ_eff``; subfilter ``a`` (mean wavelength ``λ_a``) sees it widened
    by ``(λ_a/λ_eff)^index``, and templates get the science PSF the same way. 0 turns it off (every
    subfilter sees the warp's PSF). Recorded in the model file. Not an LSST field."""

    iterative: IterativeSettings = field(default_factory=IterativeSettings)
    """Settings of the iterative solver."""

    exact: ExactSettings = field(default_factory=ExactSettings)
    """Settings of the exact solver."""


@dataclass
class InputsConfig:
    """How input warps are interpreted."""

    instrument: str | None = None
    """Instrument preset (``lsst``, ``decam``, ``hsc``, ``ztf``) for files whose headers do not name
    one (``INSTRUME``): the instrument's header cards and units, its site, and its filter curve for
    the ``FILTER`` band. Never overrides what a file says in the dcrcoadd/LSST cards. Not an LSST
    field (the LSST butler knows the instrument)."""

    header_map: dict[str, str] = field(default_factory=dict)
    """Header field -> card to read it from first, e.g. ``{airmass = "AIRMASS2"}``
    (``--set inputs.header_map.airmass=AIRMASS2``). Fields: ``id``, ``exposure_time``,
    ``time_mid``, ``time_start``, ``time_ut1``, ``ra``, ``dec``, ``azimuth``, ``altitude``,
    ``zenith_distance``, ``airmass``, ``rotation_angle``, ``rotation_type``, ``latitude``,
    ``longitude``, ``elevation``, ``site``, ``temperature``, ``pressure``, ``humidity``, ``filter``,
    ``calibration``, ``zeropoint``, ``fluxmag0``, ``gain``, ``saturation``, ``seeing``; values in the
    units the field's own cards use (see README, "Your own data"). Not an LSST field."""

    measure_psf: bool = True
    """Measure the PSF of an input without a PSF extension from its bright isolated stars, across
    its DCR direction (`dcrcoadd.ops.psf_measure.measure_psf`: stacked stars carry each visit's
    DCR smear, which the DCR model adds itself), with a warning naming the input and the measured
    FWHM; the coadd's input table says where each PSF came from (``psf_origin``). A Gaussian of the
    header's seeing card is the fallback when too few stars are isolated. A given PSF whose FWHM is
    more than 1.2 times its stars' either way (an oversampled PSF image, another exposure's) is
    replaced by theirs, with a warning. False: the seeing card's Gaussian, or no PSF; given PSFs are
    used as they are. Not an LSST field."""

    weights: str | None = None
    """Weight-map companion file of each input without a variance plane (inverse variance in
    image units): a pattern of the image path with ``{dir}``, ``{name}``, ``{stem}``, ``{ext}``
    and ``{FIELD/OLD/NEW}`` (``"{stem}_wtmap.fits"``, ``"{name/_ooi_/_oow_}"`` for DECam CP
    ``oow`` files), relative to the image's directory, glob characters allowed when they match
    one file (``--weights``). Pixels of weight 0 are masked BAD. Not an LSST field."""

    masks: str | None = None
    """Data-quality map companion file of each input without a mask plane, a pattern as for
    ``weights`` (``"{name/_ooi_/_ood_}"`` for DECam CP ``ood`` files, ``"{name/sciimg/mskimg}"``
    for ZTF's; ``--masks``): its values give
    the mask planes (BAD, SAT, CR, ...) as ``mask_codes`` says, added to those made from the image
    (NO_DATA where not finite, SAT from the SATURATE card). Not an LSST field."""

    mask_codes: str = "auto"
    """What the values of a ``masks`` map mean (``--mask-codes``): ``decam-cp`` (the DECam
    Community Pipeline's integer codes, or its bits before version 3.5.0 by the PLVER card),
    ``ztf`` (the ZTF ``mskimg`` bits), ``desdm`` (DES data management's bits), ``nonzero`` (every
    nonzero value BAD), or ``auto``:
    ``decam-cp`` for a file with a PLVER card or read with the DECam preset, ``ztf`` for one read
    with the ZTF preset, else ``nonzero``. Not an LSST field."""


@dataclass
class Config:
    """Root of the dcrcoadd configuration tree."""

    inputs: InputsConfig = field(default_factory=InputsConfig)
    coadd: CoaddConfig = field(default_factory=CoaddConfig)
    artifacts: ArtifactConfig = field(default_factory=ArtifactConfig)
    dcr: DcrConfig = field(default_factory=DcrConfig)

    def validate(self) -> None:
        """Check every field; raise `ConfigError` naming the first bad one."""
        validate_inputs(self.inputs, "inputs")
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


def field_docs() -> dict[str, dict[str, str]]:
    """``{class name: {field: docstring}}`` for the configuration dataclasses.

    The documentation of each field is the string literal under it in
    this module's source (the convention the dataclasses above follow).
    """
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
