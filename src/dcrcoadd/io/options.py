"""How to read files that do not describe themselves fully: instrument, header map, weight and
data-quality maps.

`ReadOptions` carries the ``[inputs]`` settings every reader of user files needs
(``assemble``'s warps, ``template``'s science exposures, ``warp``'s single-epoch images,
``info``), so that a file is read the same way wherever it is read. `add_read_arguments`
gives a command the matching ``--instrument``, ``--header-map``, ``--weights``, ``--masks`` and
``--mask-codes`` options.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.instrument import INSTRUMENTS, check_header_map, check_instrument
from dcrcoadd.errors import ConfigError
from dcrcoadd.io.fits import ExposureInfo, read_exposure, read_info
from dcrcoadd.io.quality import MASK_CODES, check_mask_codes
from dcrcoadd.io.weights import check_weights_pattern

__all__ = ["ReadOptions", "add_read_arguments", "check_codes_have_maps", "read_options_from_args"]


@dataclass(frozen=True)
class ReadOptions:
    """Reader settings (the ``[inputs]`` section of the configuration).

    Attributes
    ----------
    instrument : str or None
        Instrument preset for files whose headers do not name one (`dcrcoadd.core.instrument`).
    header_map : dict
        Field -> header card, searched before the preset's cards.
    weights : str or None
        Weight-map pattern (`dcrcoadd.io.weights`) for files without a variance plane.
    masks : str or None
        Data-quality map pattern (`dcrcoadd.io.quality`) for files without a mask plane.
    mask_codes : str
        What the data-quality maps' values mean (`dcrcoadd.io.quality.MASK_CODES`).
    """

    instrument: str | None = None
    header_map: dict[str, str] = field(default_factory=dict)
    weights: str | None = None
    masks: str | None = None
    mask_codes: str = "auto"

    def __post_init__(self):
        if self.instrument is not None:
            object.__setattr__(self, "instrument", check_instrument(self.instrument))
        object.__setattr__(self, "header_map", check_header_map(self.header_map))
        if self.weights is not None:
            check_weights_pattern(self.weights)
        if self.masks is not None:
            check_weights_pattern(self.masks, "masks")
        check_mask_codes(self.mask_codes)

    @classmethod
    def from_config(cls, inputs) -> ReadOptions:
        """The options of an `~dcrcoadd.config.schema.InputsConfig` (or a whole `Config`)."""
        inputs = getattr(inputs, "inputs", inputs)
        return cls(inputs.instrument, dict(inputs.header_map or {}), inputs.weights, inputs.masks,
                   inputs.mask_codes)

    def read_info(self, path: str | os.PathLike, hdu: str | int | None = None) -> ExposureInfo:
        """`dcrcoadd.io.read_info` with these options."""
        return read_info(path, instrument=self.instrument, header_map=self.header_map, weights=self.weights,
                         hdu=hdu, masks=self.masks, mask_codes=self.mask_codes)

    def read_exposure(self, path: str | os.PathLike, bbox: Box | None = None, *,
                      require_visit: bool = False, hdu: str | int | None = None) -> Exposure:
        """`dcrcoadd.io.read_exposure` with these options."""
        return read_exposure(path, bbox, require_visit=require_visit, instrument=self.instrument,
                             header_map=self.header_map, weights=self.weights, hdu=hdu, masks=self.masks,
                             mask_codes=self.mask_codes)


def _field_card(text: str) -> tuple[str, str]:
    name, sep, card = text.partition("=")
    if not sep or not name.strip() or not card.strip():
        raise argparse.ArgumentTypeError(f"expected FIELD=CARD (e.g. airmass=AIRMASS2), got {text!r}")
    return name.strip(), card.strip()


def add_read_arguments(parser: argparse.ArgumentParser, *, what: str = "inputs") -> None:
    """Add ``--instrument``, ``--header-map FIELD=CARD`` (repeatable) and ``--weights PATTERN``."""
    parser.add_argument("--instrument", choices=list(INSTRUMENTS),
                        help=f"read the {what}' headers with this instrument's card map, site and filter "
                             "curves (default: the instrument the header names)")
    parser.add_argument("--header-map", action="append", type=_field_card, metavar="FIELD=CARD",
                        help="read FIELD (airmass, time_start, filter, gain, ...) from CARD first "
                             "(repeatable; config inputs.header_map)")
    parser.add_argument("--weights", metavar="PATTERN",
                        help="weight-map file (inverse variance) of each image without a variance plane, "
                             "e.g. '{stem}_wtmap.fits' or '{name/_ooi_/_oow_}' (see README)")
    parser.add_argument("--masks", metavar="PATTERN",
                        help="data-quality file (bad pixels, saturation, cosmic rays) of each image "
                             "without a mask plane, e.g. '{name/_ooi_/_ood_}' (see README)")
    parser.add_argument("--mask-codes", choices=MASK_CODES, default=None,
                        help="what the --masks values mean: decam-cp (the DECam Community Pipeline's), "
                             "ztf (ZTF mskimg bits), desdm (DES bits), nonzero (all BAD), auto (default: by "
                             "instrument)")


def check_codes_have_maps(mask_codes: str | None, masks: str | None) -> None:
    """ConfigError for ``--mask-codes`` given without data-quality maps to apply it to."""
    if mask_codes and not masks:
        raise ConfigError(f"--mask-codes {mask_codes} needs --masks PATTERN (the data-quality files it "
                          "describes)")


def read_options_from_args(args: argparse.Namespace) -> ReadOptions:
    """The `ReadOptions` given on a command line (`add_read_arguments`)."""
    check_codes_have_maps(getattr(args, "mask_codes", None), getattr(args, "masks", None))
    return ReadOptions(getattr(args, "instrument", None), dict(getattr(args, "header_map", None) or []),
                       getattr(args, "weights", None), getattr(args, "masks", None),
                       getattr(args, "mask_codes", None) or "auto")
