#!/usr/bin/env python3
"""Benchmark the vectorised mutual-information neuropil coefficient against the per-ROI skimage loop.

    bench/neuropil.py [--rois 300] [--frames 5000] [--loop_rois 12] [--seed 0] [--json out.json]

Traces (float32, like EXTRACT's): per ROI a neuropil trace (slow random walk + noise) and a raw trace
F = a * Fneu + sparse calcium transients + noise, a drawn in [0.3, 1.5], so r varies across ROIs.

* loop       : the original capsule's get_r_from_min_mi: for each ROI, skimage's normalized_mutual_information
               (bins=100) for each of the 201 r in np.arange(0, 2.01, 0.01), then argmin. Timed on --loop_rois
               ROIs spread over the set and extrapolated per ROI to all of them (the full loop takes minutes).
* vectorised : neuropil.mutual_info_r on all ROIs, with numba's default threads and with one thread.
               numba start-up / cache load is timed separately (once per process, like an import).

Checks that the r of the timed loop ROIs are identical, and reports how many ROIs needed skimage to break a
near-tie (see neuropil.py). Prints one table with the speedups.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def make_traces(n_rois: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    neu = 200 + np.cumsum(rng.normal(0, 1, (n_rois, frames)), axis=1) + rng.normal(0, 3, (n_rois, frames))
    kernel = np.exp(-np.arange(60) / 10.0)
    spikes = rng.random((n_rois, frames)) < rng.uniform(0.002, 0.02, (n_rois, 1))
    calcium = np.stack([np.convolve(s, kernel)[:frames] for s in spikes]) * rng.uniform(20, 80, (n_rois, 1))
    a = rng.uniform(0.3, 1.5, (n_rois, 1))
    F = a * neu + calcium + rng.normal(0, 4, (n_rois, frames))
    return F.astype(np.float32), neu.astype(np.float32)


def loop_r(F: np.ndarray, Fneu: np.ndarray) -> np.ndarray:
    """The reference: the original capsule's per-ROI loop."""
    from skimage.metrics import normalized_mutual_information
    r_grid = np.arange(0, 2.01, 0.01)
    out = []
    for raw, neu in zip(F, Fneu):
        raw, neu = raw.copy(), neu.copy()
        raw[np.isnan(raw)] = 0
        neu[np.isnan(neu)] = 0
        mi = [normalized_mutual_information(raw - r * neu, neu, bins=100) for r in r_grid]
        out.append(r_grid[np.argmin(mi)])
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rois", type=int, default=300)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--loop_rois", type=int, default=12, help="ROIs the skimage loop is timed on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import numba

    from ophys_extraction import neuropil

    F, Fneu = make_traces(args.rois, args.frames, args.seed)
    subset = np.unique(np.linspace(0, args.rois - 1, min(args.loop_rois, args.rois)).astype(int))

    t0 = time.perf_counter()
    neuropil.mutual_info_r(F[:2, :50], Fneu[:2, :50])
    startup = time.perf_counter() - t0

    threads = numba.get_num_threads()
    t0 = time.perf_counter()
    r_vec, info = neuropil.mutual_info_r(F, Fneu, return_stats=True)
    t_vec = time.perf_counter() - t0
    numba.set_num_threads(1)
    t0 = time.perf_counter()
    r_vec1 = neuropil.mutual_info_r(F, Fneu)
    t_vec1 = time.perf_counter() - t0
    numba.set_num_threads(threads)

    t0 = time.perf_counter()
    r_loop = loop_r(F[subset], Fneu[subset])
    t_loop = time.perf_counter() - t0
    per_roi_loop = t_loop / subset.size
    t_loop_all = per_roi_loop * args.rois

    identical = bool(np.array_equal(r_vec[subset], r_loop)) and bool(np.array_equal(r_vec, r_vec1))
    rows = [
        ("skimage loop", subset.size, t_loop, per_roi_loop, t_loop_all, 1.0),
        (f"vectorised, {threads} thr", args.rois, t_vec, t_vec / args.rois, t_vec, t_loop_all / t_vec),
        ("vectorised, 1 thr", args.rois, t_vec1, t_vec1 / args.rois, t_vec1, t_loop_all / t_vec1),
    ]
    print(f"{args.rois} ROIs x {args.frames} frames (float32), r grid np.arange(0, 2.01, 0.01), 100 bins; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'method':<20} {'ROIs timed':>10} {'measured s':>11} {'ms / ROI':>9} {'all ROIs s':>11} {'speedup':>8}")
    for name, n, t, per, total, speed in rows:
        print(f"{name:<20} {n:>10} {t:11.2f} {per * 1e3:9.2f} {total:11.2f} {speed:8.1f}")
    print(f"  (skimage loop: timed on {subset.size} ROIs spread over the set, 'all ROIs s' extrapolated per ROI; "
          f"numba start-up/cache load {startup:.2f} s once per process, not included)")
    print(f"identical r on the {subset.size} loop ROIs (and 1 vs {threads} threads): {identical}; "
          f"ROIs whose near-tied minimum was re-scored with skimage: {info['exact_rescored_rois']} "
          f"({info['exact_scores']} NMI evaluations); r range {r_vec.min():.2f}..{r_vec.max():.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "rois": args.rois, "frames": args.frames, "loop_rois": int(subset.size), "loop_s": t_loop,
            "loop_all_extrapolated_s": t_loop_all, "vectorised_s": t_vec, "vectorised_1thread_s": t_vec1,
            "threads": threads, "startup_s": startup, "identical": identical, **info}, indent=2))
    if not identical:
        raise SystemExit("r values differ from the skimage loop")


if __name__ == "__main__":
    main()
