"""`ophys-extraction check-start`: the checks the pipeline makes before any task that only the Python side can make
(main.nf asks this command, lib/StartCheck.groovy), written once: here they are the steps' own functions: the NWB
metadata file, and a classfile given as EXTRACT's --classifier (as EXTRACT reads it, classify.read_keys)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ophys_extraction.nwb import read_metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ophys-extraction check-start", description=__doc__)
    parser.add_argument("--nwb_metadata", type=Path, default=None, metavar="FILE",
                        help="the NWB step's metadata file, checked as the NWB step reads it (nwb.read_metadata)")
    parser.add_argument("--classifier", default=None, metavar="VALUE",
                        help="EXTRACT's --classifier: a name, or a classfile checked as EXTRACT reads it")
    args = parser.parse_args(argv)
    if args.nwb_metadata is not None:
        read_metadata(args.nwb_metadata)
    if args.classifier is not None:
        from ophys_extraction import classify
        from ophys_extraction.errors import InputError
        problem = classify.classifier_problem(args.classifier)
        if problem:
            raise InputError(f"--classifier {args.classifier}", problem)
        if args.classifier not in (classify.SUITE2P, classify.BUNDLED_CLASSIFIER):
            classify.read_keys(Path(args.classifier))
    return 0
