"""dcrcoadd: DCR-corrected coadds and DCR-matched templates.

The names below are loaded on first use (PEP 562), as are the subpackages: the command line starts,
and stops on Ctrl-C, without loading astropy and scipy for them first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dcrcoadd._version import __version__

#: Each public name and the module that defines it.
_EXPORTS = {
    "Bandpass": "dcrcoadd.core.bandpass",
    "Exposure": "dcrcoadd.core.exposure",
    "Box": "dcrcoadd.core.geom",
    "MaskPlanes": "dcrcoadd.core.masks",
    "Observatory": "dcrcoadd.core.observatory",
    "Weather": "dcrcoadd.core.observatory",
    "Psf": "dcrcoadd.core.psf",
    "VisitInfo": "dcrcoadd.core.visit",
    "airmass_from_altitude": "dcrcoadd.core.visit",
    "parallactic_angle": "dcrcoadd.core.visit",
    "sky_geometry": "dcrcoadd.core.visit",
    "DcrModel": "dcrcoadd.dcr.model",
    "ConfigError": "dcrcoadd.errors",
    "DcrCoaddError": "dcrcoadd.errors",
    "InputError": "dcrcoadd.errors",
    "read_exposure": "dcrcoadd.io",
    "read_info": "dcrcoadd.io",
    "write_exposure": "dcrcoadd.io",
    "dcr_shifts": "dcrcoadd.physics.dcr",
    "dcr_shifts_at": "dcrcoadd.physics.dcr",
    "subfilter_dcr": "dcrcoadd.physics.dcr",
    "differential_refraction": "dcrcoadd.physics.refraction",
    "refraction": "dcrcoadd.physics.refraction",
}

if TYPE_CHECKING:  # (what type checkers and editors see)
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


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):  # a subpackage, as ``import dcrcoadd`` once loaded some of them
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
