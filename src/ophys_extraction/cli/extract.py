"""EXTRACT step: movie + segmentation.h5 -> traces.h5 (the logic is extraction.py; see docs/architecture.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction.errors import InputError
from ophys_extraction.extraction import ExtractionOptions, extract_plane, option_names

SEGMENTATION_DATASETS = ("cellpose/masks", "weights")
DEFAULTS = ExtractionOptions()


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extract.py", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--movie", required=True, type=Path, help="the plane's movie (HDF5, dataset 'data')")
    parser.add_argument("--segmentation", required=True, type=Path,
                        help="segmentation.h5 of the plane (needs cellpose/masks and weights)")
    parser.add_argument("--output", required=True, type=Path, help="traces.h5 to write")
    parser.add_argument("--use_suite2p_neuropil", action="store_true", default=DEFAULTS.use_suite2p_neuropil,
                        help="suite2p's fixed neuropil coefficient for every ROI instead of the mutual-information r")
    parser.add_argument("--diameter", type=float, default=DEFAULTS.diameter,
                        help="cell diameter (pixels) for suite2p's ROI statistics; 0 = the diameter the "
                             "segmentation used (attribute diameter_used), else suite2p's median mask diameter")
    parser.add_argument("--chunk_frames", type=int, default=DEFAULTS.chunk_frames,
                        help="frames per read; 0 = about 16 MiB of float32 frames in whole HDF5 chunks "
                             "(movie.chunk_frames)")
    parser.add_argument("--threads", type=int, default=DEFAULTS.threads,
                        help="CPU threads for the trace pass and the neuropil r (numba); 0 = all cores. With 1, the "
                             "movie is read and reduced alternately in one thread")
    s2p = parser.add_argument_group("suite2p settings (default: suite2p's own, read from suite2p.parameters)")
    s2p.add_argument("--max_overlap", type=float, default=DEFAULTS.max_overlap,
                     help="ROIs with a larger fraction of pixels shared with other ROIs are dropped (< 1)")
    s2p.add_argument("--soma_crop", type=_bool, default=DEFAULTS.soma_crop,
                     help="crop dendrites for compact/aspect ratio stats")
    s2p.add_argument("--npix_norm_min", type=float, default=DEFAULTS.npix_norm_min,
                     help="drop ROIs with smaller npix_norm")
    s2p.add_argument("--npix_norm_max", type=float, default=DEFAULTS.npix_norm_max,
                     help="drop ROIs with larger npix_norm")
    s2p.add_argument("--allow_overlap", type=_bool, default=DEFAULTS.allow_overlap,
                     help="keep pixels shared by ROIs in their cell masks")
    s2p.add_argument("--inner_neuropil_radius", type=int, default=DEFAULTS.inner_neuropil_radius,
                     help="pixels between a ROI and its neuropil mask")
    s2p.add_argument("--min_neuropil_pixels", type=int, default=DEFAULTS.min_neuropil_pixels,
                     help="minimum neuropil mask size")
    s2p.add_argument("--circular_neuropil", type=_bool, default=DEFAULTS.circular_neuropil,
                     help="grow neuropil masks as circles")
    s2p.add_argument("--lam_percentile", type=float, default=DEFAULTS.lam_percentile,
                     help="suite2p's cell-pixel threshold for neuropil exclusion; default 0 here (not suite2p's "
                          "50) so that neuropil masks exclude every cell pixel")
    s2p.add_argument("--neuropil_coefficient", type=float, default=DEFAULTS.neuropil_coefficient,
                     help="the fixed r of --use_suite2p_neuropil")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = ExtractionOptions(**{name: getattr(args, name) for name in option_names()})
    options.validate()
    masks, weights, seg_attrs = read_segmentation(args.segmentation)
    print(extract_plane(args.movie, args.segmentation, args.output, masks, weights, seg_attrs, options),
          file=sys.stdout)
    return 0
