"""Fingerprints of the FITS outputs of `dcrcoadd demo`, `assemble` and `template`, to show that a
change of structure leaves every output byte-identical.

Run it before and after the change, in a directory of the same name (file paths are recorded in
``coadd.fits``), and compare the two listings::

    python benchmarks/output_hashes.py --out /tmp/hashes > before.txt
    # ... change ...
    python benchmarks/output_hashes.py --out /tmp/hashes > after.txt
    diff before.txt after.txt
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path


def _run(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "dcrcoadd", *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"dcrcoadd {' '.join(args)} failed:\n{result.stderr}")


def fingerprints(out: Path) -> list[str]:
    """Run the three commands into ``out`` (emptied first); one ``sha256 path`` line per output file."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _run("demo", "--out", str(out / "demo"), "-q")
    _run("simulate", str(out / "sim"), "--n-visits", "6", "--size", "160", "--seed", "3")
    _run("assemble", str(out / "sim" / "warps"), "--out", str(out / "asm"), "-q",
         "--set", "coadd.subregion_size=[96,96]")
    science = sorted(str(p) for p in (out / "sim" / "warps").glob("*.fits"))[:2]
    _run("template", str(out / "asm" / "model.fits"), *science, "--out", str(out / "tpl"), "--diff", "-q")
    return [f"{hashlib.sha256(p.read_bytes()).hexdigest()[:16]} {p.relative_to(out)}"
            for p in sorted(out.rglob("*.fits")) if "sim" not in p.relative_to(out).parts[:1]
            and "sim" not in p.relative_to(out).parts[1:2]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/output/hashes"),
                        help="working directory (emptied first)")
    args = parser.parse_args(argv)
    print("\n".join(fingerprints(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
