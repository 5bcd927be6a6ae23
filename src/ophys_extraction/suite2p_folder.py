"""A plane's extraction.h5 as the `suite2p/plane0/` folder suite2p's GUI opens (`python -m suite2p`, File > Load
processed data > `stat.npy`), and the file the GUI writes back (`iscell.npy`). docs/output.md describes the files.

* `stat.npy`: one dict per ROI, in ROI order, with suite2p's keys: `ypix`, `xpix`, `lam` (from `rois/coords` and
  `rois/data`), `med`, the suite2p statistics of `rois/` (`overlap` and `soma_crop` per pixel), `skew` and `std`
  (of the corrected trace), `snr` (as suite2p computes it, on the corrected trace) and `iplane` 0.
* `F.npy`, `Fneu.npy`: `traces/roi`, `traces/neuropil` (float32, ROIs x frames); copied in row blocks.
* `spks.npy`: suite2p 1.1's own deconvolution, as its pipeline runs it (`extraction.preprocess` with the
  `dcnv_preprocess` defaults, a maximin baseline over 60 s, then `extraction.oasis` with `tau`), on
  `traces/corrected` (this pipeline's neuropil correction, where suite2p would use F - 0.7 * Fneu), on the CPU.
* `iscell.npy`: `iscell` (column 0 cell 0/1, column 1 probability).
* `iscell.npy.sha256`: the SHA-256 of the `iscell.npy` written here (as `sha256sum` prints it), so that a run can
  tell an `iscell.npy` that suite2p's GUI saved since (a curation not yet applied) and stop rather than write over
  it (main.nf, lib/PlaneOutputs.groovy). `apply-curation` writes it again.
* `db.npy`, `settings.npy`, `reg_outputs.npy`, `detect_outputs.npy` and `ops.npy` (the four merged), as suite2p
  1.1 saves them (`run_records`): suite2p's `default_db()` and `default_settings()` with the run's frame rate,
  diameter and suite2p settings and `tau`; the summary images `meanImg`, `meanImgE` (suite2p's enhanced mean
  image of it), `max_proj` (`maxImg`) and `Vcorr`, the image Cellpose segmented (what suite2p's anatomical
  detection stores there: the GUI's "correlation map" view), recomputed from the mean image and the max projection
  (`qc.recomputed_segmented`); `Ly`, `Lx`, `nframes`, `yrange`, `xrange`; in ops also `neuropil_rcoef` (per ROI).

The folder is written under a temporary name beside it and renamed into place (an existing one is replaced).
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction import validation
from ophys_extraction.errors import InputError
from ophys_extraction.h5io import iter_row_blocks
from ophys_extraction.options import SUITE2P_FOLDER as _TABLE
from ophys_extraction.qc import parameters_of, recomputed_segmented
from ophys_extraction.schema import EXTRACTION_H5, ROI_STATS_PER_PIXEL, ROI_STATS_PER_ROI

PLANE_FOLDER = Path("suite2p") / "plane0"
ISCELL_DIGEST = "iscell.npy.sha256"
FILES = ("stat.npy", "ops.npy", "F.npy", "Fneu.npy", "spks.npy", "iscell.npy", ISCELL_DIGEST, "db.npy",
         "settings.npy", "reg_outputs.npy", "detect_outputs.npy")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_iscell_digest(iscell: Path, digest_file: Path) -> None:
    """`iscell.npy.sha256` of the iscell.npy at `iscell`, in sha256sum's format (`sha256sum -c` checks it)."""
    digest_file.write_text(f"{file_sha256(iscell)}  iscell.npy\n")


@dataclass(frozen=True)
class Suite2pFolderOptions:
    """The suite2p folder's options; their defaults, ranges and help are options.SUITE2P_FOLDER."""
    tau: float = _TABLE.default("tau")   # indicator decay (s) for suite2p's deconvolution (suite2p's `tau`)

    def validate(self) -> None:
        """One InputError naming every value that cannot work."""
        _TABLE.check(asdict(self))


def plane_folder(extraction: Path) -> Path:
    """The plane's output folder: the folder above `extraction/` for the pipeline's layout
    (`<outdir>/<plane>/extraction/extraction.h5`), else the extraction file's own folder."""
    folder = extraction.parent
    return folder.parent if folder.name == "extraction" else folder


def find_extraction(path: Path) -> Path:
    """extraction.h5 of PLANE_OUT: the file itself, `PATH/extraction.h5` or `PATH/extraction/extraction.h5`."""
    for candidate in (path, path / EXTRACTION_H5, path / "extraction" / EXTRACTION_H5):
        if candidate.is_file():
            return candidate
    raise InputError(path, f"no {EXTRACTION_H5} here (give a plane's output folder <outdir>/<plane>, its "
                           f"extraction/ folder or the file)")


def snr(corrected: np.ndarray) -> np.ndarray:
    """suite2p's per-ROI `snr`: 1 - 0.5 * var(diff(dF)) / var(dF) of each row (NaN for a constant one)."""
    corrected = np.asarray(corrected, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 - 0.5 * np.diff(corrected, axis=1).var(axis=1) / corrected.var(axis=1)


def stat_dicts(extraction: h5py.File) -> np.ndarray:
    """stat.npy's contents: an object array of one suite2p stat dict per ROI."""
    n_rois = int(extraction["traces/corrected"].shape[0])
    roi, ys, xs = (np.asarray(c, np.int64) for c in extraction["rois/coords"][()])
    lam = extraction["rois/data"][()]
    order = np.argsort(roi, kind="stable")
    bounds = np.searchsorted(roi[order], np.arange(n_rois + 1))
    per_roi = {name: extraction[f"rois/{name}"][()] for name in ROI_STATS_PER_ROI}
    per_pixel = {name: extraction[f"rois/{name}"][()].astype(bool) for name in ROI_STATS_PER_PIXEL}
    med = extraction["rois/med"][()]
    skew, std = extraction["traces/skew"][()], extraction["traces/std"][()]
    snrs = np.concatenate([snr(block) for _, block in iter_row_blocks(extraction["traces/corrected"])]) \
        if n_rois else np.zeros(0)
    stat = np.empty(n_rois, dtype=object)
    for i in range(n_rois):
        sel = order[bounds[i]:bounds[i + 1]]
        entry: dict[str, Any] = {"ypix": ys[sel].astype(np.int32), "xpix": xs[sel].astype(np.int32),
                                 "lam": lam[sel].astype(np.float32), "med": [float(v) for v in med[i]]}
        entry.update({name: values[i].item() for name, values in per_roi.items()})
        entry.update({name: values[sel] for name, values in per_pixel.items()})
        entry.update({"skew": float(skew[i]), "std": float(std[i]), "snr": float(snrs[i]), "iplane": 0})
        stat[i] = entry
    return stat


def run_records(extraction: h5py.File, folder: Path, options: Suite2pFolderOptions) -> dict[str, dict[str, Any]]:
    """The dicts suite2p 1.1 saves per plane, by file stem: `db`, `settings`, `reg_outputs`, `detect_outputs`, and
    `ops` (the four merged, as suite2p's `run_plane` saves it, plus `neuropil_rcoef`)."""
    from suite2p.parameters import default_db, default_settings

    from ophys_extraction.summary_images import enhanced_mean_image

    parameters = parameters_of(extraction)
    frames = int(extraction["traces/corrected"].shape[1])
    height, width = (int(v) for v in extraction["rois/shape"][()][1:])
    settings = copy.deepcopy(default_settings())
    ran = (parameters.get("extract") or {}).get("parameters") or {}
    for section in ("detection", "extraction"):
        for key, value in settings[section].items():
            if key in ran and type(ran[key]) is type(value):
                settings[section][key] = ran[key]
    diameter = float(ran.get("diameter_used") or (parameters.get("segment") or {}).get("diameter_used") or 0.0)
    settings.update(fs=float(extraction.attrs["frame_rate"]), tau=float(options.tau),
                    diameter=[diameter, diameter], torch_device="cpu")
    db = {**default_db(), "save_path": str(folder), "save_path0": str(folder.parent.parent), "nchannels": 1,
          "nplanes": 1, "Ly": height, "Lx": width, "nframes": frames,
          "plane_id": str(extraction.attrs.get("plane_id", ""))}
    mean_img = extraction["meanImg"][()].astype(np.float32)
    reg_outputs = {"meanImg": mean_img, "meanImgE": enhanced_mean_image(mean_img).astype(np.float32),
                   "yrange": [0, height], "xrange": [0, width], "badframes": np.zeros(frames, bool)}
    detect_outputs = {"max_proj": extraction["maxImg"][()].astype(np.float32),
                      "Vcorr": recomputed_segmented(extraction)[1].astype(np.float32),
                      "diameter": [diameter, diameter]}
    ops = {**db, **settings, **reg_outputs, **detect_outputs, "aspect": 1.0,
           "neuropil_rcoef": extraction["neuropil_rcoef"][()].astype(np.float32)}
    return {"db": db, "settings": settings, "reg_outputs": reg_outputs, "detect_outputs": detect_outputs,
            "ops": ops}


def deconvolve(corrected: np.ndarray, frame_rate: float, tau: float) -> np.ndarray:
    """spks of (ROIs, frames) corrected traces: suite2p's preprocess (its `dcnv_preprocess` defaults) then OASIS."""
    import torch
    from suite2p.extraction import oasis, preprocess
    from suite2p.parameters import default_settings

    corrected = np.ascontiguousarray(corrected, np.float32)
    if corrected.shape[0] == 0:
        return np.zeros(corrected.shape, np.float32)
    settings = default_settings()
    batch = int(settings["extraction"]["batch_size"])
    baselined = preprocess(F=corrected.copy(), fs=frame_rate, batch_size=batch, device=torch.device("cpu"),
                           **settings["dcnv_preprocess"])
    return oasis(F=baselined, batch_size=batch, tau=tau, fs=frame_rate).astype(np.float32)


def _save_rows(path: Path, dset: h5py.Dataset, transform=None) -> None:
    """A (n_rois, frames) dataset (through `transform`, if given) as a float32 .npy, written in row blocks of about
    64 MB: never the whole array in memory."""
    if dset.shape[0] == 0:
        np.save(path, np.zeros(dset.shape, np.float32))
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=dset.shape)
    for start, block in iter_row_blocks(dset):
        out[start:start + block.shape[0]] = transform(block) if transform else block
    out.flush()
    del out


def write_folder(extraction_path: Path, folder: Path, options: Suite2pFolderOptions = Suite2pFolderOptions()) -> Path:
    """Write `folder` (a suite2p `plane0` folder) from a valid extraction.h5; returns `folder`."""
    options.validate()
    problems = validation.validate(extraction_path)
    if problems:
        raise InputError(extraction_path, f"not a valid extraction.h5 ({len(problems)} problem(s), first: "
                                          f"{problems[0]}; see `ophys-extraction validate`)")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(folder.parent, f"cannot be created ({err.strerror})") from None
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        with h5py.File(extraction_path, "r") as extraction:
            if "frame_rate" not in extraction.attrs:
                raise InputError(extraction_path, "has no frame_rate attribute (suite2p's ops need fs)")
            frame_rate = float(extraction.attrs["frame_rate"])
            np.save(tmp / "stat.npy", stat_dicts(extraction), allow_pickle=True)
            for stem, record in run_records(extraction, folder, options).items():
                np.save(tmp / f"{stem}.npy", np.array(record, dtype=object), allow_pickle=True)
            _save_rows(tmp / "F.npy", extraction["traces/roi"])
            _save_rows(tmp / "Fneu.npy", extraction["traces/neuropil"])
            _save_rows(tmp / "spks.npy", extraction["traces/corrected"],
                       lambda block: deconvolve(block, frame_rate, options.tau))
            np.save(tmp / "iscell.npy", extraction["iscell"][()].astype(np.float32))
            write_iscell_digest(tmp / "iscell.npy", tmp / ISCELL_DIGEST)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder
