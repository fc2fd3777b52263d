"""Running independent tiles serially, in local processes or on a Dask cluster."""

from dcrcoadd.parallel.mappers import dask_map, process_map, serial_map

__all__ = ["dask_map", "process_map", "serial_map"]
