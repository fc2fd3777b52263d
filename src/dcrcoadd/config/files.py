"""Configuration files and overrides: TOML in and out, nested dicts, ``--set section.field=value``."""

from __future__ import annotations

import copy
import dataclasses
import os
import textwrap
import tomllib

from dcrcoadd.config.schema import Config, field_docs
from dcrcoadd.errors import ConfigError


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} to TOML")


def to_toml(config: Config, *, comments: bool = False) -> str:
    """The configuration as TOML text, one table per section; ``None`` fields are written as
    comments (TOML has no null), so reading the text back gives the same configuration.
    With ``comments``, each field is preceded by its documentation (meaning, unit, LSST name)."""
    lines: list[str] = []
    docs = field_docs() if comments else {}

    def emit(obj, prefix: str) -> None:
        scalars = [f for f in dataclasses.fields(obj) if not dataclasses.is_dataclass(getattr(obj, f.name))]
        tables = [f for f in dataclasses.fields(obj) if dataclasses.is_dataclass(getattr(obj, f.name))]
        if scalars:
            lines.append(f"[{prefix}]")
            for f in scalars:
                doc = docs.get(type(obj).__name__, {}).get(f.name)
                if doc:
                    lines.extend("# " + line for line in textwrap.wrap(" ".join(doc.split()), 96))
                value = getattr(obj, f.name)
                lines.append(f"# {f.name} = (default: None)" if value is None
                             else f"{f.name} = {toml_value(value)}")
                if doc:
                    lines.append("")
            lines.append("")
        for f in tables:
            emit(getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name)

    emit(config, "")
    return "\n".join(lines).rstrip() + "\n"


def _assign(obj, path: list[str], value, full: str) -> None:
    name = path[0]
    names = {f.name for f in dataclasses.fields(obj)}
    if name not in names:
        # a field that lives one section deeper (dcr.max_num_iter is dcr.iterative.max_num_iter)
        deeper = [f.name for f in dataclasses.fields(obj) if dataclasses.is_dataclass(getattr(obj, f.name))
                  and name in {g.name for g in dataclasses.fields(getattr(obj, f.name))}]
        hint = f"; did you mean {full.rsplit(name, 1)[0]}{deeper[0]}.{name}?" if deeper else ""
        raise ConfigError(f"unknown configuration field {full!r} ({name!r} is not one of "
                          f"{', '.join(sorted(names))}){hint}")
    current = getattr(obj, name)
    if isinstance(value, _NoneWord) and (len(path) == 1 or isinstance(current, dict)):
        annotation = next(f for f in dataclasses.fields(obj) if f.name == name).type
        value = "none" if len(path) == 1 and annotation in (str, "str") else None
    if len(path) > 1:
        if isinstance(current, dict) and len(path) == 2:
            # one entry of a table field (inputs.header_map.airmass=AIRMASS2); none removes it
            if value is None:
                current.pop(path[1], None)
            else:
                current[path[1]] = value
            return
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{full!r}: {name!r} is a value, not a section")
        _assign(current, path[1:], value, full)
        return
    if dataclasses.is_dataclass(current):
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{full!r} is a section: write [{full}], not [[{full}]] (an array of tables)")
        if not isinstance(value, dict):
            raise ConfigError(f"{full!r} is a section; give a table")
        for key, sub in value.items():
            _assign(current, [key], sub, f"{full}.{key}")
        return
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    setattr(obj, name, value)


def from_dict(data: dict, base: Config | None = None) -> Config:
    """A configuration with the values of a nested dict (e.g. parsed TOML) applied to ``base``."""
    config = copy.deepcopy(base) if base is not None else Config()
    for key, value in data.items():
        _assign(config, [key], value, key)
    return config


def load_toml(path) -> Config:
    """Read a TOML configuration file; `ConfigError` naming the file on syntax or field errors."""
    try:
        # (an editor's byte-order mark is not part of the text; TOML itself refuses it)
        with open(path, encoding="utf-8-sig") as fh:
            data = tomllib.loads(fh.read())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:  # (e.g. a FITS file or an image given as --config)
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text)") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def validate_from(config: Config, path: str | os.PathLike | None) -> None:
    """``config.validate()`` for a configuration read from the file ``path`` (None: none) and then
    changed (overrides, options): an invalid value that is the file's is reported naming it."""
    try:
        config.validate()
    except ConfigError as exc:
        if path is not None:
            try:
                load_toml(path).validate()
            except ConfigError as alone:
                if str(alone) == str(exc):
                    raise ConfigError(f"{path}: {exc}") from None
        raise


def apply_override(config: Config, text: str) -> Config:
    """Apply one ``section.field=value`` override (value in TOML syntax; bare words are strings)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form section.field=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if raw.lower() in ("none", "null"):
        value = _NONE_WORD
    _assign(config, key.split("."), value, key)
    return config


class _NoneWord(str):
    """The bare word ``none`` (or ``null``) of an override: None for a field that may be None, the
    string ``"none"`` for a text field that takes it as a value (``dcr.psf_model=none``)."""


_NONE_WORD = _NoneWord("none")
