"""dcrcoadd: DCR-corrected coadds and DCR-matched templates."""

from dcrcoadd._version import __version__
from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo, airmass_from_altitude, parallactic_angle, sky_geometry
from dcrcoadd.dcr.model import DcrModel
from dcrcoadd.errors import ConfigError, DcrCoaddError, InputError
from dcrcoadd.io import read_exposure, read_info, write_exposure
from dcrcoadd.physics.dcr import dcr_shifts, dcr_shifts_at, subfilter_dcr
from dcrcoadd.physics.refraction import differential_refraction, refraction

__all__ = [
    "__version__",
    "Bandpass",
    "Box",
    "ConfigError",
    "DcrCoaddError",
    "DcrModel",
    "Exposure",
    "InputError",
    "MaskPlanes",
    "Observatory",
    "Psf",
    "VisitInfo",
    "Weather",
    "airmass_from_altitude",
    "dcr_shifts",
    "dcr_shifts_at",
    "differential_refraction",
    "parallactic_angle",
    "read_exposure",
    "read_info",
    "refraction",
    "sky_geometry",
    "subfilter_dcr",
    "write_exposure",
]
