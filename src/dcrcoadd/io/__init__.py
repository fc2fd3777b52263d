"""Reading and writing dcrcoadd files (and reading LSST and survey exposures)."""

from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.describe import provenance_lines
from dcrcoadd.io.fits import ExposureInfo, read_exposure, read_info, write_exposure

__all__ = ["ExposureInfo", "atomic_output", "provenance_lines", "read_exposure", "read_info",
           "write_exposure"]
