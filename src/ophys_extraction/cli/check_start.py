"""`ophys-extraction check-start`: the checks the pipeline makes before any task that only the Python side can make
(main.nf asks this command, lib/StartCheck.groovy), written once: here they are the steps' own functions."""

from __future__ import annotations

import argparse
from pathlib import Path

from ophys_extraction.nwb import read_metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ophys-extraction check-start", description=__doc__)
    parser.add_argument("--nwb_metadata", type=Path, default=None, metavar="FILE",
                        help="the NWB step's metadata file, checked as the NWB step reads it (nwb.read_metadata)")
    args = parser.parse_args(argv)
    if args.nwb_metadata is not None:
        read_metadata(args.nwb_metadata)
    return 0
