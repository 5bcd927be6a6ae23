#!/usr/bin/env python3
"""SEGMENT's phases (issue 27), side by side: the step as a child process on one synthetic plane's summary.h5,
`--diameter 0` (the size choice) against a fixed `--diameter`, and optionally the same against another checkout
of the project (`--baseline DIR`, e.g. `git archive <commit> | tar -x -C DIR`: its src/ and bin/ run in this
environment), in turns A B A B ... so that both meet the same load on a shared machine. Prints each variant's
median phases (the step's own log: reading and imports, model load, size choice, network, dynamics, writing;
start-up = wall minus the work phases, as bench/startup.py), wall and CPU seconds, and the ratio of each pair.

`--network` also times the network alone in this process on the plane's image, at the fixed diameter: Cellpose 3's
`batch_size` (tiles per call) and `bsize` (tile side) on this machine's cores, with how far the flows move from the
default's (bsize changes the tiling, so the outputs; batch_size does not).

    .venv/bin/python bench/segment.py [--side 512] [--diameter 10] [--repeats 3] [--baseline DIR] [--network]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, logged_phases, make_movie, measure, movie_frame_rate, print_table, step

MODEL = REPO / "assets" / "models" / "ophys_cp3"
PHASES = ("reading, imports", "model load", "size choice", "network", "dynamics", "writing")
WORK = ("size choice", "network", "dynamics", "writing")
THREADS = {name: "2" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


def summary_of(side: int, workdir: Path, frames: int = 300) -> Path:
    """summary.h5 of a synthetic side x side plane (SUMMARY_IMAGES on a short movie)."""
    movie = make_movie(workdir / "plane" / "movie.h5", frames, height=side, width=side)
    out = workdir / "summary.h5"
    measure(step("summary_images.py", "--movie", movie, "--output", out, "--frame_rate", movie_frame_rate(movie)))
    return out


def variant_command(tree: Path, summary: Path, output: Path, diameter: float) -> tuple[list, dict[str, str]]:
    env = dict(THREADS)
    if tree != REPO:
        env["PYTHONPATH"] = str(tree / "src")
    return ([sys.executable, tree / "bin" / "segment.py", "--summary", summary, "--output", output,
             "--pretrained_model", MODEL, "--diameter", str(diameter)], env)


def time_network(summary: Path, diameter: float) -> None:
    """Network seconds for one plane at several batch sizes and tile sides, in this process, interleaved."""
    import h5py
    import numpy as np
    import torch
    from ophys_extraction import segmentation
    torch.set_num_threads(2)
    with h5py.File(summary, "r") as handle:
        image = np.asarray(handle["meanImg"][()], np.float32)
    model = segmentation.load_model(segmentation.resolve_model(str(MODEL)), torch.device("cpu"))
    settings = [(8, 224), (1, 224), (2, 224), (4, 224), (16, 224), (8, 256), (8, 448), (8, 1024)]
    reference = model.net.eval(image, channels=[0, 0], diameter=diameter, compute_masks=False)[1]
    seconds: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
    moved: dict[tuple[int, int], float] = {}
    masks: dict[tuple[int, int], int] = {}
    for _ in range(3):
        for batch, bsize in settings:
            start = time.perf_counter()
            out, flows, _ = model.net.eval(image, channels=[0, 0], diameter=diameter, batch_size=batch, bsize=bsize)
            seconds[batch, bsize].append(time.perf_counter() - start)
            moved[batch, bsize] = float(np.abs(flows[1] - reference[1]).max())
            masks[batch, bsize] = int(out.max())
    base = statistics.median(seconds[settings[0]])
    print_table(f"Cellpose eval (network and masks) on the {image.shape[0]} x {image.shape[1]} image at "
                f"{diameter:g} px, 2 threads; seconds, median of 3 interleaved",
                ["batch_size", "bsize", "median s", "/ default", "max |flow change|", "masks"],
                [[b, s, statistics.median(seconds[b, s]), statistics.median(seconds[b, s]) / base, f"{moved[b, s]:.2g}",
                  masks[b, s]] for b, s in settings])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=512, help="plane side (px)")
    parser.add_argument("--diameter", type=float, default=10.0, help="the fixed diameter compared with 0")
    parser.add_argument("--repeats", type=int, default=3, help="turns of every variant (after one warm-up turn)")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout, run as 'before'")
    parser.add_argument("--network", action="store_true", help="also time the network's batch_size and bsize")
    parser.add_argument("--tmpdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="segment_", dir=args.tmpdir))
    try:
        summary = summary_of(args.side, workdir)
        trees = [("before", args.baseline.resolve())] if args.baseline else []
        trees.append(("after" if args.baseline else "now", REPO))
        variants = [(f"{name}, --diameter {d:g}", tree, d) for name, tree in trees for d in (0.0, args.diameter)]
        runs: dict[str, list] = {name: [] for name, _, _ in variants}
        for turn in range(args.repeats + 1):
            for name, tree, diameter in variants:
                cmd, env = variant_command(tree, summary, workdir / "seg.h5", diameter)
                run = measure(cmd, env=env)
                if turn:                                    # the first turn warms caches and is not counted
                    phases = {("size choice" if k == "diameter" else k): v  # its name before issue 27
                              for k, v in logged_phases(run.stdout).items()}
                    runs[name].append((run.seconds, run.cpu_seconds, phases))
        rows = []
        for name, _, _ in variants:
            phases = [statistics.median(r[2].get(p, 0.0) for r in runs[name]) for p in PHASES]
            startup = statistics.median(r[0] - sum(r[2].get(p, 0.0) for p in WORK) for r in runs[name])
            rows.append([name, *phases, startup, statistics.median(r[0] for r in runs[name]),
                         statistics.median(r[1] for r in runs[name])])
        print_table(f"SEGMENT on a {args.side} x {args.side} plane, 2 threads; seconds, median of {args.repeats} "
                    f"turns (1-min load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
                    ["variant", *PHASES, "start-up", "wall", "CPU"], rows)
        pairs = [(f"{t} --diameter 0 / --diameter {args.diameter:g}", f"{t}, --diameter 0",
                  f"{t}, --diameter {args.diameter:g}") for t, _ in trees]
        if args.baseline:
            pairs += [(f"after / before, --diameter {d:g}", f"after, --diameter {d:g}", f"before, --diameter {d:g}")
                      for d in (0.0, args.diameter)]
        print_table("Ratios, pair by pair (same turn): wall [min, median, max]; CPU median",
                    ["ratio", "wall min", "wall median", "wall max", "CPU median"],
                    [[label, *(lambda w: [min(w), statistics.median(w), max(w)])(
                        [a[0] / b[0] for a, b in zip(runs[num], runs[den])]),
                      statistics.median(a[1] / b[1] for a, b in zip(runs[num], runs[den]))]
                     for label, num, den in pairs])
        if args.network:
            time_network(summary, args.diameter)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
