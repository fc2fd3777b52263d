"""Named mask bit planes with LSST plane names and meanings.

Bit numbers are a property of a file, never assumed: a `MaskPlanes` records the
name -> bit mapping it was written with (``MP_<NAME>`` header keywords), and
`MaskPlanes.translate` remaps a mask array from one mapping to another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

#: LSST plane names, their default bits and meanings.
LSST_PLANES: dict[str, str] = {
    "BAD": "bad pixel (hot, dead, bad column)",
    "SAT": "saturated",
    "INTRP": "value interpolated",
    "CR": "cosmic ray",
    "EDGE": "too close to the detector edge to detect sources",
    "DETECTED": "part of a source footprint detected at positive threshold",
    "DETECTED_NEGATIVE": "part of a footprint detected at negative threshold",
    "SUSPECT": "value of questionable reliability (e.g. near saturation)",
    "NO_DATA": "no data: not covered by any input",
    "CLIPPED": "an input was clipped here as a transient artifact",
    "REJECTED": "an input was rejected here because of a bad mask plane",
    "SENSOR_EDGE": "an input was rejected here because of its EDGE plane",
    "INEXACT_PSF": "the coadd PSF is inexact here because inputs were rejected",
    "BRIGHT_OBJECT": "inside a bright-object mask",
    "STREAK": "satellite or meteor streak",
    "UNMASKEDNAN": "NaN value that no other plane explained",
    "NOT_DEBLENDED": "footprint too large to deblend",
}

DEFAULT_BITS: dict[str, int] = {name: bit for bit, name in enumerate(LSST_PLANES)}

#: Other pipelines' names of LSST planes: a plane so named is read as the LSST one (a warp's
#: ``MP_SATURATED`` was a plane no setting named, and its saturated pixels went into the coadd).
PLANE_ALIASES: dict[str, str] = {
    "SATURATED": "SAT", "SATURATE": "SAT", "SATURATION": "SAT",
    "BADPIX": "BAD", "BADPIXEL": "BAD", "BAD_PIXEL": "BAD", "BAD_PIX": "BAD", "DEAD": "BAD", "HOT": "BAD",
    "NODATA": "NO_DATA",
    "COSMICRAY": "CR", "COSMIC_RAY": "CR", "COSMIC": "CR", "CRAY": "CR",
    "INTERP": "INTRP", "INTERPOLATED": "INTRP",
}

MAX_PLANES = 32  # masks are stored as 32-bit integers


class MaskPlanes(Mapping[str, int]):
    """An ordered ``name -> bit`` mapping of mask planes.

    Parameters
    ----------
    bits : mapping of str to int, optional
        Plane names and their bit numbers. Default: the LSST planes.
    """

    def __init__(self, bits: Mapping[str, int] | None = None):
        bits = dict(DEFAULT_BITS if bits is None else bits)
        seen: dict[int, str] = {}
        for name, bit in bits.items():
            if not 0 <= int(bit) < MAX_PLANES:
                raise ValueError(f"mask plane {name!r} has bit {bit}, outside 0..{MAX_PLANES - 1}")
            if bit in seen:
                raise ValueError(f"mask planes {seen[bit]!r} and {name!r} share bit {bit}")
            seen[int(bit)] = name
        self._bits = {name.upper(): int(bit) for name, bit in bits.items()}

    # Mapping protocol
    def __getitem__(self, name: str) -> int:
        return self._bits[name.upper()]

    def __iter__(self):
        return iter(self._bits)

    def __len__(self) -> int:
        return len(self._bits)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MaskPlanes):
            return self._bits == other._bits
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._bits.items())))

    def __repr__(self) -> str:
        return f"MaskPlanes({self._bits})"

    def bit(self, name: str) -> int:
        """Bit number of plane ``name``; `KeyError` naming the plane if unknown."""
        try:
            return self._bits[name.upper()]
        except KeyError:
            raise KeyError(f"unknown mask plane {name!r}; known: {', '.join(self)}") from None

    def value(self, *names: str | Iterable[str]) -> int:
        """Integer bitmask with the bits of all named planes set (the union).

        Unknown names are an error; pass names already filtered with ``in`` if
        a plane may be absent.
        """
        flat: list[str] = []
        for n in names:
            flat.extend([n] if isinstance(n, str) else list(n))
        out = 0
        for n in flat:
            out |= 1 << self.bit(n)
        return out

    def value_if_present(self, names: Iterable[str]) -> int:
        """Like `value`, silently skipping planes this mapping does not have."""
        return self.value([n for n in names if n.upper() in self._bits])

    def with_plane(self, name: str) -> MaskPlanes:
        """A copy with plane ``name`` added at the lowest free bit (no-op if present)."""
        if name.upper() in self._bits:
            return self
        used = set(self._bits.values())
        free = next((b for b in range(MAX_PLANES) if b not in used), None)
        if free is None:
            raise ValueError(f"no free mask bit left for plane {name!r}")
        return MaskPlanes({**self._bits, name.upper(): free})

    def merged(self, other: Mapping[str, int]) -> MaskPlanes:
        """This mapping plus any planes of ``other`` it lacks (at free bits)."""
        out = self
        for name in other:
            out = out.with_plane(name)
        return out

    def names_in(self, value: int) -> list[str]:
        """Names of planes whose bits are set in the integer ``value``."""
        return [n for n, b in self._bits.items() if value & (1 << b)]

    def translation(self, source: Mapping[str, int]) -> dict[int, int]:
        """``{source_bit: self_bit}`` for planes present in both mappings."""
        return {int(b): self._bits[n.upper()] for n, b in source.items() if n.upper() in self._bits}

    def translate(self, mask: np.ndarray, source: Mapping[str, int]) -> np.ndarray:
        """Re-express ``mask`` written with bit mapping ``source`` in this mapping.

        Planes of ``source`` unknown here are dropped; call `merged` first to keep them.
        Bits that name no plane of ``source`` are dropped too, whether or not the
        layouts differ.
        """
        mapping = self.translation(source)
        mask = np.asarray(mask).astype(np.uint32, copy=False)
        if all(s == d for s, d in mapping.items()):
            keep = np.uint32(sum(1 << b for b in mapping))
            return mask & keep
        out = np.zeros(mask.shape, dtype=np.uint32)
        for src, dst in mapping.items():
            out |= ((mask >> np.uint32(src)) & np.uint32(1)) << np.uint32(dst)
        return out

    def to_header_cards(self) -> dict[str, int]:
        """``{'MP_<NAME>': bit}`` cards in the LSST style."""
        return {f"MP_{n}": b for n, b in self._bits.items()}

    @classmethod
    def from_header(cls, header: Mapping[str, object]) -> MaskPlanes | None:
        """Planes from ``MP_<NAME>`` cards, or None when the header has none. A plane under another
        pipeline's name of an LSST plane (`PLANE_ALIASES`) gets the LSST name; with that plane in the
        header too, it is dropped when both name one bit and refused (ValueError) otherwise: which bit
        holds, say, the saturated pixels cannot be known (the alias's bit was used as good data)."""
        bits = {str(k)[3:].upper(): int(v) for k, v in header.items() if str(k).startswith("MP_")}
        for name in [n for n in bits if n in PLANE_ALIASES]:
            lsst = PLANE_ALIASES[name]
            if lsst not in bits:
                bits[lsst] = bits.pop(name)
            elif bits[lsst] == bits[name]:
                del bits[name]
            else:
                raise ValueError(f"MP_{lsst} = {bits[lsst]} and MP_{name} = {bits[name]} are two bits for "
                                 f"one plane ({name} is another name of {lsst}); keep the card of the bit "
                                 "that holds those pixels")
        return cls(bits) if bits else None
