"""The baseline coadd: inputs and weights (`inputs`), compare-warp artifact rejection
(`artifacts`), tile-by-tile stacking (`stacking`), interpolation and bright-object masks, and
the public `assemble_coadd` (`baseline`); its files are read and written by `dcrcoadd.io.coadd`."""

from dcrcoadd.coadd.baseline import CoaddResult, assemble_coadd
from dcrcoadd.coadd.inputs import CoaddInput
from dcrcoadd.io.coadd import read_coadd, write_coadd

__all__ = ["CoaddInput", "CoaddResult", "assemble_coadd", "read_coadd", "write_coadd"]
