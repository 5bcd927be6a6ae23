"""MERGE step: summary.h5 + segmentation.h5 + traces.h5 -> extraction.h5, <plane>_extraction.h5 (links to it) and
detected_ROIs.png (docs/output.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction.merge import DETECTED_ROIS_PNG, EXTRACTION_H5, MergeOutputs, jsonable, merge, parse_params_json
from ophys_extraction.schema import alias_name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="merge.py", description=__doc__,
        epilog=f"Writes DIR/{EXTRACTION_H5}, DIR/{alias_name('<plane_id>')} and DIR/{DETECTED_ROIS_PNG} atomically; "
               "the file is validated against "
               "the schema (ophys_extraction.validation) before it is put in place.")
    parser.add_argument("--summary", required=True, type=Path, help="summary.h5 (SUMMARY_IMAGES step)")
    parser.add_argument("--segmentation", required=True, type=Path, help="segmentation.h5 (SEGMENT step)")
    parser.add_argument("--traces", required=True, type=Path, help="traces.h5 (EXTRACT step)")
    parser.add_argument("--outdir", required=True, type=Path, metavar="DIR", help="folder to write into")
    parser.add_argument("--plane_id", required=True,
                        help="plane id recorded in the file; the pipeline's, checked by the plane-id rule at its start "
                             "(lib/PlaneFinder.groovy: it must name a folder and a file)")
    parser.add_argument("--params_json", default=None, metavar="FILE_OR_STRING",
                        help="pipeline parameters (a JSON file or a JSON string), stored under 'pipeline' in the "
                             "`parameters` attribute")
    parser.add_argument("--plane_summary", default=None, type=Path, metavar="FILE",
                        help="also write this JSON file (plane, frames, rois, cells, rois_baseline_at_or_below_zero, "
                             "runtime_seconds, warnings) "
                             "for the session summary; runtime_seconds is MERGE's time plus the `runtime_seconds` "
                             "attributes of the three inputs, where they have one")
    parser.add_argument("--aind_data_process", action="store_true",
                        help="also write DIR/<plane_id>_extraction_data_process.json, the plane's processing record "
                             "for AIND's pipeline (aind-data-schema 2.x; without it installed: a note, no record)")
    return parser


def upstream_runtime(*paths: Path) -> float:
    """Sum of the inputs' `runtime_seconds` attributes (0 for a file without one)."""
    total = 0.0
    for path in paths:
        with h5py.File(path, "r") as handle:
            value = handle.attrs.get("runtime_seconds")
        if isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            total += float(value)
    return total


def recorded_warnings(summary: Path) -> list[str]:
    """The warnings SUMMARY_IMAGES recorded about the movie (too short, implausible frame rate)."""
    with h5py.File(summary, "r") as handle:
        warnings = jsonable(handle.attrs.get("warnings", "[]"))
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def no_roi_warning(segmentation: Path) -> str:
    """Why a plane has no ROIs, from what SEGMENT saved: no pixel above the cell-probability threshold, candidates
    that Cellpose's mask steps all removed, or masks that suite2p then dropped (MERGE is only asked when the plane
    ended with none)."""
    with h5py.File(segmentation, "r") as handle:
        cellprob = handle["cellpose/cellprob"][()]
        n_masks = int(handle["cellpose/masks"][()].max(initial=0))
        attrs = dict(handle.attrs)
    threshold = float(attrs.get("cellprob_threshold", 0.0))
    above = int(np.count_nonzero(cellprob > threshold))
    if n_masks:
        return (f"no ROIs: suite2p's ROI statistics (EXTRACT) dropped all {n_masks} masks Cellpose found; check "
                "EXTRACT's --npix_norm_min, --npix_norm_max and --max_overlap")
    if not above:
        return (f"no ROIs: no pixel's cell probability is above --cellprob_threshold {threshold:g} (the highest is "
                f"{float(cellprob.max(initial=-np.inf)):.2f}): the threshold removed every candidate; a lower one "
                "finds dimmer cells")
    diameter = attrs.get("diameter_used")
    at = f" at diameter {float(diameter):.1f} px" if diameter is not None else ""
    return (f"no ROIs: {above} pixels are above --cellprob_threshold {threshold:g}, but Cellpose kept no mask from "
            f"them{at} (its flow check, --flow_threshold {float(attrs.get('flow_threshold', 0.0)):g}, and its "
            "smallest mask size): check --diameter, or raise --flow_threshold")


def write_plane_summary(path: Path, row: dict) -> None:
    """The JSON file, written under a temporary name and renamed (nothing partial on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(row, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    run_params = parse_params_json(args.params_json)
    result = merge(args.summary, args.segmentation, args.traces, args.outdir,
                   plane_id=args.plane_id, run_params=run_params)
    if args.plane_summary is not None:
        runtime = time.time() - t0 + upstream_runtime(args.summary, args.segmentation, args.traces)
        write_plane_summary(args.plane_summary, {"plane": result.plane_id, "frames": result.frames,
                                                 "rois": result.n_rois, "cells": result.n_cells,
                                                 "rois_baseline_at_or_below_zero": result.n_low_baseline,
                                                 "runtime_seconds": round(runtime, 1),
                                                 "warnings": recorded_warnings(args.summary)
                                                 + ([no_roi_warning(args.segmentation)] if not result.n_rois
                                                    else [])})
    if args.aind_data_process:
        write_data_process(args.outdir, result, args.summary, datetime.fromtimestamp(t0, timezone.utc))
    print(f"merge: {result.n_rois} ROIs -> {result.extraction}, {result.figure} in {time.time() - t0:.1f} s",
          file=sys.stdout)
    return 0


def write_data_process(outdir: Path, result: MergeOutputs, summary: Path, merge_start: datetime) -> Path | None:
    """The plane's AIND processing record (aind_records.data_process) beside extraction.h5: from SUMMARY_IMAGES'
    start (summary.h5's `started_at`; MERGE's own start without it) to now. None, with a note, without
    aind-data-schema."""
    from ophys_extraction import aind_records

    reason = aind_records.missing()
    if reason:
        print(f"merge: no {aind_records.data_process_name(result.plane_id)}: {reason}", file=sys.stdout)
        return None
    with h5py.File(summary, "r") as handle:
        started_at, movie = handle.attrs.get("started_at"), handle.attrs.get("movie")
    with h5py.File(result.extraction, "r") as handle:
        parameters, versions = (json.loads(handle.attrs[key]) for key in ("parameters", "versions"))
    start = datetime.fromisoformat(str(started_at)) if started_at is not None else merge_start
    record = aind_records.data_process(
        result.plane_id, parameters, versions, str(movie) if movie is not None else None, start,
        datetime.now(timezone.utc), {"frames": result.frames, "rois": result.n_rois, "cells": result.n_cells,
                                     "rois_baseline_at_or_below_zero": result.n_low_baseline})
    return aind_records.write_json(outdir / aind_records.data_process_name(result.plane_id), record)
