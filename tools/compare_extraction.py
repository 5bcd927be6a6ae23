#!/usr/bin/env python3
"""Compare two extraction.h5 files dataset by dataset, exactly (bit for bit), streaming in row blocks.

usage: compare_extraction.py REFERENCE OTHER

Prints one line per dataset that differs (dtype, shape, or values: how many elements and the largest difference),
the attributes that differ (provenance such as paths may; they are reported, not counted), and a last line
`identical: N datasets` or `DIFFERENT: K of N datasets`. Exit 0 only if every dataset of either file exists in the
other with the same dtype, shape and bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction.schema import iter_row_blocks


def dataset_names(handle: h5py.File) -> list[str]:
    names: list[str] = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


def _blocks(dset: h5py.Dataset):
    if dset.shape == ():
        yield 0, np.asarray(dset[()])
    else:
        yield from iter_row_blocks(dset)


def _bits(x: np.ndarray) -> np.ndarray:
    """The array's values as unsigned integers of the same width (bytes as a last axis for other widths)."""
    x = np.ascontiguousarray(x)
    if x.dtype.itemsize in (1, 2, 4, 8):
        return x.view(np.dtype(f"u{x.dtype.itemsize}"))
    return x.view(np.uint8).reshape(*x.shape, -1)


def value_difference(a: h5py.Dataset, b: h5py.Dataset) -> str | None:
    """None if two datasets of the same dtype and shape hold the same bits, else what differs."""
    n_diff, largest = 0, 0.0
    for (_, x), (_, y) in zip(_blocks(a), _blocks(b)):
        if x.dtype.kind == "O":
            differs = np.asarray(x != y)
        else:
            differs = _bits(x) != _bits(y)
            if differs.ndim > x.ndim:
                differs = differs.any(axis=-1)
        n_diff += int(differs.sum())
        if x.dtype.kind == "f" and differs.any():
            largest = max(largest, float(np.nanmax(np.abs(x[differs].astype(np.float64) - y[differs]), initial=0.0)))
    if not n_diff:
        return None
    return f"{n_diff} of {a.size} values differ" + (f", largest |difference| {largest:.3g}" if a.dtype.kind == "f"
                                                       else "")


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    """{path: leaf} of a JSON value (dicts descended into, anything else a leaf)."""
    if isinstance(value, dict):
        return {k: v for key, child in value.items() for k, v in _leaves(child, f"{prefix}.{key}").items()}
    return {prefix: value}


def attribute_differences(key: str, a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """(where, reference value, other value) for each difference in one attribute; JSON attributes key by key."""
    try:
        a, b = json.loads(a), json.loads(b)
    except (TypeError, ValueError):
        same = np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
        return [] if same else [(key, a, b)]
    la, lb = _leaves(a, key), _leaves(b, key)
    return [(k, la.get(k), lb.get(k)) for k in sorted(set(la) | set(lb)) if la.get(k) != lb.get(k)]


def compare(reference: Path, other: Path) -> bool:
    with h5py.File(reference, "r") as ref, h5py.File(other, "r") as oth:
        ref_names, oth_names = dataset_names(ref), dataset_names(oth)
        problems = [f"{name}: only in {reference}" for name in ref_names if name not in oth]
        problems += [f"{name}: only in {other}" for name in oth_names if name not in ref]
        for name in (n for n in ref_names if n in oth):
            a, b = ref[name], oth[name]
            if a.dtype != b.dtype or a.shape != b.shape:
                problems.append(f"{name}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
            elif (why := value_difference(a, b)) is not None:
                problems.append(f"{name}: {why}")
        for key in sorted(set(ref.attrs) | set(oth.attrs)):
            for where, va, vb in attribute_differences(key, ref.attrs.get(key), oth.attrs.get(key)):
                print(f"attribute {where} differs (not counted): {va!r} vs {vb!r}")
        for line in problems:
            print(line)
        n = len(set(ref_names) | set(oth_names))
        print(f"DIFFERENT: {len(problems)} of {n} datasets" if problems else f"identical: {n} datasets")
        return not problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    args = parser.parse_args(argv)
    for path in (args.reference, args.other):
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            return 2
    return 0 if compare(args.reference, args.other) else 1


if __name__ == "__main__":
    sys.exit(main())
