"""Solvers for the DCR model of one tile.

A solver is a function ``solve(problem, models, settings, progress=None) -> SolveResult``
(`dcrcoadd.dcr.problem`): it takes one tile's inputs and the starting model images and
returns the model images and their history. ``SOLVERS`` maps each name of
`dcrcoadd.config.schema.SOLVER_NAMES` to its function; its settings are the `DcrConfig`
section of the same name.
"""

from dcrcoadd.dcr.solvers.exact import solve_exact_tile
from dcrcoadd.dcr.solvers.iterative import solve_iterative

SOLVERS = {"iterative": solve_iterative, "exact": solve_exact_tile}

__all__ = ["SOLVERS", "solve_exact_tile", "solve_iterative"]
