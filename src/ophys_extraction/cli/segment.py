"""SEGMENT step: summary.h5 -> segmentation.h5 (Cellpose 3 on one summary image; see docs/architecture.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction import segmentation
from ophys_extraction.errors import InputError
from ophys_extraction.h5io import atomic_h5, attr_value, write_array
from ophys_extraction.segmentation import SegmentationParams, SegmentationResult
from ophys_extraction.options import SEGMENT
from ophys_extraction.segmentation_input import IMAGE_MODES, SUMMARY_DATASETS, required_datasets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segment.py", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--summary", required=True, type=Path, help="summary.h5 of the plane (SUMMARY_IMAGES step)")
    parser.add_argument("--output", required=True, type=Path, help="segmentation.h5 to write")
    parser.add_argument("--pretrained_model", required=True,
                        help="Cellpose 3 model: a built-in name (cyto3, cyto2, nuclei, ...; its weights must be in "
                             "Cellpose's model folder, CELLPOSE_LOCAL_MODELS_PATH: nothing is downloaded) or the "
                             "path of a model file, e.g. assets/models/ophys_cp3")
    SEGMENT.add_arguments(parser)
    return parser


def read_summary(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named 2-D float images of summary.h5, validated (same shape, finite)."""
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise InputError(path, "cannot be read as an HDF5 file") from None
    images: dict[str, np.ndarray] = {}
    with handle:
        for name in names:
            dset = handle.get(name)
            if not isinstance(dset, h5py.Dataset):
                raise InputError(path, f"has no dataset '{name}' (a summary.h5 from summary_images.py has "
                                       f"{', '.join(SUMMARY_DATASETS)})")
            if dset.ndim != 2 or min(dset.shape) < 1:
                raise InputError(path, f"dataset '{name}' has shape {dset.shape}; expected (height, width)")
            if not (np.issubdtype(dset.dtype, np.integer) or np.issubdtype(dset.dtype, np.floating)):
                raise InputError(path, f"dataset '{name}' has non-numeric dtype {dset.dtype}")
            images[name] = np.asarray(dset[()], np.float32)
    shapes = {img.shape for img in images.values()}
    if len(shapes) > 1:
        raise InputError(path, f"summary images differ in shape: {sorted(shapes)}")
    for name, img in images.items():
        if not np.isfinite(img).all():
            raise InputError(path, f"dataset '{name}' contains NaN or infinite values")
    return images


# A --diameter above this share of the image's smaller side is refused before Cellpose runs: no cell fills half the
# field of view, and Cellpose, which rescales the image by its working size over the diameter, fails on such a size
# with an OpenCV error (a 1000 px diameter shrinks a 512 px image below one pixel).
MAX_DIAMETER_SHARE = 0.5


def check_diameter(diameter: float, shape: tuple[int, ...], summary: Path) -> None:
    """An InputError when a fixed diameter (> 0) is more than MAX_DIAMETER_SHARE of the smaller image side."""
    limit = MAX_DIAMETER_SHARE * min(shape)
    if diameter > limit:
        raise InputError("--diameter", f"{diameter:g} px is more than half the smaller side of the plane's "
                                       f"{shape[0]} x {shape[1]} px image ({summary}), larger than any cell in it: "
                                       "give the cell diameter in pixels, or 0 to estimate it")


def write_segmentation(path: Path, result: SegmentationResult, extra_attrs: dict[str, object]) -> None:
    with atomic_h5(path) as out:
        group = out.create_group("cellpose")
        write_array(group, "masks", result.masks.astype(np.int32))
        write_array(group, "flows_in_hsv", result.flows_in_hsv.astype(np.uint8))
        write_array(group, "flows", result.flows.astype(np.float32))
        write_array(group, "cellprob", result.cellprob.astype(np.float32))
        write_array(group, "final_locations", result.final_locations.astype(np.float32))
        write_array(group, "styles", result.styles.astype(np.float32))
        write_array(out, "weights", result.weights.astype(np.float32))
        write_array(out, "image", result.image.astype(np.float32))
        for key, value in {**result.attrs, **extra_attrs}.items():
            out.attrs[key] = attr_value(value)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    params = SegmentationParams(**{name: getattr(args, name) for name in SEGMENT.names()})
    params.validate()
    images = read_summary(args.summary, required_datasets(params.anatomical_only))
    check_diameter(params.diameter, next(iter(images.values())).shape, args.summary)

    # torch and Cellpose are imported only now: `--help` and input errors stay fast.
    device = segmentation.resolve_device(params.device)
    import cellpose.models  # noqa: F401 - here, so that its import is timed apart from the model load
    t1 = time.perf_counter()
    seconds = {"reading, imports": t1 - t0}
    spec = segmentation.resolve_model(args.pretrained_model)
    model = segmentation.load_model(spec, device)
    seconds["model load"] = time.perf_counter() - t1
    result = segmentation.segment_summary(images, model, params)
    seconds.update(result.seconds)
    runtime = time.perf_counter() - t0
    t1 = time.perf_counter()
    write_segmentation(args.output, result, {"summary": str(args.summary), **segmentation.versions(),
                                             "runtime_seconds": runtime,
                                             "phase_seconds": json.dumps(seconds)})
    seconds["writing"] = time.perf_counter() - t1
    print(f"segment: {result.n_rois} ROIs in {args.summary} ({IMAGE_MODES[params.anatomical_only].description}, "
          f"diameter {result.attrs['diameter_used']:.1f} px: {result.attrs['diameter_source']}, "
          f"device {device}) in {time.perf_counter() - t0:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in seconds.items())}) -> {args.output}", file=sys.stdout)
    return 0
