"""MERGE: combine a plane's summary.h5, segmentation.h5 and traces.h5 into extraction.h5 and detected_ROIs.png.

Every dataset of `schema.DATASETS` is copied from the intermediate file docs/architecture.md assigns it to, under
the same path: (n_rois, frames) traces in row blocks (never loaded whole), gzip-compressed; `cellpose/masks`
relabelled through traces.h5's `labels` so that ROI i is label i+1 (labels of dropped ROIs become 0). The second
names of `schema.LINKS` are hard links (no data stored twice). File attributes: `plane_id`, `parameters` (JSON:
every step's attributes and the pipeline parameters), `versions` (JSON: package versions), `frame_rate` when
summary.h5 has it. No timestamps: the same inputs give the same file contents. The output is validated with
`validation.validate` before it is renamed into place; a failure there is a bug. Beside it, `<plane>_extraction.h5`
(`write_alias`) links to it under the name the original capsule's newer versions use. docs/output.md describes it all.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction import schema, validation
from ophys_extraction.errors import InputError
from ophys_extraction.h5io import COMPRESS_MIN_BYTES, atomic_h5, iter_row_blocks, write_array
from ophys_extraction.schema import EXTRACTION_H5

DETECTED_ROIS_PNG = "detected_ROIs.png"
# Which step's attributes may record the version of the package it actually ran (that one wins over ours).
STEP_PACKAGES = {"segment": ("cellpose", "torch"), "extract": ("suite2p", "torch")}
# Target chunk size (elements) of the copied (n_rois, frames) datasets.
TRACE_CHUNK_ELEMENTS = 2**18


class SchemaError(RuntimeError):
    """MERGE produced a file that does not satisfy the schema (a bug in MERGE or an inconsistency upstream)."""


@dataclass(frozen=True)
class MergeOutputs:
    extraction: Path
    figure: Path
    plane_id: str
    n_rois: int
    n_cells: int
    frames: int
    n_low_baseline: int   # ROIs whose corrected trace's baseline is <= 0 (schema.LOW_BASELINE)


def jsonable(value: Any) -> Any:
    """An HDF5 attribute value as plain JSON data; strings holding a JSON object/array are parsed."""
    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        if value[:1] in ("{", "["):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                pass
        return value
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# Attributes that differ from run to run; they go to plane_summary.json, never into extraction.h5 (determinism).
RUN_SPECIFIC_ATTRS = frozenset({"runtime_seconds", "phase_seconds", "started_at"})


def attrs_dict(obj: h5py.HLObject) -> dict[str, Any]:
    return {key: jsonable(obj.attrs[key]) for key in sorted(obj.attrs) if key not in RUN_SPECIFIC_ATTRS}


def package_versions(step_attrs: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """Versions installed here (provenance.package_versions), overridden by what SEGMENT/EXTRACT recorded for the
    libraries they ran (they may run in other containers)."""
    from ophys_extraction.provenance import package_versions as installed

    versions = installed()
    for step, packages in STEP_PACKAGES.items():
        attrs = (step_attrs or {}).get(step) or {}
        for package in packages:
            recorded = _recorded_version(attrs, package)
            if recorded:
                versions[package] = recorded
    return versions


def _recorded_version(attrs: dict[str, Any], package: str) -> str | None:
    for key in (f"{package}_version", f"version_{package}"):
        if isinstance(attrs.get(key), str) and attrs[key]:
            return attrs[key]
    nested = attrs.get("versions")
    if isinstance(nested, dict) and isinstance(nested.get(package), str) and nested[package]:
        return nested[package]
    return None


def parse_params_json(value: str | None) -> Any:
    """--params_json: a path to a JSON file, or a JSON string; None if not given."""
    if value is None or value == "":
        return None
    candidate = Path(value)
    text, subject = value, "--params_json"
    if not value.lstrip().startswith(("{", "[")):
        if not candidate.is_file():
            raise InputError(value, "--params_json is neither an existing file nor a JSON string")
        try:
            text, subject = candidate.read_text(), str(candidate)
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(candidate, f"cannot be read ({err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(subject, f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


def _open(path: Path, role: str) -> h5py.File:
    if not path.exists():
        raise InputError(path, f"{role} file does not exist")
    if not path.is_file():
        raise InputError(path, f"{role} path is not a file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, f"cannot be opened as HDF5 ({err})") from None


def _check_inputs(files: dict[str, tuple[Path, h5py.File]]) -> None:
    """Presence, dtype and rank of every dataset the inputs must provide, and the few facts MERGE relies on."""
    for spec in schema.DATASETS:
        if spec.source not in files:   # written later (schema.CURATION), never by MERGE
            continue
        path, handle = files[spec.source]
        if spec.path not in handle:
            if spec.required:
                raise InputError(path, f"missing dataset '{spec.path}'")
            continue
        problem = schema.check_dataset(spec, handle[spec.path])
        if problem:
            raise InputError(path, f"dataset '{spec.path}': {problem}")
    seg_path, seg = files[schema.SEGMENTATION]
    tr_path, tr = files[schema.TRACES]
    sum_path, summary = files[schema.SUMMARY]
    if "image" not in seg or not isinstance(seg["image"], h5py.Dataset) or seg["image"].ndim != 2:
        raise InputError(seg_path, "missing 2-D dataset 'image' (what Cellpose segmented)")
    frame_shape = summary["meanImg"].shape
    for path, shape, what in ((seg_path, seg["cellpose/masks"].shape, "cellpose/masks"),
                              (seg_path, seg["image"].shape, "image"),
                              (tr_path, tuple(int(v) for v in tr["rois/shape"][()][1:]), "rois/shape[1:]")):
        if tuple(shape) != tuple(frame_shape):
            raise InputError(path, f"'{what}' is {tuple(shape)} but {sum_path.name}'s meanImg is {frame_shape}: "
                                   "the files are not from the same plane")
    n_rois = tr["traces/corrected"].shape[0]
    if "labels" not in tr:
        raise InputError(tr_path, "missing dataset 'labels' (the Cellpose label of each ROI)")
    labels_ds = tr["labels"]
    if (not isinstance(labels_ds, h5py.Dataset) or not np.issubdtype(labels_ds.dtype, np.integer)
            or labels_ds.shape != (n_rois,)):
        raise InputError(tr_path, f"dataset 'labels' must be integer ({n_rois},) (one per ROI), got "
                                  f"{getattr(labels_ds, 'dtype', '?')} {getattr(labels_ds, 'shape', '?')}")
    labels = labels_ds[()].astype(np.int64)
    max_label = int(seg["cellpose/masks"][()].max(initial=0))
    if labels.size and (labels.min() < 1 or labels.max() > max_label):
        raise InputError(tr_path, f"'labels' has values outside 1..{max_label} (the labels of cellpose/masks)")
    if np.unique(labels).size != labels.size:
        raise InputError(tr_path, "'labels' has repeated values (two ROIs from one Cellpose label)")


def relabel(masks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Label image where ROI i (Cellpose label labels[i]) is i+1 and labels of no ROI are 0 (int32)."""
    masks = np.asarray(masks)
    lut = np.zeros(int(max(masks.max(initial=0), labels.max(initial=0))) + 1, dtype=np.int32)
    lut[np.asarray(labels, dtype=np.int64)] = np.arange(1, labels.size + 1, dtype=np.int32)
    return lut[masks]


def _copy_rows(dst: h5py.Group, path: str, src: h5py.Dataset) -> None:
    """Copy a 2-D dataset in row blocks into a chunked dataset, gzip-compressed when large."""
    n_rows, n_cols = src.shape
    nbytes = n_rows * n_cols * src.dtype.itemsize
    if nbytes < COMPRESS_MIN_BYTES or n_rows == 0 or n_cols == 0:
        write_array(dst, path, src[()])
        return
    cols = min(n_cols, TRACE_CHUNK_ELEMENTS)
    rows = int(min(n_rows, max(1, TRACE_CHUNK_ELEMENTS // cols)))
    out = dst.create_dataset(path, shape=src.shape, dtype=src.dtype, chunks=(rows, cols),
                             compression="gzip", compression_opts=4, shuffle=True)
    for start, block in iter_row_blocks(src):
        out[start:start + block.shape[0]] = block


def _write_datasets(out: h5py.File, files: dict[str, tuple[Path, h5py.File]]) -> None:
    labels = files[schema.TRACES][1]["labels"][()]
    for spec in schema.DATASETS:
        if spec.source not in files:
            continue
        src_file = files[spec.source][1]
        source_path = schema.LABEL_ORIGIN if spec.path == schema.ORIGIN else spec.path
        if source_path not in src_file:
            continue
        src = src_file[source_path]
        if spec.path == schema.ORIGIN:   # per label in segmentation.h5, per ROI here
            write_array(out, spec.path, np.asarray(src[()], np.int8)[labels - 1])
        elif spec.path == "cellpose/masks":
            write_array(out, spec.path, relabel(src[()], labels))
        elif schema.FRAMES in spec.shape:
            _copy_rows(out, spec.path, src)
        else:
            write_array(out, spec.path, src[()])
    for link, target in schema.LINKS:
        if target in out:
            out[link] = out[target]


def write_alias(path: Path, extraction: h5py.File) -> None:
    """`path` (a `<plane>_extraction.h5`): one HDF5 external link per root entry of `extraction` (an open
    extraction.h5 that will sit beside it), and the same root attributes.

    A file of links rather than a file-system link: Nextflow's default publishDir mode (copy), S3 and most copy
    tools would turn a symbolic or hard link into a second full copy. HDF5 resolves a relative external link in
    the linking file's own folder before the working directory, so the pair can be moved or copied together.
    """
    with h5py.File(path, "w") as alias:
        for name in extraction:
            alias[name] = h5py.ExternalLink(EXTRACTION_H5, f"/{name}")
        for key, value in extraction.attrs.items():
            alias.attrs[key] = value


def merge(summary: str | Path, segmentation: str | Path, traces: str | Path, outdir: str | Path,
          plane_id: str, run_params: Any = None) -> MergeOutputs:
    """Write `outdir`/extraction.h5 and `outdir`/detected_ROIs.png; nothing is left at either name on failure."""
    from ophys_extraction import qc

    paths = {schema.SUMMARY: Path(summary), schema.SEGMENTATION: Path(segmentation), schema.TRACES: Path(traces)}
    outdir = Path(outdir)
    handles: dict[str, tuple[Path, h5py.File]] = {}
    try:
        for role, path in paths.items():
            handles[role] = (path, _open(path, role))
        _check_inputs(handles)
        step_attrs = {
            "summary_images": attrs_dict(handles[schema.SUMMARY][1]),
            "segment": attrs_dict(handles[schema.SEGMENTATION][1]),
            "extract": attrs_dict(handles[schema.TRACES][1]),
        }
        parameters: dict[str, Any] = dict(step_attrs)
        if run_params is not None:
            parameters["pipeline"] = jsonable(run_params)

        out_h5 = outdir / EXTRACTION_H5
        out_png = outdir / DETECTED_ROIS_PNG
        out_alias = outdir / schema.alias_name(plane_id) if plane_id else None
        png_tmp = out_png.with_name(f".{out_png.name}.pending-{os.getpid()}")
        alias_tmp = out_h5.with_name(f".alias.pending-{os.getpid()}")
        try:
            with atomic_h5(out_h5) as out:
                _write_datasets(out, handles)
                out.attrs["plane_id"] = plane_id
                out.attrs["parameters"] = json.dumps(parameters, sort_keys=True)
                out.attrs["versions"] = json.dumps(package_versions(step_attrs), sort_keys=True)
                frame_rate = step_attrs["summary_images"].get("frame_rate")
                if isinstance(frame_rate, (int, float)):
                    out.attrs["frame_rate"] = float(frame_rate)
                out.flush()
                problems = validation.validate(out)
                if problems:
                    raise SchemaError(f"{out_h5}: merged file violates the schema ({len(problems)} problem(s)): "
                                      + "; ".join(problems))
                n_rois, frames = (int(v) for v in out["traces/corrected"].shape)
                n_cells = int(np.count_nonzero(out["iscell"][:, 0] > 0.5)) if n_rois else 0
                n_low_baseline = int(np.count_nonzero(out[schema.LOW_BASELINE][()]))
                if out_alias is not None:
                    write_alias(alias_tmp, out)
                qc.render_plane(png_tmp, out, segmented=(qc.segmented_title(step_attrs["segment"]),
                                                         handles[schema.SEGMENTATION][1]["image"][()]),
                                title=plane_id or out_h5.parent.name)
            if out_alias is not None:
                os.replace(alias_tmp, out_alias)
            os.replace(png_tmp, out_png)
        finally:
            png_tmp.unlink(missing_ok=True)
            alias_tmp.unlink(missing_ok=True)
    finally:
        for _, handle in handles.values():
            handle.close()
    return MergeOutputs(out_h5, out_png, plane_id, n_rois, n_cells, frames, n_low_baseline)
