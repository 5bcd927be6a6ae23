#!/usr/bin/env python3
"""Benchmark SUMMARY_IMAGES against the floor: a plain sequential read of the same movie in the same chunks.

    bench/summary_images.py [--frames 2000] [--height 512] [--width 512] [--chunk_frames N] [--denoise]
                            [--movie existing.h5 --frame_rate HZ] [--tmp_dir DIR] [--keep] [--json out.json]

Generates an int16 movie (noise + a few blinking blobs) chunk by chunk in a temporary folder (or uses --movie),
then runs each measurement in its own child process, so the peak RSS (VmHWM from /proc/self/status) is that
measurement's alone:

* read  : open_movie + iter_chunks over every frame, native dtype, the step's chunking, nothing else (the floor);
* summary: the whole step as the pipeline runs it (cli.summary_images.main: read, compute, write summary.h5).

Both run cold (the movie evicted from the page cache with posix_fadvise(DONTNEED), so the read hits the disk) and
warm (the file read once just before). Prints one table; the ratio is summary time / read time of the same
cache state. Wall times exclude interpreter start-up and imports, which are also reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import evict, time_quietly, vm_hwm_mb, warm


# --------------------------------------------------------------------------------------------------- child process

def _child(args: argparse.Namespace) -> None:
    t_import = time.perf_counter()
    from ophys_extraction.movie import chunk_frames, iter_chunks, open_movie

    if args.child == "read":
        import_s = time.perf_counter() - t_import
        t0 = time.perf_counter()
        n = 0
        with open_movie(args.movie) as (dset, info):
            chunk = args.chunk_frames or chunk_frames(info, dset)  # as the step
            for _, block in iter_chunks(dset, chunk, args.movie, dtype=dset.dtype):
                n += block.shape[0]
        wall = time.perf_counter() - t0
    else:
        from ophys_extraction.cli.summary_images import main

        import_s = time.perf_counter() - t_import
        argv = ["--movie", str(args.movie), "--output", str(args.output), "--frame_rate", str(args.frame_rate)]
        if args.chunk_frames:
            argv += ["--chunk_frames", str(args.chunk_frames)]
        if args.denoise:
            argv += ["--denoise"]
        wall = time_quietly(main, argv)
    print(json.dumps({"wall_s": wall, "import_s": import_s, "peak_rss_mb": vm_hwm_mb()}))


# --------------------------------------------------------------------------------------------------- parent process

def generate_movie(path: Path, frames: int, height: int, width: int, seed: int = 0) -> None:
    """int16 noise + 20 Gaussian blobs with sparse transients, written 100 frames at a time (contiguous layout)."""
    import h5py

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    n_blobs = 20
    blobs = np.stack([np.exp(-((yy - rng.uniform(0, height)) ** 2 + (xx - rng.uniform(0, width)) ** 2) / 50.0)
                      for _ in range(n_blobs)]).astype(np.float32)
    spikes = rng.random((frames, n_blobs)) < 0.01
    kernel = np.exp(-np.arange(30) / 8.0)
    activity = np.stack([np.convolve(s, kernel)[:frames] for s in spikes.T], axis=1).astype(np.float32)
    with h5py.File(path, "w") as handle:
        dset = handle.create_dataset("data", (frames, height, width), np.int16)
        for start in range(0, frames, 100):
            stop = min(start + 100, frames)
            block = rng.integers(100, 300, (stop - start, height, width), dtype=np.int16)
            signal = np.tensordot(300.0 + 500.0 * activity[start:stop], blobs, axes=1)
            block += signal.astype(np.int16)
            dset[start:stop] = block


def _measure(kind: str, args: argparse.Namespace, output: Path, cold: bool) -> dict:
    (evict if cold else warm)(args.movie)
    cmd = [sys.executable, __file__, "--child", kind, "--movie", str(args.movie), "--output", str(output),
           "--frame_rate", str(args.frame_rate)]
    if args.chunk_frames:
        cmd += ["--chunk_frames", str(args.chunk_frames)]
    if args.denoise:
        cmd += ["--denoise"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{kind} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = total
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--frame_rate", type=float, default=10.0)
    parser.add_argument("--chunk_frames", type=int, default=None, help="default: the step's default")
    parser.add_argument("--denoise", action="store_true")
    parser.add_argument("--movie", type=Path, default=None, help="benchmark this movie instead of generating one")
    parser.add_argument("--tmp_dir", type=Path, default=None, help="where to generate the movie")
    parser.add_argument("--keep", action="store_true", help="keep the generated movie")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per cell; the fastest is reported")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", choices=("read", "summary"), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-summary-", dir=args.tmp_dir))
    try:
        if args.movie is None:
            args.movie = workdir / "movie.h5"
            t0 = time.perf_counter()
            generate_movie(args.movie, args.frames, args.height, args.width)
            print(f"generated {args.movie} ({args.movie.stat().st_size / 2**20:.0f} MiB) "
                  f"in {time.perf_counter() - t0:.1f} s")
        import h5py

        with h5py.File(args.movie, "r") as handle:
            shape = handle["data"].shape
        output = workdir / "summary.h5"
        rows = []
        for cache in ("cold", "warm"):
            best = {}
            for kind in ("read", "summary"):
                runs = [_measure(kind, args, output, cache == "cold") for _ in range(args.repeat)]
                best[kind] = min(runs, key=lambda r: r["wall_s"])
            rows.append({"cache": cache, **{f"{k}_{m}": v for k in best for m, v in best[k].items()},
                         "ratio": best["summary"]["wall_s"] / best["read"]["wall_s"]})
        mib = np.prod(shape) * 2 / 2**20
        print(f"movie {shape[0]} x {shape[1]} x {shape[2]} ({mib:.0f} MiB), frame rate {args.frame_rate} Hz, "
              f"chunk_frames {args.chunk_frames or 'default'}, denoise {args.denoise}")
        print(f"{'cache':<6} {'read s':>8} {'MiB/s':>7} {'read RSS':>9} {'summary s':>10} {'sum. RSS':>9} "
              f"{'ratio':>6} {'imports s':>10}")
        for r in rows:
            print(f"{r['cache']:<6} {r['read_wall_s']:8.2f} {mib / r['read_wall_s']:7.0f} "
                  f"{r['read_peak_rss_mb']:8.0f}M {r['summary_wall_s']:10.2f} {r['summary_peak_rss_mb']:8.0f}M "
                  f"{r['ratio']:6.2f} {r['summary_import_s']:10.2f}")
        if args.json:
            args.json.write_text(json.dumps({"shape": shape, "frame_rate": args.frame_rate,
                                             "chunk_frames": args.chunk_frames, "denoise": args.denoise,
                                             "rows": rows}, indent=2))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
