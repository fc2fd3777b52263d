"""The ``dcrcoadd`` command: `dcrcoadd.cli.main`, loaded where a Ctrl-C is answered as the command
answers one (one line, status 130), not with the traceback of whichever import it interrupted."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from dcrcoadd.cli import main as run
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return run()
