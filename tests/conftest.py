"""Shared fixtures: small movie files and the repository paths tests need."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MODULES_CONFIG = (REPO / "conf" / "modules.config").read_text()


def config_block(process: str) -> str:
    """The text of `withName: '<process>' { ... }` in conf/modules.config (up to the next withName); empty for a
    process without one (MERGE: no options, and its results are published by main.nf)."""
    match = re.search(rf"^\s*withName: '{process}' \{{(.*?)(?=^\s*withName:|\Z)", MODULES_CONFIG, re.S | re.M)
    return match.group(1) if match else ""


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


@pytest.fixture(scope="session")
def demo_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo (make demo-data); generated here if the checkout has not made it yet."""
    bundled = REPO / "demo_data"
    if (bundled / ".complete").exists():
        return bundled
    from ophys_extraction.cli.synthetic import main as synthetic_main
    out = tmp_path_factory.mktemp("demo") / "demo_data"
    assert synthetic_main(["--out", str(out), "--n_planes", "2", "--seed", "20261124"]) == 0
    return out


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_input: Path):
    """One uninterrupted local run of the demo, shared by the tests that compare other runs with it."""
    from pipeline_runner import run_pipeline  # imports this module: not at the top
    return run_pipeline(tmp_path_factory.mktemp("demo_run"), "-profile", "test", "--input_dir", str(demo_input))
