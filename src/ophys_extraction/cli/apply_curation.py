"""Curation back in: a curated iscell.npy (suite2p's GUI saves one in the suite2p/plane0/ folder) becomes `iscell`
of the plane's extraction.h5 (the classifier's is kept as `iscell_original`, the curation is recorded in the
`parameters` attribute), and the plane's NWB file, detected_ROIs.png and <plane>_extraction.h5 are written again
where they exist. docs/output.md has the details."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ophys_extraction.curation import apply_curation
from ophys_extraction.suite2p_folder import PLANE_FOLDER


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ophys-extraction apply-curation", description=__doc__,
        epilog="Every file is written under a temporary name and renamed into place once all are written. A curated "
               "file with another number of ROIs (ROIs merged, drawn or removed in the GUI) or values other than "
               "0/1 is refused in one line (exit status 2) and nothing changes.")
    parser.add_argument("plane_out", type=Path, metavar="PLANE_OUT",
                        help="a plane's output folder <outdir>/<plane>, its extraction/ folder, or its extraction.h5")
    parser.add_argument("--iscell", type=Path, default=None, metavar="FILE",
                        help="the curated iscell.npy: (n_rois, 2) as suite2p's GUI saves it, or (n_rois,) of 0/1 "
                             f"(default: PLANE_OUT/{PLANE_FOLDER.as_posix()}/iscell.npy, where the GUI saves it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = apply_curation(args.plane_out, args.iscell)
    if result is None:
        print(f"apply-curation: {args.plane_out}: the curation marks every ROI as extraction.h5 does; nothing "
              "changed", file=sys.stdout)
        return 0
    print(f"apply-curation: {result.extraction}: {result.cells_before} -> {result.cells_after} cells of "
          f"{result.n_rois} ROIs ({len(result.to_cell)} marked cell, {len(result.to_not_cell)} marked not a cell); "
          f"rewrote {', '.join(path.name for path in result.written)}", file=sys.stdout)
    return 0
