"""What to simulate: `SimulationConfig` and its `Defects` options."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.errors import ConfigError

__all__ = ["Defects", "SimulationConfig"]


#: Highest airmass a simulation takes (75.5 deg from the zenith): the ``A tan z + B tan^3 z``
#: refraction formula (Stone 1996, `dcrcoadd.physics.refraction`) holds to about there, and no survey
#: observes lower (``--airmass 1,80`` rendered visits 0.7 deg above the horizon).
MAX_AIRMASS = 4.0
MAX_ZENITH_DISTANCE = 75.5


@dataclass(frozen=True)
class Defects:
    """Which defects to inject and how.

    Parameters
    ----------
    cosmic_rays : bool
    cosmic_ray_rate : float
        Mean number of cosmic-ray tracks per megapixel per visit.
    bad_columns : int
        Bad (hot or dead) columns per visit; 0 for none.
    saturation : bool
        Clip pixels at ``saturation_level`` (counts including sky) and flag SAT.
    saturation_level : float
    chip_gap : bool
        A strip of ``chip_gap_width`` NaN pixels (NO_DATA) per visit, at a
        random position and orientation, bordered by ``edge_width`` pixels of EDGE.
    chip_gap_width, edge_width : int
    streak_visits : int
        Number of visits crossed by a satellite streak (not masked).
    streak_peak : float
        Peak of the streak in units of the visit's sky noise.
    """

    cosmic_rays: bool = True
    cosmic_ray_rate: float = 40.0
    bad_columns: int = 2
    saturation: bool = True
    saturation_level: float = 1.0e5
    chip_gap: bool = True
    chip_gap_width: int = 6
    edge_width: int = 3
    streak_visits: int = 1
    streak_peak: float = 5.0

    def __post_init__(self):
        if self.cosmic_ray_rate < 0 or self.bad_columns < 0 or self.streak_visits < 0:
            raise ConfigError("defect counts and rates must be non-negative")
        if self.chip_gap_width < 1 or self.edge_width < 0:
            raise ConfigError("chip_gap_width must be >= 1 and edge_width >= 0")
        if not self.saturation_level > 0 or not self.streak_peak > 0:
            raise ConfigError("saturation_level and streak_peak must be positive")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Angles in degrees, seeing in arcsec, times in seconds.

    Parameters
    ----------
    size : int or (int, int)
        Image size in pixels: square, or ``(width, height)``.
    pixel_scale : float
        Arcsec per pixel.
    ra, dec : float
        Field centre (ICRS, degrees).
    origin : (int, int)
        Parent-grid position of pixel ``[0, 0]``.
    n_visits : int
    first_visit_id : int
        Visits are numbered from here, in time order.
    band : str or Bandpass
        A `Bandpass` or a preset name (``"lsst-g"``); needs a transmission
        curve or is treated as a top hat over its wavelength range.
    site : str, optional
        `Observatory.from_site` name; default the band's camera site (Rubin for LSST bands),
        else Rubin.
    date : str
        UTC date (``YYYY-MM-DD``) on whose evening the first night starts.
    n_nights : int
        Visits are spread over this many consecutive nights.
    seed : int
    seeing : (float, float)
        Range of the visits' FWHM at the band's effective wavelength (drawn uniformly).
    airmass : (float, float)
        Airmass range covered by the hour-angle track.
    hour_angles : sequence of float, optional
        Explicit hour angles (hours, negative east), one per visit; overrides ``airmass``.
    conditions : sequence of (float, float), optional
        Explicit ``(airmass, parallactic angle in degrees)`` per visit;
        overrides the track (see module notes).
    weather : Weather, optional
        Default: the standard atmosphere at the site's elevation.
    exposure_time : float
    zero_point : float
        AB magnitude giving one count per second at airmass 1 (LSST g: 28.5).
    extinction : float
        Grey extinction, magnitudes per airmass (changes the calibration per visit).
    sky_brightness : (float, float)
        Range of the sky surface brightness, AB mag/arcsec² (drawn uniformly).
    read_noise : float
        Counts (electrons) per pixel, rms.
    n_stars : int
        Black-body stars with magnitudes in ``star_mag_range`` (dN/dm ∝ 10^(0.2 m))
        and temperatures log-uniform in ``temperature_range``.
    n_bright_stars : int
        Extra stars with magnitudes in ``bright_mag_range`` (saturating by default).
    n_emission : int
        Point sources with a quasar-like SED: power-law continuum and one strong
        emission line inside the band.
    n_galaxies : int
        Bulge + disk galaxies with a CWW template SED at a random redshift.
    n_subfilters : int
        Subfilters of the truth (equal-width partition of the band).
    truth_psf_fwhm : float, optional
        FWHM of the truth images' fiducial PSF; default the mean visit seeing.
    defects : bool
        Master switch for all defects.
    defect_options : Defects
    noise_twins : bool
        Also make a noise twin of every visit.
    detection_threshold : float
        Sigma threshold of the DETECTED plane.
    wavelength_step : float
        Largest spacing (nm) of the wavelength grid used for the chromatic integral.
    """

    size: int | tuple[int, int] = 256
    pixel_scale: float = 0.2
    ra: float = 180.0
    dec: float = -20.0
    origin: tuple[int, int] = (0, 0)
    n_visits: int = 8
    first_visit_id: int = 1000
    band: str | Bandpass = "lsst-g"
    site: str | None = None
    date: str = "2024-03-20"
    n_nights: int = 1
    seed: int = 1
    seeing: tuple[float, float] = (0.6, 1.0)
    airmass: tuple[float, float] = (1.05, 1.6)
    hour_angles: tuple[float, ...] | None = None
    conditions: tuple[tuple[float, float], ...] | None = None
    weather: Weather | None = None
    exposure_time: float = 30.0
    zero_point: float = 28.5
    extinction: float = 0.0
    sky_brightness: tuple[float, float] = (21.8, 22.3)
    read_noise: float = 5.0
    n_stars: int = 100
    star_mag_range: tuple[float, float] = (17.5, 23.5)
    temperature_range: tuple[float, float] = (3000.0, 30000.0)
    n_bright_stars: int = 1
    bright_mag_range: tuple[float, float] = (14.0, 15.0)
    n_emission: int = 0
    n_galaxies: int = 0
    galaxy_mag_range: tuple[float, float] = (19.0, 23.0)
    n_subfilters: int = 3
    truth_psf_fwhm: float | None = None
    defects: bool = True
    defect_options: Defects = field(default_factory=Defects)
    noise_twins: bool = True
    detection_threshold: float = 5.0
    wavelength_step: float = 5.0

    def __post_init__(self):
        width, height = self.shape[1], self.shape[0]
        if width < 8 or height < 8:
            raise ConfigError(f"image size must be at least 8x8 pixels, got {width}x{height}")
        if not self.pixel_scale > 0:
            raise ConfigError(f"pixel_scale must be positive, got {self.pixel_scale}")
        if not -90 <= self.dec <= 90:
            raise ConfigError(f"dec must lie in [-90, 90] degrees, got {self.dec}")
        if self.n_visits < 1:
            raise ConfigError(f"n_visits must be >= 1, got {self.n_visits}")
        if self.n_nights < 1:
            raise ConfigError(f"n_nights must be >= 1, got {self.n_nights}")
        for name in ("seeing", "airmass", "sky_brightness", "star_mag_range", "temperature_range",
                     "bright_mag_range", "galaxy_mag_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ConfigError(f"{name} must be (min, max) with min <= max, got {(lo, hi)}")
        if not self.seeing[0] > 0:
            raise ConfigError(f"seeing must be positive, got {self.seeing}")
        if not self.airmass[0] >= 1:
            raise ConfigError(f"airmass must be >= 1, got {self.airmass}")
        if not self.airmass[1] <= MAX_AIRMASS:
            raise ConfigError(f"airmass must be at most {MAX_AIRMASS:g}, got {self.airmass}: the refraction "
                              f"formula holds to about {MAX_ZENITH_DISTANCE:g} deg from the zenith")
        if not self.temperature_range[0] > 0:
            raise ConfigError(f"temperatures must be positive, got {self.temperature_range}")
        for name in ("n_stars", "n_bright_stars", "n_emission", "n_galaxies"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_subfilters < 1:
            raise ConfigError(f"n_subfilters must be >= 1, got {self.n_subfilters}")
        if self.hour_angles is not None and len(self.hour_angles) != self.n_visits:
            raise ConfigError(f"hour_angles has {len(self.hour_angles)} entries for {self.n_visits} visits")
        if self.conditions is not None:
            if len(self.conditions) != self.n_visits:
                raise ConfigError(f"conditions has {len(self.conditions)} entries for {self.n_visits} visits")
            if any(len(c) != 2 or not 1 <= c[0] <= MAX_AIRMASS for c in self.conditions):
                raise ConfigError(f"conditions must be (airmass 1-{MAX_AIRMASS:g}, parallactic angle in "
                                  "degrees) pairs")
        if not (self.exposure_time > 0 and self.read_noise >= 0 and self.extinction >= 0):
            raise ConfigError("exposure_time must be positive, read_noise and extinction non-negative")
        if self.truth_psf_fwhm is not None and not self.truth_psf_fwhm > 0:
            raise ConfigError(f"truth_psf_fwhm must be positive, got {self.truth_psf_fwhm}")
        if not self.wavelength_step > 0:
            raise ConfigError(f"wavelength_step must be positive, got {self.wavelength_step}")

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)``."""
        if isinstance(self.size, int | np.integer):
            return (int(self.size), int(self.size))
        width, height = self.size
        return (int(height), int(width))

    @property
    def active_defects(self) -> Defects | None:
        """The defect options, or None when defects are switched off."""
        return self.defect_options if self.defects else None

    def resolve_bandpass(self) -> Bandpass:
        """The configured band as a `Bandpass`."""
        if isinstance(self.band, Bandpass):
            return self.band
        return Bandpass.preset(self.band)

    def resolve_observatory(self) -> Observatory:
        """The configured site, or the band's camera site, or Rubin."""
        name = self.site or self.resolve_bandpass().site or "rubin"
        try:
            return Observatory.from_site(name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
