"""A curated `iscell` (suite2p's GUI saves one as `iscell.npy`) back into a plane's results.

`apply_curation` rewrites `iscell` in extraction.h5, keeping the classifier's under `iscell_original` (the first
curation only: later ones replace `iscell` again and keep that), and appends what changed to `curation` in the
file's `parameters` attribute and to `curation.json` beside it. It then writes again what is derived from `iscell`
and is there: `<plane>.nwb` (with the options it was written with, read back from it), `detected_ROIs.png`,
`<plane>_extraction.h5` (its attributes are extraction.h5's) and the suite2p folder's `iscell.npy` with its
`iscell.npy.sha256` (so that a later run sees the curation applied, not an unapplied GUI edit). Every file is
written under a temporary name and renamed into place once all are written (extraction.h5 first); a curated file
that does not fit (another number of ROIs, values that are not 0/1) is one InputError and changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction import schema, validation
from ophys_extraction.errors import InputError
from ophys_extraction.h5io import write_array
from ophys_extraction.suite2p_folder import ISCELL_DIGEST, PLANE_FOLDER, file_sha256, plane_folder, write_iscell_digest

CURATION_KEY = "curation"   # in the `parameters` attribute: the list of curations applied, in order
# Beside extraction.h5: the same list, where the pipeline's start finds it without reading HDF5 (main.nf: a run into
# an --outdir would write its own results over a curated plane, so it stops instead).
CURATION_FILE = "curation.json"
DETECTED_ROIS_PNG = "detected_ROIs.png"


@dataclass(frozen=True)
class CurationResult:
    extraction: Path
    n_rois: int
    cells_before: int
    cells_after: int
    to_cell: list[int]
    to_not_cell: list[int]
    written: list[Path] = field(default_factory=list)   # every file rewritten, extraction.h5 first


def read_curated(path: Path, current: np.ndarray, extraction: Path) -> np.ndarray:
    """The curated iscell as float32 (n_rois, 2): a .npy of shape (n_rois, 2) as suite2p's GUI saves it (column 0
    cell 0/1, column 1 probability), or (n_rois,) of 0/1 (the probabilities of `current` are kept)."""
    try:
        values = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "file does not exist") from None
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read as a .npy array ({str(err).splitlines()[0]})") from None
    n_rois = current.shape[0]
    if values.ndim not in (1, 2) or (values.ndim == 2 and values.shape[1] != 2):
        raise InputError(path, f"shape {values.shape}, expected (n_rois, 2) as suite2p's GUI saves iscell.npy, or "
                               "(n_rois,)")
    if values.shape[0] != n_rois:
        raise InputError(path, f"{values.shape[0]} ROIs, but {extraction} has {n_rois}: a curation that merged, "
                               "added or removed ROIs cannot be applied (only cell / not-cell marks); nothing changed")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise InputError(path, f"dtype {values.dtype}, expected numbers")
    values = values.astype(np.float64)
    curated = np.column_stack([values, current[:, 1]]) if values.ndim == 1 else values
    if curated.size and not np.isin(curated[:, 0], (0.0, 1.0)).all():
        raise InputError(path, "column 0 (cell) has values other than 0 and 1")
    prob = curated[:, 1]
    if not (np.all(np.isfinite(prob)) and np.all((prob >= 0) & (prob <= 1))):
        raise InputError(path, "column 1 (probability) has values outside [0, 1]")
    return curated.astype(np.float32)


def curation_record(source: Path, digest: str, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
    """What one curation changed, for the `parameters` attribute (no timestamps: the file stays deterministic)."""
    from ophys_extraction import __version__

    was, now = before[:, 0] > 0.5, after[:, 0] > 0.5
    return {"iscell_file": str(source), "iscell_sha256": digest, "n_rois": int(before.shape[0]),
            "cells_before": int(was.sum()), "cells_after": int(now.sum()),
            "to_cell": [int(i) for i in np.flatnonzero(now & ~was)],
            "to_not_cell": [int(i) for i in np.flatnonzero(was & ~now)],
            "probabilities_changed": int(np.count_nonzero(before[:, 1] != after[:, 1])),
            "original_kept_as": schema.ISCELL_ORIGINAL, "by": f"ophys-extraction {__version__} apply-curation"}


def _rewrite(path: Path, curated: np.ndarray, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace `iscell` in the extraction.h5 at `path` (a copy), keep the first original, record the curation;
    returns every curation the file now records."""
    with h5py.File(path, "r+") as out:
        if schema.ISCELL_ORIGINAL not in out:
            write_array(out, schema.ISCELL_ORIGINAL, out["iscell"][()])
        del out["iscell"]
        write_array(out, "iscell", curated)
        parameters = json.loads(out.attrs["parameters"])
        parameters[CURATION_KEY] = list(parameters.get(CURATION_KEY) or []) + [record]
        out.attrs["parameters"] = json.dumps(parameters, sort_keys=True)
    return parameters[CURATION_KEY]


def _pending(path: Path) -> Path:
    return path.with_name(f".{path.name}.curation-{os.getpid()}")


def apply_curation(plane_out: Path, iscell_path: Path | None = None) -> CurationResult | None:
    """Apply the curated iscell (default: the plane's `suite2p/plane0/iscell.npy`) to the plane at `plane_out`
    (its output folder, extraction/ folder or extraction.h5). None when it marks every ROI as the file already does
    (nothing is written)."""
    from ophys_extraction import nwb, qc
    from ophys_extraction.merge import write_alias
    from ophys_extraction.suite2p_folder import find_extraction

    extraction = find_extraction(plane_out)
    problems = validation.validate(extraction)
    if problems:
        raise InputError(extraction, f"not a valid extraction.h5 ({len(problems)} problem(s), first: {problems[0]}; "
                                     "see `ophys-extraction validate`)")
    suite2p_iscell = plane_folder(extraction) / PLANE_FOLDER / "iscell.npy"
    source = Path(iscell_path) if iscell_path is not None else suite2p_iscell
    with h5py.File(extraction, "r") as handle:
        current = handle["iscell"][()].astype(np.float32)
        plane_id = str(handle.attrs["plane_id"])
    curated = read_curated(source, current, extraction)
    if np.array_equal(curated, current):
        return None
    record = curation_record(source.resolve(), file_sha256(source), current, curated)
    folder = extraction.parent
    targets = {"nwb": folder / nwb.output_name(plane_id), "png": folder / DETECTED_ROIS_PNG,
               "alias": folder / schema.alias_name(plane_id), "suite2p": suite2p_iscell}
    present = {key: path for key, path in targets.items() if path.is_file()}
    if "suite2p" in present and present["suite2p"].resolve() == source.resolve():
        del present["suite2p"]           # it is the curated file itself
    if suite2p_iscell.is_file():
        # The suite2p folder's iscell.npy now holds the curation: its digest says so (a later run checks it).
        present["digest"] = suite2p_iscell.with_name(ISCELL_DIGEST)
    present["record"] = folder / CURATION_FILE
    pending = {"extraction": _pending(extraction), **{key: _pending(path) for key, path in present.items()}}
    try:
        shutil.copyfile(extraction, pending["extraction"])
        curations = _rewrite(pending["extraction"], curated, record)
        pending["record"].write_text(json.dumps({CURATION_KEY: curations}, indent=1, sort_keys=True) + "\n")
        problems = validation.validate(pending["extraction"])
        if problems:
            raise RuntimeError(f"{extraction}: the curated file violates the schema: {'; '.join(problems)}")
        if "nwb" in present:
            nwb.write_nwb(pending["extraction"], pending["nwb"], nwb.options_from_nwb(present["nwb"]))
        with h5py.File(pending["extraction"], "r") as handle:
            if "png" in present:
                qc.render_plane(pending["png"], handle, segmented=qc.recomputed_segmented(handle),
                                title=f"{plane_id} (curated)")
            if "alias" in present:
                write_alias(pending["alias"], handle)
        if "suite2p" in present:
            with open(pending["suite2p"], "wb") as out:
                np.save(out, curated)
        if "digest" in present:
            write_iscell_digest(pending["suite2p"] if "suite2p" in present else suite2p_iscell, pending["digest"])
        written = [extraction] + list(present.values())
        for key, path in [("extraction", extraction), *present.items()]:
            os.replace(pending[key], path)
    finally:
        for path in pending.values():
            path.unlink(missing_ok=True)
    was, now = current[:, 0] > 0.5, curated[:, 0] > 0.5
    return CurationResult(extraction, int(current.shape[0]), int(was.sum()), int(now.sum()), record["to_cell"],
                          record["to_not_cell"], written)
