"""FUNCTIONAL_DETECTION: suite2p's functional detection on a plane's movie -> segmentation.h5, alone or adding its
ROIs to SEGMENT's (`--detection`; ophys_extraction.functional).

    functional_detection.py --movie PATH --frame_rate HZ --output segmentation.h5 --detection sparsery
    functional_detection.py --movie PATH --frame_rate HZ --output segmentation.h5 --detection cellpose+sparsery
                            --segmentation cellpose_segmentation.h5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction import schema
from ophys_extraction.errors import InputError
from ophys_extraction.functional import UNION_MAX_SHARED, FunctionalOptions, add_rois, binned_movie, binning, detect
from ophys_extraction.h5io import atomic_h5, attr_value, write_array
from ophys_extraction.movie import open_movie
from ophys_extraction.options import FRAME_RATE, FUNCTIONAL, Table

N_STYLES = 256   # cellpose/styles' length (docs/output.md), zeros where Cellpose did not run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="functional_detection.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movie", required=True, type=Path, help="HDF5 movie with dataset 'data' (frames, H, W)")
    parser.add_argument("--frame_rate", type=float, required=True, help=FRAME_RATE.full_help())
    parser.add_argument("--output", required=True, type=Path, help="segmentation.h5 to write")
    parser.add_argument("--segmentation", type=Path, default=None,
                        help="SEGMENT's segmentation.h5, whose ROIs the functional ones are added to (cellpose+...)")
    FUNCTIONAL.add_arguments(parser)
    return parser


def _cellpose_part(path: Path | None, shape: tuple[int, int]) -> dict[str, np.ndarray | dict]:
    """Datasets and attributes of SEGMENT's output, or Cellpose's datasets as zeros where Cellpose did not run."""
    if path is None:
        height, width = shape
        return {"cellpose/masks": np.zeros(shape, np.int32),
                "cellpose/flows_in_hsv": np.zeros((height, width, 3), np.uint8),
                "cellpose/flows": np.zeros((2, height, width), np.float32),
                "cellpose/cellprob": np.zeros(shape, np.float32),
                "cellpose/final_locations": np.zeros((2, height, width), np.float32),
                "cellpose/styles": np.zeros(N_STYLES, np.float32),
                "weights": np.zeros(shape, np.float32), "attrs": {}}
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        with h5py.File(path, "r") as handle:
            found = {name: handle[name][()] for name in (
                "cellpose/masks", "cellpose/flows_in_hsv", "cellpose/flows", "cellpose/cellprob",
                "cellpose/final_locations", "cellpose/styles", "weights", "image") if name in handle}
            found["attrs"] = {key: handle.attrs[key] for key in handle.attrs}
    except OSError:
        raise InputError(path, "cannot be read as an HDF5 file") from None
    for name in ("cellpose/masks", "weights"):
        if name not in found:
            raise InputError(path, f"missing dataset '{name}' (a segmentation.h5 from segment.py has it)")
    if found["cellpose/masks"].shape != shape:
        raise InputError(path, f"'cellpose/masks' is {found['cellpose/masks'].shape}, the movie's frames {shape}")
    return found


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = build_parser().parse_args(argv)
    options = FunctionalOptions(**{name: getattr(args, name) for name in FUNCTIONAL.names()})
    Table("functional_detection.py", (FRAME_RATE,)).check({"frame_rate": args.frame_rate})
    options.validate()
    if options.detection == "cellpose":
        raise InputError("--detection cellpose", "Cellpose alone is SEGMENT's; this step runs for sparsery, "
                                                 "sourcery, cellpose+sparsery or cellpose+sourcery")
    if options.adds_to_cellpose != (args.segmentation is not None):
        raise InputError(f"--detection {options.detection}",
                         "needs --segmentation (SEGMENT's output)" if options.adds_to_cellpose
                         else "takes no --segmentation (no Cellpose ROIs to add to)")
    with open_movie(args.movie) as (dset, info):
        cellpose = _cellpose_part(args.segmentation, (info.height, info.width))
        bin_size, n_bins = binning(info.n_frames, args.frame_rate, options.tau, options.nbins)
        binned = binned_movie(dset, info, bin_size, n_bins)
    t1 = time.perf_counter()
    stats, max_proj = detect(binned, options)   # high-passes `binned` in place first
    del binned
    n_cellpose = int(cellpose["cellpose/masks"].max())
    labels, weights, origin = add_rois(cellpose["cellpose/masks"], cellpose["weights"],
                                       np.full(n_cellpose, schema.ORIGIN_CELLPOSE, np.int8), stats,
                                       UNION_MAX_SHARED if options.adds_to_cellpose else None)
    attrs = dict(cellpose["attrs"])
    attrs.update({
        "detection": options.detection, "functional": json.dumps(asdict(options), sort_keys=True),
        "functional_bin_size": bin_size, "functional_n_bins": n_bins, "functional_found": len(stats),
        "functional_added": int(len(origin) - n_cellpose), "n_rois": int(labels.max()),
    })
    if not options.adds_to_cellpose:
        attrs.update({"diameter": options.diameter, "diameter_used": options.diameter,
                      "diameter_source": "functional detection: --functional_diameter",
                      "image_name": "max projection of the high-passed binned movie (functional detection)"})
    with atomic_h5(args.output) as out:
        for name, value in cellpose.items():
            if name not in ("attrs", "cellpose/masks", "weights"):
                write_array(out, name, value)
        write_array(out, "cellpose/masks", labels)
        write_array(out, "weights", weights)
        write_array(out, schema.LABEL_ORIGIN, origin)
        if not options.adds_to_cellpose:   # else SEGMENT's image stays: what Cellpose segmented
            write_array(out, "image", max_proj.astype(np.float32))
        for key, value in attrs.items():
            out.attrs[key] = attr_value(value)
    print(f"functional detection ({options.detection}): {len(stats)} ROIs found by suite2p's {options.algorithm} in "
          f"{n_bins} bins of {bin_size} frames, {attrs['functional_added']} added to {n_cellpose} Cellpose ROIs, in "
          f"{time.perf_counter() - t0:.1f} s (detection {time.perf_counter() - t1:.1f} s) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
