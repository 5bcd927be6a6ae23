"""EXTRACT step: movie + segmentation.h5 -> traces.h5 (the logic is extraction.py; see docs/architecture.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction import schema
from ophys_extraction.errors import InputError
from ophys_extraction.extraction import SUITE2P_OPTIONS, ExtractionOptions, extract_plane
from ophys_extraction.options import EXTRACT

SEGMENTATION_DATASETS = ("cellpose/masks", "weights")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extract.py", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--movie", required=True, type=Path, help="the plane's movie (HDF5, dataset 'data')")
    parser.add_argument("--segmentation", required=True, type=Path,
                        help="segmentation.h5 of the plane (needs cellpose/masks and weights)")
    parser.add_argument("--output", required=True, type=Path, help="traces.h5 to write")
    EXTRACT.add_arguments(parser, [name for name in EXTRACT.names() if name not in SUITE2P_OPTIONS])
    EXTRACT.add_arguments(parser.add_argument_group("suite2p settings (default: suite2p's own, read from "
                                                    "suite2p.parameters, unless said)"), SUITE2P_OPTIONS)
    return parser


def read_segmentation(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(masks int32, weights float32, attributes) of a segmentation.h5, validated."""
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a directory, expected segmentation.h5")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise InputError(path, "cannot be read as an HDF5 file (unreadable, truncated or corrupt)") from None
    with handle:
        for name in SEGMENTATION_DATASETS:
            if not isinstance(handle.get(name), h5py.Dataset):
                raise InputError(path, f"missing dataset '{name}' (extract needs {' and '.join(SEGMENTATION_DATASETS)}"
                                       " from segment.py)")
        masks_ds, weights_ds = handle["cellpose/masks"], handle["weights"]
        if masks_ds.ndim != 2 or min(masks_ds.shape) < 1:
            raise InputError(path, f"'cellpose/masks' has shape {masks_ds.shape}; expected (height, width)")
        if not np.issubdtype(masks_ds.dtype, np.integer):
            raise InputError(path, f"'cellpose/masks' has dtype {masks_ds.dtype}; expected integer labels")
        if weights_ds.shape != masks_ds.shape:
            raise InputError(path, f"'weights' has shape {weights_ds.shape}, 'cellpose/masks' {masks_ds.shape}")
        if not (np.issubdtype(weights_ds.dtype, np.integer) or np.issubdtype(weights_ds.dtype, np.floating)):
            raise InputError(path, f"'weights' has non-numeric dtype {weights_ds.dtype}")
        masks = masks_ds[()]
        weights = np.asarray(weights_ds[()], np.float32)
        attrs = {key: handle.attrs[key] for key in handle.attrs}
    if masks.min() < 0:
        raise InputError(path, "'cellpose/masks' has negative labels")
    if masks.max() > np.iinfo(np.int32).max:
        raise InputError(path, "'cellpose/masks' has labels beyond int32")
    if not np.isfinite(weights).all():
        raise InputError(path, "'weights' contains NaN or infinite values")
    return masks.astype(np.int32), weights, attrs


def read_feature_sources(path: Path, shape: tuple[int, int], n_labels: int) -> dict[str, np.ndarray]:
    """Those of the datasets the classifier's features come from (roi_features.FEATURE_SOURCES: Cellpose's cell
    probability and flows, the image it segmented) that the segmentation has, checked against the masks' shape;
    and the origin of each of the masks' `n_labels` labels (schema.LABEL_ORIGIN) where functional detection wrote one.
    Which ones the classifier needs is checked by the step (extraction.classifier_keys)."""
    from ophys_extraction.roi_features import FEATURE_SOURCES
    expected = {"cellpose/cellprob": shape, "cellpose/flows": (2, *shape), "image": shape}
    found = {}
    with h5py.File(path, "r") as handle:
        for name in FEATURE_SOURCES.values():
            dset = handle.get(name)
            if not isinstance(dset, h5py.Dataset):
                continue
            if dset.shape != expected[name]:
                raise InputError(path, f"'{name}' has shape {dset.shape}; expected {expected[name]}")
            values = np.asarray(dset[()], np.float32)
            if not np.isfinite(values).all():
                raise InputError(path, f"'{name}' contains NaN or infinite values")
            found[name] = values
        origin = handle.get(schema.LABEL_ORIGIN)   # functional detection: where each label came from
        if isinstance(origin, h5py.Dataset):
            if origin.shape != (n_labels,):
                raise InputError(path, f"'{schema.LABEL_ORIGIN}' has shape {origin.shape}; expected ({n_labels},), "
                                       "one value per label of cellpose/masks")
            found[schema.LABEL_ORIGIN] = np.asarray(origin[()], np.int8)
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = ExtractionOptions(**{name: getattr(args, name) for name in EXTRACT.names()})
    options.validate()
    masks, weights, seg_attrs = read_segmentation(args.segmentation)
    seg_images = read_feature_sources(args.segmentation, masks.shape, int(masks.max(initial=0)))
    print(extract_plane(args.movie, args.segmentation, args.output, masks, weights, seg_attrs, options, seg_images),
          file=sys.stdout)
    return 0
