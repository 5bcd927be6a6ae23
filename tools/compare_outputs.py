#!/usr/bin/env python3
"""Compare two pipeline output folders: every dataset of every `<plane>/extraction/extraction.h5`, bit for bit
(NaNs equal where both are NaN), and the files' attributes. For checking that a change leaves the results alone:

    .venv/bin/python tools/compare_outputs.py /tmp/demo_before results

Prints one line per plane and a line per difference; exit status 0 if every dataset is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np


def datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def attributes(path: Path) -> dict[str, str]:
    with h5py.File(path, "r") as handle:
        return {key: str(handle.attrs[key]) for key in handle.attrs}


def compare(before: Path, after: Path) -> list[str]:
    """Differences between two extraction.h5 files (empty if the datasets and attributes are identical)."""
    a, b = datasets(before), datasets(after)
    problems = [f"dataset {name} only in {before}" for name in sorted(a.keys() - b.keys())]
    problems += [f"dataset {name} only in {after}" for name in sorted(b.keys() - a.keys())]
    for name in sorted(a.keys() & b.keys()):
        if a[name].dtype != b[name].dtype or a[name].shape != b[name].shape:
            problems.append(f"dataset {name}: {a[name].dtype}{a[name].shape} vs {b[name].dtype}{b[name].shape}")
        elif not np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind in "fc"):
            problems.append(f"dataset {name}: values differ")
    attrs_a, attrs_b = attributes(before), attributes(after)
    problems += [f"attribute {key} differs" for key in sorted(attrs_a.keys() | attrs_b.keys())
                 if attrs_a.get(key) != attrs_b.get(key)]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="output folder (--outdir) of the reference run")
    parser.add_argument("after", type=Path, help="output folder of the run to check")
    args = parser.parse_args()
    files = sorted(args.before.glob("*/extraction/extraction.h5"))
    if not files:
        print(f"no */extraction/extraction.h5 under {args.before}", file=sys.stderr)
        return 1
    failed = False
    for file in files:
        other = args.after / file.relative_to(args.before)
        problems = [f"missing {other}"] if not other.is_file() else compare(file, other)
        n = len(datasets(file))
        print(f"{file.parent.parent.name}: " + ("identical" if not problems else f"{len(problems)} difference(s)")
              + f" ({n} datasets)")
        for problem in problems:
            print(f"  {problem}")
        failed |= any(p.startswith(("dataset", "missing")) for p in problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
