#!/usr/bin/env python3
"""Scale benchmark (issue 6): 512 x 512 planes at 2,500, 10,000 and 40,000 frames through the real steps.

Per size: wall time and peak RSS of SUMMARY_IMAGES, SEGMENT, EXTRACT and MERGE (each a child process running its
bin/ script), and each streaming step's ratio to the read floor (a plain sequential read of the same movie).
Targets: streaming steps within 1.5x of the floor; peak RSS flat (within 10%) from 10,000 to 40,000 frames.

Reads are cold: the movie is evicted from the page cache before every read, and every read (floor or step)
starts at least `--settle` seconds (default 20) after the eviction. On a VM that hands freed memory back to its
host (free page reporting), a read right after an eviction reuses still-backed pages: here a 5.3 GB movie read in
4.7-5.3 s at once and in 11.5-13.4 s 15-30 s later (common.evict). A step that imports for 10 s before its first
read would otherwise be compared with a floor it could never meet. The floor read at once is printed too. The
disk of a shared VM also varies from minute to minute, so each streaming step gets its own floor, measured just
before it. The ratio leaves out the step's start-up (interpreter, imports, and for EXTRACT the ROI masks and kernel
loading): EXTRACT's wall time minus the phases it logs from the trace pass on, so cold imports after a 21 GB read
count as they happened. Start-up is a fixed cost per plane, shown in its own column (SEGMENT's: its wall time
minus the size choice, network, dynamics and writing it logs; each of its phases is printed). The "whole plane"
row adds the four steps' wall times and compares them with what no pipeline can avoid: the two read floors plus
SEGMENT's network time (issue 21's target: 1.5x at 10,000 frames).

    .venv/bin/python bench/scale.py [--frames 2500 10000 40000] [--tmpdir /tmp] [--model assets/models/...]
                                    [--movies DIR] [--settle 20]

A 40,000-frame movie is 21 GB and takes ~15 min to generate; each is deleted after its row unless `--movies DIR`
keeps them (DIR/movie_<frames>.h5, generated if missing, reused by the next run). Expect ~30 min for the default
sizes when the movies must be generated (plus 4 x `--settle` per size).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import (REPO, evict, logged_phases, make_movie, measure, movie_frame_rate, print_table, read_floor,
                    step)

DEFAULT_MODEL = REPO / "assets" / "models" / "ophys_cp3"
# SUMMARY_IMAGES imports little: its start-up is timed on its own (warm) and left out of its ratio.
SUMMARY_STARTUP = "ophys_extraction.cli.summary_images"


def extract_streaming_seconds(stdout: str) -> float:
    """The sum of EXTRACT's own phase times from the trace pass on (its log: "(setup X s, trace pass Y s, ...)");
    the rest of its wall time is start-up (interpreter, imports, ROI masks, kernel loading)."""
    return sum(seconds for name, seconds in logged_phases(stdout).items() if name != "setup")


def cold_floor(movie: Path, settle: float) -> float:
    evict(movie, settle)
    seconds = read_floor(movie).seconds
    evict(movie, settle)  # and the step that follows starts as long after its eviction
    return seconds


def bench_size(frames: int, workdir: Path, model: Path, movies: Path | None, settle: float) -> list[list[object]]:
    movie = (movies / f"movie_{frames}.h5") if movies else workdir / "plane" / "movie.h5"
    generated = 0.0
    if not movie.is_file():
        # Generated in a child: forked steps would otherwise count the parent's simulation in their peak RSS.
        generated = measure([sys.executable, "-c", f"from common import make_movie; make_movie(__import__("
                             f"'pathlib').Path({str(movie)!r}), {frames})"]).seconds
    gb = movie.stat().st_size / 1e9
    floor_at_once = cold_floor(movie, 0.0)
    floor_summary = cold_floor(movie, settle)
    summary = measure(step("summary_images.py", "--movie", movie, "--output", workdir / "summary.h5",
                           "--frame_rate", movie_frame_rate(movie)))
    summary_startup = measure([sys.executable, "-c", f"import {SUMMARY_STARTUP}"]).seconds
    segment = measure(step("segment.py", "--summary", workdir / "summary.h5", "--output", workdir / "seg.h5",
                           "--pretrained_model", model))
    floor_extract = cold_floor(movie, settle)
    extract = measure(step("extract.py", "--movie", movie, "--segmentation", workdir / "seg.h5",
                           "--output", workdir / "traces.h5"))
    extract_startup = extract.seconds - extract_streaming_seconds(extract.stdout)
    merge = measure(step("merge.py", "--summary", workdir / "summary.h5", "--segmentation", workdir / "seg.h5",
                         "--traces", workdir / "traces.h5", "--outdir", workdir / "extraction", "--plane_id", "plane"))
    segment_phases = logged_phases(segment.stdout)
    segment_startup = segment.seconds - sum(segment_phases[p] for p in ("size choice", "network", "dynamics",
                                                                          "writing"))
    print(f"  {frames} frames: SEGMENT {segment.seconds:.1f} s: start-up {segment_startup:.1f} s ("
          + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in segment_phases.items()) + ")", flush=True)
    # The whole plane's floor: what cannot be avoided, two reads of the movie and the network.
    plane_seconds = summary.seconds + segment.seconds + extract.seconds + merge.seconds
    plane_floor = floor_summary + floor_extract + segment_phases["network"]
    rows = [[frames, f"{gb:.1f} GB", "SUMMARY_IMAGES", summary.seconds, floor_summary, floor_at_once,
             summary_startup, (summary.seconds - summary_startup) / floor_summary, summary.peak_rss_mb],
            [frames, "", "SEGMENT", segment.seconds, "-", "-", segment_startup, "-", segment.peak_rss_mb],
            [frames, "", "EXTRACT", extract.seconds, floor_extract, "-", extract_startup,
             (extract.seconds - extract_startup) / floor_extract, extract.peak_rss_mb],
            [frames, "", "MERGE", merge.seconds, "-", "-", "-", "-", merge.peak_rss_mb],
            [frames, "", "whole plane", plane_seconds, plane_floor, "-", "-", plane_seconds / plane_floor, "-"]]
    print(f"  {frames} frames: " + (f"generated in {generated:.0f} s" if generated else f"reused {movie}"),
          flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[2500, 10000, 40000])
    parser.add_argument("--tmpdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--movies", type=Path, default=None,
                        help="keep the generated movies in this folder and reuse them (default: delete them)")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds between a movie's eviction and the next read (see common.evict)")
    parser.add_argument("--generate_only", action="store_true", help="with --movies: only generate the movies")
    args = parser.parse_args()
    if args.movies:
        args.movies.mkdir(parents=True, exist_ok=True)
    if args.generate_only:
        if not args.movies:
            parser.error("--generate_only needs --movies")
        for frames in args.frames:
            path = args.movies / f"movie_{frames}.h5"
            if not path.is_file():
                make_movie(path, frames)
        return
    rows: list[list[object]] = []
    peaks: dict[int, dict[str, float]] = {}
    for frames in args.frames:
        workdir = Path(tempfile.mkdtemp(prefix=f"scale{frames}_", dir=args.tmpdir))
        try:
            size_rows = bench_size(frames, workdir, args.model, args.movies, args.settle)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        rows += size_rows
        peaks[frames] = {row[2]: row[-1] for row in size_rows}
    print_table(f"Scale: 512 x 512 int16 planes (wall s; the step's read floor just before it, {args.settle:g} s "
                "after eviction like the step, and read at once; start-up s; ratio of the rest to the floor; "
                "peak RSS MB)",
                ["frames", "movie", "step", "seconds", "floor s", "at once s", "startup s", "x floor", "peak RSS MB"],
                rows)
    if 10000 in peaks and 40000 in peaks:
        growth = [[name, peaks[10000][name], peaks[40000][name], peaks[40000][name] / peaks[10000][name]]
                  for name in peaks[10000] if name != "whole plane"]
        print_table("Peak RSS growth from 10,000 to 40,000 frames", ["step", "10k MB", "40k MB", "ratio"], growth)


if __name__ == "__main__":
    main()
