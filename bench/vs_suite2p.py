#!/usr/bin/env python3
"""The whole pipeline against suite2p's own (issue 27): one 512 x 512 synthetic plane, the pipeline through Nextflow
(`make demo`'s command without `-profile test`: the bundled model, `--diameter 0`, a fresh launch folder) against
suite2p 1.1's `run_s2p` on the same movie (functional detection, its default `sparsery`; no registration, since
the pipeline takes registered movies; CPU), in turns A B A B ... Prints each run's wall time and ROIs and the ratio
suite2p / pipeline of each pair (issue 27's target: >= 3x at 10,000 frames on 2 cores), then the pipeline's time
per step (each task's `realtime` in Nextflow's execution trace; the rest of the wall time is Nextflow itself).

    .venv/bin/python bench/vs_suite2p.py [--frames 10000] [--pairs 1] [--movies DIR] [--tmpdir /tmp]

A 10,000-frame movie is 5.2 GB and takes minutes to generate; `--movies DIR` keeps it (DIR/movie_<frames>.h5).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, make_movie, measure, movie_frame_rate, print_table

NEXTFLOW = REPO / ".venv" / "bin" / "nextflow"
MODEL = REPO / "assets" / "models" / "ophys_cp3"
RUN_S2P = """
import sys, numpy as np, suite2p
from suite2p.parameters import default_settings
folder, out, fs = sys.argv[1], sys.argv[2], float(sys.argv[3])
settings = default_settings()
settings["torch_device"] = "cpu"
settings["fs"] = fs
settings["run"]["do_registration"] = 0
db = {"data_path": [folder], "input_format": "h5", "h5py_key": "data", "save_path0": out, "fast_disk": out}
suite2p.run_s2p(db=db, settings=settings)
stat = np.load(f"{out}/suite2p/plane0/stat.npy", allow_pickle=True)
print(f"suite2p: {len(stat)} ROIs")
"""


def duration_seconds(text: str) -> float:
    """Seconds of a Nextflow trace duration ("850ms", "12.3s", "1m 2s", "1h 2m 3s")."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    total = 0.0
    for part in text.split():
        number = part.rstrip("msdh")
        total += float(number) * units[part[len(number):]]
    return total


def step_seconds(trace: Path) -> dict[str, float]:
    """Seconds per process (summed over its tasks) from a Nextflow execution trace."""
    lines = trace.read_text().splitlines()
    header = lines[0].split("\t")
    seconds: dict[str, float] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t")))
        seconds[row["process"]] = seconds.get(row["process"], 0.0) + duration_seconds(row["realtime"])
    return seconds


def run_pipeline(movie: Path, workdir: Path) -> tuple[float, int, dict[str, float]]:
    launch = Path(tempfile.mkdtemp(prefix="nf_", dir=workdir))
    start = time.perf_counter()
    subprocess.run([str(NEXTFLOW), "-log", str(launch / "nextflow.log"), "run", str(REPO / "main.nf"),
                    "--input_dir", str(movie.parent), "--outdir", str(launch / "results"),
                    "--pretrained_model", str(MODEL)], cwd=launch, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    n = sum(int(p["rois"]) for p in json.loads((launch / "results" / "summary.json").read_text())["planes"])
    steps = step_seconds(next((launch / "results" / "pipeline_info").glob("execution_trace_*.txt")))
    shutil.rmtree(launch)
    return seconds, n, steps


def run_suite2p(movie: Path, workdir: Path) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="s2p_", dir=workdir))
    run = measure([sys.executable, "-c", RUN_S2P, movie.parent, out, movie_frame_rate(movie)])
    shutil.rmtree(out)
    return run.seconds, int(run.stdout.rsplit("suite2p: ", 1)[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--movies", type=Path, default=None)
    parser.add_argument("--tmpdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vs_s2p_", dir=args.tmpdir))
    try:
        folder = (args.movies / f"movie_{args.frames}") if args.movies else workdir / "plane"
        movie = folder / "movie.h5"
        if not movie.is_file():
            make_movie(movie, args.frames)
        rows, ratios, steps = [], [], []
        for pair in range(args.pairs):
            ours, n_ours, ours_steps = run_pipeline(movie, workdir)
            steps.append(ours_steps)
            theirs, n_theirs = run_suite2p(movie, workdir)
            ratios.append(theirs / ours)
            rows.append([pair + 1, ours, n_ours, theirs, n_theirs, theirs / ours])
        print_table(f"One 512 x 512 x {args.frames} plane: the pipeline (Nextflow, --diameter 0) and suite2p's run_s2p "
                    "(no registration); wall seconds", ["pair", "pipeline s", "ROIs", "run_s2p s", "ROIs",
                                                        "run_s2p / pipeline"], rows)
        print(f"  median ratio {statistics.median(ratios):.2f}")
        names = list(dict.fromkeys(name for run in steps for name in run))
        print_table("The pipeline's steps (task realtime, s)", ["pair", *names, "Nextflow and the rest"],
                    [[i + 1, *(run.get(name, 0.0) for name in names), row[1] - sum(run.values())]
                     for i, (run, row) in enumerate(zip(steps, rows))])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
