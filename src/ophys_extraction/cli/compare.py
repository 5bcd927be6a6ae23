"""`ophys-extraction compare REFERENCE OTHER`: are two runs' results identical? Each argument is an extraction.h5
or a run's output folder (then every plane's extraction.h5 is compared). Prints the differing datasets and
attributes and `identical: N datasets` or `DIFFERENT: K of N datasets` per file; exit 0 only if every dataset is
bit-identical, 1 if any differs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ophys_extraction.compare import compare_files, compare_outputs
from ophys_extraction.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ophys-extraction compare", description=__doc__)
    parser.add_argument("reference", type=Path, help="extraction.h5, or an output folder (--outdir)")
    parser.add_argument("other", type=Path, help="the same kind of path, of the run to check")
    args = parser.parse_args(argv)
    for path in (args.reference, args.other):
        if not path.exists():
            raise InputError(path, "no such file or folder")
    if args.reference.is_dir() != args.other.is_dir():
        raise InputError(args.other, "compare a file with a file, or an output folder with an output folder")
    if args.reference.is_file():
        results = {"": compare_files(args.reference, args.other)}
    else:
        results = compare_outputs(args.reference, args.other)
        if not results:
            raise InputError(args.reference, "holds no */extraction/extraction.h5")
    for plane, comparison in results.items():
        for line in comparison.lines():
            print(f"{plane}: {line}" if plane else line)
    return 0 if all(c.identical for c in results.values()) else 1
