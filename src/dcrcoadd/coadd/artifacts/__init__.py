"""Compare-warp transient artifact rejection: alternative masks (`masks`), PSF matching
(`psf_matching`), the static sky (`static_sky`), detection and filtering (`detection`), and the
driver (`compare_warp`)."""

from dcrcoadd.coadd.artifacts.compare_warp import CompareWarpResult, compare_warps
from dcrcoadd.coadd.artifacts.detection import (
    detect_outliers,
    detect_template_sources,
    effective_max_num_epochs,
    filter_artifacts,
    find_artifacts,
    footprints_of,
    prefilter_artifacts,
    scale_variance_factor,
)
from dcrcoadd.coadd.artifacts.masks import ArtifactMask, PixelSet
from dcrcoadd.coadd.artifacts.psf_matching import (
    WarpSource,
    gaussian_kernel1d,
    matching_sigma,
    model_sigma,
    psf_match,
)
from dcrcoadd.coadd.artifacts.static_sky import build_static_sky

__all__ = [
    "ArtifactMask", "CompareWarpResult", "PixelSet", "WarpSource", "build_static_sky", "compare_warps",
    "detect_outliers", "detect_template_sources", "effective_max_num_epochs", "filter_artifacts",
    "find_artifacts", "footprints_of", "gaussian_kernel1d", "matching_sigma", "model_sigma",
    "prefilter_artifacts", "psf_match", "scale_variance_factor",
]
