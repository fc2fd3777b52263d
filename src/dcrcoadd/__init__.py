"""dcrcoadd: DCR-corrected coadds and DCR-matched templates."""

from ._version import __version__
from .bandpass import Bandpass
from .errors import ConfigError, DcrCoaddError, InputError
from .geom import Box
from .masks import MaskPlanes
from .observatory import Observatory, Weather
from .visit import VisitInfo

__all__ = [
    "__version__",
    "Bandpass",
    "Box",
    "ConfigError",
    "DcrCoaddError",
    "InputError",
    "MaskPlanes",
    "Observatory",
    "VisitInfo",
    "Weather",
]
