"""Bad input, through each bin/ script and through the pipeline: exit code 2, one line naming the file and the
problem, and nothing partial written."""

from __future__ import annotations

import csv
import json
import os
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


def _virtual(path: Path, source_frames: int | None) -> None:
    """`data` as a virtual dataset of GOOD's shape whose frames come from `<stem>_frames.hdf5` beside it (holding
    `source_frames` of GOOD's frames, or missing when None); .hdf5 so that it is no plane of its own."""
    source = path.with_name(f"{path.stem}_frames.hdf5")
    if source_frames is not None:
        write_h5(source, GOOD[:source_frames])
    layout = h5py.VirtualLayout(shape=GOOD.shape, dtype=GOOD.dtype)
    layout[:] = h5py.VirtualSource(source.name, "data", shape=GOOD.shape)
    with h5py.File(path, "w") as handle:
        handle.create_virtual_dataset("data", layout, fillvalue=0)


def _external_link(path: Path) -> None:
    with h5py.File(path, "w") as handle:
        handle["data"] = h5py.ExternalLink(f"{path.stem}_target.h5", "/data")


def _external_storage_short(path: Path) -> None:
    """`data` stored in a raw file beside the movie that holds only half of its bytes."""
    raw = path.with_name(f"{path.stem}.raw")
    raw.write_bytes(GOOD.tobytes()[: GOOD.nbytes // 2])
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", shape=GOOD.shape, dtype=GOOD.dtype, external=[(raw.name, 0, GOOD.nbytes)])


def _unknown_filter(path: Path) -> None:
    """Chunks written raw under HDF5 filter id 32767, which no library registers (as a movie compressed with a
    plugin this installation lacks looks)."""
    with h5py.File(path, "w") as handle:
        dset = handle.create_dataset("data", shape=GOOD.shape, dtype=GOOD.dtype, chunks=(1, *GOOD.shape[1:]),
                                     compression=32767, allow_unknown_filter=True)
        for frame in range(GOOD.shape[0]):
            dset.id.write_direct_chunk((frame, 0, 0), GOOD[frame].tobytes(), filter_mask=0)


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
    # (height, width, frames): movie.FRAMES_LAST_ASPECT's rule.
    "frames_last": (lambda p: write_h5(p, np.zeros((64, 64, 600), np.int16)),
                    "has shape (64, 64, 600), which looks frames-last (height, width, frames)"),
    "strings": (lambda p: write_h5(p, np.array([[[b"x"]]])), "non-numeric dtype"),
    "truncated": (_truncated, "cannot be read as HDF5"),
    "not_hdf5": (lambda p: p.write_text("hello"), "cannot be read as HDF5"),
    "nan": (_with_bad_value(np.nan), "frame 17 contains NaN or inf"),
    "inf": (_with_bad_value(np.inf), "frame 17 contains NaN or inf"),
    # Values stored elsewhere: HDF5 reads what is missing as zeros, which would pass for a plane without cells.
    "vds_missing_source": (lambda p: _virtual(p, None), "vds_missing_source_frames.hdf5, which does not exist"),
    "vds_short_source": (lambda p: _virtual(p, 25), "smaller than the region mapped from it"),
    "external_link_missing": (_external_link, "external link to /data in external_link_missing_target.h5, which "
                                              "does not exist"),
    "external_storage_short": (_external_storage_short, "external_storage_short.raw, which has 23040 bytes, fewer "
                                                        "than the 46080 needed"),
    "unknown_filter": (_unknown_filter, "compressed with filter unnamed (HDF5 filter id 32767), which this "
                                        "installation cannot read: install hdf5plugin"),
}


def run_script(name: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BIN / name), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess, subject: Path | str, problem: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("ERROR: "), proc.stderr
    errors = [line for line in lines if line.startswith("ERROR: ")]
    assert len(errors) == 1 and str(subject) in errors[0] and problem in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def segmentation_file(tmp_path: Path) -> Path:
    """A minimal segmentation.h5 for 24 x 24 movies: two square ROIs, with what the default classifier's features come
    from (cell probability, flows, the segmented image; the values do not matter here)."""
    masks = np.zeros((24, 24), np.int32)
    masks[3:9, 3:9] = 1
    masks[14:20, 12:18] = 2
    path = tmp_path / "segmentation.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("cellpose/masks", data=masks)
        handle.create_dataset("weights", data=np.ones((24, 24), np.float32))
        handle.create_dataset("cellpose/cellprob", data=np.where(masks > 0, 2.0, -2.0).astype(np.float32))
        handle.create_dataset("cellpose/flows", data=np.zeros((2, 24, 24), np.float32))
        handle.create_dataset("image", data=np.ones((24, 24), np.float32))
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


def test_plugin_filter_reads_and_its_absence_is_named(tmp_path: Path, segmentation_file: Path) -> None:
    """A blosc movie gives the same summary images as the plain one; where hdf5plugin cannot be imported (hidden by a
    stand-in package that raises ImportError, as in an environment without it) the step names the filter."""
    import hdf5plugin
    plain, packed = write_h5(tmp_path / "plain.h5", GOOD), tmp_path / "blosc.h5"
    with h5py.File(packed, "w") as handle:
        handle.create_dataset("data", data=GOOD, chunks=(8, 24, 24), **hdf5plugin.Blosc(cname="lz4"))
    images = {}
    for movie in (plain, packed):
        out = tmp_path / f"{movie.stem}_summary.h5"
        proc = run_script("summary_images.py", "--movie", movie, "--output", out, "--frame_rate", 10)
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out) as handle:
            images[movie.stem] = {name: handle[name][()] for name in ("meanImg", "maxImg", "meanImgE")}
    for name, image in images["plain"].items():
        np.testing.assert_array_equal(images["blosc"][name], image, err_msg=name)

    hidden = tmp_path / "without_hdf5plugin" / "hdf5plugin"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hdf5plugin is not installed here')\n")
    env = {**os.environ, "PYTHONPATH": str(hidden.parent)}
    out = tmp_path / "out" / "summary.h5"
    for script, extra in (("summary_images.py", ("--output", out, "--frame_rate", 10)),
                          ("extract.py", ("--segmentation", segmentation_file, "--output", out))):
        proc = run_script(script, "--movie", packed, *extra, env=env)
        assert_one_line_error(proc, packed, "is compressed with filter blosc (HDF5 filter id 32001), which this "
                                            "installation cannot read: install hdf5plugin")
    assert not out.parent.exists()


def test_short_movie_and_implausible_frame_rate_warn_and_run(tmp_path: Path) -> None:
    """Warned about (stderr and summary.h5's `warnings`, which reach summary.json), never refused."""
    movie = write_h5(tmp_path / "two_frames.h5", GOOD[:2])
    out = tmp_path / "summary.h5"
    proc = run_script("summary_images.py", "--movie", movie, "--output", out, "--frame_rate", "1e9")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(f"WARNING: {movie}: ")]
    with h5py.File(out) as handle:
        recorded = json.loads(handle.attrs["warnings"])
    assert len(warnings) == len(recorded) == 3
    assert "1 bin(s)" in recorded[0] and "2 frames, fewer than 100" in recorded[1] and "1e+09 Hz" in recorded[2]


def test_missing_frame_rate(tmp_path: Path) -> None:
    """The step takes the frame rate as given (the pipeline finds each plane's: lib/PlaneFinder.groovy)."""
    movie = write_h5(tmp_path / "movie.h5", GOOD)
    proc = run_script("summary_images.py", "--movie", movie, "--output", tmp_path / "summary.h5")
    assert proc.returncode == 2 and "the following arguments are required: --frame_rate" in proc.stderr
    assert not (tmp_path / "summary.h5").exists()


@pytest.mark.parametrize("rate", ["0", "-2.5"])
def test_non_positive_frame_rate(tmp_path: Path, rate: str) -> None:
    movie = write_h5(tmp_path / "movie.h5", GOOD)
    proc = run_script("summary_images.py", "--movie", movie, "--output", tmp_path / "summary.h5", "--frame_rate", rate)
    assert_one_line_error(proc, f"--frame_rate {float(rate)}", "must be > 0 (frames per second)")
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


def test_segment_diameter_beyond_the_image_is_refused_before_cellpose(tmp_path: Path, summary_file: Path) -> None:
    """A --diameter over half the image's smaller side (24 x 24 px here): one line, before any model is loaded
    (the model does not even exist), instead of Cellpose's OpenCV traceback; half the side itself passes that check."""
    out = tmp_path / "segmentation.h5"
    model = tmp_path / "absent_model"
    for diameter in ("1000", "12.5"):
        proc = run_script("segment.py", "--summary", summary_file, "--output", out, "--pretrained_model", model,
                          "--diameter", diameter)
        assert_one_line_error(proc, "--diameter", f"{diameter} px is more than half the smaller side of the "
                                                  f"plane's 24 x 24 px image ({summary_file})")
        assert not out.exists()
    proc = run_script("segment.py", "--summary", summary_file, "--output", out, "--pretrained_model", model,
                      "--diameter", "12")
    assert_one_line_error(proc, model, "not found")   # the next check


def test_saturated_movie_warns_with_its_share(tmp_path: Path) -> None:
    """int16 pixels at 32767 in more than 0.01% of the pixel-frames (counted in SUMMARY_IMAGES' one pass):
    warned about with the share, recorded in summary.h5; a share at the level, and a float movie, are not."""
    saturated = GOOD.copy()
    saturated[:, 2:6, 2:6] = np.iinfo(np.int16).max   # 16 of 576 pixels in every frame: 2.778%
    just_at = GOOD.copy()
    just_at.reshape(-1)[:2] = np.iinfo(np.int16).max  # 2 of 23040 pixel-frames: 0.0087%, under the level
    for name, data, expected in (("saturated", saturated, 640), ("at_level", just_at, 2),
                                 ("float", saturated.astype(np.float32), 0)):
        movie = write_h5(tmp_path / f"{name}.h5", data)
        out = tmp_path / f"{name}_summary.h5"
        proc = run_script("summary_images.py", "--movie", movie, "--output", out, "--frame_rate", "10",
                          "--chunk_frames", "7")
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out) as handle:
            recorded = [w for w in json.loads(handle.attrs["warnings"]) if "saturated" in w]
            assert handle.attrs["saturated_pixel_frames"] == expected
        if name == "saturated":
            assert recorded == [f"2.778% of the pixel-frames (640 of 23040) are at int16's maximum 32767, more "
                                "than 0.01%: saturated pixels, so traces through them are flat-topped (lower the "
                                "laser power or detector gain)"]
            assert f"WARNING: {movie}: {recorded[0]}" in proc.stderr
        else:
            assert recorded == [], recorded


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
    """All bad kinds in one run with --skip_bad_planes: each plane's task records its one error line, which
    summary.json/.csv and the console repeat; nothing is written for the plane; the run exits 1, or 0 with
    --allow_failed_planes."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    for kind, (make, _) in BAD_MOVIES.items():
        make(input_dir / f"{kind}.h5")
    launch = tmp_path / "launch"
    args = ("-profile", "test", "--input_dir", str(input_dir), "--frame_rate", "10", "--skip_bad_planes")
    run = run_pipeline(launch, *args, timeout=900)
    assert run.returncode == 1, run.output
    errors = {}
    for task in task_dirs(launch):
        err = (task / ".command.err").read_text() if (task / ".command.err").exists() else ""
        lines = [line for line in err.splitlines() if line.startswith("ERROR: ")]
        if lines:
            errors[Path(lines[0].split(": ")[1]).stem] = lines
            # Nothing partial in the task either: its only outputs are the reason and versions.yml.
            assert sorted(p.name for p in task.iterdir() if not p.name.startswith(".")) == \
                ["bad_input.txt", "movie", "versions.yml"], task
    summary = json.loads((run.outdir / "summary.json").read_text())
    rows = {row["plane"]: row for row in summary["planes"]}
    for kind, (_, problem) in BAD_MOVIES.items():
        assert len(errors.get(kind, [])) == 1 and problem in errors[kind][0], (kind, errors.get(kind))
        assert not (run.outdir / kind).exists()
        assert rows[kind]["status"] == "failed" and rows[kind]["error"] == errors[kind][0][len("ERROR: "):]
        assert f"plane {kind} failed: {rows[kind]['error']}" in run.output
    assert summary["totals"] == {"planes": len(BAD_MOVIES), "ok": 0, "failed": len(BAD_MOVIES), "rois": 0,
                                 "cells": 0, "rois_baseline_at_or_below_zero": 0}
    with (run.outdir / "summary.csv").open(newline="") as handle:
        csv_rows = {row["plane"]: row for row in csv.DictReader(handle)}
    assert {kind: row["error"] for kind, row in csv_rows.items()} == {k: r["error"] for k, r in rows.items()}
    assert f"0 of {len(BAD_MOVIES)} planes ok, {len(BAD_MOVIES)} failed" in run.output
    assert f"{len(BAD_MOVIES)} plane(s) failed" in run.output and "--allow_failed_planes" in run.output

    again = run_pipeline(launch, *args, "--allow_failed_planes", "-resume", timeout=900)
    assert again.returncode == 0, again.output
    assert f"0 of {len(BAD_MOVIES)} planes ok, {len(BAD_MOVIES)} failed" in again.output


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
@pytest.mark.parametrize("rate_json, message", [
    (None, "no frame rate"),
    ({"data_processes": [{"parameters": {"movie_frame_rate_hz": 0}}]}, "must be > 0 (frames per second)"),
    ({"data_processes": [{"parameters": {"movie_frame_rate_hz": -4}}]}, "must be > 0 (frames per second)"),
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
def test_pipeline_skip_bad_planes_reports_a_plane_refused_at_start(tmp_path: Path) -> None:
    """A plane without a frame rate never reaches a task; with --skip_bad_planes its reason is in summary.json
    beside that of a plane a task rejected."""
    for plane, rate in (("p1", None), ("p2", 10)):
        folder = tmp_path / "input" / plane / "decrosstalk"
        write_h5(folder / f"{plane}_decrosstalk.h5", GOOD[0] if rate else GOOD)
        if rate:
            (folder / "processing.json").write_text(json.dumps(
                {"data_processes": [{"parameters": {"movie_frame_rate_hz": rate}}]}))
    run = run_pipeline(tmp_path / "launch", "-profile", "test", "--input_dir", str(tmp_path / "input"),
                       "--skip_bad_planes", timeout=600)
    assert run.returncode == 1, run.output
    rows = {row["plane"]: row for row in json.loads((run.outdir / "summary.json").read_text())["planes"]}
    assert "p1_decrosstalk.h5: no frame rate" in rows["p1"]["error"]
    assert "p2_decrosstalk.h5: dataset 'data' has rank 2" in rows["p2"]["error"]
    assert "0 of 2 planes ok, 2 failed" in run.output and not list(run.outdir.glob("p[12]"))


def _garbage_model(path: Path) -> Path:
    path.write_text("not a model\n")
    return path


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
@pytest.mark.parametrize("model, problem", [
    (lambda d: d / "no_such_model", "model file not found"),
    (lambda d: d, "is not a file"),
    (lambda d: _garbage_model(d / "notes.txt"), "is not a PyTorch model file"),
    (lambda d: "cyto3", "no weights of a built-in Cellpose model 'cyto3'"),
])
def test_pipeline_bad_model_stops_before_any_task(tmp_path: Path, model, problem: str) -> None:
    """Checked at start, with and without --skip_bad_planes: one line naming the model, no task, exit 1. The
    built-in name is looked up where the tasks will look (an empty CELLPOSE_LOCAL_MODELS_PATH here)."""
    input_dir = tmp_path / "input"
    write_h5(input_dir / "plane.h5", GOOD)
    spec = str(model(tmp_path))
    config = tmp_path / "models.config"
    config.write_text(f"env.CELLPOSE_LOCAL_MODELS_PATH = '{tmp_path / 'empty_models'}'\n")
    for extra in ((), ("--skip_bad_planes",)):
        launch = tmp_path / f"launch{len(extra)}"
        run = run_pipeline(launch, "-c", str(config), "-profile", "test", "--input_dir", str(input_dir),
                           "--frame_rate", "10", "--pretrained_model", spec, *extra, timeout=300)
        assert run.returncode == 1
        assert f"--pretrained_model {spec}: " in run.output and problem in run.output, run.output
        assert task_dirs(launch) == [] and not (launch / "results" / "plane").exists()


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
@pytest.mark.parametrize("model, message", [
    ("cyto3", "no weights of a built-in Cellpose model 'cyto3'"),
    ("/opt/cellpose/models/ophys_cp3", "model file not found"),        # make container-test's model in the image
])
def test_pipeline_model_is_not_looked_up_here_with_a_container_profile(tmp_path: Path, model: str,
                                                                        message: str) -> None:
    """With a container profile the weights, and a model file this machine lacks, are the image's: they pass the
    start checks (the run then stops at the next check, the missing input folder, before any container starts)."""
    config = tmp_path / "models.config"
    config.write_text(f"env.CELLPOSE_LOCAL_MODELS_PATH = '{tmp_path / 'empty_models'}'\n")
    missing_input = tmp_path / "no_input"
    for profile, model_error in (("test", True), ("test,docker", False), ("test,podman", False)):
        run = run_pipeline(tmp_path / profile, "-c", str(config), "-profile", profile, "--input_dir",
                           str(missing_input), "--pretrained_model", model, timeout=300)
        assert run.returncode == 1
        assert (message in run.output) == model_error, run.output
        assert ("input directory does not exist" in run.output) != model_error, run.output


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
def test_pipeline_allow_failed_planes_needs_skip_bad_planes(tmp_path: Path) -> None:
    input_dir = tmp_path / "input"
    write_h5(input_dir / "plane.h5", GOOD)
    run = run_pipeline(tmp_path / "launch", "-profile", "test", "--input_dir", str(input_dir), "--frame_rate", "10",
                       "--allow_failed_planes", timeout=300)
    assert run.returncode == 1 and "--allow_failed_planes only applies with --skip_bad_planes" in run.output
    assert task_dirs(tmp_path / "launch") == []


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


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
def test_pipeline_failed_plane_leaves_no_earlier_results(tmp_path: Path) -> None:
    """A reused --outdir whose plane folder holds an earlier run's results, and the plane's movie has gone bad: the
    folder is moved to <plane>.stale (said in the plane's warnings, listed in stale_folders), nothing is left at
    <outdir>/<plane>, and even with -q the console names the failed plane. The next run warns about <plane>.stale
    and --remove_stale_planes removes it, and removes a failed plane's folder outright."""
    input_dir = tmp_path / "input"
    _with_bad_value(np.nan)(input_dir / "p.h5")
    outdir = tmp_path / "results"
    earlier = write_h5(outdir / "p" / "extraction" / "extraction.h5", GOOD)   # an earlier run's result
    args = ("-profile", "test", "--input_dir", str(input_dir), "--frame_rate", "10", "--skip_bad_planes",
            "--allow_failed_planes")
    run = run_pipeline(tmp_path / "launch1", *args, outdir=outdir, timeout=600, quiet=True)
    assert run.returncode == 0, run.output
    assert not (outdir / "p").exists()
    aside = outdir / "p.stale" / "extraction" / "extraction.h5"
    with h5py.File(aside) as handle:
        assert np.array_equal(handle["data"][()], GOOD)
    summary = json.loads((outdir / "summary.json").read_text())
    [row] = summary["planes"]
    assert row["status"] == "failed" and "frame 17 contains NaN or inf" in row["error"]
    assert summary["stale_folders"] == ["p.stale"]
    assert any(f"moved to {outdir / 'p.stale'}" in warning for warning in row["warnings"]), row["warnings"]
    assert "plane p failed: " in run.output and "0 of 1 planes ok, 1 failed" in run.output, run.output

    write_h5(earlier, GOOD)   # the earlier results again, beside last run's p.stale
    run = run_pipeline(tmp_path / "launch2", *args, "--remove_stale_planes", outdir=outdir, timeout=600)
    assert run.returncode == 0, run.output
    assert f"Removed {outdir}/p.stale" in run.output
    assert not (outdir / "p").exists() and not (outdir / "p.stale").exists()
    summary = json.loads((outdir / "summary.json").read_text())
    assert summary["stale_folders"] == []
    assert any("was removed (--remove_stale_planes)" in warning for warning in summary["planes"][0]["warnings"])


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 64 KiB tmpfs: room for summary.json/.csv/.html, not for a plane's results (a full disk)."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (root needed): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.nextflow
@pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")
def test_pipeline_publish_failure_fails_the_plane_with_the_os_error(tmp_path: Path, small_disk: Path) -> None:
    """--outdir on a full disk (a 64 KiB tmpfs): the plane whose results cannot be written is failed with the OS
    error, the run exits 1, summary.json/.csv say so, and summary.html links no missing file."""
    from ophys_extraction.cli.synthetic import main as synthetic_main
    session = tmp_path / "session"
    assert synthetic_main(["--out", str(session), "--n_planes", "1", "--seed", "7", "--frames", "300",
                           "--height", "128", "--width", "128", "--frame_rate", "10"]) == 0
    launch = tmp_path / "launch"
    info = launch / "pipeline_info"   # Nextflow's reports are large: kept off the small disk
    config = tmp_path / "reports.config"
    config.write_text("".join(f"{scope}.file = '{info}/{name}'\n" for scope, name in
                              (("report", "report.html"), ("timeline", "timeline.html"), ("trace", "trace.txt"),
                               ("dag", "dag.mmd"))))
    outdir = small_disk / "results"
    run = run_pipeline(launch, "-c", str(config), "-profile", "test", "--input_dir", str(session), outdir=outdir,
                       timeout=1200)
    assert run.returncode == 1, run.output
    summary = json.loads((outdir / "summary.json").read_text())
    [row] = summary["planes"]
    assert row["status"] == "failed" and row["rois"] is not None, row
    assert "could not be published (No space left on device)" in row["error"], row["error"]
    assert summary["totals"]["ok"] == 0 and summary["totals"]["failed"] == 1
    assert f"plane plane_0 failed: {row['error']}" in run.output
    with (outdir / "summary.csv").open(newline="") as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["failed"]
    assert not (outdir / "plane_0").exists()
    page = (outdir / "summary.html").read_text()
    assert "<img" not in page and 'href="plane_0/' not in page
