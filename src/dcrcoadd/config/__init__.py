"""Run configuration: typed settings per stage, validation, TOML, ``--set`` overrides and docs."""

from dcrcoadd.config.schema import Config, apply_override, from_dict, load_toml, to_markdown, to_toml

__all__ = ["Config", "apply_override", "from_dict", "load_toml", "to_markdown", "to_toml"]
