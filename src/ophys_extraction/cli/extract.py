"""EXTRACT step: movie + segmentation.h5 -> traces.h5 (suite2p ROI stats and masks, F and Fneu in one streaming
pass, neuropil correction, skew/std, the dF/F baseline flag and suite2p's builtin classifier; see
docs/architecture.md)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction.errors import InputError
from ophys_extraction.h5io import atomic_h5, write_array
from ophys_extraction.movie import chunk_frames, open_movie
from ophys_extraction.provenance import package_versions

SEGMENTATION_DATASETS = ("cellpose/masks", "weights")
# suite2p settings exposed as options; None = suite2p's default (read from suite2p.parameters at run time).
SUITE2P_OPTIONS = ("max_overlap", "soma_crop", "npix_norm_min", "npix_norm_max", "allow_overlap",
                   "inner_neuropil_radius", "min_neuropil_pixels", "circular_neuropil", "lam_percentile",
                   "neuropil_coefficient")


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extract.py", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--movie", required=True, type=Path, help="the plane's movie (HDF5, dataset 'data')")
    parser.add_argument("--segmentation", required=True, type=Path,
                        help="segmentation.h5 of the plane (needs cellpose/masks and weights)")
    parser.add_argument("--output", required=True, type=Path, help="traces.h5 to write")
    parser.add_argument("--use_suite2p_neuropil", action="store_true",
                        help="suite2p's fixed neuropil coefficient for every ROI instead of the mutual-information r")
    parser.add_argument("--diameter", type=float, default=0.0,
                        help="cell diameter (pixels) for suite2p's ROI statistics; 0 = the diameter the "
                             "segmentation used (attribute diameter_used), else suite2p's median mask diameter")
    parser.add_argument("--chunk_frames", type=int, default=0,
                        help="frames per read; 0 = about 16 MiB of float32 frames in whole HDF5 chunks "
                             "(movie.chunk_frames)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for the trace pass and the neuropil r (numba); 0 = all cores. With 1, the "
                             "movie is read and reduced alternately in one thread")
    s2p = parser.add_argument_group("suite2p settings (default: suite2p's own, read from suite2p.parameters)")
    s2p.add_argument("--max_overlap", type=float, default=None,
                     help="ROIs with a larger fraction of pixels shared with other ROIs are dropped (< 1)")
    s2p.add_argument("--soma_crop", type=_bool, default=None, help="crop dendrites for compact/aspect ratio stats")
    s2p.add_argument("--npix_norm_min", type=float, default=None, help="drop ROIs with smaller npix_norm")
    s2p.add_argument("--npix_norm_max", type=float, default=None, help="drop ROIs with larger npix_norm")
    s2p.add_argument("--allow_overlap", type=_bool, default=None,
                     help="keep pixels shared by ROIs in their cell masks")
    s2p.add_argument("--inner_neuropil_radius", type=int, default=None,
                     help="pixels between a ROI and its neuropil mask")
    s2p.add_argument("--min_neuropil_pixels", type=int, default=None, help="minimum neuropil mask size")
    s2p.add_argument("--circular_neuropil", type=_bool, default=None, help="grow neuropil masks as circles")
    s2p.add_argument("--lam_percentile", type=float, default=None,
                     help="suite2p's cell-pixel threshold for neuropil exclusion; default 0 here (not suite2p's "
                          "50) so that neuropil masks exclude every cell pixel")
    s2p.add_argument("--neuropil_coefficient", type=float, default=None,
                     help="the fixed r of --use_suite2p_neuropil")
    return parser


def check_options(args: argparse.Namespace) -> None:
    """Option values that cannot work: one InputError naming the option."""
    def bad(name: str, problem: str) -> None:
        raise InputError(f"--{name}", problem)

    if not math.isfinite(args.diameter) or args.diameter < 0:
        bad("diameter", f"must be >= 0, got {args.diameter}")
    if args.chunk_frames < 0:
        bad("chunk_frames", f"must be >= 0, got {args.chunk_frames}")
    if args.threads < 0:
        bad("threads", f"must be >= 0, got {args.threads}")
    for name in ("max_overlap", "npix_norm_min", "npix_norm_max", "lam_percentile", "neuropil_coefficient"):
        value = getattr(args, name)
        if value is not None and math.isnan(value):
            bad(name, "must be a number")
    if args.max_overlap is not None and args.max_overlap < 0:
        bad("max_overlap", f"must be >= 0, got {args.max_overlap}")
    if args.lam_percentile is not None and not 0 <= args.lam_percentile <= 100:
        bad("lam_percentile", f"must be in [0, 100], got {args.lam_percentile}")
    for name in ("inner_neuropil_radius", "min_neuropil_pixels"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            bad(name, f"must be >= 0, got {getattr(args, name)}")
    if args.neuropil_coefficient is not None and not 0 <= args.neuropil_coefficient <= 2:
        bad("neuropil_coefficient", f"must be in [0, 2], got {args.neuropil_coefficient}")


def read_segmentation(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(masks int32, weights float32, attributes) of a segmentation.h5, validated."""
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a directory, expected segmentation.h5")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise InputError(path, "cannot be read as an HDF5 file (unreadable, truncated or corrupt)") from None
    with handle:
        for name in SEGMENTATION_DATASETS:
            if not isinstance(handle.get(name), h5py.Dataset):
                raise InputError(path, f"missing dataset '{name}' (extract needs {' and '.join(SEGMENTATION_DATASETS)}"
                                       " from segment.py)")
        masks_ds, weights_ds = handle["cellpose/masks"], handle["weights"]
        if masks_ds.ndim != 2 or min(masks_ds.shape) < 1:
            raise InputError(path, f"'cellpose/masks' has shape {masks_ds.shape}; expected (height, width)")
        if not np.issubdtype(masks_ds.dtype, np.integer):
            raise InputError(path, f"'cellpose/masks' has dtype {masks_ds.dtype}; expected integer labels")
        if weights_ds.shape != masks_ds.shape:
            raise InputError(path, f"'weights' has shape {weights_ds.shape}, 'cellpose/masks' {masks_ds.shape}")
        if not (np.issubdtype(weights_ds.dtype, np.integer) or np.issubdtype(weights_ds.dtype, np.floating)):
            raise InputError(path, f"'weights' has non-numeric dtype {weights_ds.dtype}")
        masks = masks_ds[()]
        weights = np.asarray(weights_ds[()], np.float32)
        attrs = {key: handle.attrs[key] for key in handle.attrs}
    if masks.min() < 0:
        raise InputError(path, "'cellpose/masks' has negative labels")
    if masks.max() > np.iinfo(np.int32).max:
        raise InputError(path, "'cellpose/masks' has labels beyond int32")
    if not np.isfinite(weights).all():
        raise InputError(path, "'weights' contains NaN or infinite values")
    return masks.astype(np.int32), weights, attrs


def resolve_settings(args: argparse.Namespace) -> dict:
    """Every suite2p option: the given value, else suite2p's default."""
    from ophys_extraction import rois
    defaults = rois.suite2p_defaults()
    return {name: (getattr(args, name) if getattr(args, name) is not None else defaults[name])
            for name in SUITE2P_OPTIONS}


def resolve_diameter(given: float, seg_attrs: dict, masks: np.ndarray) -> tuple[float, str]:
    from ophys_extraction import rois
    if given > 0:
        return float(given), "--diameter"
    used = seg_attrs.get("diameter_used")
    try:
        used = float(used)
    except (TypeError, ValueError):
        used = 0.0
    if math.isfinite(used) and used > 0:
        return used, "segmentation diameter_used"
    median = rois.median_mask_diameter(masks)
    if median > 0:
        return median, "median mask diameter (suite2p anatomical)"
    return 12.0, "suite2p default (no ROIs)"


def write_traces(path: Path, F: np.ndarray, Fneu: np.ndarray, r: np.ndarray, stats: list,
                 result: dict, attrs: dict) -> None:
    """traces.h5. The corrected traces are computed block by block straight into the file (with their skew, std and
    baseline flag), so they are never all in memory; `stats` (suite2p's ROI statistics) and the skew feed the
    classifier."""
    from ophys_extraction import classify, neuropil
    with atomic_h5(path) as out:
        traces = out.create_group("traces")
        # Not compressed: traces.h5 is read once by MERGE, which compresses them into extraction.h5; gzip here
        # would cost EXTRACT seconds per 10,000 frames for nothing.
        corrected = traces.create_dataset("corrected", F.shape, np.float32)
        skew, std = np.zeros(F.shape[0], np.float32), np.zeros(F.shape[0], np.float32)
        low_baseline = np.zeros(F.shape[0], bool)
        for rows, block in neuropil.iter_corrected(F, Fneu, r):
            corrected[rows] = block
            skew[rows], std[rows] = classify.trace_stats(block)
            low_baseline[rows] = classify.baseline_at_or_below_zero(block)
        iscell = classify.classify(stats, skew)
        for name, values in (("roi", F), ("neuropil", Fneu), ("skew", skew), ("std", std)):
            write_array(traces, name, np.asarray(values, np.float32), compress=False)
        write_array(traces, "baseline_at_or_below_zero", low_baseline)
        group = out.create_group("rois")
        for name, value in result["rois"].items():
            write_array(group, name, value)
        write_array(out, "iscell", np.asarray(iscell, np.float32))
        write_array(out, "neuropil_coords", result["neuropil_coords"])
        write_array(out, "neuropil_rcoef", np.asarray(r, np.float64))
        if result["raw_r"] is not None:
            write_array(out, "raw_neuropil_rcoef_mutualinfo", np.asarray(result["raw_r"], np.float64))
        write_array(out, "labels", np.asarray(result["labels"], np.int32))
        for key, value in attrs.items():
            out.attrs[key] = value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_options(args)
    import numba
    previous = numba.get_num_threads()
    try:
        return run(args)
    finally:
        numba.set_num_threads(previous)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    masks, weights, seg_attrs = read_segmentation(args.segmentation)
    with open_movie(args.movie) as (dset, info):
        if (info.height, info.width) != masks.shape:
            raise InputError(info.path, f"frame size {info.height}x{info.width} does not match the segmentation "
                                        f"masks {masks.shape[0]}x{masks.shape[1]} of {args.segmentation}")
        n_chunk = args.chunk_frames or chunk_frames(info, dset)

        # suite2p (slow to import) only from here on: --help and input errors stay fast.
        import numba

        from ophys_extraction import neuropil, rois, traces
        threads = min(args.threads, numba.config.NUMBA_NUM_THREADS) if args.threads else numba.get_num_threads()
        numba.set_num_threads(threads)
        settings = resolve_settings(args)
        diameter, diameter_source = resolve_diameter(args.diameter, seg_attrs, masks)
        Ly, Lx = masks.shape
        stats = rois.roi_stats(masks, weights, diameter, max_overlap=settings["max_overlap"],
                               soma_crop=settings["soma_crop"], npix_norm_min=settings["npix_norm_min"],
                               npix_norm_max=settings["npix_norm_max"])
        cell_masks, neuropil_masks = rois.build_masks(
            stats, Ly, Lx, allow_overlap=settings["allow_overlap"],
            inner_neuropil_radius=settings["inner_neuropil_radius"],
            min_neuropil_pixels=settings["min_neuropil_pixels"], circular_neuropil=settings["circular_neuropil"],
            lam_percentile=settings["lam_percentile"])
        trace_masks = traces.TraceMasks.from_suite2p(cell_masks, neuropil_masks, Ly * Lx)
        traces.warm_up(dset.dtype)  # numba loads the kernel once per process: start-up, not per-frame work
        # "setup": suite2p's import, ROI masks, kernel loading: everything before the first frame is read.
        phases = {"setup": time.perf_counter() - t0}
        t1 = time.perf_counter()
        F, Fneu = traces.extract_traces(dset, trace_masks, n_chunk, path=str(info.path), threaded=threads > 1)
        phases["trace pass"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    r, raw_r = neuropil.coefficients(F, Fneu, use_suite2p=args.use_suite2p_neuropil,
                                     neucoeff=settings["neuropil_coefficient"])
    phases["neuropil"] = time.perf_counter() - t1
    n_labels = int(np.unique(masks[masks > 0]).size)
    result = {
        "rois": rois.flatten_stats(stats, Ly, Lx),
        "neuropil_coords": rois.neuropil_coords(neuropil_masks, Ly, Lx),
        "raw_r": raw_r, "labels": rois.roi_labels(stats),
    }
    parameters = {
        "use_suite2p_neuropil": bool(args.use_suite2p_neuropil),
        "neuropil_method": "suite2p" if args.use_suite2p_neuropil else "mutualinfo",
        "diameter": float(args.diameter), "diameter_used": diameter, "diameter_source": diameter_source,
        "chunk_frames": int(n_chunk), "threads": int(threads),
        **{k: (v.item() if isinstance(v, np.generic) else v) for k, v in settings.items()},
    }
    vers = package_versions()
    attrs = {
        # Resolved movie path and file name only: under Nextflow both live in a per-run work dir.
        "movie": str(args.movie.resolve()), "segmentation": args.segmentation.name,
        "n_frames": info.n_frames, "height": Ly, "width": Lx,
        "n_rois": len(stats), "n_labels": n_labels, "n_dropped": n_labels - len(stats),
        "parameters": json.dumps(parameters, sort_keys=True),
        "versions": json.dumps(vers, sort_keys=True),
        "suite2p_version": vers["suite2p"],
        "runtime_seconds": time.perf_counter() - t0,
    }
    t1 = time.perf_counter()
    write_traces(args.output, F, Fneu, r, stats, result, attrs)
    phases["correct, classify, write"] = time.perf_counter() - t1
    print(f"extract: {len(stats)} ROIs ({n_labels - len(stats)} of {n_labels} Cellpose labels dropped by suite2p), "
          f"{info.n_frames} frames of {args.movie}, neuropil {parameters['neuropil_method']}, in "
          f"{time.perf_counter() - t0:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in phases.items())}) "
          f"-> {args.output}", file=sys.stdout)
    return 0
