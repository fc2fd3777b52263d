"""The simulation's independent random streams.

Every random draw comes from ``np.random.default_rng([config.seed, Stream.<NAME>, ...])``
with its own stream key (a numpy SeedSequence entropy word), so switching a defect
off, or making a visit's noise twin, leaves the noise and everything else bit for
bit the same.
"""

from __future__ import annotations

__all__ = ["Stream"]


class Stream:
    """Stream keys, plain ints (their values are part of what a seed reproduces: never renumber)."""

    CATALOG, CONDITIONS, NOISE, TWIN_NOISE, COSMIC, COLUMNS, GAP, STREAK, STREAK_VISITS = range(9)
