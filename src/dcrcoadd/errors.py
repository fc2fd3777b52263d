"""Exception hierarchy of dcrcoadd.

Every error a user can cause by their inputs or settings derives from
`DcrCoaddError`; the command line turns these into one line on stderr.
"""

from __future__ import annotations


class DcrCoaddError(Exception):
    """Base class of all errors raised deliberately by dcrcoadd."""


class InputError(DcrCoaddError, ValueError):
    """An input file or object is missing, corrupt or inconsistent.

    Parameters
    ----------
    message : str
        What is wrong.
    source : str or path-like, optional
        The file or object the problem was found in; prefixed to the message.
    """

    def __init__(self, message: str, source: object | None = None):
        self.source = None if source is None else str(source)
        # One line, always: the command line prints it as ``error: SOURCE: reason`` and
        # reasons often quote third-party messages that span several lines.
        message = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
        self.reason = message
        super().__init__(message if source is None else f"{source}: {message}")


class ConfigError(DcrCoaddError, ValueError):
    """A configuration value is invalid or inconsistent with another."""
