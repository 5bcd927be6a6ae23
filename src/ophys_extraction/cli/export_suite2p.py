"""SUITE2P_FOLDER step (--suite2p_folder): a plane's extraction.h5 as a suite2p/plane0/ folder that suite2p's GUI
opens (`python -m suite2p`, File > Load processed data, its stat.npy). The files: docs/output.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ophys_extraction.options import SUITE2P_FOLDER
from ophys_extraction.suite2p_folder import (FILES, PLANE_FOLDER, Suite2pFolderOptions, find_extraction,
                                             plane_folder, write_folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="export_suite2p.py", description=__doc__,
        epilog=f"Writes {', '.join(FILES)} into the folder, under a temporary name renamed into place (an existing "
               "folder is replaced). After curating in the GUI: ophys-extraction apply-curation PLANE_OUT.")
    parser.add_argument("plane_out", type=Path, metavar="PLANE_OUT",
                        help="a plane's output folder <outdir>/<plane>, its extraction/ folder, or its extraction.h5")
    parser.add_argument("--folder", type=Path, default=None, metavar="DIR",
                        help=f"the suite2p plane folder to write (default: PLANE_OUT/{PLANE_FOLDER.as_posix()})")
    SUITE2P_FOLDER.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    SUITE2P_FOLDER.check({name: getattr(args, name) for name in SUITE2P_FOLDER.names()})
    extraction = find_extraction(args.plane_out)
    folder = args.folder if args.folder is not None else plane_folder(extraction) / PLANE_FOLDER
    write_folder(extraction, folder, Suite2pFolderOptions(tau=args.tau))
    print(f"export-suite2p: {extraction} -> {folder} in {time.time() - t0:.1f} s", file=sys.stdout)
    return 0
