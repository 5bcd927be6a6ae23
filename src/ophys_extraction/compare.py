"""Comparing two runs' outputs: every dataset of extraction.h5, bit for bit (streamed in row blocks), and the
attributes (reported, not counted: provenance such as paths and the Python version may differ). Used by
`ophys-extraction compare`, `make container-test` and the tests that check runs are identical."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction.h5io import iter_row_blocks


@dataclass
class Comparison:
    n_datasets: int
    problems: list[str] = field(default_factory=list)          # datasets that differ or exist in one file only
    attributes: list[str] = field(default_factory=list)        # attribute differences (not counted)

    @property
    def identical(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return ([f"attribute {line}" for line in self.attributes] + self.problems
                + [f"DIFFERENT: {len(self.problems)} of {self.n_datasets} datasets" if self.problems
                   else f"identical: {self.n_datasets} datasets"])


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


def compare_files(reference: Path, other: Path) -> Comparison:
    """Every dataset of either file, in the other with the same dtype, shape and bits; attribute differences."""
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
        attributes = [f"{where} differs (not counted): {va!r} vs {vb!r}"
                      for key in sorted(set(ref.attrs) | set(oth.attrs))
                      for where, va, vb in attribute_differences(key, ref.attrs.get(key), oth.attrs.get(key))]
        return Comparison(len(set(ref_names) | set(oth_names)), problems, attributes)


def plane_files(outdir: Path) -> dict[str, Path]:
    """{plane id: extraction.h5} of a run's output folder."""
    return {path.parent.parent.name: path for path in sorted(Path(outdir).glob("*/extraction/extraction.h5"))}


def compare_outputs(reference: Path, other: Path) -> dict[str, Comparison]:
    """Per plane of either output folder: its extraction.h5 compared (a plane missing on one side differs)."""
    ref, oth = plane_files(reference), plane_files(other)
    out = {}
    for plane in sorted(set(ref) | set(oth)):
        if plane in ref and plane in oth:
            out[plane] = compare_files(ref[plane], oth[plane])
        else:
            out[plane] = Comparison(0, [f"extraction.h5 only in {reference if plane in ref else other}"])
    return out
