"""Bad input, through each bin/ script and through the pipeline: exit code 2, one line naming the file and the
problem, and nothing partial written."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import REPO, write_h5
from pipeline_runner import NEXTFLOW, run_pipeline, task_dirs

BIN = REPO / "bin"
GOOD = np.random.default_rng(1).integers(100, 200, size=(40, 24, 24)).astype(np.int16)


def _truncated(path: Path) -> None:
    write_h5(path, GOOD)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _with_bad_value(value: float) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        data = GOOD.astype(np.float32)
        data[17, 3, 4] = value
        write_h5(path, data)
    return make


# name -> (how to make the bad movie, what the error line says)
BAD_MOVIES: dict[str, tuple[Callable[[Path], None], str]] = {
    "no_data": (lambda p: write_h5(p, movie=GOOD), "no 'data' dataset"),
    "rank2": (lambda p: write_h5(p, GOOD[0]), "has rank 2"),
    "zero_frames": (lambda p: write_h5(p, GOOD[:0]), "has zero frames"),
    "strings": (lambda p: write_h5(p, np.array([[[b"x"]]])), "non-numeric dtype"),
    "truncated": (_truncated, "cannot be read as HDF5"),
    "not_hdf5": (lambda p: p.write_text("hello"), "cannot be read as HDF5"),
    "nan": (_with_bad_value(np.nan), "frame 17 contains NaN or inf"),
    "inf": (_with_bad_value(np.inf), "frame 17 contains NaN or inf"),
}


def run_script(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BIN / name), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, subject: Path | str, problem: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("ERROR: "), proc.stderr
    errors = [line for line in lines if line.startswith("ERROR: ")]
    assert len(errors) == 1 and str(subject) in errors[0] and problem in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def segmentation_file(tmp_path: Path) -> Path:
    """A minimal segmentation.h5 for 24 x 24 movies: two square ROIs."""
    masks = np.zeros((24, 24), np.int32)
    masks[3:9, 3:9] = 1
    masks[14:20, 12:18] = 2
    path = tmp_path / "segmentation.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("cellpose/masks", data=masks)
        handle.create_dataset("weights", data=np.ones((24, 24), np.float32))
    return path


@pytest.mark.parametrize("kind", sorted(BAD_MOVIES))
def test_summary_images_rejects_bad_movie(tmp_path: Path, kind: str) -> None:
    make, problem = BAD_MOVIES[kind]
    movie = tmp_path / f"{kind}.h5"
    make(movie)
    out = tmp_path / "out" / "summary.h5"
    proc = run_script("summary_images.py", "--movie", movie, "--output", out, "--frame_rate", 10)
    assert_one_line_error(proc, movie, problem)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.parametrize("kind", sorted(BAD_MOVIES))
def test_extract_rejects_bad_movie(tmp_path: Path, kind: str, segmentation_file: Path) -> None:
    make, problem = BAD_MOVIES[kind]
    movie = tmp_path / f"{kind}.h5"
    make(movie)
    out = tmp_path / "out" / "traces.h5"
    proc = run_script("extract.py", "--movie", movie, "--segmentation", segmentation_file, "--output", out)
    assert_one_line_error(proc, movie, problem)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_missing_frame_rate(tmp_path: Path) -> None:
    movie = write_h5(tmp_path / "movie.h5", GOOD)
    proc = run_script("summary_images.py", "--movie", movie, "--output", tmp_path / "summary.h5")
    assert_one_line_error(proc, movie, "no frame rate")


@pytest.mark.parametrize("rate", ["0", "-2.5"])
def test_non_positive_frame_rate(tmp_path: Path, rate: str) -> None:
    movie = write_h5(tmp_path / "movie.h5", GOOD)
    proc = run_script("summary_images.py", "--movie", movie, "--output", tmp_path / "summary.h5", "--frame_rate", rate)
    assert_one_line_error(proc, "--frame_rate", "must be a positive number")
    assert not (tmp_path / "summary.h5").exists()


def test_unwritable_output_folder(tmp_path: Path, segmentation_file: Path) -> None:
    movie = write_h5(tmp_path / "movie.h5", GOOD)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "summary.h5"
    proc = run_script("summary_images.py", "--movie", movie, "--output", out, "--frame_rate", 10)
    assert_one_line_error(proc, blocker, "output folder")
    proc = run_script("extract.py", "--movie", movie, "--segmentation", segmentation_file, "--output",
                      blocker / "traces.h5")
    assert_one_line_error(proc, blocker, "output folder")


@pytest.fixture
def summary_file(tmp_path: Path) -> Path:
    movie = write_h5(tmp_path / "movie.h5", GOOD)
    out = tmp_path / "summary.h5"
    proc = run_script("summary_images.py", "--movie", movie, "--output", out, "--frame_rate", 10)
    assert proc.returncode == 0, proc.stderr
    return out


def test_segment_missing_model_path(tmp_path: Path, summary_file: Path) -> None:
    model = tmp_path / "models" / "absent_model"
    out = tmp_path / "segmentation.h5"
    proc = run_script("segment.py", "--summary", summary_file, "--output", out, "--pretrained_model", model)
    assert_one_line_error(proc, model, "not found")
    assert not out.exists()


def test_segment_unreadable_model_file(tmp_path: Path, summary_file: Path) -> None:
    model = tmp_path / "garbage_model"
    model.write_bytes(b"\x00not a torch file" * 10)
    out = tmp_path / "segmentation.h5"
    proc = run_script("segment.py", "--summary", summary_file, "--output", out, "--pretrained_model", model)
    assert_one_line_error(proc, model, "cannot be loaded")
    assert not out.exists()


def test_segment_builtin_model_without_weights_says_why(tmp_path: Path, summary_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "empty_models"))
    proc = run_script("segment.py", "--summary", summary_file, "--output", tmp_path / "s.h5",
                      "--pretrained_model", "cyto3")
    assert_one_line_error(proc, "cyto3", "offline")
    assert "--pretrained_model" in proc.stderr


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
def test_pipeline_reports_every_bad_movie_and_writes_nothing_for_it(tmp_path: Path) -> None:
    """All bad kinds in one run with --skip_bad_planes: each plane's failed task ends with its one error line."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    for kind, (make, _) in BAD_MOVIES.items():
        make(input_dir / f"{kind}.h5")
    run = run_pipeline(tmp_path / "launch", "-profile", "test", "--input_dir", str(input_dir),
                       "--frame_rate", "10", "--skip_bad_planes", timeout=900)
    assert run.returncode == 0, run.output
    errors = {}
    for task in task_dirs(tmp_path / "launch"):
        err = (task / ".command.err").read_text() if (task / ".command.err").exists() else ""
        lines = [line for line in err.splitlines() if line.startswith("ERROR: ")]
        if lines:
            errors[Path(lines[0].split(": ")[1]).stem] = lines
    for kind, (_, problem) in BAD_MOVIES.items():
        assert len(errors.get(kind, [])) == 1 and problem in errors[kind][0], (kind, errors.get(kind))
        assert not (run.outdir / kind / "extraction").exists()
    rows = json.loads((run.outdir / "summary.json").read_text())["planes"]
    assert {row["plane"]: row["status"] for row in rows} == {kind: "failed" for kind in BAD_MOVIES}


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
@pytest.mark.parametrize("rate_json, message", [
    (None, "no frame rate"),
    ({"data_processes": [{"parameters": {"movie_frame_rate_hz": 0}}]}, "frame rate must be a positive number"),
    ({"data_processes": [{"parameters": {"movie_frame_rate_hz": -4}}]}, "frame rate must be a positive number"),
])
def test_pipeline_frame_rate_problems_stop_before_any_task(tmp_path: Path, rate_json, message: str) -> None:
    plane = tmp_path / "input" / "p1" / "decrosstalk"
    write_h5(plane / "p1_decrosstalk.h5", GOOD)
    if rate_json is not None:
        (plane / "processing.json").write_text(json.dumps(rate_json))
    run = run_pipeline(tmp_path / "launch", "-profile", "test", "--input_dir", str(tmp_path / "input"), timeout=300)
    assert run.returncode != 0 and message in run.output and "p1" in run.output
    assert task_dirs(tmp_path / "launch") == []


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
def test_pipeline_unreadable_model_fails_with_its_path(tmp_path: Path) -> None:
    input_dir = tmp_path / "input"
    write_h5(input_dir / "plane.h5", GOOD)
    model = tmp_path / "no_such_model"
    run = run_pipeline(tmp_path / "launch", "-profile", "test", "--input_dir", str(input_dir), "--frame_rate", "10",
                       "--pretrained_model", str(model), timeout=600)
    assert run.returncode != 0
    assert f"ERROR: {model}" in run.output and "not found" in run.output
    assert not list((tmp_path / "launch" / "results").glob("*/extraction/extraction.h5"))


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
def test_pipeline_unwritable_outdir_stops(tmp_path: Path) -> None:
    input_dir = tmp_path / "input"
    write_h5(input_dir / "plane.h5", GOOD)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    run = run_pipeline(tmp_path / "launch", "-profile", "test", "--input_dir", str(input_dir), "--frame_rate", "10",
                       outdir=blocker / "results", timeout=600)
    assert run.returncode != 0
    assert str(blocker) in run.output
