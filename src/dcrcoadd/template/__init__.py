"""DCR-matched templates for science exposures, on the science exposure's own grid."""

from dcrcoadd.template.build import build_templates, difference, make_template

__all__ = ["build_templates", "difference", "make_template"]
