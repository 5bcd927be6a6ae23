"""The schema of a plane's `extraction.h5` (docs/output.md), as data; `validation.validate` checks a file against it.

`DATASETS` is the single source of truth: every dataset path, its dtype kind, its shape rule (in terms of the
symbols `n_rois`, `frames`, `height`, `width`, `n_pixels`, `n_neuropil_pixels` and integer literals), whether it is
required, and which intermediate file MERGE copies it from (docs/architecture.md). `LINKS` are the second names
(HDF5 hard links) some datasets also have, for the layout of the original capsule's newer versions. `alias_name` is
`<plane>_extraction.h5`, the file of external links beside extraction.h5.

ROI index i is the same in every per-ROI dataset and is label i+1 in `cellpose/masks`. Zero ROIs is valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

# Symbols the shape rules use.
N_ROIS, FRAMES, HEIGHT, WIDTH = "n_rois", "frames", "height", "width"
N_PIXELS, N_NEUROPIL_PIXELS = "n_pixels", "n_neuropil_pixels"

# Dtype kinds. float32 and uint8 are exact; the others accept any width.
KINDS = {
    "float32": "float32",
    "uint8": "uint8",
    "float": "any floating-point dtype",
    "int": "any integer dtype",
    "number": "any integer or floating-point dtype",
    "bool": "bool or an integer dtype holding 0/1",
}

# Where MERGE takes each dataset from (the same path inside that file). CURATION: written by `ophys-extraction
# apply-curation` (curation.py) into an existing extraction.h5, never by MERGE.
SUMMARY, SEGMENTATION, TRACES, CURATION = "summary", "segmentation", "traces", "curation"

# The suite2p ROI statistics (docs/output.md): per ROI, except `med` (y, x per ROI) and the per-pixel flags.
ROI_STATS_PER_ROI = ("aspect_ratio", "compact", "footprint", "mrs", "mrs0", "npix", "npix_norm",
                     "npix_norm_no_crop", "npix_soma", "radius", "solidity")
ROI_STATS_PER_PIXEL = ("overlap", "soma_crop")
ROI_STATS = tuple(sorted(ROI_STATS_PER_ROI + ROI_STATS_PER_PIXEL + ("med",)))

# File attributes every extraction.h5 carries. `parameters` and `versions` are JSON objects (strings).
REQUIRED_ATTRS = ("plane_id", "parameters", "versions")
REQUIRED_VERSIONS = ("suite2p", "cellpose")

# The neuropil method switch in the run parameters (searched at any depth of the `parameters` attribute).
SUITE2P_NEUROPIL_PARAM = "use_suite2p_neuropil"
# Dataset that exists only with the mutual-information neuropil method.
RAW_RCOEF = "raw_neuropil_rcoef_mutualinfo"
# The classifier's iscell, kept by the first curation (curation.py) before `iscell` is replaced.
ISCELL_ORIGINAL = "iscell_original"
# Per ROI: the median of traces/corrected is <= 0, so dF/F cannot be computed (classify.baseline_at_or_below_zero).
# Where each ROI was found (functional.ORIGIN_*): per ROI in extraction.h5, per Cellpose label in segmentation.h5.
ORIGIN, LABEL_ORIGIN = "rois/origin", "origin"
ORIGIN_CELLPOSE, ORIGIN_FUNCTIONAL = 0, 1
LOW_BASELINE = "traces/baseline_at_or_below_zero"

EXTRACTION_H5 = "extraction.h5"


@dataclass(frozen=True)
class DatasetSpec:
    path: str
    kind: str
    shape: tuple[str | int, ...]
    source: str
    description: str
    required: bool = True


def _stat_spec(name: str) -> DatasetSpec:
    if name == "med":
        return DatasetSpec("rois/med", "number", (N_ROIS, 2), TRACES, "median pixel (y, x) of each ROI")
    if name in ROI_STATS_PER_PIXEL:
        return DatasetSpec(f"rois/{name}", "bool", (N_PIXELS,), TRACES,
                           f"suite2p `{name}` flag of each ROI pixel, concatenated like rois/data")
    return DatasetSpec(f"rois/{name}", "number", (N_ROIS,), TRACES, f"suite2p ROI statistic `{name}`")


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec("traces/corrected", "float32", (N_ROIS, FRAMES), TRACES, "neuropil-corrected traces"),
    DatasetSpec("traces/roi", "float32", (N_ROIS, FRAMES), TRACES, "raw ROI traces (neuropil-corrupted)"),
    DatasetSpec("traces/neuropil", "float32", (N_ROIS, FRAMES), TRACES, "neuropil traces"),
    DatasetSpec("traces/skew", "float32", (N_ROIS,), TRACES, "skewness of traces/corrected"),
    DatasetSpec("traces/std", "float32", (N_ROIS,), TRACES, "standard deviation of traces/corrected"),
    DatasetSpec(LOW_BASELINE, "bool", (N_ROIS,), TRACES,
                "true where the median of traces/corrected is <= 0 (no usable dF/F)"),
    DatasetSpec("meanImg", "float32", (HEIGHT, WIDTH), SUMMARY, "mean image"),
    DatasetSpec("maxImg", "float32", (HEIGHT, WIDTH), SUMMARY, "max projection"),
    # Optional so that files written before it existed still validate; SUMMARY_IMAGES always writes it.
    DatasetSpec("corrImg", "float32", (HEIGHT, WIDTH), SUMMARY, "mean correlation of each pixel with its 8 neighbours",
                required=False),
    DatasetSpec("rois/data", "float32", (N_PIXELS,), TRACES, "ROI pixel weights (lam), all ROIs concatenated"),
    DatasetSpec("rois/coords", "int", (3, N_PIXELS), TRACES, "(roi index, y, x) of each rois/data value"),
    DatasetSpec("rois/shape", "int", (3,), TRACES, "(n_rois, height, width)"),
    *(_stat_spec(name) for name in ROI_STATS),
    DatasetSpec("cellpose/masks", "int", (HEIGHT, WIDTH), SEGMENTATION,
                "label image: 0 = background, ROI i = label i+1"),
    DatasetSpec("cellpose/flows_in_hsv", "uint8", (HEIGHT, WIDTH, 3), SEGMENTATION, "XY flow rendered as HSV"),
    DatasetSpec("cellpose/flows", "float", (2, HEIGHT, WIDTH), SEGMENTATION, "XY flow at each pixel"),
    DatasetSpec("cellpose/cellprob", "float", (HEIGHT, WIDTH), SEGMENTATION, "cell probability at each pixel"),
    DatasetSpec("cellpose/final_locations", "float", (2, HEIGHT, WIDTH), SEGMENTATION,
                "pixel locations after Euler integration of the flows"),
    DatasetSpec("cellpose/styles", "float", (256,), SEGMENTATION, "style vector of the image"),
    DatasetSpec(ORIGIN, "int", (N_ROIS,), SEGMENTATION,
                "where each ROI was found: 0 Cellpose, 1 suite2p's functional detection (with --detection other than "
                "cellpose)", required=False),
    DatasetSpec("iscell", "float32", (N_ROIS, 2), TRACES,
                "column 0: 0/1 cell; column 1: probability, from the --classifier's classifier"),
    DatasetSpec("iscell_suite2p", "float32", (N_ROIS, 2), TRACES,
                "iscell from suite2p's builtin classifier (the original capsule's), whatever --classifier was "
                "(absent in files written before it was added)", required=False),
    DatasetSpec(ISCELL_ORIGINAL, "float32", (N_ROIS, 2), CURATION,
                "iscell as the classifier gave it, before the first curation (only in a curated file)",
                required=False),
    DatasetSpec("neuropil_coords", "int", (3, N_NEUROPIL_PIXELS), TRACES,
                "(roi index, y, x) of each neuropil mask pixel"),
    DatasetSpec("neuropil_rcoef", "float", (N_ROIS,), TRACES, "neuropil coefficient r used for each ROI"),
    DatasetSpec(RAW_RCOEF, "float", (N_ROIS,), TRACES,
                "r before replacement (only with the mutual-information neuropil method)", required=False),
)

BY_PATH: dict[str, DatasetSpec] = {spec.path: spec for spec in DATASETS}
# (second name, dataset): HDF5 hard links, so no data is stored twice; a link exists exactly when its dataset does.
# The original capsule's README (our root layout) and its newer versions (these names) disagree; both are read.
LINKS: tuple[tuple[str, str], ...] = (
    ("traces/neuropil_rcoef", "neuropil_rcoef"),
    (f"traces/{RAW_RCOEF}", RAW_RCOEF),
    ("rois/neuropil_coords", "neuropil_coords"),
)
GROUPS = ("traces", "rois", "cellpose")


def check_dtype(kind: str, dtype: np.dtype) -> str | None:
    """None if `dtype` is of `kind`, else the problem."""
    dtype = np.dtype(dtype)
    is_int = np.issubdtype(dtype, np.integer)
    is_float = np.issubdtype(dtype, np.floating)
    ok = {
        "float32": dtype == np.float32,
        "uint8": dtype == np.uint8,
        "float": is_float,
        "int": is_int,
        "number": is_int or is_float,
        "bool": dtype == np.bool_ or is_int,
    }[kind]
    return None if ok else f"dtype {dtype}, expected {kind} ({KINDS[kind]})"


def check_dataset(spec: DatasetSpec, obj: object) -> str | None:
    """The first problem with `obj` as dataset `spec` on its own (is a dataset, dtype kind, rank), or None."""
    if not isinstance(obj, h5py.Dataset):
        return "is not a dataset"
    problem = check_dtype(spec.kind, obj.dtype)
    if problem:
        return problem
    if obj.ndim != len(spec.shape):
        return f"rank {obj.ndim} (shape {obj.shape}), expected shape {describe_shape(spec.shape)}"
    return None


def describe_shape(shape: tuple[str | int, ...]) -> str:
    """A shape rule as text, e.g. `(n_rois, frames)` or `(n_pixels,)`."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def find_key(obj: Any, key: str) -> Any:
    """The value of `key` anywhere in nested dicts/lists (depth-first), or None."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        children: Iterable[Any] = obj.values()
    elif isinstance(obj, list):
        children = obj
    else:
        return None
    for child in children:
        found = find_key(child, key)
        if found is not None:
            return found
    return None


def alias_name(plane_id: str) -> str:
    """`<plane>_extraction.h5`: the name the original capsule's newer versions write (their NWB packager looks for it).
    Here it is a small file of HDF5 external links to extraction.h5 beside it (merge.write_alias)."""
    return f"{plane_id}_{EXTRACTION_H5}"
