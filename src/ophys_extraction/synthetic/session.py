"""Ground truth files and Allen-style multi-plane sessions of synthetic planes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy import sparse

from ophys_extraction.errors import InputError
from ophys_extraction.synthetic.render import write_movie
from ophys_extraction.synthetic.spec import Simulation, SyntheticSpec, plane_seed


def _mask_mean_matrix(masks: np.ndarray) -> sparse.csr_matrix:
    """(n_cells, H*W): row i averages the pixels of label i+1."""
    flat = masks.ravel()
    pixels = np.flatnonzero(flat)
    labels = flat[pixels] - 1
    area = np.bincount(labels, minlength=int(masks.max()))
    return sparse.csr_matrix((1.0 / area[labels], (labels, pixels)), shape=(int(masks.max()), flat.size))


def contamination(sim: Simulation) -> np.ndarray:
    """(n_cells, T) float32: mean over each cell's mask of everything in the noise-free movie except the cell's own
    fluorescence (neuropil, distractors, spill-over from overlapping neighbours)."""
    means = _mask_mean_matrix(sim.masks)
    on_neuropil = (means @ sim.np_spatial.T.astype(np.float64)).astype(np.float32)
    on_sources = (means @ sim.footprints.T).toarray().astype(np.float32)
    np.fill_diagonal(on_sources[:, : sim.n_cells], 0)
    result = on_neuropil @ sim.np_temporal
    result += on_sources @ sim.source_traces
    return result


def write_ground_truth(path: str | Path, sim: Simulation) -> None:
    """Ground truth of one plane as HDF5; `attrs['description']` says what each dataset means."""
    n = sim.n_cells
    coo = sim.footprints[:n].tocoo()
    width = sim.spec.width
    big = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("masks", data=sim.masks, **big)
        f.create_dataset("traces", data=sim.source_traces[:n], **big)
        f.create_dataset("dff", data=sim.cells["dff"], **big)
        f.create_dataset("spikes", data=sim.cells["spikes"], **big)
        f.create_dataset("neuropil", data=contamination(sim), **big)
        f.create_dataset("drift", data=sim.drift)
        f.create_dataset("footprints/data", data=coo.data.astype(np.float32), **big)
        f.create_dataset("footprints/coords", data=np.stack([coo.row, coo.col // width, coo.col % width])
                         .astype(np.int32), **big)
        f.create_dataset("footprints/shape", data=np.array([n, sim.spec.height, width], np.int64))
        for key in ("centers", "diameters", "nucleus_excluded", "baseline", "spike_rate_hz", "decay_tau_s"):
            f.create_dataset(key, data=sim.cells[key])
        f.attrs["seed"] = sim.spec.seed
        f.attrs["n_cells"] = n
        f.attrs["frame_rate"] = sim.spec.frame_rate
        f.attrs["spec"] = sim.spec.to_json()
        f.attrs["description"] = (
            "masks: label image, cell i has label i+1. traces: cell fluorescence per unit footprint weight, "
            "baseline*(1+dff)*drift, counts; the movie's noise-free signal is sum_i footprint_i*traces_i + neuropil. "
            "footprints: COO (cell, y, x) -> counts per unit trace. neuropil: mean over each mask of the noise-free "
            "movie minus the cell's own fluorescence (contamination). spikes: counts per frame. Movie value = "
            "signal + shot/read noise + offset, int16.")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------------ sessions

def _plane_spec(base: SyntheticSpec, session_seed: int, plane: int) -> SyntheticSpec:
    """Planes lie at increasing depth: each is dimmer and a little sparser than the one above, with its own seed."""
    return dataclasses.replace(base, seed=plane_seed(session_seed, plane), brightness=base.brightness * 0.85**plane,
                               cell_density=base.cell_density * max(0.5, 1 - 0.1 * plane))


def write_session(out_dir: str | Path, n_planes: int = 2, seed: int = 0, chunk_frames: int = 256,
                  **spec_fields: Any) -> list[Path]:
    """Allen-style session: `<out_dir>/plane_<i>/decrosstalk/plane_<i>_decrosstalk.h5` with `processing.json`
    (frame rate) beside it and `<out_dir>/plane_<i>/ground_truth.h5`. Returns the movie paths."""
    if n_planes < 1:
        raise InputError("--n_planes", f"must be >= 1, got {n_planes}")
    base = SyntheticSpec(**spec_fields)
    movies = []
    for plane in range(n_planes):
        spec = _plane_spec(base, seed, plane)
        plane_id = f"plane_{plane}"
        folder = Path(out_dir) / plane_id / "decrosstalk"
        folder.mkdir(parents=True, exist_ok=True)
        movie = folder / f"{plane_id}_decrosstalk.h5"
        sim = write_movie(movie, spec, chunk_frames)
        write_ground_truth(folder.parent / "ground_truth.h5", sim)
        processing = {"processing_pipeline": {"data_processes": [{
            "name": "Synthetic movie (ophys_extraction.synthetic)",
            "parameters": {"movie_frame_rate_hz": spec.frame_rate, "session_seed": seed, "plane_seed": spec.seed}}]}}
        (folder / "processing.json").write_text(json.dumps(processing, indent=2) + "\n")
        movies.append(movie)
    return movies

