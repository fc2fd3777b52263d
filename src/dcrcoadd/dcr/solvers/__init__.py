"""Solvers for the DCR model of one subregion.

A solver is a function ``solve(problem, models, config) -> SolveResult``: it
takes the per-subregion inputs (`SubregionProblem`) and the starting model
images and returns the new model images and their convergence history. The
orchestration (`dcrcoadd.dcr.assemble`) does not depend on which solver runs.
"""

from dcrcoadd.dcr.solvers.iterative import SolveResult, SubregionProblem, solve_iterative

SOLVERS = {"iterative": solve_iterative}

__all__ = ["SOLVERS", "SolveResult", "SubregionProblem", "solve_iterative"]
