"""Check extraction.h5 (or <plane>_extraction.h5) files against the schema (docs/output.md): `OK <file>` or one line
per problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ophys_extraction.validation import validate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="validate.py", description=__doc__,
                                     epilog="Exit status: 0 if every file is valid, 1 if any has a problem.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="extraction.h5 file(s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    failed = False
    for path in args.files:
        problems = validate(path)
        if problems:
            failed = True
            for problem in problems:
                print(f"{path}: {problem}", file=sys.stdout)
        else:
            print(f"OK {path}", file=sys.stdout)
    return 1 if failed else 0
