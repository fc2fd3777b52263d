"""Entry point of the validation and benchmark suite (issue 8).

``python -m benchmarks`` (or ``python benchmarks/run.py``) runs

1. `benchmarks.validation`: false detections per science visit with both DCR solvers on
   two-sided and one-sided coverage (and with 100x less noise in the model warps),
   subfilter colours, flux and astrometry on GalSim-simulated fields, and issue 12's
   targets as pass/fail;
2. `benchmarks.speed`: time and memory of the baseline coadd, the DCR assembly
   and one template over sizes and warp counts, ratios, scaling exponents and
   the shift kernels against ``scipy.ndimage.shift``;
3. `benchmarks.dcr_assemble`'s report (DCR / baseline at 1024x1024 and at the
   DECam-CCD-sized 2048x4096 with 12 warps, against DMTN-037), from the speed cases;
4. `benchmarks.startup`: start-up time of ``dcrcoadd --version`` and ``dcrcoadd info FILE``
   and the heavy optional packages they import (none expected);
5. `benchmarks.bad_inputs`: each kind of bad input through the command line (exit
   status, message, files left behind; about 10 seconds, the same in every mode);
6. `benchmarks.seeing`: variable seeing (issue 13, DMTN-121's experiment): false detections
   and DCR coadd flux against the seeing range, with the issue's targets (``seeing.json``);

and writes ``validation.json``, ``speed.json``, ``dcr_assemble.json``, ``startup.json``,
``bad_inputs.json``, ``summary.json`` and the figures ``dipoles.png`` and ``spectra.png`` to
``benchmarks/results/`` (or ``--out-dir``).

Modes: default (about 12 minutes on 2 cores), ``--quick`` (small fields, under a
minute; used by the tests), ``--full`` (every speed case: 512², 1024² and 2048x4096
with 6, 12 and 24 warps; about half an hour).

``python -m benchmarks --update-readme`` runs nothing: it rewrites the text between
``<!-- validation:start -->`` and ``<!-- validation:end -->`` in README.md from the
latest results. Add ``--quick``, ``--full`` or ``--only`` to run first and then update.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

try:
    from . import bad_inputs, common, dcr_assemble, speed, startup, validation
except ImportError:  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import bad_inputs, common, dcr_assemble, speed, startup, validation

PARTS = ("validation", "speed", "startup", "bad_inputs", "seeing")
START_MARKER = "<!-- validation:start -->"
END_MARKER = "<!-- validation:end -->"


# -- running ----------------------------------------------------------------------------------------


def run_suite(mode: str, parts: list[str], out_dir: Path, argv: list[str]) -> dict:
    """Run the chosen parts in ``mode`` (quick, default, full), write their JSON and return the summary."""
    t_start = time.perf_counter()
    seconds, written = {}, {}
    if "validation" in parts:
        print(f"== validation ({mode})", flush=True)
        t0 = time.perf_counter()
        setup = validation.QUICK if mode == "quick" else validation.DEFAULT
        res = validation.run(setup, figures=out_dir)
        res["mode"] = mode
        validation.print_summary(res)
        written["validation"] = common.write_results("validation", res, out_dir, argv)
        seconds["validation"] = time.perf_counter() - t0
    if "speed" in parts:
        print(f"== speed ({mode})", flush=True)
        t0 = time.perf_counter()
        names = {"quick": speed.QUICK_CASES, "full": speed.FULL_CASES}.get(mode, speed.DEFAULT_CASES)
        res = speed.run([dcr_assemble.Case.parse(c) for c in names], mode)
        speed.print_summary(res)
        written["speed"] = common.write_results("speed", res, out_dir, argv)
        # dcr_assemble's own cases, from the same measurements (no second run)
        wanted = dcr_assemble.DEFAULT_CASES
        chosen = [r for r in res["cases"] if r["case"] in wanted] or res["cases"]
        written["dcr_assemble"] = common.write_results(
            "dcr_assemble", dcr_assemble.payload(chosen, mode), out_dir, argv
        )
        seconds["speed"] = time.perf_counter() - t0
    if "startup" in parts:
        print(f"== startup ({mode})", flush=True)
        t0 = time.perf_counter()
        res = startup.run(repeat=3 if mode == "quick" else 7)
        startup.print_summary(res)
        written["startup"] = common.write_results("startup", res, out_dir, argv)
        seconds["startup"] = time.perf_counter() - t0
    if "bad_inputs" in parts:
        print("== bad inputs", flush=True)
        t0 = time.perf_counter()
        res = bad_inputs.run()
        res["mode"] = mode
        written["bad_inputs"] = common.write_results("bad_inputs", res, out_dir, argv)
        seconds["bad_inputs"] = time.perf_counter() - t0
    if "seeing" in parts:
        print(f"== seeing ({mode})", flush=True)
        t0 = time.perf_counter()
        written["seeing"] = _run_seeing(mode, out_dir, argv)
        seconds["seeing"] = time.perf_counter() - t0
    summary = {
        "mode": mode,
        "parts": parts,
        "seconds": seconds,
        "total_seconds": time.perf_counter() - t_start,
        "files": {k: str(v) for k, v in written.items()},
    }
    summary["key_numbers"] = key_numbers(out_dir)
    common.write_results("summary", summary, out_dir, argv)
    return summary


def _run_seeing(mode: str, out_dir: Path, argv: list[str]) -> Path:
    """`benchmarks.seeing` (issue 13's variable-seeing experiment); its tables and ``seeing.json``."""
    try:
        from . import seeing
    except ImportError:  # run as a script
        from benchmarks import seeing
    res = seeing.run(seeing.QUICK if mode == "quick" else seeing.DEFAULT)
    res["mode"] = mode
    seeing.print_tables(res["results"], res["targets"])
    return common.write_results("seeing", res, out_dir, argv)


def key_numbers(out_dir: Path) -> dict:
    """The headline numbers of the latest results in ``out_dir`` (missing parts are left out)."""
    out = {}
    v = common.read_results("validation", out_dir)
    if v:
        out["validation"] = validation.key_numbers(v)
    s = common.read_results("speed", out_dir)
    if s:
        out["speed_rows"] = s["rows"]
        out["scaling"] = {
            k: {q: s["scaling"][k][q] for q in speed.QUANTITIES} for k in ("with_pixels", "with_warps")
        }
        out["shift_order1_speedup_vs_scipy"] = s["shift"]["summary"].get("order1", {}).get("speedup")
        out["stages_vs_numpy"] = {
            r["case"]: {k: r.get(f"{k}_vs_numpy") for k in ("baseline", "dcr", "outputs", "end_to_end")}
            for r in s["rows"] if r.get("numpy_cpu_s")
        }
        if s.get("workers"):
            w = s["workers"]
            out["workers_speedup"] = {"case": w["case"], "workers": w["workers"], **w["speedup"],
                                      "machine_parallel_capacity": w["machine_parallel_capacity"]}
    d = common.read_results("dcr_assemble", out_dir)
    if d and d.get("dmtn037_comparison"):
        out["dmtn037_comparison"] = d["dmtn037_comparison"]
    st = common.read_results("startup", out_dir)
    if st:
        out["startup_wall_s"] = {name: c["wall_s_min"] for name, c in st["cases"].items()}
    b = common.read_results("bad_inputs", out_dir)
    if b:
        out["bad_inputs_as_promised"] = f"{b['n_ok']} of {b['n_cases']}"
    return out


# -- README -----------------------------------------------------------------------------------------


def replace_between_markers(text: str, body: str) -> str:
    """``text`` with everything between `START_MARKER` and `END_MARKER` replaced by ``body``.

    Raises
    ------
    ValueError
        If the markers are missing, repeated or out of order.
    """
    if text.count(START_MARKER) != 1 or text.count(END_MARKER) != 1:
        raise ValueError(f"README must contain {START_MARKER} and {END_MARKER} exactly once each")
    start = text.index(START_MARKER) + len(START_MARKER)
    end = text.index(END_MARKER)
    if end < start:
        raise ValueError(f"{END_MARKER} comes before {START_MARKER}")
    return text[:start] + "\n" + body.strip("\n") + "\n" + text[end:]


def _f(value, spec: str) -> str:
    return common.fmt(value, spec, none="–")


def typed_command(command: str) -> str:
    """The recorded command as a user types it: ``python -m benchmarks ...``.

    Results record the interpreter's absolute path (``/home/me/.venv/bin/python -m
    benchmarks --full``) and any ``--out-dir``; those paths say nothing to a reader and differ
    between machines, so both are left out.
    """
    marker = " -m "
    if marker in command:
        command = "python" + command[command.index(marker):]
    # where this machine kept its files is no part of the command a reader would type
    return re.sub(r" --(?:out-dir|readme)(?:=| +)\S+", "", command)


def _other_run(results: dict | None, command: str) -> str:
    """Where the speed results came from a run of their own: its command, date and commit."""
    if not results or typed_command(results["command"]) == command:
        return ""
    m = results["machine"]
    return (f"; the speed tables from `{typed_command(results['command'])}` ({m['date']}, commit "
            f"{m['git_commit']}{' with local changes' if m.get('git_dirty') else ''})")


def _also(results: dict | None, command: str) -> str:
    """`` && <the speed run's command>`` where it was a run of its own."""
    return f" && {typed_command(results['command'])}" if _other_run(results, command) else ""


def readme_section(out_dir: Path) -> str:
    """Markdown of the latest results in ``out_dir`` (what ``--update-readme`` puts in README.md)."""
    v = common.read_results("validation", out_dir)
    s = common.read_results("speed", out_dir)
    d = common.read_results("dcr_assemble", out_dir)
    b = common.read_results("bad_inputs", out_dir)
    if not (v or s or b):
        raise FileNotFoundError(f"no results in {out_dir}: run `python -m benchmarks` first")
    lines = []
    first = v or s or b
    m = first["machine"]
    command = typed_command(first["command"])
    lines += [
        f"_Generated by `python -m benchmarks --update-readme` from the results of `{command}` "
        f"({first.get('mode', '?')} mode, {m['date']}, commit {m['git_commit']}"
        f"{' with local changes' if m.get('git_dirty') else ''}; {m['cpu_model']}, {m['cpu_count']} cores, "
        f"Python {m['python']}, numpy {m['versions']['numpy']}){_other_run(s, command)}. Regenerate: "
        f"`{command}{_also(s, command)} && python -m benchmarks --update-readme`. Figures and full numbers: "
        "`benchmarks/results/`._",
        "",
    ]
    if v:
        lines += validation.markdown(v)
    se = common.read_results("seeing", out_dir)
    if se:
        lines += seeing_markdown(se)
    if s:
        lines += speed_markdown(s, d)
    st = common.read_results("startup", out_dir)
    if st:
        parts = [f"`{c['command']}` {c['wall_s_min']:.2f} s (importing dcrcoadd "
                 f"{_f(c['import_dcrcoadd_s'], '.2f')} s)" for c in st["cases"].values()]
        heavy = sorted({h for c in st["cases"].values() for h in c["heavy_imported"]})
        lines += [
            f"Start-up, best of {st['repeat']} fresh processes: " + "; ".join(parts)
            + "; heavy optional packages imported: " + (", ".join(heavy) if heavy else "none") + ".",
            "",
        ]
    if b:
        lines += [*bad_inputs.markdown(b), ""]
    return "\n".join(lines)


SEEING_COLUMNS = (("baseline", "baseline coadd"), ("iterative", "iterative"),
                  ("iterative psf-aware", "iterative, PSF term"), ("exact", "exact, no PSF term"),
                  ("psf-aware", "PSF-aware"), ("psf-aware measured", "PSF-aware, measured PSFs"),
                  ("noise floor", "noise twin"))


def seeing_markdown(se: dict) -> list[str]:
    """README lines of `benchmarks.seeing` (issue 13: DMTN-121's variable-seeing experiment)."""
    setup = se["setup"]
    lo, hi = setup["model_airmass"]
    science = ", ".join(f"{a:.2f} {side}" for a, side, _ in setup["science"])
    measured = {"kernels": "measured from each warp's and science exposure's own stars across the DCR "
                           "direction (`dcrcoadd.ops.psf_measure`) and passed in",
                "pipeline": "left out of the files, so the pipeline measures them from each exposure's stars "
                            "across the DCR direction and fits them against the model (`inputs.measure_psf`, "
                            "`dcr.psf_refits`, templates `science-fitted`)"}
    measured = measured.get(se.get("measured"), "not run")
    intro = (
        f"GalSim g-band field, {setup['size']}×{setup['size']} px, {setup['n_stars']} stars, Kolmogorov "
        f"seeing with chromatic width ∝ λ^−0.2, {setup['n_model']} model visits alternating east and west "
        f"at airmass {lo:.2f}–{hi:.2f}, science visits at {science}; each visit's seeing spread over the "
        "range of the row (stored in its PSF HDU). Columns: false detections (5σ, ≥ 3 px) in science − "
        "template at each science airmass; the iterative solver (LSST parity) and the same with the PSF "
        "term (`dcr.psf_model = warp`); the exact solver without and with the PSF-aware forward model "
        f"(templates at the science PSF); in the last model column the PSFs are {measured} instead of the "
        "true ones (`python -m benchmarks --only seeing`).")
    lines = [
        "### Variable seeing (DMTN-121's experiment, issue 13)",
        "",
        intro,
        "",
        "| seeing spread | range | " + " | ".join(label for _, label in SEEING_COLUMNS) + " |",
        "|---:|---|" + "---:|" * len(SEEING_COLUMNS),
    ]
    for res in se["results"]:
        lo_s, hi_s = res["seeing_range"]
        cells = ["/".join(str(row.get(key, "–")) for row in res["rows"]) for key, _ in SEEING_COLUMNS]
        lines.append(f"| {100 * res['spread']:.0f} % | {lo_s:.2f}–{hi_s:.2f}″ | " + " | ".join(cells) + " |")
    flux = []
    for res in se["results"]:
        values = [v["flux_over_baseline"] for v in res["summary"].values()
                  if isinstance(v, dict) and "flux_over_baseline" in v]
        flux += values
    flux_range = f"{min(flux):.4f}–{max(flux):.4f}"
    lines += ["", f"DCR coadd flux / baseline coadd, every solver and spread: {flux_range}.", "",
              "| issue 13 target | measured | |", "|---|---|---|"]
    for t in se["targets"]:
        lines.append(f"| {t['target']} | {t['detail']} | {'pass' if t['pass'] else '**fail**'} |")
    return [*lines, ""]


#: What the synthetic speed fields leave out (measured at e7ef008 with the command it names).
SATURATION_CAVEAT = (
    "These fields hold no saturated star. A core masked in every warp slows the exact solver's colour "
    "alternation near it: on the 14 fields of `python -m benchmarks.scenarios --seed 1` (256² px, one "
    "saturated 14-15 mag star each), 9 stop unconverged at the 30-refit cap, after 220-305 "
    "conjugate-gradient iterations, where the field without defects converges after 14 refits and 46; "
    "expect the DCR time of real fields to be several times the table's."
)


def speed_markdown(s: dict, d: dict | None = None) -> list[str]:
    """README lines of the speed results ``s`` (`benchmarks.speed`) and the DMTN-037 comparison of
    ``d`` (`benchmarks.dcr_assemble`)."""
    lines = [
        "### Speed and memory (one core, synthetic DCR warps read from FITS)",
        "",
        "| case (W×H×warps) | baseline coadd s | DCR assembly s | DCR / baseline | iterations "
        "| template s | baseline peak MiB | DCR peak MiB | template peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['case']} | {_f(r['baseline_cpu_s'], '.2f')} | {_f(r['dcr_cpu_s'], '.2f')} | "
            f"{_f(r['ratio_dcr_to_baseline'], '.1f')} | {r['iterations_max']} | "
            f"{_f(r['template_cpu_s'], '.3f')} | {_f(r['baseline_peak_mib'], '.0f')} | "
            f"{_f(r['dcr_peak_mib'], '.0f')} | {_f(r.get('template_traced_peak_mib'), '.0f')} |"
        )
    sc = s["scaling"]
    lines += [
        "",
        "CPU seconds of a single-threaded process (the DCR time includes its own baseline coadd); peak "
        "memory is the resident high-water mark of a fresh process per step above its size after "
        "imports (inputs stay on disk and are read by subregion); the template's is what it allocates "
        "(`tracemalloc`), as it runs in the DCR step's process.",
        "",
        SATURATION_CAVEAT,
        "",
    ]
    lines += _memory_goal_lines(s["rows"])
    lines += _numpy_ratio_lines(s["rows"])
    lines += [
        f"Scaling exponents (time ∝ N^k): with pixels at {sc['with_pixels']['at_n_warps']} warps, "
        f"baseline {_f(sc['with_pixels']['baseline_cpu_s'], '.2f')}, DCR "
        f"{_f(sc['with_pixels']['dcr_cpu_s'], '.2f')}, DCR per iteration "
        f"{_f(sc['with_pixels']['dcr_model_cpu_s_per_iteration'], '.2f')}, template "
        f"{_f(sc['with_pixels']['template_cpu_s'], '.2f')}; with warps at "
        f"{sc['with_warps']['at_pixels']} px, baseline {_f(sc['with_warps']['baseline_cpu_s'], '.2f')}, "
        f"DCR {_f(sc['with_warps']['dcr_cpu_s'], '.2f')}, "
        f"DCR per iteration {_f(sc['with_warps']['dcr_model_cpu_s_per_iteration'], '.2f')}.",
        "",
        f"Shift kernel at {s['shift']['size']}² px (Mpix/s, dcrcoadd vs `scipy.ndimage.shift`): "
        + "; ".join(
            f"{name} {_f(x['dcrcoadd_mpix_s'], '.0f')} vs {_f(x['scipy_mpix_s'], '.0f')}"
            for name, x in s["shift"]["summary"].items()
        )
        + ".",
        "",
    ]
    lines += _profile_lines(s.get("profile"))
    lines += _workers_lines(s.get("workers"))
    if d and d.get("dmtn037_comparison"):
        c = d["dmtn037_comparison"]
        lines += [
            f"DECam CCD size ({c['case']}): DCR model {c['dcr_model_cpu_s']:.0f} s "
            f"({c['iterations_max']} iterations), template {c['template_cpu_s']:.2f} s, on one core; "
            "DMTN-037 reported about 600 s and 1–2 s on one laptop core.",
            "",
        ]
    return lines


def _memory_goal_lines(rows: list[dict]) -> list[str]:
    """Issue 14's memory goal per case: the DCR step's peak against its bound."""
    rows = [r for r in rows if r.get("memory_goal_mib")]
    if not rows:
        return []

    def cell(r: dict) -> str:
        verdict = "pass" if r["dcr_peak_mib"] <= r["memory_goal_mib"] else "**fail**"
        return f"{r['case']} {_f(r['dcr_peak_mib'], '.0f')} / {_f(r['memory_goal_mib'], '.0f')} ({verdict})"

    cells = "; ".join(cell(r) for r in rows)
    return [
        "Issue 14's memory goal, peak ≤ 2× one subregion of all warps (the default 2000² px, as the "
        "warp files hold it: image, mask, variance) plus the outputs (the run's FITS products), "
        f"DCR peak / goal in MiB: {cells}.",
        "",
    ]


def _numpy_ratio_lines(rows: list[dict]) -> list[str]:
    """The per-stage table against the numpy coadd (issue 14), for the rows that have it."""
    rows = [r for r in rows if r.get("numpy_cpu_s")]
    if not rows:
        return []
    lines = [
        "Each stage against a plain numpy inverse-variance coadd of the same files (astropy reads of "
        "IMAGE, MASK, VARIANCE; bad pixels left out), CPU seconds and ratio; issue 14's goals: baseline "
        "≤ 3×, DCR ≤ 5×, end to end ≤ 10×.",
        "",
        "| case (W×H×warps) | numpy coadd s | baseline + compare-warp | DCR stage | outputs | end to end |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [f"{_f(r[sec], '.2f')} s ({_f(r[ratio], '.0f')}×)" for sec, ratio in (
            ("baseline_cpu_s", "baseline_vs_numpy"), ("dcr_stage_cpu_s", "dcr_vs_numpy"),
            ("outputs_cpu_s", "outputs_vs_numpy"), ("end_to_end_cpu_s", "end_to_end_vs_numpy"))]
        lines.append(f"| {r['case']} | {_f(r['numpy_cpu_s'], '.3f')} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "DCR stage: the model, coadds and their bookkeeping after the baseline; outputs: the FITS "
        "products and `report.png` (its leave-one-out re-solve and the figure); end to end: the three "
        "in one process.",
        "",
    ]
    return lines


def _profile_lines(p: dict | None, top: int = 4) -> list[str]:
    """The profile summary: each stage's wall time and its ``top`` entries by own time."""
    if not p:
        return []
    lines = [f"Profile of {p['case']} (`python -m benchmarks.profile --case {p['case']}`; wall seconds, "
             f"numpy coadd {p['numpy_coadd_s']:.2f} s), top entries by own time:", ""]
    for name, st in p["stages"].items():
        entries = "; ".join(f"`{r['function']}` {r['own_s']:.2f} s" for r in st["top_own"][:top])
        lines.append(f"- {name.replace('_', ' ')} {st['seconds']:.2f} s "
                     f"({st['ratio_to_numpy']:.0f}× numpy): {entries}")
    return [*lines, ""]


def _workers_lines(w: dict | None) -> list[str]:
    """``--workers 2`` against one process, stage by stage, next to the machine's capacity."""
    if not w:
        return []
    n = str(w["workers"])
    stages = "; ".join(
        f"{label} {_f(w['seconds']['1'][k], '.1f')} → {_f(w['seconds'][n][k], '.1f')} s "
        f"(×{_f(w['speedup'][k], '.2f')})"
        for k, label in (("baseline_coadd", "baseline"), ("dcr_model", "DCR model"),
                         ("write_outputs", "outputs (written by the main process either way)"),
                         ("total", "total")))
    return [
        f"`--workers {n}` on {w['case']} ({w['subregions']} subregion(s) of the default size), wall "
        f"time with one process → {n}: {stages}; in a separate measurement this machine ran two "
        f"CPU-bound processes {w['machine_parallel_capacity']:.2f}× as fast as one (2.00 on two free "
        f"cores; shared with other jobs, it varies from run to run); outputs identical: "
        f"{'yes' if w['identical_outputs'] else 'NO'}.",
        "",
    ]


def update_readme(out_dir: Path, readme: Path) -> None:
    body = readme_section(out_dir)
    text = readme.read_text()
    readme.write_text(replace_between_markers(text, body))


# -- command line -----------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small fields and cases (< 2 min; used by the tests)")
    g.add_argument("--full", action="store_true", help="every speed case, including 2048x4096 x 24 warps")
    ap.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    ap.add_argument("--out-dir", type=Path, default=common.RESULTS_DIR, help="results directory")
    ap.add_argument(
        "--update-readme",
        action="store_true",
        help="rewrite README.md's Validation section from the latest results (alone: run nothing)",
    )
    ap.add_argument("--readme", type=Path, default=common.REPO_ROOT / "README.md", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    argv_list = ["-m", "benchmarks", *(argv if argv is not None else sys.argv[1:])]
    run_first = not args.update_readme or args.quick or args.full or args.only
    if run_first:
        common.setup_logging()
        mode = "quick" if args.quick else "full" if args.full else "default"
        parts = [p for p in PARTS if not args.only or p in args.only]
        summary = run_suite(mode, parts, args.out_dir, argv_list)
        print(f"== done in {summary['total_seconds']:.0f} s; results in {args.out_dir}")
    if args.update_readme:
        update_readme(args.out_dir, args.readme)
        print(f"updated {args.readme} from {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
