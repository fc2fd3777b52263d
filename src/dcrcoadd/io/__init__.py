"""Reading and writing dcrcoadd files."""

from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.fits import ExposureInfo, read_exposure, read_info, write_exposure

__all__ = ["ExposureInfo", "atomic_output", "read_exposure", "read_info", "write_exposure"]
