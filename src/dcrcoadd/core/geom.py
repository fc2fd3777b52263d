"""Integer bounding boxes in the parent (patch) pixel grid.

A `Box` follows the LSST convention: ``x0, y0`` is the parent-grid position of
its first pixel and the box covers ``[x0, x0 + width) x [y0, y0 + height)``.
Arrays covering a box are indexed ``[y - y0, x - x0]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral


@dataclass(frozen=True, order=True)
class Box:
    """Half-open integer pixel box ``[x0, x0+width) x [y0, y0+height)``."""

    x0: int
    y0: int
    width: int
    height: int

    def __post_init__(self):
        for name in ("x0", "y0", "width", "height"):
            value = getattr(self, name)
            if int(value) != value:
                raise ValueError(f"Box.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.width < 0 or self.height < 0:
            raise ValueError(f"Box size must be non-negative, got {self.width}x{self.height}")

    # -- constructors ---------------------------------------------------------
    @classmethod
    def from_shape(cls, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> Box:
        """Box of an array of ``shape = (ny, nx)`` whose first pixel is at ``origin = (x0, y0)``."""
        return cls(origin[0], origin[1], shape[1], shape[0])

    @classmethod
    def from_corners(cls, x0: int, y0: int, x1: int, y1: int) -> Box:
        """Box from inclusive start ``(x0, y0)`` and exclusive end ``(x1, y1)``."""
        return cls(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))

    @classmethod
    def parse(cls, text: str) -> Box:
        """Parse ``"x0,y0,width,height"``."""
        try:
            x0, y0, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"expected 'x0,y0,width,height', got {text!r}") from None
        return cls(x0, y0, w, h)

    # -- properties -----------------------------------------------------------
    @property
    def x1(self) -> int:
        """Exclusive end in x."""
        return self.x0 + self.width

    @property
    def y1(self) -> int:
        """Exclusive end in y."""
        return self.y0 + self.height

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)``."""
        return (self.height, self.width)

    @property
    def origin(self) -> tuple[int, int]:
        """``(x0, y0)``."""
        return (self.x0, self.y0)

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def is_empty(self) -> bool:
        return self.width == 0 or self.height == 0

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(x, y)`` in parent pixel coordinates (pixel centres at integers)."""
        return (self.x0 + (self.width - 1) / 2.0, self.y0 + (self.height - 1) / 2.0)

    # -- algebra --------------------------------------------------------------
    def intersection(self, other: Box) -> Box:
        """Largest box inside both; empty (zero size) if they do not overlap."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        if x1 <= x0 or y1 <= y0:
            return Box(x0, y0, 0, 0)
        return Box.from_corners(x0, y0, x1, y1)

    def clip(self, other: Box) -> Box:
        """This box clipped to lie inside ``other`` (same as `intersection`)."""
        return self.intersection(other)

    def overlaps(self, other: Box) -> bool:
        return not self.intersection(other).is_empty

    def union(self, other: Box) -> Box:
        """Smallest box containing both."""
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        return Box.from_corners(
            min(self.x0, other.x0), min(self.y0, other.y0),
            max(self.x1, other.x1), max(self.y1, other.y1),
        )

    def grow(self, n: int | tuple[int, int]) -> Box:
        """Grow by ``n`` pixels on every side (``(nx, ny)`` for different amounts)."""
        nx, ny = _pair(n)
        if self.width + 2 * nx < 0 or self.height + 2 * ny < 0:
            return Box(self.x0 - nx, self.y0 - ny, 0, 0)
        return Box(self.x0 - nx, self.y0 - ny, self.width + 2 * nx, self.height + 2 * ny)

    def shrink(self, n: int | tuple[int, int]) -> Box:
        """Shrink by ``n`` pixels on every side; never below zero size."""
        nx, ny = _pair(n)
        return self.grow((-nx, -ny))

    def shifted(self, dx: int, dy: int) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.width, self.height)

    def contains(self, other: Box | tuple[float, float]) -> bool:
        """Whether a box lies inside this one, or a point ``(x, y)`` lies in it."""
        if isinstance(other, Box):
            if other.is_empty:
                return True
            return (self.x0 <= other.x0 and self.y0 <= other.y0
                    and other.x1 <= self.x1 and other.y1 <= self.y1)
        x, y = other
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1

    def slices(self, relative_to: Box | None = None) -> tuple[slice, slice]:
        """Numpy ``(y, x)`` slices of this box inside an array covering ``relative_to``.

        Raises
        ------
        ValueError
            If the box does not lie inside ``relative_to``.
        """
        ref = relative_to if relative_to is not None else Box(0, 0, self.x1, self.y1)
        if not ref.contains(self):
            raise ValueError(f"{self} does not lie inside {ref}")
        return (slice(self.y0 - ref.y0, self.y1 - ref.y0), slice(self.x0 - ref.x0, self.x1 - ref.x0))

    def subregions(self, size: int | tuple[int, int]) -> Iterator[Box]:
        """Tile this box with sub-boxes of at most ``size`` (``(width, height)``), row by row."""
        sx, sy = _pair(size)
        if sx <= 0 or sy <= 0:
            raise ValueError(f"subregion size must be positive, got {size!r}")
        for y in range(self.y0, self.y1, sy):
            for x in range(self.x0, self.x1, sx):
                yield Box.from_corners(x, y, min(x + sx, self.x1), min(y + sy, self.y1))

    def __str__(self) -> str:
        return f"Box(x0={self.x0}, y0={self.y0}, {self.width}x{self.height})"


def _pair(n: int | tuple[int, int]) -> tuple[int, int]:
    """``(n, n)`` for one integer (numpy integers included), else the pair itself.

    Non-integers are passed on unchanged so that `Box` rejects them instead of
    silently truncating.
    """
    if isinstance(n, Integral):
        return int(n), int(n)
    nx, ny = n
    return nx, ny
