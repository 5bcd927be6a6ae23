#!/usr/bin/env python3
"""Start-up benchmark (issue 21): every step on a tiny plane in fresh processes, warm and cold, and the demo.

A tiny plane (128 x 128, 200 frames) makes each step's fixed cost visible: interpreter, imports, numba kernels,
model load. Each step runs as a child process with the threads its Nextflow task gets (conf/base.config: 1 for
the streaming steps, 2 for SEGMENT), followed by `ophys-extraction versions` as every task is.

- warm: numba's cache filled (`ophys-extraction warm-up`, as `make install` and the container builds do) and the
  packages in the page cache: a pipeline task in steady state. Median of `--repeats` runs.
- cold: an empty numba cache (a fresh NUMBA_CACHE_DIR per run), so the task compiles every kernel it runs: what
  every task paid for Cellpose's kernels before issue 21, and a fresh node's first task with no cache.

Start-up = the step's wall time minus the work phases it logs (SEGMENT: network, dynamics, writing; EXTRACT:
trace pass, neuropil, correct/classify/write). SUMMARY_IMAGES, MERGE and versions log no phases: on a tiny
plane their wall time is their start-up. CPU seconds (user + system of the child) are printed too: other
sessions share this machine's cores, and CPU time moves less with their load than wall time does.

`--demo` also times the bundled demo through Nextflow (`make demo`'s command: two 256 x 256 x 600 planes, the
test profile, a fresh launch folder, so nothing is resumed), `--demo_repeats` times.

    .venv/bin/python bench/startup.py [--repeats 3] [--cold_repeats 1] [--demo] [--demo_repeats 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, logged_phases, make_movie, measure, movie_frame_rate, print_table, step

MODEL = REPO / "assets" / "models" / "ophys_cp3"
NEXTFLOW = REPO / ".venv" / "bin" / "nextflow"
# Phases a step logs that are work on the data, not start-up.
WORK_PHASES = {"SEGMENT": ("size choice", "network", "dynamics", "writing"),
               "EXTRACT": ("trace pass", "neuropil", "correct, classify, write")}


def threads(n: int) -> dict[str, str]:
    """The environment conf/base.config gives a task of n cpus."""
    return {name: str(n) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "NUMBA_NUM_THREADS")}


def step_commands(plane: Path, out: Path) -> list[tuple[str, list[str | Path], int]]:
    """(step, command, cpus) in pipeline order; each step reads what the previous one wrote into `out`."""
    movie = plane / "movie.h5"
    return [
        ("SUMMARY_IMAGES", step("summary_images.py", "--movie", movie, "--output", out / "summary.h5",
                                "--frame_rate", movie_frame_rate(movie)), 1),
        ("SEGMENT", step("segment.py", "--summary", out / "summary.h5", "--output", out / "segmentation.h5",
                         "--pretrained_model", MODEL), 2),
        ("EXTRACT", step("extract.py", "--movie", movie, "--segmentation", out / "segmentation.h5",
                         "--output", out / "traces.h5", "--threads", "1"), 1),
        ("MERGE", step("merge.py", "--summary", out / "summary.h5", "--segmentation", out / "segmentation.h5",
                       "--traces", out / "traces.h5", "--outdir", out / "extraction", "--plane_id", "plane"), 1),
        ("versions", [Path(sys.executable).parent / "ophys-extraction", "versions", "--process", "EXTRACT"], 1),
    ]


def run_steps(plane: Path, workdir: Path, numba_cache: Path | None) -> dict[str, tuple[float, float, float]]:
    """{step: (wall s, start-up s, CPU s)} of one pass through the steps (in a fresh output folder)."""
    out = Path(tempfile.mkdtemp(prefix="out_", dir=workdir))
    env = {"NUMBA_CACHE_DIR": str(numba_cache)} if numba_cache else {}
    results = {}
    for name, cmd, cpus in step_commands(plane, out):
        run = measure(cmd, env={**env, **threads(cpus)})
        work = sum(logged_phases(run.stdout)[phase] for phase in WORK_PHASES.get(name, ()))
        results[name] = (run.seconds, run.seconds - work, run.cpu_seconds)
        if "Traceback" in run.stderr or "pynwb" in run.stderr:
            print(f"  {name} wrote to stderr: {run.stderr[-500:]}", flush=True)
    shutil.rmtree(out)
    return results


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_demo(workdir: Path) -> tuple[float, float]:
    """(wall s, CPU s of Nextflow and every task) of `make demo`'s Nextflow run from a fresh launch folder (demo
    data made if missing)."""
    subprocess.run(["make", "-C", str(REPO), "demo-data"], check=True, stdout=subprocess.DEVNULL)
    launch = Path(tempfile.mkdtemp(prefix="demo_", dir=workdir))
    start, cpu = time.perf_counter(), children_cpu_seconds()
    subprocess.run([str(NEXTFLOW), "-log", str(launch / "nextflow.log"), "run", str(REPO / "main.nf"),
                    "-profile", "test", "--input_dir", str(REPO / "demo_data"), "--outdir", str(launch / "results")],
                   cwd=launch, check=True, stdout=subprocess.DEVNULL)
    seconds, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu
    shutil.rmtree(launch)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="warm passes (median printed)")
    parser.add_argument("--cold_repeats", type=int, default=1, help="cold passes, each with an empty numba cache")
    parser.add_argument("--demo", action="store_true", help="also time the demo pipeline through Nextflow")
    parser.add_argument("--demo_repeats", type=int, default=1)
    parser.add_argument("--tmpdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="startup_", dir=args.tmpdir))
    try:
        plane = workdir / "plane"
        make_movie(plane / "movie.h5", 200, height=128, width=128)
        warm_up = measure([Path(sys.executable).parent / "ophys-extraction", "warm-up"])
        print(f"  warm-up: {warm_up.seconds:.1f} s ({warm_up.stdout.strip()}); 1-min load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        passes = {"warm": [run_steps(plane, workdir, None) for _ in range(args.repeats)],
                  "cold": [run_steps(plane, workdir, Path(tempfile.mkdtemp(prefix="numba_", dir=workdir)))
                           for _ in range(args.cold_repeats)]}
        rows = []
        for name, *_ in step_commands(plane, workdir):
            row: list[object] = [name]
            for kind in ("warm", "cold"):
                runs = passes[kind]
                row += [statistics.median(r[name][i] for r in runs) for i in range(3)] if runs else ["-"] * 3
            rows.append(row)
        totals: list[object] = ["all steps"]
        for kind in ("warm", "cold"):
            runs = passes[kind]
            totals += [statistics.median(sum(r[n][i] for n in r) for r in runs) for i in range(3)] if runs \
                else ["-"] * 3
        rows.append(totals)
        print_table(f"Start-up on a tiny plane (128 x 128, 200 frames), fresh processes; seconds, median of "
                    f"{args.repeats} warm and {args.cold_repeats} cold pass(es)",
                    ["step", "warm wall", "warm start-up", "warm CPU", "cold wall", "cold start-up", "cold CPU"],
                    rows)
        if args.demo:
            demo = [time_demo(workdir) for _ in range(args.demo_repeats)]
            walls = [wall for wall, _ in demo]
            print_table("The demo through Nextflow (2 planes of 256 x 256 x 600, -profile test; CPU: Nextflow and "
                        "its tasks)", ["runs", "median wall s", "min", "max", "median CPU s"],
                        [[len(demo), statistics.median(walls), min(walls), max(walls),
                          statistics.median(cpu for _, cpu in demo)]])
        print(f"  1-min load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
