"""SUMMARY_IMAGES: one streaming pass over a movie -> summary.h5 (docs/architecture.md).

    summary_images.py --movie PATH --output summary.h5 --frame_rate HZ [--bin_duration S] [--denoise]
                      [--chunk_frames N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

from ophys_extraction.h5io import atomic_h5, write_array
from ophys_extraction.movie import open_movie, recording_warnings
from ophys_extraction.options import FRAME_RATE, SUMMARY_IMAGES, Table
from ophys_extraction.summary_images import SummaryImagesOptions, compute_summary_images

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="summary_images.py",
        description="Summary images of a registered movie (mean, high-passed max projection, max/mean ratio, "
                    "enhanced mean, neighbour correlation) from temporally binned frames, as suite2p's anatomical detection computes "
                    "them; the movie is read once, in chunks.")
    parser.add_argument("--movie", required=True, type=Path, help="HDF5 movie with dataset 'data' (frames, H, W)")
    parser.add_argument("--output", required=True, type=Path, help="summary.h5 to write")
    parser.add_argument("--frame_rate", type=float, required=True, help=FRAME_RATE.full_help())
    SUMMARY_IMAGES.add_arguments(parser)
    return parser


def _scratch_dir(output: Path) -> Path | None:
    """Where the --denoise temporary file goes: beside the output if that folder exists and is writable."""
    folder = output.parent
    return folder if folder.is_dir() and os.access(folder, os.W_OK) else None


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    # When the plane's processing began (MERGE's processing record); run-specific, so not in extraction.h5.
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    args = build_parser().parse_args(argv)
    options = SummaryImagesOptions(**{field.name: getattr(args, field.name) for field in fields(SummaryImagesOptions)})
    # The frame rate first: one line, whatever else is wrong (the pipeline checked it at start, with this rule).
    Table("summary_images.py", (FRAME_RATE,)).check({"frame_rate": args.frame_rate})
    options.validate()
    frame_rate = args.frame_rate
    with open_movie(args.movie) as (dset, info):
        images = compute_summary_images(dset, info, frame_rate, options, tmp_dir=_scratch_dir(args.output))
    warnings = recording_warnings(info, frame_rate, images.n_bins, options.bin_duration, images.saturated)
    with atomic_h5(args.output) as handle:
        # Not compressed: summary.h5 is read by SEGMENT and MERGE (which compresses what it copies into
        # extraction.h5); gzip here cost more than the correlation image itself (~25 ms per 512 x 512 image).
        for name, image in (("meanImg", images.mean_img), ("maxImg", images.max_img),
                            ("max_mean_ratio", images.max_mean_ratio), ("meanImgE", images.mean_img_e),
                            ("corrImg", images.corr_img)):
            write_array(handle, name, image, compress=False)
        handle.attrs.update({
            # The resolved path: under Nextflow the movie is a symlink in a per-run work dir.
            "movie": str(args.movie.resolve()),
            "n_frames": info.n_frames,
            "height": info.height,
            "width": info.width,
            "frame_rate": frame_rate,
            "bin_duration": options.bin_duration,
            "bin_size": images.bin_size,
            "n_bins": images.n_bins,
            "denoise": bool(options.denoise),
            "saturated_pixel_frames": images.saturated,
            # Carried into plane_summary.json by MERGE, so the session summary lists them.
            "warnings": json.dumps(warnings),
            "runtime_seconds": time.perf_counter() - started,
            "started_at": started_at,
        })
    for warning in warnings:
        print(f"WARNING: {info.path}: {warning}", file=sys.stderr)
    print(f"{args.movie}: {info.n_frames} frames of {info.height}x{info.width} at {frame_rate:g} Hz -> "
          f"{images.n_bins} bins of {images.bin_size} frames -> {args.output}")
    return 0
