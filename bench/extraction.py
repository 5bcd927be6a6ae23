#!/usr/bin/env python3
"""Benchmark EXTRACT's trace pass against the floor (a plain sequential read of the movie) and suite2p's own
extract_traces, at N/2 and N frames (peak memory must not grow with the number of frames).

    bench/extraction.py [--frames 5000] [--height 512] [--width 512] [--chunk_frames N] [--tmpdir /tmp]
                        [--skip_suite2p] [--skip_cli] [--keep] [--json out.json]

Generates a synthetic int16 movie (ophys_extraction.synthetic: ~14 cells per 10^4 px, so ~370 cells at 512x512,
Gaussian shot noise) chunk by chunk in a temporary folder, plus a copy of its first half, and a segmentation.h5
holding the ground-truth masks. The cell/neuropil masks (suite2p ROI stats + masks, built once in the parent) are
saved to an .npz. Each measurement runs in its own child process, reporting wall time and peak RSS (VmHWM from
/proc/self/status), imports excluded from the wall time:

* read        : open_movie + iter_chunks over every frame in the movie's dtype into fresh arrays, nothing else
                (the plain read every streaming step does; bench/summary_images.py's floor);
* read-reuse  : the same into one reused buffer (read_direct; bench/common.py's READ_FLOOR): no page faults
                on fresh arrays, the strictest floor;
* ours        : traces.extract_traces (reader thread + numba kernel on all numba threads), what EXTRACT runs;
* ours-serial : the same on one core: no reader thread, one kernel thread (read and reduce alternate);
* suite2p     : suite2p.extraction.extract.extract_traces on the same masks and h5py dataset (CPU torch);
* extract CLI : the whole step (cli.extract.main: suite2p import, ROI stats, masks, trace pass, neuropil r,
                classifier, writing traces.h5).

The file is read once before every measurement (warm page cache), so all read the same way. F/Fneu of ours are
compared with suite2p's. Prints one table; ratios are wall time / read and / read-reuse time at the same number
of frames.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import time_quietly, vm_hwm_mb, warm


# --------------------------------------------------------------------------------------------------- child process

def _load_masks(path: Path):
    from ophys_extraction.traces import TraceMasks
    with np.load(path) as z:
        return TraceMasks(int(z["n_pixels"]), z["cell_indptr"], z["cell_indices"], z["cell_weights"],
                          z["neu_indptr"], z["neu_indices"], z["order"])


def _child(args: argparse.Namespace) -> None:
    t_import = time.perf_counter()
    import h5py
    from ophys_extraction.movie import chunk_frames, iter_chunks, open_movie
    result: dict = {}
    if args.child in ("read", "read-reuse"):
        import_s = time.perf_counter() - t_import
        t0 = time.perf_counter()
        with open_movie(args.movie) as (dset, info):
            for _ in iter_chunks(dset, args.chunk_frames or chunk_frames(info, dset), args.movie, dtype=dset.dtype,
                                 buffers=int(args.child == "read-reuse")):
                pass
        wall = time.perf_counter() - t0
    elif args.child in ("ours", "ours-serial"):
        import numba

        from ophys_extraction import traces
        if args.child == "ours-serial":
            numba.set_num_threads(1)
        masks = _load_masks(args.masks)
        with h5py.File(args.movie, "r") as handle:
            traces.warm_up(handle["data"].dtype)   # numba start-up: per process, like an import
        import_s = time.perf_counter() - t_import
        t0 = time.perf_counter()
        with open_movie(args.movie) as (dset, info):
            F, Fneu = traces.extract_traces(dset, masks, args.chunk_frames or chunk_frames(info, dset),
                                            str(args.movie), threaded=args.child == "ours")
        result["threads"] = numba.get_num_threads() + (args.child == "ours")
        wall = time.perf_counter() - t0
        if args.save:
            np.savez(args.save, F=F, Fneu=Fneu)
    elif args.child == "suite2p":
        import torch
        from suite2p.extraction.extract import extract_traces
        masks = _load_masks(args.masks)
        cells, neuropil = [], []
        for k in range(masks.n_rois):
            a, b = masks.cell_indptr[k], masks.cell_indptr[k + 1]
            cells.append((masks.cell_indices[a:b].astype(np.int64), masks.cell_weights[a:b].astype(np.float32)))
            neuropil.append(masks.neu_indices[masks.neu_indptr[k]:masks.neu_indptr[k + 1]].astype(np.int64))
        import_s = time.perf_counter() - t_import
        t0 = time.perf_counter()
        with h5py.File(args.movie, "r") as handle:
            F, Fneu = extract_traces(handle["data"], cells, neuropil, batch_size=500, device=torch.device("cpu"))
        wall = time.perf_counter() - t0
        if args.save:
            np.savez(args.save, F=F, Fneu=Fneu)
    else:  # the whole step
        from ophys_extraction.cli.extract import main
        import_s = time.perf_counter() - t_import
        argv = ["--movie", str(args.movie), "--segmentation", str(args.segmentation), "--output", str(args.output)]
        if args.chunk_frames:
            argv += ["--chunk_frames", str(args.chunk_frames)]
        wall = time_quietly(main, argv)
    result.update(wall_s=wall, import_s=import_s, peak_rss_mb=vm_hwm_mb())
    print(json.dumps(result))


# --------------------------------------------------------------------------------------------------- parent process

def generate(workdir: Path, frames: int, height: int, width: int, seed: int) -> tuple[Path, Path, Path]:
    """Full movie, its first half, and segmentation.h5 with the ground-truth masks and mean-image weights."""
    import h5py

    from ophys_extraction import synthetic
    spec = synthetic.SyntheticSpec(height=height, width=width, n_frames=frames, seed=seed, shot_noise="gaussian")
    full = workdir / "movie_full.h5"
    sim = synthetic.write_movie(full, spec)
    half = workdir / "movie_half.h5"
    n_half = frames // 2
    with h5py.File(full, "r") as src, h5py.File(half, "w") as dst:
        data = src["data"]
        out = dst.create_dataset("data", (n_half, height, width), data.dtype, chunks=data.chunks)
        step = 256
        for start in range(0, n_half, step):
            out[start:min(start + step, n_half)] = data[start:min(start + step, n_half)]
        mean = data[: min(frames, 256)].astype(np.float32).mean(axis=0)
    p1, p99 = np.percentile(mean, [1, 99])
    weights = (0.1 + np.clip((mean - p1) / (p99 - p1), 0, 1)).astype(np.float32)
    seg = workdir / "segmentation.h5"
    with h5py.File(seg, "w") as handle:
        handle.create_dataset("cellpose/masks", data=sim.masks.astype(np.int32))
        handle.create_dataset("weights", data=weights)
        handle.attrs["diameter_used"] = float(spec.cell_diameter_mean)
    return full, half, seg


def build_masks(seg: Path, out: Path) -> int:
    """suite2p stats + masks from segmentation.h5 as EXTRACT builds them; saved as TraceMasks arrays."""
    import h5py

    from ophys_extraction import rois, traces
    with h5py.File(seg, "r") as handle:
        masks, weights = handle["cellpose/masks"][()], handle["weights"][()]
        diameter = float(handle.attrs["diameter_used"])
    stats = rois.roi_stats(masks, weights, diameter)
    cells, neuropil = rois.build_masks(stats, *masks.shape)
    tm = traces.TraceMasks.from_suite2p(cells, neuropil, masks.size)
    np.savez(out, n_pixels=tm.n_pixels, cell_indptr=tm.cell_indptr, cell_indices=tm.cell_indices,
             cell_weights=tm.cell_weights, neu_indptr=tm.neu_indptr, neu_indices=tm.neu_indices, order=tm.order)
    return tm.n_rois


def _measure(kind: str, movie: Path, args: argparse.Namespace, save: Path | None = None) -> dict:
    warm(movie)
    cmd = [sys.executable, __file__, "--child", kind, "--movie", str(movie), "--masks", str(args.masks),
           "--segmentation", str(args.segmentation), "--output", str(args.workdir / "traces.h5")]
    if args.chunk_frames:
        cmd += ["--chunk_frames", str(args.chunk_frames)]
    if save:
        cmd += ["--save", str(save)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=5000, help="frames of the full movie (the half has N/2)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk_frames", type=int, default=0, help="default: the pipeline's (movie.chunk_frames)")
    parser.add_argument("--tmpdir", type=Path, default=Path("/tmp"), help="where to generate the movies")
    parser.add_argument("--skip_suite2p", action="store_true", help="do not time suite2p's extract_traces")
    parser.add_argument("--skip_cli", action="store_true", help="do not time the whole EXTRACT step")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for hidden in ("--movie", "--masks", "--segmentation", "--output", "--save"):
        parser.add_argument(hidden, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    args.workdir = Path(tempfile.mkdtemp(prefix="bench-extraction-", dir=args.tmpdir))
    try:
        t0 = time.perf_counter()
        full, half, args.segmentation = generate(args.workdir, args.frames, args.height, args.width, args.seed)
        size = full.stat().st_size / 2**20
        print(f"generated {full.name} ({size:.0f} MiB) and {half.name} in {time.perf_counter() - t0:.0f} s")
        args.masks = args.workdir / "masks.npz"
        n_rois = build_masks(args.segmentation, args.masks)
        with np.load(args.masks) as z:
            nnz_cell, nnz_neu = z["cell_indices"].size, z["neu_indices"].size
        print(f"{n_rois} ROIs, {nnz_cell} cell and {nnz_neu} neuropil mask pixels")

        kinds = ["read", "read-reuse", "ours", "ours-serial"] + ([] if args.skip_suite2p else ["suite2p"]) \
            + ([] if args.skip_cli else ["extract CLI"])
        rows, checks = [], {}
        for movie, frames in ((half, args.frames // 2), (full, args.frames)):
            res = {}
            for kind in kinds:
                save = args.workdir / f"{kind}.npz" if kind in ("ours", "suite2p") and movie == full else None
                res[kind] = _measure(kind.replace("extract CLI", "cli"), movie, args, save)
            for kind in kinds:
                rows.append({"frames": frames, "step": kind, **res[kind],
                             "x_read": res[kind]["wall_s"] / res["read"]["wall_s"],
                             "x_reuse": res[kind]["wall_s"] / res["read-reuse"]["wall_s"]})
        if not args.skip_suite2p:
            with np.load(args.workdir / "ours.npz") as a, np.load(args.workdir / "suite2p.npz") as b:
                for key in ("F", "Fneu"):
                    diff = np.abs(a[key] - b[key])
                    checks[key] = {"max_abs_diff": float(diff.max()),
                                   "max_rel_diff": float((diff / np.maximum(np.abs(b[key]), 1e-6)).max())}

        print(f"\nmovie {args.frames} (and {args.frames // 2}) x {args.height} x {args.width} int16, {size:.0f} MiB "
              f"at {args.frames} frames; chunk_frames {args.chunk_frames or 'default'}; warm page cache; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print(f"{'frames':>6}  {'step':<12} {'wall s':>7} {'x read':>7} {'x reuse':>8} {'MiB/s':>7} "
              f"{'peak RSS MiB':>13} {'imports s':>9}")
        print("  (imports s: interpreter imports, plus numba start-up for ours and suite2p import for suite2p, "
              "excluded from wall s)")
        mib = {args.frames // 2: size / 2, args.frames: size}
        for r in rows:
            print(f"{r['frames']:>6}  {r['step']:<12} {r['wall_s']:7.2f} {r['x_read']:7.2f} {r['x_reuse']:8.2f} "
                  f"{mib[r['frames']] / r['wall_s']:7.0f} {r['peak_rss_mb']:13.0f} {r['import_s']:9.2f}")
        by = {(r["frames"], r["step"]): r for r in rows}
        print("\npeak RSS when frames double (N/2 -> N):")
        for kind in kinds:
            a, b = by[(args.frames // 2, kind)], by[(args.frames, kind)]
            print(f"  {kind:<12} {a['peak_rss_mb']:7.0f} -> {b['peak_rss_mb']:7.0f} MiB "
                  f"({b['peak_rss_mb'] - a['peak_rss_mb']:+.0f} MiB)")
        outputs = 2 * n_rois * (args.frames - args.frames // 2) * 4 / 2**20
        print(f"  (the F and Fneu outputs themselves grow by {outputs:.0f} MiB)")
        if not args.skip_suite2p:
            ours, s2p = by[(args.frames, "ours")], by[(args.frames, "suite2p")]
            print(f"\nours vs suite2p extract_traces at {args.frames} frames: {s2p['wall_s'] / ours['wall_s']:.1f}x "
                  f"faster; F max |diff| {checks['F']['max_abs_diff']:.2g} (rel {checks['F']['max_rel_diff']:.1e}), "
                  f"Fneu max |diff| {checks['Fneu']['max_abs_diff']:.2g} (rel {checks['Fneu']['max_rel_diff']:.1e})")
        if args.json:
            args.json.write_text(json.dumps({"frames": args.frames, "height": args.height, "width": args.width,
                                             "n_rois": n_rois, "rows": rows, "checks": checks}, indent=2))
    finally:
        if args.keep:
            print(f"kept {args.workdir}")
        else:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
