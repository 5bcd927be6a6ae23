"""Shared fixtures: small movie files and the repository paths tests need."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def write_h5(path: Path, data: np.ndarray | None = None, **datasets: np.ndarray) -> Path:
    """An HDF5 file with `data` (if given) and any other datasets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        if data is not None:
            handle.create_dataset("data", data=data)
        for name, value in datasets.items():
            handle.create_dataset(name, data=value)
    return path


def write_processing_json(folder: Path, rate: object, nested: bool = True) -> Path:
    processes = {"data_processes": [{"name": "Other", "parameters": {}},
                                    {"name": "Motion correction", "parameters": {"movie_frame_rate_hz": rate}}]}
    doc = {"processing_pipeline": processes} if nested else processes
    path = folder / "processing.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def small_movie(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_h5(tmp_path / "movie.h5", rng.integers(0, 1000, size=(37, 12, 10), dtype=np.int16))
