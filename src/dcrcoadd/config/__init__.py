"""Run configuration: typed settings per stage (`schema`), their checks (`validation`), TOML files
and ``--set`` overrides (`files`), and the generated reference (`docs`)."""

from dcrcoadd.config.docs import to_markdown
from dcrcoadd.config.files import apply_override, from_dict, load_toml, to_toml, validate_from
from dcrcoadd.config.schema import Config

__all__ = ["Config", "apply_override", "from_dict", "load_toml", "to_markdown", "to_toml", "validate_from"]
