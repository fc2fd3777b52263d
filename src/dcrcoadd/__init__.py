"""dcrcoadd: DCR-corrected coadds and DCR-matched templates."""

from ._version import __version__
from .bandpass import Bandpass
from .dcr import dcr_shifts, dcr_shifts_at, subfilter_dcr
from .errors import ConfigError, DcrCoaddError, InputError
from .exposure import Exposure
from .geom import Box
from .io import read_exposure, read_info, write_exposure
from .masks import MaskPlanes
from .model import DcrModel
from .observatory import Observatory, Weather
from .psf import Psf
from .refraction import differential_refraction, refraction
from .visit import VisitInfo, airmass_from_altitude, parallactic_angle, sky_geometry

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
