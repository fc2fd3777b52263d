"""One dispatcher for every stage: tiles of a patch, and mappers that run independent tasks
serially, in local processes or on a Dask cluster with identical results."""

from dcrcoadd.parallel.dispatch import map_tasks, run_tasks, threads_per_task
from dcrcoadd.parallel.mappers import (
    Mapper,
    ProcessMapper,
    dask_map,
    make_mapper,
    process_map,
    serial_map,
)
from dcrcoadd.parallel.tiles import Tile, tiles

__all__ = ["Mapper", "ProcessMapper", "Tile", "dask_map", "make_mapper", "map_tasks",
           "process_map", "run_tasks", "serial_map", "threads_per_task", "tiles"]
