"""Numba kernels are compiled once, not per task: Cellpose's eagerly compiled kernels go to numba's cache
(NUMBA_CACHE_DIR when set), and after `ophys-extraction warm-up` neither SEGMENT nor EXTRACT compiles anything.

numba's own cache log (NUMBA_DEBUG_CACHE=1) is the evidence: "data saved" means a kernel was compiled and
written, "data loaded" that it came from the cache. Each check is a fresh process, like a pipeline task.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from conftest import MODEL, REPO, write_h5, write_summary

BIN = REPO / "bin"


def run_python(args: list[str], **env: str) -> str:
    """stdout + stderr of a fresh Python process with numba's cache log on; fails the test on a non-zero exit."""
    proc = subprocess.run([sys.executable, *args], env={**os.environ, "NUMBA_DEBUG_CACHE": "1", **env},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def saved_kernels(log: str) -> list[str]:
    return [line for line in log.splitlines() if "[cache] data saved" in line]


def test_cellpose_kernels_are_cached_in_numba_cache_dir(tmp_path: Path) -> None:
    cache = tmp_path / "numba_cache"
    code = "import ophys_extraction, cellpose.dynamics"
    first = run_python(["-c", code], NUMBA_CACHE_DIR=str(cache))
    assert any("steps2D" in line for line in saved_kernels(first)), first      # compiled once, into the cache
    assert list(cache.glob("cellpose_*/dynamics.steps2D-*.nbi"))
    second = run_python(["-c", code], NUMBA_CACHE_DIR=str(cache))
    assert saved_kernels(second) == [], second                                   # nothing compiled again
    assert "dynamics.steps2D" in second and "[cache] data loaded" in second


def test_no_step_compiles_after_warm_up(tmp_path: Path) -> None:
    """The local executor's case (numba's default locations: __pycache__ beside the sources)."""
    run_python(["-c", "import sys; from ophys_extraction.cli import main; sys.exit(main(['warm-up']))"])
    summary, seg = tmp_path / "summary.h5", tmp_path / "seg.h5"
    write_summary(summary, seed=7, size=64)
    log = run_python([str(BIN / "segment.py"), "--summary", str(summary), "--output", str(seg),
                      "--pretrained_model", str(MODEL), "--device", "cpu"])
    assert saved_kernels(log) == [], log
    with h5py.File(seg) as handle:
        assert handle["cellpose/masks"][()].max() > 0, "no ROI: EXTRACT would not run its kernels"
    movie = write_h5(tmp_path / "movie.h5", np.random.default_rng(0).integers(0, 1000, (40, 64, 64), np.int16))
    log = run_python([str(BIN / "extract.py"), "--movie", str(movie), "--segmentation", str(seg),
                      "--output", str(tmp_path / "traces.h5")])
    assert saved_kernels(log) == [], log
