"""Survey throughput and scheduling overhead (`dcrcoadd.pipeline.survey`), and the per-patch cost
that a survey's core-hours follow from.

Four measurements, on a field of synthetic warps (numpy star fields with known per-visit
shifts, `benchmarks.parallel.write_field`) cut into patches by a plan:

1. **small patches**: ``--patches`` patches of ``--patch-size`` px, run serially in this
   process and on a local Dask cluster of ``--workers`` single-threaded processes (patches as
   tasks, their tiles as nested tasks); throughput in patches per minute per core, and whether
   the outputs are byte-identical;
2. **scheduling overhead per task** on that cluster: no-op tasks sent from the client
   (``client.map``) and from inside a task through `cluster_map` (scatter, nested tasks,
   results as they finish: the path every tile of a survey takes), per task; and the tasks a
   small patch makes, so the overhead's share of a patch;
3. **what the scheduler holds**: the pickled size of a patch task, and the scheduler's memory
   per task held (RSS growth over ``--held-tasks`` finished tasks whose keys a client holds);
4. **per-patch cost against size**: one patch of ``--scaling-sizes`` px run serially (one core),
   for the core-hours estimate of docs/survey.md (cost per pixel per warp).

    python benchmarks/survey.py [--patches 8] [--patch-size 128] [--warps 6] [--workers 2]
                                [--scaling-sizes 256 512 1024] [--quick]

Results: ``benchmarks/results/survey.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pickle
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# one thread per library in this process and the workers: a patch's cost is one core's
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import PeakMemory, machine_info, write_results  # noqa: E402
from benchmarks.parallel import machine_parallel_capacity, write_field  # noqa: E402


def _noop(x):
    return x


def _nested_noops(n: int) -> float:
    """Run on a worker: ``n`` no-op tiles through the survey's nested mapper; its wall time."""
    from dcrcoadd.pipeline.survey import cluster_map

    start = time.perf_counter()
    assert sorted(cluster_map(_noop, range(n), label="bench")) == list(range(n))
    return time.perf_counter() - start


def _warm_up() -> None:
    """Import what a patch task needs, once per worker (a long survey pays it once)."""
    import matplotlib.figure  # noqa: F401

    import dcrcoadd.pipeline.survey  # noqa: F401


def _cpu() -> float:
    """CPU seconds of this process so far (all threads)."""
    return time.process_time()


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def write_plan(path: Path, warps_dir: Path, width: int, height: int, size: int, subregion: int,
               n_patches: int) -> Path:
    lines = [f'set = ["coadd.subregion_size=[{subregion},{subregion}]"]', ""]
    boxes = [(x, y) for y in range(0, height - size + 1, size) for x in range(0, width - size + 1, size)]
    for i, (x, y) in enumerate(boxes[:n_patches]):
        lines += ["[[patch]]", f'name = "p{i:03d}"', f'inputs = ["{warps_dir}/*.fits"]',
                  f"box = [{x}, {y}, {size}, {size}]", ""]
    path.write_text("\n".join(lines))
    return path


def run_survey_timed(plan_path: Path, out: Path, client=None, **where) -> tuple[float, float, list]:
    """Wall seconds, CPU seconds (this process's, plus the workers' when ``client`` is given) and
    the outcomes of one survey of the plan."""
    from dcrcoadd.pipeline.survey import run_survey
    from dcrcoadd.pipeline.survey_plan import read_plan

    plan = read_plan(plan_path)
    workers_before = sum(client.run(_cpu).values()) if client is not None else 0.0
    cpu, start = _cpu(), time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        result = run_survey(plan, out, **where)
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    if client is not None:
        cpu += sum(client.run(_cpu).values()) - workers_before
    failed = [o.name for o in result.outcomes if o.status != "done"]
    if failed:
        raise SystemExit(f"patches not done: {failed}")
    return wall, cpu, result.outcomes


def identical(a: Path, b: Path, names: list[str]) -> bool:
    for name in names:
        for path in sorted((a / name).iterdir()):
            if path.name != "metadata.json" and path.read_bytes() != (b / name / path.name).read_bytes():
                return False
    return True


def _cluster_cpu(client) -> float:
    """CPU seconds so far of the scheduler, the workers and this process."""
    return client.run_on_scheduler(_cpu) + sum(client.run(_cpu).values()) + _cpu()


def overheads(client, n_flat: int, n_nested: int) -> dict:
    """Per no-op task: wall seconds and CPU seconds (scheduler, workers and client together), for
    tasks sent from the client and for nested ones through `cluster_map`."""
    from distributed import wait

    client.gather(client.map(_noop, range(8)))  # warm up
    cpu, start = _cluster_cpu(client), time.perf_counter()
    futures = client.map(_noop, range(n_flat), pure=False)
    wait(futures)
    flat_wall, flat_cpu = time.perf_counter() - start, _cluster_cpu(client) - cpu
    del futures
    client.submit(_nested_noops, 8, pure=False).result()  # warm up
    cpu, start = _cluster_cpu(client), time.perf_counter()
    inner = client.submit(_nested_noops, n_nested, pure=False).result()
    nested_cpu = _cluster_cpu(client) - cpu
    return {"flat_wall_per_task_s": flat_wall / n_flat, "flat_cpu_per_task_s": flat_cpu / n_flat,
            "nested_wall_per_task_s": inner / n_nested, "nested_cpu_per_task_s": nested_cpu / n_nested,
            "n_flat": n_flat, "n_nested": n_nested}


def scheduler_bytes_per_task(client, n: int) -> float | None:
    """The scheduler's resident-memory growth per finished task whose key a client holds."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return None
    from distributed import wait

    before = client.run_on_scheduler(_rss)
    futures = client.map(_noop, range(n), pure=False)
    wait(futures)
    after = client.run_on_scheduler(_rss)
    del futures
    return (after - before) / n


def tasks_per_patch(plan_path: Path, out: Path, scheduler: str) -> dict:
    """How many tasks one survey of the plan makes, by function (from the cluster's task stream)."""
    from distributed import Client, get_task_stream

    with Client(scheduler) as client, get_task_stream(client) as stream:
        run_survey_timed(plan_path, out, scheduler=scheduler)
    counts = Counter(record["key"].split("-")[0] for record in stream.data)
    return dict(counts)


def task_data_bytes(plan_path: Path, out: Path) -> dict[str, int]:
    """Pickled bytes of the tasks of each function for the plan's first patch: what a tile task
    carries to the worker that runs it (kept off the scheduler by `cluster_map`'s scatter)."""
    from dcrcoadd.pipeline.survey import PatchTask, run_patch_task, task_name
    from dcrcoadd.pipeline.survey_plan import read_plan

    sizes: Counter = Counter()

    def recording(fn, tasks):
        for task in tasks:
            sizes[task_name(fn)] += len(pickle.dumps(task))
            yield fn(task)

    plan = read_plan(plan_path)
    with contextlib.redirect_stderr(io.StringIO()):
        run_patch_task(PatchTask(plan.patches[0], plan.config, str(out)), mapper=recording)
    return dict(sizes)


def scaling(tmp: Path, cases: list[tuple[int, int]], subregion: int) -> list[dict]:
    """One patch for each ``(size, warps)``, serially in this process: wall and CPU seconds, peak
    memory growth, stage timings, and the bytes its tile tasks carry (the largest patch only)."""
    import json

    rows = []
    for size, n_warps in cases:
        name = f"scale_{size}_{n_warps}"
        warps = write_field(tmp / name, size, n_warps, seed=2)
        plan = write_plan(tmp / f"{name}.toml", warps[0].parent, size, size, size, subregion, 1)
        with PeakMemory() as memory:
            wall, cpu, outcomes = run_survey_timed(plan, tmp / f"{name}_out")
        meta = json.loads((tmp / f"{name}_out" / outcomes[0].name / "metadata.json").read_text())
        pixels = size * size
        rows.append({"size": size, "pixels": pixels, "warps": n_warps, "wall_s": wall, "cpu_s": cpu,
                     "peak_rss_growth_mib": memory.growth_mib, "timings_s": meta["timings_s"],
                     "n_tiles": outcomes[0].n_tiles,
                     "cpu_us_per_pixel_per_warp": 1e6 * cpu / (pixels * n_warps)})
        print(f"  {size:5d}x{size:<5d} {n_warps:2d} warps: {wall:7.2f} s wall, {cpu:7.2f} s CPU "
              f"({rows[-1]['cpu_us_per_pixel_per_warp']:.2f} CPU us per pixel per warp), "
              f"peak memory +{memory.growth_mib:.0f} MiB; stages "
              + ", ".join(f"{k} {v:.2f}" for k, v in meta["timings_s"].items()) + " s wall")
        rows[-1]["plan"] = tmp / f"{name}.toml"
    largest = max(rows, key=lambda r: r["pixels"] * r["warps"])
    largest["task_bytes"] = task_data_bytes(largest.pop("plan"), tmp / "task_bytes")
    print(f"  bytes the tile tasks of the {largest['size']}x{largest['size']} patch carry: "
          + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in largest["task_bytes"].items()))
    for row in rows:
        row.pop("plan", None)
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--warps", type=int, default=6)
    parser.add_argument("--subregion", type=int, default=64, help="tile size of the small patches")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scaling-sizes", type=int, nargs="*", default=[256, 512, 1024, 2048])
    parser.add_argument("--scaling-warps", type=int, nargs="*", default=[12],
                        help="more warp counts, each at --warps-scaling-size px")
    parser.add_argument("--warps-scaling-size", type=int, default=1024)
    parser.add_argument("--scaling-subregion", type=int, default=256)
    parser.add_argument("--held-tasks", type=int, default=20000)
    parser.add_argument("--quick", action="store_true", help="small numbers, to check the script runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.patches, args.scaling_sizes, args.scaling_warps, args.held_tasks = 4, [128], [], 2000
    from dask.distributed import Client, LocalCluster

    from dcrcoadd.config import Config, apply_override
    from dcrcoadd.pipeline.survey import PatchTask
    from dcrcoadd.pipeline.survey_plan import read_plan

    result: dict = {"patches": args.patches, "patch_size": args.patch_size, "warps": args.warps,
                    "subregion": args.subregion, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_row = max(1, min(args.patches, 4))
        rows = -(-args.patches // per_row)
        width, height = per_row * args.patch_size, rows * args.patch_size
        # one square field holding every patch (write_field makes square fields)
        side = max(width, height)
        warps = write_field(tmp / "warps", side, args.warps)
        plan = write_plan(tmp / "plan.toml", warps[0].parent, side, side, args.patch_size, args.subregion,
                          args.patches)
        names = [p.name for p in read_plan(plan).patches]

        print(f"{len(names)} patches of {args.patch_size}x{args.patch_size} px, {args.warps} warps, "
              f"{args.subregion}-px tiles")
        n = len(names)
        serial_wall, serial_cpu, outcomes = run_survey_timed(plan, tmp / "serial")
        print(f"  serial, this process:          {serial_wall:7.2f} s wall {serial_cpu:7.2f} s CPU  "
              f"{n / serial_wall * 60:6.1f} patches/min/core (wall), "
              f"{n / serial_cpu * 60:6.1f} per CPU-minute")
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(_warm_up)
            cluster_wall, cluster_cpu, _ = run_survey_timed(plan, tmp / "cluster", client=client,
                                                            scheduler=cluster.scheduler_address)
            same = identical(tmp / "serial", tmp / "cluster", names)
            print(f"  Dask, {args.workers} workers x 1 thread: {cluster_wall:7.2f} s wall "
                  f"{cluster_cpu:7.2f} s CPU  "
                  f"{n / cluster_wall * 60 / args.workers:6.1f} patches/min/core (wall), "
                  f"{n / cluster_cpu * 60:6.1f} per CPU-minute (outputs byte-identical: {same})")
            counts = tasks_per_patch(plan, tmp / "stream", cluster.scheduler_address)
            over = overheads(client, 2000 if not args.quick else 200, 1000 if not args.quick else 100)
            held = scheduler_bytes_per_task(client, args.held_tasks)
        n_tasks = sum(v for k, v in counts.items() if k != "patch")
        per_patch_tasks = n_tasks / len(names)
        config = Config()
        apply_override(config, f"coadd.subregion_size=[{args.subregion},{args.subregion}]")
        task_bytes = len(pickle.dumps(PatchTask(read_plan(plan).patches[0], config, str(tmp), None)))
        print(f"  tasks per patch: {per_patch_tasks:.1f} tiles and stage tasks + 1 patch task "
              f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))} over {len(names)} patches)")
        ms = {k: v * 1e3 for k, v in over.items() if k.endswith("_s")}
        print(f"  scheduling overhead per task: from the client {ms['flat_wall_per_task_s']:.2f} ms wall, "
              f"{ms['flat_cpu_per_task_s']:.2f} ms CPU; nested tile task (scatter + map + gather) "
              f"{ms['nested_wall_per_task_s']:.2f} ms wall, {ms['nested_cpu_per_task_s']:.2f} ms "
              f"CPU: {per_patch_tasks * over['nested_cpu_per_task_s']:.2f} CPU s of a small patch's "
              f"{serial_cpu / n:.2f}")
        print(f"  scheduler: a patch task is {task_bytes} bytes pickled; "
              + (f"{held:.0f} bytes of scheduler memory per task held" if held is not None else
                 "psutil missing: scheduler memory not measured"))
        print("per-patch cost against size (serial, one core):")
        cases = [(size, args.warps) for size in args.scaling_sizes]
        cases += [(args.warps_scaling_size, w) for w in args.scaling_warps]
        scale_rows = scaling(tmp, cases, args.scaling_subregion)
    capacity = machine_parallel_capacity()
    print(f"this machine runs two CPU-bound processes {capacity:.2f}x as fast as one "
          "(2.00 on two free cores)")
    result.update({
        "serial_seconds": serial_wall, "cluster_seconds": cluster_wall,
        "serial_cpu_seconds": serial_cpu, "cluster_cpu_seconds": cluster_cpu,
        "serial_patches_per_min_per_core": n / serial_wall * 60,
        "cluster_patches_per_min_per_core": n / cluster_wall * 60 / args.workers,
        "serial_patches_per_cpu_minute": n / serial_cpu * 60,
        "cluster_patches_per_cpu_minute": n / cluster_cpu * 60,
        "identical_outputs": same, "tasks": counts, "tasks_per_patch": per_patch_tasks,
        "overhead": over, "scheduler_bytes_per_held_task": held, "patch_task_pickled_bytes": task_bytes,
        "per_patch_seconds": [o.seconds for o in outcomes], "scaling": scale_rows,
        "machine_parallel_capacity": capacity, "cpu_count": os.cpu_count(),
    })
    write_results("survey", {**result, "machine": machine_info()})
    return result


if __name__ == "__main__":
    main()
