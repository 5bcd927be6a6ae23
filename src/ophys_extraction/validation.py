"""Checking a file against the extraction.h5 schema (`schema.py`, docs/output.md): `validate(path)` returns every
problem found (an empty list means valid); it never raises for a bad file. It also accepts `<plane>_extraction.h5`,
the file of external links beside extraction.h5 (`schema.alias_name`), and checks it as one with its extraction.h5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction.classify import baseline_at_or_below_zero
from ophys_extraction.h5io import iter_row_blocks
from ophys_extraction.schema import (BY_PATH, DATASETS, EXTRACTION_H5, GROUPS, HEIGHT, ISCELL_ORIGINAL, LINKS,
                                     LOW_BASELINE, N_ROIS, RAW_RCOEF, REQUIRED_VERSIONS, ROI_STATS_PER_PIXEL,
                                     SUITE2P_NEUROPIL_PARAM, WIDTH, alias_name, check_dataset, describe_shape,
                                     find_key)


def _json_attr(handle: h5py.File, name: str, problems: list[str]) -> Any:
    if name not in handle.attrs:
        problems.append(f"attribute '{name}' is missing")
        return None
    value = handle.attrs[name]
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str):
        problems.append(f"attribute '{name}' is not a JSON string")
        return None
    try:
        doc = json.loads(value)
    except json.JSONDecodeError as err:
        problems.append(f"attribute '{name}' is not valid JSON ({err.msg})")
        return None
    if not isinstance(doc, dict):
        problems.append(f"attribute '{name}' is not a JSON object")
        return None
    return doc


def _check_attrs(handle: h5py.File, problems: list[str]) -> dict | None:
    if "plane_id" not in handle.attrs:
        problems.append("attribute 'plane_id' is missing")
    elif not isinstance(handle.attrs["plane_id"], (str, bytes)):
        problems.append("attribute 'plane_id' is not a string")
    parameters = _json_attr(handle, "parameters", problems)
    versions = _json_attr(handle, "versions", problems)
    if versions is not None:
        for package in REQUIRED_VERSIONS:
            if not isinstance(versions.get(package), str) or not versions[package]:
                problems.append(f"attribute 'versions' has no {package} version")
    return parameters


def _walk(handle: h5py.Group) -> tuple[list[str], list[str]]:
    """(every name of every dataset, each hard link counting; the names of soft and external links)."""
    datasets: list[str] = []
    other_links: list[str] = []

    def visit(name: str, link: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink) -> None:
        if not isinstance(link, h5py.HardLink):
            other_links.append(name)
        elif isinstance(handle.get(name), h5py.Dataset):
            datasets.append(name)
    handle.visititems_links(visit)
    return datasets, other_links


def _check_links(handle: h5py.File, problems: list[str]) -> None:
    """Each second name is a hard link to its dataset (not a copy), present exactly when the dataset is."""
    for link, target in LINKS:
        if target not in handle:
            if link in handle:
                problems.append(f"{link}: present although {target} is not")
            continue
        if link not in handle:
            problems.append(f"{link}: missing (a hard link to {target})")
        elif not isinstance(handle.get(link, getlink=True), h5py.HardLink) or handle[link] != handle[target]:
            problems.append(f"{link}: not a hard link to {target} (a copy, or another object)")


def _check_coords(name: str, coords: np.ndarray, n_rois: int, height: int, width: int,
                  problems: list[str]) -> bool:
    """Range checks of a (3, n) (roi, y, x) array; True if all in range."""
    ok = True
    for row, (label, limit) in enumerate((("roi index", n_rois), ("y", height), ("x", width))):
        values = coords[row]
        if values.size and (values.min() < 0 or values.max() >= limit):
            bad = int(np.count_nonzero((values < 0) | (values >= limit)))
            problems.append(f"{name}: {bad} {label} value(s) out of range [0, {limit}) "
                            f"(min {values.min()}, max {values.max()})")
            ok = False
    return ok


def _check_values(handle: h5py.File, dims: dict[str, int], parameters: dict | None, problems: list[str]) -> None:
    """Value-level checks; only called when every dataset is present with the right dtype and shape."""
    n_rois, height, width = dims[N_ROIS], dims[HEIGHT], dims[WIDTH]

    # traces: finite (row blocks, never the whole array); std finite and >= 0. skew may be NaN for a flat trace.
    # The baseline flag is recomputed from the corrected traces in the same pass.
    low_baseline = np.zeros(n_rois, bool)
    for path in ("traces/corrected", "traces/roi", "traces/neuropil"):
        bad = 0
        for start, block in iter_row_blocks(handle[path]):
            bad += int(block.size - np.count_nonzero(np.isfinite(block)))
            if path == "traces/corrected":
                low_baseline[start:start + block.shape[0]] = baseline_at_or_below_zero(block)
        if bad:
            problems.append(f"{path}: {bad} non-finite value(s)")
    flags = handle[LOW_BASELINE][()]
    if flags.dtype != np.bool_ and flags.size and not np.isin(flags, (0, 1)).all():
        problems.append(f"{LOW_BASELINE}: values other than 0/1")
    elif not np.array_equal(flags.astype(bool), low_baseline):
        wrong = np.flatnonzero(flags.astype(bool) != low_baseline)
        problems.append(f"{LOW_BASELINE}: disagrees with the median of traces/corrected for {wrong.size} ROI(s) "
                        f"(first: ROI {wrong[0]})")
    std = handle["traces/std"][()]
    if not np.all(np.isfinite(std)) or np.any(std < 0):
        problems.append("traces/std: non-finite or negative value(s)")

    shape = handle["rois/shape"][()]
    if tuple(int(v) for v in shape) != (n_rois, height, width):
        problems.append(f"rois/shape: {tuple(int(v) for v in shape)}, expected (n_rois, height, width) = "
                        f"{(n_rois, height, width)}")
    data = handle["rois/data"][()]
    if not np.all(np.isfinite(data)):
        problems.append("rois/data: non-finite value(s)")
    for name in ROI_STATS_PER_PIXEL:
        flags = handle[f"rois/{name}"][()]
        if flags.dtype != np.bool_ and flags.size and not np.isin(flags, (0, 1)).all():
            problems.append(f"rois/{name}: values other than 0/1")

    coords = handle["rois/coords"][()].astype(np.int64)
    coords_ok = _check_coords("rois/coords", coords, n_rois, height, width, problems)
    if coords_ok:
        roi, y, x = coords
        counts = np.bincount(roi, minlength=n_rois)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            problems.append(f"rois/coords: {empty.size} ROI(s) without pixels (first: ROI {empty[0]})")
        keys = (roi * height + y) * width + x
        if np.unique(keys).size != keys.size:
            problems.append("rois/coords: duplicate (roi, y, x) entries")
        npix = handle["rois/npix"][()]
        if not np.array_equal(np.asarray(npix, dtype=np.float64), counts.astype(np.float64)):
            mismatch = np.flatnonzero(np.asarray(npix, dtype=np.float64) != counts)
            problems.append(f"rois/npix: differs from the number of rois/coords pixels for {mismatch.size} ROI(s) "
                            f"(first: ROI {mismatch[0]}, npix {npix[mismatch[0]]}, pixels {counts[mismatch[0]]})")
        _check_labels(handle["cellpose/masks"][()], roi, y, x, n_rois, problems)

    med = handle["rois/med"][()]
    if med.size and (np.any(med[:, 0] < 0) or np.any(med[:, 0] >= height)
                     or np.any(med[:, 1] < 0) or np.any(med[:, 1] >= width)):
        problems.append("rois/med: (y, x) outside the image")

    _check_coords("neuropil_coords", handle["neuropil_coords"][()].astype(np.int64), n_rois, height, width, problems)

    for name in ("iscell", ISCELL_ORIGINAL, "iscell_suite2p"):
        if name not in handle:
            continue
        iscell = handle[name][()]
        if iscell.size:
            if not np.isin(iscell[:, 0], (0.0, 1.0)).all():
                problems.append(f"{name}: column 0 has values other than 0/1")
            prob = iscell[:, 1]
            if not (np.all(np.isfinite(prob)) and np.all((prob >= 0) & (prob <= 1))):
                problems.append(f"{name}: column 1 (probability) outside [0, 1]")

    for path in ("neuropil_rcoef", RAW_RCOEF):
        if path in handle:
            r = handle[path][()]
            if not (np.all(np.isfinite(r)) and np.all((r >= 0) & (r <= 2))):
                problems.append(f"{path}: values outside [0, 2]")

    use_suite2p = find_key(parameters, SUITE2P_NEUROPIL_PARAM) if parameters else None
    if use_suite2p is True and RAW_RCOEF in handle:
        problems.append(f"{RAW_RCOEF}: present although the run used suite2p's fixed neuropil coefficient")
    if use_suite2p is False and RAW_RCOEF not in handle:
        problems.append(f"{RAW_RCOEF}: missing (required with the mutual-information neuropil method)")


def _check_labels(masks: np.ndarray, roi: np.ndarray, y: np.ndarray, x: np.ndarray, n_rois: int,
                  problems: list[str]) -> None:
    """ROI i's pixels are label i+1 in `masks` (where only one ROI covers the pixel), and vice versa."""
    masks = masks.astype(np.int64)
    if masks.size and (masks.min() < 0 or masks.max() > n_rois):
        problems.append(f"cellpose/masks: labels outside 0..n_rois={n_rois} (min {masks.min()}, max {masks.max()})")
        return
    height, width = masks.shape
    pixel = y * width + x
    cover = np.bincount(pixel, minlength=height * width)
    single = cover[pixel] == 1
    got = masks.ravel()[pixel[single]]
    wrong = got != roi[single] + 1
    if wrong.any():
        rois_wrong = np.unique(roi[single][wrong])
        first = int(rois_wrong[0])
        problems.append(f"cellpose/masks: {int(wrong.sum())} pixel(s) of {rois_wrong.size} ROI(s) in rois/coords do "
                        f"not carry label roi+1 (first: ROI {first} expects label {first + 1})")
    # Converse: every labelled pixel belongs (in rois/coords) to the ROI its label names.
    labelled = np.flatnonzero(masks.ravel())
    label_keys = (masks.ravel()[labelled] - 1) * (height * width) + labelled
    roi_keys = roi * (height * width) + pixel
    missing = ~np.isin(label_keys, roi_keys)
    if missing.any():
        labels = np.unique(masks.ravel()[labelled[missing]])
        problems.append(f"cellpose/masks: {int(missing.sum())} labelled pixel(s) are not pixels of ROI label-1 in "
                        f"rois/coords ({labels.size} label(s), first: label {labels[0]})")


def validate_handle(handle: h5py.File) -> list[str]:
    """Every problem of an open extraction.h5 (see `validate`)."""
    problems: list[str] = []
    datasets, other_links = _walk(handle)
    extra = sorted(set(datasets) - set(BY_PATH) - {link for link, _ in LINKS})
    for path in extra:
        problems.append(f"{path}: unexpected dataset (not in the schema)")
    for path in other_links:
        problems.append(f"{path}: soft or external link (extraction.h5 holds datasets and hard links only)")
    _check_links(handle, problems)
    for name in handle:
        if isinstance(handle[name], h5py.Group) and name not in GROUPS:
            problems.append(f"{name}: unexpected group (not in the schema)")

    # Each symbol takes the value most datasets agree on (ties: the first in DATASETS order); the others are reported.
    seen: dict[str, list[tuple[str, int]]] = {}
    structure_ok = True
    for spec in DATASETS:
        if spec.path not in handle:
            if spec.required:
                problems.append(f"{spec.path}: missing dataset")
                structure_ok = False
            continue
        dset = handle[spec.path]
        problem = check_dataset(spec, dset)
        if problem:
            problems.append(f"{spec.path}: {problem}")
            structure_ok = False
            continue
        for axis, (rule, size) in enumerate(zip(spec.shape, dset.shape)):
            if isinstance(rule, int):
                if size != rule:
                    problems.append(f"{spec.path}: shape {dset.shape}, expected {describe_shape(spec.shape)} "
                                    f"(axis {axis} must be {rule})")
                    structure_ok = False
            else:
                seen.setdefault(rule, []).append((spec.path, int(size)))
    dims: dict[str, int] = {}
    for rule, sizes in seen.items():
        values = [size for _, size in sizes]
        dims[rule] = max(values, key=lambda v: (values.count(v), -values.index(v)))
        agree = next(path for path, size in sizes if size == dims[rule])
        for path, size in sizes:
            if size != dims[rule]:
                problems.append(f"{path}: shape {handle[path].shape} has {rule}={size}, but {agree} (and the "
                                f"majority) has {rule}={dims[rule]} (inconsistent {rule})")
                structure_ok = False

    parameters = _check_attrs(handle, problems)
    if structure_ok:
        _check_values(handle, dims, parameters, problems)
    return problems


def validate(path: str | Path | h5py.File) -> list[str]:
    """Every problem of an extraction.h5 against the schema; an empty list means the file is valid.

    Checks: missing, extra and non-dataset entries; dtype kind and shape of every dataset; the same n_rois, frames,
    height, width, n_pixels and n_neuropil_pixels across datasets; rois/shape; coordinates in range (roi index <
    n_rois, y < height, x < width), no duplicates, every ROI with pixels, rois/npix matching the pixel counts; the
    label/ROI correspondence (ROI i == label i+1 in cellpose/masks, both ways, where one ROI covers a pixel);
    iscell ranges; finite traces and weights; neuropil coefficients in [0, 2] and the mutual-information dataset
    present exactly when that method ran; the `LINKS` are hard links to their datasets; the plane_id, parameters and
    versions (with suite2p and cellpose) attributes. Value checks run only once the structure is right.

    A `<plane>_extraction.h5` (its root entries are external links) is checked as one: every root entry of the
    extraction.h5 beside it is linked, nothing else, the attributes are the same; then that extraction.h5 is checked.
    """
    if isinstance(path, h5py.File):
        return validate_handle(path)
    path = Path(path)
    if not path.is_file():
        return ["file does not exist" if not path.exists() else "not a file"]
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        return [f"cannot be opened as HDF5 ({err})"]
    with handle:
        if any(isinstance(handle.get(name, getlink=True), h5py.ExternalLink) for name in handle):
            return validate_alias(handle, path)
        return validate_handle(handle)


def validate_alias(handle: h5py.File, path: Path) -> list[str]:
    """Problems of an open `<plane>_extraction.h5` (see `validate`), then those of its extraction.h5."""
    target = path.parent / EXTRACTION_H5
    if not target.is_file():
        return [f"links to {EXTRACTION_H5}, which is not beside it"]
    problems: list[str] = []
    with h5py.File(target, "r") as extraction:
        for name in handle:
            link = handle.get(name, getlink=True)
            if not (isinstance(link, h5py.ExternalLink) and link.filename == EXTRACTION_H5
                    and link.path == f"/{name}"):
                problems.append(f"{name}: not an external link to {EXTRACTION_H5}:/{name}")
        for name in sorted(set(extraction) - set(handle)):
            problems.append(f"{name}: no link to {EXTRACTION_H5}:/{name}")
        if extraction.attrs.get("plane_id") is not None and path.name != alias_name(extraction.attrs["plane_id"]):
            problems.append(f"named {path.name}, but {EXTRACTION_H5}'s plane_id gives "
                            f"{alias_name(extraction.attrs['plane_id'])}")
        if _attrs(handle) != _attrs(extraction):
            problems.append(f"attributes differ from {EXTRACTION_H5}'s")
        problems += [f"{EXTRACTION_H5}: {problem}" for problem in validate_handle(extraction)]
    return problems


def _attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """Attributes as comparable Python values."""
    out: dict[str, Any] = {}
    for key, value in obj.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        out[key] = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
    return out
