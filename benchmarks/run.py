"""Entry point of the validation and benchmark suite (issue 8).

``python -m benchmarks`` (or ``python benchmarks/run.py``) runs

1. `benchmarks.validation`: dipoles / false detections against elevation,
   subfilter spectra, flux and astrometry on GalSim-simulated fields;
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

Modes: default (about 8 minutes on 2 cores), ``--quick`` (small fields, under a
minute; used by the tests), ``--full`` (every speed case: 512², 1024² and 2048x4096
with 6, 12 and 24 warps; about half an hour).

``python -m benchmarks --update-readme`` runs nothing: it rewrites the text between
``<!-- validation:start -->`` and ``<!-- validation:end -->`` in README.md from the
latest results. Add ``--quick``, ``--full`` or ``--only`` to run first and then update.
"""

from __future__ import annotations

import argparse
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
        out["false_detections_total"] = v["dipole_totals"]
        out["spectra"] = {
            s["label"]: {"iterations": max(s["iterations"]), **s["spectra"]["fit"]} for s in v["spectra"]
        }
        fa = v["flux_astrometry"]
        out["dcr_coadd_flux_ratio"] = fa["dcr_coadd"]["aperture_ratio_to_truth_median"]
        out["dcr_coadd_offset_sigma_px"] = fa["dcr_coadd"]["offset_robust_sigma_px"]
        out["baseline_coadd_offset_sigma_px"] = fa["baseline_coadd"]["offset_robust_sigma_px"]
    s = common.read_results("speed", out_dir)
    if s:
        out["speed_rows"] = s["rows"]
        out["scaling"] = {
            k: {q: s["scaling"][k][q] for q in speed.QUANTITIES} for k in ("with_pixels", "with_warps")
        }
        out["shift_order1_speedup_vs_scipy"] = s["shift"]["summary"].get("order1", {}).get("speedup")
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
    benchmarks --full``); that path says nothing to a reader and differs between machines.
    """
    marker = " -m "
    if marker in command:
        return "python" + command[command.index(marker):]
    return command


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
    lines += [
        f"_Generated by `python -m benchmarks --update-readme` from the results of "
        f"`{typed_command(first['command'])}` "
        f"({first.get('mode', '?')} mode, {m['date']}, commit {m['git_commit']}"
        f"{' with local changes' if m.get('git_dirty') else ''}; {m['cpu_model']}, {m['cpu_count']} cores, "
        f"Python {m['python']}, numpy {m['versions']['numpy']}). Regenerate: `python -m benchmarks && "
        "python -m benchmarks --update-readme`. Figures and full numbers: `benchmarks/results/`._",
        "",
    ]
    if v:
        st = v["setup"]
        lines += [
            "### False detections in science − template (DMTN-037's dipole test)",
            "",
            f"GalSim-simulated g-band field, {st['size']}×{st['size']} px at 0.2″, {st['n_stars']} stars "
            f"(black bodies, {', '.join(st['spectral_mix'])} mix), constant {st['seeing']}″ seeing, "
            "no defects; "
            f"DCR model (M = 3, LSST defaults) from {st['n_model_visits']} visits at airmass 1.0–2.0 and "
            f"parallactic angles 100°–260°; held-out visits at parallactic angle "
            f"{st['science_parallactic_angle']:g}°. Detections: 5σ per pixel, ≥ 3 connected pixels, "
            "both signs, "
            "direct pixel subtraction.",
            "",
            "| elevation | airmass | DCR template | baseline coadd | single visit 5° higher "
            "| single visit 10° higher | noise twin |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in v["dipoles"]:
            lines.append(
                f"| {r['elevation']:.0f}° | {r['airmass']:.3f} | {r['n_dcr']} | {r['n_baseline']} | "
                f"{r.get('n_single_5deg', '–')} | {r.get('n_single_10deg', '–')} | {r['n_noise_twin']} |"
            )
        z = v.get("zenith")
        if z:
            # results written before the one statistic (dcrcoadd.report.scores) hold an RMS instead
            residual = (f"χ² per source pixel {z['chi2_dcr']:.2f}" if "chi2_dcr" in z
                        else f"source-pixel residual RMS {z['rms_dcr']:.2f} σ")
            lines += [
                "",
                f"At the zenith (airmass 1, not one of DMTN-037's elevations): DCR template {z['n_dcr']} "
                f"({residual}), baseline coadd {z['n_baseline']}, noise twin {z['n_noise_twin']}.",
            ]
        lines += [
            "",
            "### Subfilter spectra (bluest − reddest subfilter colour of isolated stars vs truth)",
            "",
            "Forced Gaussian-weighted photometry at the true positions; line fit measured = slope × true + "
            "intercept (mag), robust scatter. DMTN-037 found the slope too flat at a 1 % threshold and close "
            "to 1 at 0.1 %.",
            "",
            "| run | convergence_threshold | max_num_iter | iterations | stars | slope | intercept "
            "| scatter |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in v["spectra"]:
            fit = r["spectra"]["fit"]
            lines.append(
                f"| {r['label']} | {r['convergence_threshold']:g} | {r['max_num_iter'] or '3M (9)'} | "
                f"{max(r['iterations'])} | {fit['n']} | {_f(fit['slope'], '.3f')} | "
                f"{_f(fit['intercept'], '+.3f')} | {_f(fit['scatter'], '.3f')} |"
            )
        floor = v["spectra"][0]["spectra"].get("fit_truth_images")
        if floor and floor["slope"] is not None:
            lines += [
                "",
                "The same photometry on the noise-free truth subfilter images gives slope "
                f"{floor['slope']:.3f}, intercept {floor['intercept']:+.3f}, scatter {floor['scatter']:.3f} "
                "(the method's floor).",
            ]
        fa = v["flux_astrometry"]
        lines += [
            "",
            f"### Flux and astrometry ({fa['n_bright']} bright isolated stars, default model)",
            "",
            "| image | aperture flux / truth image | PSF-weighted flux / catalogue | median offset (x, y) px "
            "| offset scatter px | offset trend with colour (x, y) px/mag |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, label in (
            ("dcr_coadd", "stacked DCR coadd"),
            ("baseline_coadd", "baseline coadd"),
            ("truth_noise_free", "noise-free truth (method floor)"),
        ):
            e = fa[name]
            lines.append(
                f"| {label} | {_f(e['aperture_ratio_to_truth_median'], '.4f')} | "
                f"{_f(e['flux_ratio_median'], '.4f')} | ({_f(e['dx_median_px'], '+.3f')}, "
                f"{_f(e['dy_median_px'], '+.3f')}) | {_f(e['offset_robust_sigma_px'], '.3f')} | "
                f"({_f(e['dx_per_mag_color'], '+.3f')}, {_f(e['dy_per_mag_color'], '+.3f')}) |"
            )
        lines += [
            "",
            f"Total flux, DCR coadd / baseline coadd: {fa['total_flux_ratio_dcr_to_baseline']:.5f}.",
            "",
        ]
    if s:
        lines += [
            "### Speed and memory (one core, synthetic DCR warps read from FITS)",
            "",
            "| case (W×H×warps) | baseline coadd s | DCR assembly s | DCR / baseline | iterations "
            "| template s | baseline peak MiB | DCR peak MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in s["rows"]:
            lines.append(
                f"| {r['case']} | {_f(r['baseline_cpu_s'], '.2f')} | {_f(r['dcr_cpu_s'], '.2f')} | "
                f"{_f(r['ratio_dcr_to_baseline'], '.1f')} | {r['iterations_max']} | "
                f"{_f(r['template_cpu_s'], '.3f')} | {_f(r['baseline_peak_mib'], '.0f')} | "
                f"{_f(r['dcr_peak_mib'], '.0f')} |"
            )
        sc = s["scaling"]
        lines += [
            "",
            "CPU seconds of a single-threaded process (the DCR time includes its own baseline coadd); peak "
            "memory is the resident high-water mark of a fresh process per step above its size after "
            "imports (inputs stay on disk and are read by subregion).",
            "",
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
    if d and d.get("dmtn037_comparison"):
        c = d["dmtn037_comparison"]
        lines += [
            f"DECam CCD size ({c['case']}): DCR model {c['dcr_model_cpu_s']:.0f} s "
            f"({c['iterations_max']} iterations), template {c['template_cpu_s']:.2f} s, on one core; "
            "DMTN-037 reported about 600 s and 1–2 s on one laptop core.",
            "",
        ]
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
