"""Defects injected into the warps, each flagged exactly where it is added.

Cosmic rays (CR), bad columns (BAD), saturated bright stars clipped at the
full well (SAT), a chip gap of NaN pixels (NO_DATA) bordered by EDGE pixels,
and satellite streaks in some visits, left unmasked for artifact rejection to
find (their footprints are in the truth). A visit's defects are planned
first (`plan_defects`), then applied to its warp and, without the transient
ones (cosmic rays, streak), to its noise twin (`apply_defects`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from dcrcoadd.core.psf import SIGMA_TO_FWHM
from dcrcoadd.sim.config import SimulationConfig
from dcrcoadd.sim.streams import Stream
from dcrcoadd.sim.visits import SimulatedVisit

__all__ = ["DefectPlan", "Streak", "apply_defects", "plan_defects", "streaked_visits"]


@dataclass(frozen=True)
class Streak:
    """A satellite streak added (unmasked) to one visit.

    The streak is a line through ``(x, y)`` (parent pixels) at ``angle``
    (degrees from +x towards +y) with a Gaussian cross-section of ``sigma``
    pixels cut at 3 sigma, peaking at ``peak`` counts; ``footprint`` is true
    where it was added.
    """

    visit_id: int
    x: float
    y: float
    angle: float
    sigma: float
    peak: float
    footprint: np.ndarray = field(repr=False)


@dataclass
class DefectPlan:
    """Where one visit's defects go, drawn before any is applied."""

    cosmic: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (y, x, charge)
    columns: list[tuple[int, int, int, bool]] = field(default_factory=list)  # (x, y0, y1, hot)
    gap: np.ndarray | None = None  # boolean NO_DATA region
    streak: Streak | None = None
    streak_image: np.ndarray | None = None


def plan_defects(config: SimulationConfig, index: int, sv: SimulatedVisit, noise: float,
                  streaked: bool) -> DefectPlan:
    opts = config.active_defects
    plan = DefectPlan()
    if opts is None:
        return plan
    ny, nx = config.shape
    key = (config.seed, index)
    if opts.cosmic_rays:
        rng = np.random.default_rng([key[0], Stream.COSMIC, key[1]])
        ys, xs, qs = [], [], []
        for _ in range(rng.poisson(opts.cosmic_ray_rate * nx * ny / 1e6)):
            length = rng.uniform(0.0, 8.0)
            theta = rng.uniform(0.0, math.pi)
            x_start, y_start = rng.uniform(-0.5, nx - 0.5), rng.uniform(-0.5, ny - 0.5)
            t = np.linspace(0.0, length, int(math.ceil(2 * length)) + 1)
            px = np.rint(x_start + t * math.cos(theta)).astype(int)
            py = np.rint(y_start + t * math.sin(theta)).astype(int)
            inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
            pix = np.unique(np.stack([py[inside], px[inside]], axis=1), axis=0)
            ys.append(pix[:, 0])
            xs.append(pix[:, 1])
            qs.append(rng.uniform(10.0, 100.0, size=len(pix)) * noise)
        if ys:
            plan.cosmic = (np.concatenate(ys), np.concatenate(xs), np.concatenate(qs))
    if opts.bad_columns:
        rng = np.random.default_rng([key[0], Stream.COLUMNS, key[1]])
        for _ in range(opts.bad_columns):
            x = int(rng.integers(0, nx))
            if rng.uniform() < 0.5:
                y0, y1 = 0, ny
            else:
                y0 = int(rng.integers(0, ny - 1))
                y1 = int(rng.integers(y0 + 1, ny + 1))
            plan.columns.append((x, y0, y1, bool(rng.uniform() < 0.5)))
    if opts.chip_gap:
        rng = np.random.default_rng([key[0], Stream.GAP, key[1]])
        vertical = bool(rng.uniform() < 0.5)
        extent = nx if vertical else ny
        width = min(opts.chip_gap_width, extent - 1)
        start = int(rng.integers(0, extent - width + 1))
        gap = np.zeros((ny, nx), dtype=bool)
        if vertical:
            gap[:, start:start + width] = True
        else:
            gap[start:start + width, :] = True
        plan.gap = gap
    if streaked:
        rng = np.random.default_rng([key[0], Stream.STREAK, key[1]])
        x_c = config.origin[0] + rng.uniform(0.25, 0.75) * (nx - 1)
        y_c = config.origin[1] + rng.uniform(0.25, 0.75) * (ny - 1)
        angle = rng.uniform(0.0, 180.0)
        sigma = sv.seeing / config.pixel_scale / SIGMA_TO_FWHM
        peak = opts.streak_peak * noise
        yy, xx = np.mgrid[:ny, :nx]
        a = math.radians(angle)
        dist = np.abs((xx + config.origin[0] - x_c) * math.sin(a)
                      - (yy + config.origin[1] - y_c) * math.cos(a))
        footprint = dist <= 3.0 * sigma
        plan.streak_image = np.where(footprint, peak * np.exp(-0.5 * (dist / sigma) ** 2), 0.0)
        plan.streak = Streak(visit_id=sv.id, x=float(x_c), y=float(y_c), angle=float(angle),
                             sigma=float(sigma), peak=float(peak), footprint=footprint)
    return plan


def apply_defects(image: np.ndarray, variance: np.ndarray, sky: float, config: SimulationConfig,
                   plan: DefectPlan, transient: bool) -> dict[str, np.ndarray]:
    """Apply a defect plan in place; return plane -> where flagged.

    ``transient`` includes cosmic rays and the streak (not in a noise twin).
    """
    opts = config.active_defects
    shape = image.shape
    flags: dict[str, np.ndarray] = {}
    if opts is None:
        return flags
    if opts.saturation:
        # the full well holds sky and source together; the warp is sky-subtracted
        sat = image + sky >= opts.saturation_level
        image[sat] = opts.saturation_level - sky
        flags["SAT"] = sat
    if transient and plan.streak_image is not None:
        image += plan.streak_image
    if transient and plan.cosmic is not None:
        y, x, q = plan.cosmic
        np.add.at(image, (y, x), q)
        cr = np.zeros(shape, dtype=bool)
        cr[y, x] = True
        flags["CR"] = cr
    if plan.columns:
        bad = np.zeros(shape, dtype=bool)
        for x, y0, y1, hot in plan.columns:
            # a hot column reads high; a dead one reads zero before sky subtraction
            image[y0:y1, x] = 50.0 * math.sqrt(sky) + 1000.0 if hot else -sky
            bad[y0:y1, x] = True
        flags["BAD"] = bad
    if plan.gap is not None:
        image[plan.gap] = np.nan
        variance[plan.gap] = np.nan
        flags["NO_DATA"] = plan.gap.copy()
        grown = plan.gap
        if opts.edge_width:
            grown = ndimage.binary_dilation(plan.gap, structure=np.ones((3, 3), bool),
                                            iterations=opts.edge_width)
        flags["EDGE"] = grown & ~plan.gap
    return flags


def streaked_visits(config: SimulationConfig, n_visits: int) -> set[int]:
    """Indices of the visits crossed by a satellite streak (none when defects are off)."""
    streak_rng = np.random.default_rng([config.seed, Stream.STREAK_VISITS])
    opts = config.active_defects
    n_streaks = min(opts.streak_visits, n_visits) if opts is not None else 0
    return set(streak_rng.choice(n_visits, size=n_streaks, replace=False).tolist()) \
        if n_streaks else set()
