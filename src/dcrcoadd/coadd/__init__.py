"""The baseline coadd: input checks, weighted/clipped stacking, compare-warp artifact rejection."""

from dcrcoadd.coadd.baseline import CoaddInput, CoaddResult, assemble_coadd, read_coadd, write_coadd

__all__ = ["CoaddInput", "CoaddResult", "assemble_coadd", "read_coadd", "write_coadd"]
