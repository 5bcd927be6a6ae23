"""EXTRACT step's logic (its outputs: docs/output.md): suite2p ROI statistics and masks from the segmentation, F and
Fneu in one streaming pass over the movie, neuropil correction, skew/std, the dF/F baseline flag, the anatomical
features (roi_features) and the cell classifier (--classifier; suite2p's builtin one beside it), written to
traces.h5 (see docs/architecture.md). `cli/extract.py` parses the options and reads the segmentation."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ophys_extraction.errors import InputError
from ophys_extraction.h5io import atomic_h5, write_array
from ophys_extraction.movie import chunk_frames, open_movie
from ophys_extraction.options import EXTRACT as _TABLE
from ophys_extraction.provenance import package_versions
from ophys_extraction.schema import LABEL_ORIGIN, ORIGIN_FUNCTIONAL

# suite2p settings exposed as options; None = suite2p's default (read from suite2p.parameters at run time).
SUITE2P_OPTIONS = ("max_overlap", "soma_crop", "npix_norm_min", "npix_norm_max", "allow_overlap",
                   "inner_neuropil_radius", "min_neuropil_pixels", "circular_neuropil", "lam_percentile",
                   "neuropil_coefficient")


@dataclass(frozen=True)
class ExtractionOptions:
    """EXTRACT's options; their defaults, ranges and help are options.EXTRACT."""
    use_suite2p_neuropil: bool = _TABLE.default("use_suite2p_neuropil")  # suite2p's fixed coefficient, not MI r
    diameter: float = _TABLE.default("diameter")          # for suite2p's ROI statistics; 0 = the segmentation's
    chunk_frames: int = _TABLE.default("chunk_frames")    # frames per read; 0 = about 16 MiB in whole HDF5 chunks
    threads: int = _TABLE.default("threads")              # numba threads; 0 = every CPU this process may use
    max_overlap: float | None = _TABLE.default("max_overlap")
    soma_crop: bool | None = _TABLE.default("soma_crop")
    npix_norm_min: float | None = _TABLE.default("npix_norm_min")
    npix_norm_max: float | None = _TABLE.default("npix_norm_max")
    allow_overlap: bool | None = _TABLE.default("allow_overlap")
    inner_neuropil_radius: int | None = _TABLE.default("inner_neuropil_radius")
    min_neuropil_pixels: int | None = _TABLE.default("min_neuropil_pixels")
    circular_neuropil: bool | None = _TABLE.default("circular_neuropil")
    lam_percentile: float = _TABLE.default("lam_percentile")
    neuropil_coefficient: float | None = _TABLE.default("neuropil_coefficient")
    classifier: str = _TABLE.default("classifier")        # "anatomical" (bundled), "suite2p" or a classfile path

    def validate(self) -> None:
        """One InputError naming every value that cannot work."""
        _TABLE.check(asdict(self))

    def suite2p_settings(self) -> dict[str, Any]:
        """Every suite2p option: the given value, else (None) suite2p's default."""
        from ophys_extraction import rois
        defaults = rois.suite2p_defaults()
        return {name: (getattr(self, name) if getattr(self, name) is not None else defaults[name])
                for name in SUITE2P_OPTIONS}


def resolve_diameter(given: float, seg_attrs: dict, masks: np.ndarray) -> tuple[float, str]:
    from ophys_extraction import rois
    if given > 0:
        return float(given), "--diameter"
    used = seg_attrs.get("diameter_used")
    try:
        used = float(used)
    except (TypeError, ValueError):
        used = 0.0
    if math.isfinite(used) and used > 0:
        return used, "segmentation diameter_used"
    median = rois.median_mask_diameter(masks)
    if median > 0:
        return median, "median mask diameter (suite2p anatomical)"
    return rois.suite2p_default_diameter(), "suite2p default (no ROIs)"


def write_traces(path: Path, F: np.ndarray, Fneu: np.ndarray, r: np.ndarray, stats: list,
                 result: dict, attrs: dict, classfile: Path, features: dict[str, np.ndarray],
                 functional: np.ndarray | None = None) -> None:
    """traces.h5. The corrected traces are computed block by block straight into the file (with their skew, std and
    baseline flag), so they are never all in memory; `stats` (suite2p's ROI statistics), the skew and `features`
    (roi_features) go into the stat dicts, and `classfile`'s classifier gives iscell, suite2p's builtin one
    iscell_suite2p. ROIs of suite2p's functional detection (`functional`, bool per ROI) take the builtin classifier's
    answer when the classfile is the bundled one, whose features describe Cellpose's ROIs; the builtin one was made
    for functional ROIs."""
    from ophys_extraction import classify, neuropil
    with atomic_h5(path) as out:
        traces = out.create_group("traces")
        # Not compressed: traces.h5 is read once by MERGE, which compresses them into extraction.h5; gzip here
        # would cost EXTRACT seconds per 10,000 frames for nothing.
        corrected = traces.create_dataset("corrected", F.shape, np.float32)
        skew, std = np.zeros(F.shape[0], np.float32), np.zeros(F.shape[0], np.float32)
        low_baseline = np.zeros(F.shape[0], bool)
        for rows, block in neuropil.iter_corrected(F, Fneu, r):
            corrected[rows] = block
            skew[rows], std[rows] = classify.trace_stats(block)
            low_baseline[rows] = classify.baseline_at_or_below_zero(block)
        classify.set_stats(stats, {"skew": skew, "std": std, **features})
        iscell = classify.classify(stats, classfile)
        builtin = classify.builtin_classifier_path()
        iscell_suite2p = iscell if classfile == builtin else classify.classify(stats, builtin)
        if functional is not None and Path(classfile) == classify.BUNDLED_CLASSFILE:
            iscell = np.where(functional[:, None], iscell_suite2p, iscell)
        for name, values in (("roi", F), ("neuropil", Fneu), ("skew", skew), ("std", std)):
            write_array(traces, name, np.asarray(values, np.float32), compress=False)
        write_array(traces, "baseline_at_or_below_zero", low_baseline)
        group = out.create_group("rois")
        for name, value in result["rois"].items():
            write_array(group, name, value)
        write_array(out, "iscell", np.asarray(iscell, np.float32))
        write_array(out, "iscell_suite2p", np.asarray(iscell_suite2p, np.float32))
        write_array(out, "neuropil_coords", result["neuropil_coords"])
        write_array(out, "neuropil_rcoef", np.asarray(r, np.float64))
        if result["raw_r"] is not None:
            write_array(out, "raw_neuropil_rcoef_mutualinfo", np.asarray(result["raw_r"], np.float64))
        write_array(out, "labels", np.asarray(result["labels"], np.int32))
        for key, value in attrs.items():
            out.attrs[key] = value


def classifier_features(keys: tuple[str, ...], stats: list, masks: np.ndarray, seg_images: dict[str, np.ndarray],
                        F: np.ndarray, Fneu: np.ndarray) -> dict[str, np.ndarray]:
    """The roi_features values of the ROIs (`stats`, in ROI order) that the classifier's `keys` use, each from
    the segmentation's outputs it needs (`seg_images`: FEATURE_SOURCES' datasets, as read)."""
    from ophys_extraction import roi_features, rois
    wanted = [k for k in roi_features.FEATURE_KEYS if k in keys]
    if not wanted:
        return {}
    labels = rois.roi_labels(stats)
    kept = np.where(np.isin(masks, labels), masks, 0) if len(stats) else np.zeros_like(masks)
    n = len(stats)
    out: dict[str, np.ndarray] = {}
    if "cellprob" in wanted:
        out["cellprob"] = roi_features.label_means(seg_images["cellpose/cellprob"], kept, labels) if n else np.zeros(0)
    if "flow_error" in wanted:
        out["flow_error"] = roi_features.flow_error(kept, seg_images["cellpose/flows"], labels)
    if "contrast" in wanted:
        out["contrast"] = roi_features.ring_contrast(seg_images["image"], kept, labels) if n else np.zeros(0)
    if "neuropil_ratio" in wanted:
        out["neuropil_ratio"] = roi_features.neuropil_ratio(F.mean(axis=1), Fneu.mean(axis=1)) if n else np.zeros(0)
    return out


def extract_plane(movie: Path, segmentation: Path, output: Path, masks: np.ndarray, weights: np.ndarray,
                  seg_attrs: dict, options: ExtractionOptions, seg_images: dict[str, np.ndarray] | None = None) -> str:
    """Extract one plane's traces into `output` (traces.h5) from its movie and its segmentation (already read:
    `masks`, `weights`, `seg_attrs`, and those of FEATURE_SOURCES' datasets it has, `seg_images`); returns the
    step's one-line report."""
    import numba
    previous = numba.get_num_threads()
    try:
        return _extract(movie, segmentation, output, masks, weights, seg_attrs, options, seg_images or {})
    finally:
        numba.set_num_threads(previous)


def classifier_keys(options: ExtractionOptions, segmentation: Path, seg_images: dict[str, np.ndarray]
                    ) -> tuple[Path, tuple[str, ...]]:
    """(classfile, its keys) of --classifier, checked before any frame is read: the classfile is one suite2p can
    use, and the segmentation has every dataset its features come from."""
    from ophys_extraction import classify
    from ophys_extraction.roi_features import FEATURE_SOURCES
    classfile = classify.classifier_path(options.classifier)
    if not classfile.is_file():
        raise InputError(classfile, "classifier file does not exist (--classifier)")
    keys = classify.read_keys(classfile)
    for key in keys:
        source = FEATURE_SOURCES.get(key)
        if source is not None and source not in seg_images:
            raise InputError(segmentation, f"missing dataset '{source}', from which the classifier "
                                           f"{options.classifier} takes its feature {key}")
    return classfile, keys


def _extract(movie: Path, segmentation: Path, output: Path, masks: np.ndarray, weights: np.ndarray,
             seg_attrs: dict, options: ExtractionOptions, seg_images: dict[str, np.ndarray]) -> str:
    t0 = time.perf_counter()
    with open_movie(movie) as (dset, info):
        if (info.height, info.width) != masks.shape:
            raise InputError(info.path, f"frame size {info.height}x{info.width} does not match the segmentation "
                                        f"masks {masks.shape[0]}x{masks.shape[1]} of {segmentation}")
        classfile, keys = classifier_keys(options, segmentation, seg_images)   # before the trace pass
        n_chunk = options.chunk_frames or chunk_frames(info, dset)

        # suite2p (slow to import) only from here on: --help and input errors stay fast.
        import numba

        from ophys_extraction import neuropil, rois, traces
        threads = min(options.threads, numba.config.NUMBA_NUM_THREADS) if options.threads else numba.get_num_threads()
        numba.set_num_threads(threads)
        settings = options.suite2p_settings()
        diameter, diameter_source = resolve_diameter(options.diameter, seg_attrs, masks)
        Ly, Lx = masks.shape
        stats = rois.roi_stats(masks, weights, diameter, max_overlap=settings["max_overlap"],
                               soma_crop=settings["soma_crop"], npix_norm_min=settings["npix_norm_min"],
                               npix_norm_max=settings["npix_norm_max"])
        cell_masks, neuropil_masks = rois.build_masks(
            stats, Ly, Lx, allow_overlap=settings["allow_overlap"],
            inner_neuropil_radius=settings["inner_neuropil_radius"],
            min_neuropil_pixels=settings["min_neuropil_pixels"], circular_neuropil=settings["circular_neuropil"],
            lam_percentile=settings["lam_percentile"])
        trace_masks = traces.TraceMasks.from_suite2p(cell_masks, neuropil_masks, Ly * Lx)
        traces.warm_up(dset.dtype)  # numba loads the kernel once per process: start-up, not per-frame work
        # "setup": suite2p's import, ROI masks, kernel loading: everything before the first frame is read.
        phases = {"setup": time.perf_counter() - t0}
        t1 = time.perf_counter()
        F, Fneu = traces.extract_traces(dset, trace_masks, n_chunk, path=str(info.path), threaded=threads > 1)
        phases["trace pass"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    r, raw_r = neuropil.coefficients(F, Fneu, use_suite2p=options.use_suite2p_neuropil,
                                     neucoeff=settings["neuropil_coefficient"])
    phases["neuropil"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    features = classifier_features(keys, stats, masks, seg_images, F, Fneu)
    phases["classifier features"] = time.perf_counter() - t1
    n_labels = int(np.unique(masks[masks > 0]).size)
    result = {
        "rois": rois.flatten_stats(stats, Ly, Lx),
        "neuropil_coords": rois.neuropil_coords(neuropil_masks, Ly, Lx),
        "raw_r": raw_r, "labels": rois.roi_labels(stats),
    }
    parameters = {
        "use_suite2p_neuropil": bool(options.use_suite2p_neuropil),
        "neuropil_method": "suite2p" if options.use_suite2p_neuropil else "mutualinfo",
        "diameter": float(options.diameter), "diameter_used": diameter, "diameter_source": diameter_source,
        "chunk_frames": int(n_chunk), "threads": int(threads),
        "classifier": options.classifier, "classifier_keys": list(keys),
        **{k: (v.item() if isinstance(v, np.generic) else v) for k, v in settings.items()},
    }
    vers = package_versions()
    attrs = {
        # Resolved movie path and file name only: under Nextflow both live in a per-run work dir.
        "movie": str(movie.resolve()), "segmentation": segmentation.name,
        "n_frames": info.n_frames, "height": Ly, "width": Lx,
        "n_rois": len(stats), "n_labels": n_labels, "n_dropped": n_labels - len(stats),
        "parameters": json.dumps(parameters, sort_keys=True),
        "versions": json.dumps(vers, sort_keys=True),
        "suite2p_version": vers["suite2p"],
        "runtime_seconds": time.perf_counter() - t0,
    }
    t1 = time.perf_counter()
    origin = seg_images.get(LABEL_ORIGIN)
    functional = None if origin is None else origin[np.asarray(result["labels"], np.int64) - 1] == ORIGIN_FUNCTIONAL
    write_traces(output, F, Fneu, r, stats, result, attrs, classfile, features, functional)
    phases["correct, classify, write"] = time.perf_counter() - t1
    return (f"extract: {len(stats)} ROIs ({n_labels - len(stats)} of {n_labels} Cellpose labels dropped by suite2p), "
          f"{info.n_frames} frames of {movie}, neuropil {parameters['neuropil_method']}, in "
          f"{time.perf_counter() - t0:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in phases.items())}) "
          f"-> {output}")
