#!/usr/bin/env python3
"""EXTRACT's whole step from two source trees on the same inputs, alternated (before, after, before, ...), so both
meet the same machine load: wall time of each run (a child process: imports, ROI statistics, the trace pass,
neuropil r, classifier features and classification, writing traces.h5), the medians and their ratio after/before.

    git archive <commit> src | tar -x -C /tmp/before
    .venv/bin/python bench/extract_pair.py --before /tmp/before/src --movie M.h5 --segmentation S.h5 [--repeats 5]

Uses bench/classifier.py's planes by default (the real movie's and one synthetic plane's segmentation.h5 from
bench/out/classifier_planes, made by the pipeline's steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import logged_phases, measure

REPO = Path(__file__).resolve().parents[1]
PLANES = REPO / "bench" / "out" / "classifier_planes"
REAL_MOVIE = REPO.parent / "shared" / "data" / "neurofinder-00xx-left" / "movie.h5"


def run(src: Path, movie: Path, segmentation: Path, output: Path) -> tuple[float, dict[str, float]]:
    cmd = [sys.executable, str(REPO / "bin" / "extract.py"), "--movie", str(movie), "--segmentation",
           str(segmentation), "--output", str(output), "--threads", "1"]
    result = measure(cmd, env={"PYTHONPATH": str(src)})
    return result.seconds, logged_phases(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="src/ folder of the code before")
    parser.add_argument("--after", type=Path, default=REPO / "src", help="src/ folder of the code after (this one)")
    parser.add_argument("--movie", type=Path, nargs="*", default=None)
    parser.add_argument("--segmentation", type=Path, nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    pairs = (list(zip(args.movie, args.segmentation)) if args.movie else
             [(REAL_MOVIE, PLANES / "real" / "segmentation.h5"),
              (PLANES / "realistic_0" / "movie.h5", PLANES / "realistic_0" / "segmentation.h5")])
    print(f"{'inputs':40s} {'before s':>9s} {'after s':>9s} {'ratio':>6s}  phases after (median)")
    with tempfile.TemporaryDirectory() as tmp:
        for movie, segmentation in pairs:
            times: dict[str, list[float]] = {"before": [], "after": []}
            phases: list[dict[str, float]] = []
            for _ in range(args.repeats):
                for name, src in (("before", args.before), ("after", args.after)):
                    seconds, logged = run(src, movie, segmentation, Path(tmp) / f"{name}.h5")
                    times[name].append(seconds)
                    if name == "after":
                        phases.append(logged)
            before, after = statistics.median(times["before"]), statistics.median(times["after"])
            keys = phases[0].keys()
            median_phases = ", ".join(f"{k} {statistics.median(p[k] for p in phases):.2f}" for k in keys)
            label = f"{movie.parent.name}/{movie.name}"
            print(f"{label[:40]:40s} {before:9.2f} {after:9.2f} {after / before:6.3f}  {median_phases}")
            print(f"{'':40s} before {', '.join(f'{t:.2f}' for t in times['before'])}; "
                  f"after {', '.join(f'{t:.2f}' for t in times['after'])}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
