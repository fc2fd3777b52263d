"""Reading and writing dcrcoadd files."""

from .atomic import atomic_output
from .fits import ExposureInfo, read_exposure, read_info, write_exposure

__all__ = ["ExposureInfo", "atomic_output", "read_exposure", "read_info", "write_exposure"]
