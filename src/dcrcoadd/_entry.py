"""The ``dcrcoadd`` command: `dcrcoadd.cli.main`, loaded where a Ctrl-C is answered as the command
answers one (one line, status 130), not with the traceback of whichever import it interrupted.
``dcrcoadd --version`` is answered before the command line (numpy, astropy) loads: 0.76 s of imports
for one line."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        from dcrcoadd._version import __version__

        print(f"dcrcoadd {__version__}")  # (as the parser's own --version prints it)
        return 0
    try:
        from dcrcoadd.cli import main as run
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return run()
