"""The pipeline through the real Nextflow (local executor): stub run, demo end to end, resume, interruption,
determinism (a samplesheet run against a folder run), a step option set on the command line, parameter checks and
bad planes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import (METADATA, MODEL, REPO, assert_equal_to_extraction, critical_findings, gui_io,
                      read_like_allen_tools, read_nwb, write_h5, write_processing_json)
from ophys_extraction.compare import compare_files
from ophys_extraction.validation import validate
from pipeline_runner import (NEXTFLOW, assert_same_extractions, command, nextflow_env, run_pipeline, task_dirs,
                             trace_rows)

pytestmark = [pytest.mark.nextflow, pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")]

TEST_PROFILE = ("-profile", "test")
DEMO_PLANES = ("plane_0", "plane_1")          # the plane folders of make demo-data


def test_stub_run_needs_no_python(tmp_path: Path) -> None:
    for plane in ("p1", "p2"):
        movie = tmp_path / "in" / plane / "decrosstalk" / f"{plane}_decrosstalk.h5"
        movie.parent.mkdir(parents=True)
        movie.touch()  # stubs never open it
        (movie.parent / "processing.json").write_text('{"data_processes": [{"parameters": {"movie_frame_rate_hz": 9}}]}')
    env_path = ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p)
    launch = tmp_path / "launch"
    launch.mkdir()
    env = nextflow_env(launch) | {"PATH": env_path}
    proc = subprocess.run(command(launch, "-stub-run", "-profile", "standard", "--input_dir", str(tmp_path / "in"),
                                  "--nwb"),
                          cwd=launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout
    for plane in ("p1", "p2"):
        for name in ("extraction.h5", f"{plane}_extraction.h5", f"{plane}.nwb"):
            assert (launch / "results" / plane / "extraction" / name).exists()
    assert (launch / "results" / "summary.json").exists() and (launch / "results" / "summary.html").exists()


def stub_input(folder: Path) -> Path:
    """An --input_dir of one plane, p1, for stub runs (an empty movie: stubs never open it; 9 Hz)."""
    movie = folder / "p1" / "decrosstalk" / "p1_decrosstalk.h5"
    movie.parent.mkdir(parents=True)
    movie.touch()
    write_processing_json(movie.parent, 9.0)
    return folder


def test_resume_reruns_the_step_whose_model_or_classfile_changed_in_place(tmp_path: Path) -> None:
    """A model file (with its size model) or a classfile changed at the same path is not a cached result: -resume
    reruns SEGMENT, or EXTRACT, as Nextflow does for a changed staged file (same size and modification-time rule);
    unchanged, both are cached. Stub runs: only the tasks' hashes matter."""
    from ophys_extraction import classify
    stub_input(tmp_path / "in")
    models = tmp_path / "models"
    models.mkdir()
    model = models / MODEL.name
    for source in (MODEL, Path(f"{MODEL}_size.npy")):
        shutil.copy2(source, models / source.name)
    classfile = tmp_path / "my_classifier.npy"
    shutil.copy2(classify.BUNDLED_CLASSFILE, classfile)
    launch = tmp_path / "launch"

    def statuses() -> dict[str, str]:
        run = run_pipeline(launch, "-stub-run", "--input_dir", str(tmp_path / "in"), "--pretrained_model", str(model),
                           "--classifier", str(classfile), "-resume", timeout=300)
        assert run.returncode == 0, run.output
        return {row["process"]: row["status"] for row in trace_rows(run.outdir)}

    def touch(path: Path) -> None:
        later = path.stat().st_mtime + 60
        os.utime(path, (later, later))

    assert statuses()["SEGMENT"] == "COMPLETED"
    assert {statuses()[p] for p in ("SEGMENT", "EXTRACT")} == {"CACHED"}
    touch(Path(f"{model}_size.npy"))
    after_model = statuses()
    assert (after_model["SEGMENT"], after_model["SUMMARY_IMAGES"]) == ("COMPLETED", "CACHED")
    touch(classfile)
    after_classfile = statuses()
    assert (after_classfile["EXTRACT"], after_classfile["SEGMENT"]) == ("COMPLETED", "CACHED")


def test_a_run_stops_before_writing_over_a_curated_plane(tmp_path: Path) -> None:
    """A plane folder in --outdir that holds a curation (apply-curation's curation.json): the run stops at start
    with one line naming the folder and what to do, exit 1, and the folder is left as it was. Stub run."""
    record = tmp_path / "results" / "p1" / "extraction" / "curation.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"curation": []}')
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input_dir", str(stub_input(tmp_path / "in")),
                       outdir=tmp_path / "results", timeout=300)
    assert run.returncode == 1
    assert f"{tmp_path / 'results' / 'p1'}: holds a curation (extraction/curation.json" in run.output, run.output
    assert [p.relative_to(record.parents[1]) for p in record.parents[1].rglob("*")] == [
        Path("extraction"), Path("extraction/curation.json")]
    assert not (tmp_path / "results" / "summary.json").exists()


def test_a_run_stops_before_writing_over_an_unapplied_gui_curation(tmp_path: Path) -> None:
    """A plane's suite2p/plane0/iscell.npy that is not the one its iscell.npy.sha256 records (suite2p's GUI saved a
    curation there, not yet applied): the run stops at start with one line naming the file and what to do, exit 1,
    and the folder is left as it was. With the digest matching, the same run goes ahead. Stub runs."""
    folder = tmp_path / "results" / "p1" / "suite2p" / "plane0"
    folder.mkdir(parents=True)
    (folder / "iscell.npy").write_bytes(b"as the pipeline wrote it")
    written = hashlib.sha256(b"as the pipeline wrote it").hexdigest()
    (folder / "iscell.npy.sha256").write_text(f"{written}  iscell.npy\n")
    (folder / "iscell.npy").write_bytes(b"as suite2p's GUI saved it")
    inputs = stub_input(tmp_path / "in")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input_dir", str(inputs), outdir=tmp_path / "results",
                       timeout=300)
    assert run.returncode == 1
    assert (f"{tmp_path / 'results' / 'p1'}/suite2p/plane0/iscell.npy: changed since the pipeline wrote it"
            in run.output), run.output
    assert sorted(p.name for p in folder.iterdir()) == ["iscell.npy", "iscell.npy.sha256"]
    assert (folder / "iscell.npy").read_bytes() == b"as suite2p's GUI saved it"
    assert not (tmp_path / "results" / "summary.json").exists()
    (folder / "iscell.npy").write_bytes(b"as the pipeline wrote it")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input_dir", str(inputs), "--suite2p_folder",
                       outdir=tmp_path / "results", timeout=300)
    assert run.returncode == 0, run.output
    assert (folder / "iscell.npy.sha256").read_text() == (
        f"{hashlib.sha256((folder / 'iscell.npy').read_bytes()).hexdigest()}  iscell.npy\n")


def test_resume_reruns_every_step_after_the_code_changed(tmp_path: Path) -> None:
    """The steps import the package (src/ophys_extraction), which Nextflow does not hash: its digest is in every
    plane's meta, so after the code changed -resume reruns the steps; unchanged, they are cached. A copy of the
    project's pipeline files (main.nf, its config, lib, modules, bin, src), run as stubs."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("main.nf", "nextflow.config", "nextflow_schema.json", "conf", "lib", "modules", "bin", "src"):
        source = REPO / name
        (shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__")) if source.is_dir()
         else shutil.copy2(source, project / name))
    (project / "assets").symlink_to(REPO / "assets")   # the default model
    stub_input(tmp_path / "in")
    launch = tmp_path / "launch"
    launch.mkdir()

    def statuses() -> set[str]:
        args = [str(NEXTFLOW), "-log", str(launch / "nextflow.log"), "run", str(project / "main.nf"), "-stub-run",
                "--input_dir", str(tmp_path / "in"), "--outdir", str(launch / "results"), "-resume"]
        proc = subprocess.run(args, cwd=launch, env=nextflow_env(launch), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout
        return {row["status"] for row in trace_rows(launch / "results") if row["process"] != "SESSION_SUMMARY"}

    assert statuses() == {"COMPLETED"}
    assert statuses() == {"CACHED"}
    with (project / "src" / "ophys_extraction" / "traces.py").open("a") as handle:
        handle.write("# a change\n")
    assert statuses() == {"COMPLETED"}


def test_demo_end_to_end(demo_run, demo_input: Path) -> None:
    assert demo_run.returncode == 0, demo_run.output
    planes = sorted(path.name for path in demo_input.iterdir() if path.is_dir())
    assert planes == list(DEMO_PLANES)
    for plane in planes:
        folder = demo_run.outdir / plane / "extraction"
        assert validate(folder / "extraction.h5") == [], plane
        assert validate(folder / f"{plane}_extraction.h5") == [], plane
        with h5py.File(folder / "extraction.h5", "r") as f:
            assert f["corrImg"].shape == f["meanImg"].shape and 0 < f["corrImg"][()].max() <= 1   # optional in the
            assert "rois/origin" not in f                                                           # schema, not here
        assert (folder / "detected_ROIs.png").stat().st_size > 10_000
        assert not (folder / f"{plane}.nwb").exists()      # only with --nwb
        with h5py.File(folder / "extraction.h5") as handle:
            n_rois, n_frames = handle["traces/corrected"].shape
            assert n_rois > 10  # the demo planes have dozens of cells
            assert handle.attrs["plane_id"] == plane
    summary = json.loads((demo_run.outdir / "summary.json").read_text())
    assert [row["plane"] for row in summary["planes"]] == planes
    assert all(row["status"] == "ok" and row["rois"] > 0 and row["runtime_seconds"] > 0 for row in summary["planes"])
    for row in summary["planes"]:
        with h5py.File(demo_run.outdir / row["plane"] / "extraction" / "extraction.h5") as handle:
            assert row["rois_baseline_at_or_below_zero"] == int(handle["traces/baseline_at_or_below_zero"][()].sum())
    overview = (demo_run.outdir / "summary.html").read_text(encoding="utf-8")
    assert all(f'src="{row["plane"]}/extraction/detected_ROIs.png"' in overview for row in summary["planes"])
    info = demo_run.outdir / "pipeline_info"
    for pattern in ("execution_report_*.html", "execution_timeline_*.html", "execution_trace_*.txt",
                    "pipeline_dag_*.mmd"):
        assert list(info.glob(pattern)), pattern
    versions = (info / "software_versions.yml").read_text()
    for process in ("SUMMARY_IMAGES", "SEGMENT", "EXTRACT", "MERGE"):
        assert f'"{process}":' in versions
    assert "suite2p: 1." in versions and "cellpose: 3.1" in versions


def test_task_logs_are_the_steps_own_lines(demo_run) -> None:
    """No third-party noise in the task logs (suite2p used to log a pynwb notice in every EXTRACT), and SEGMENT
    reports its phases."""
    assert demo_run.returncode == 0, demo_run.output
    tasks = task_dirs(demo_run.launch_dir)
    assert len(tasks) == 9
    for task in tasks:
        assert (task / ".command.err").read_text() == "", task
    segment_logs = [(t / ".command.out").read_text() for t in tasks if "segment.py" in (t / ".command.sh").read_text()]
    assert len(segment_logs) == 2
    for log in segment_logs:
        assert all(f"{phase} " in log for phase in ("imports", "model load", "network", "dynamics", "writing")), log


def test_resume_reuses_every_task(demo_run, demo_input: Path) -> None:
    assert demo_run.returncode == 0
    again = run_pipeline(demo_run.launch_dir, *TEST_PROFILE, "--input_dir", str(demo_input), "-resume")
    assert again.returncode == 0, again.output
    trace = sorted((again.outdir / "pipeline_info").glob("execution_trace_*.txt"))[-1].read_text().splitlines()
    statuses = [line.split("\t")[6] for line in trace[1:]]
    per_plane = [s for line, s in zip(trace[1:], statuses) if "SESSION_SUMMARY" not in line]
    assert len(per_plane) == 8 and set(per_plane) == {"CACHED"}, trace


def test_demo_output_reads_as_the_allen_institute_tools_read_it(demo_run, demo_input: Path) -> None:
    """Through <plane>_extraction.h5 and the newer locations, as the original capsule's downstream tools read it."""
    for plane in DEMO_PLANES:
        folder = demo_run.outdir / plane / "extraction"
        read_like_allen_tools(folder / f"{plane}_extraction.h5", folder / "extraction.h5")


def _trace_rows(run) -> list[tuple[str, str]]:
    """(process, status) of every task of the run's latest trace file."""
    lines = sorted((run.outdir / "pipeline_info").glob("execution_trace_*.txt"))[-1].read_text().splitlines()
    return [(line.split("\t")[3], line.split("\t")[6]) for line in lines[1:]]


def test_nwb_on_resume_runs_only_the_nwb_step(demo_run, demo_input: Path, tmp_path: Path) -> None:
    """--nwb turned on later: every earlier task is reused, one NWB task per plane runs, and each NWB file is
    valid (pynwb's validator, no critical nwbinspector finding) and equal to its extraction.h5."""
    from pynwb import validate as nwb_validate

    assert demo_run.returncode == 0
    metadata = tmp_path / "session.json"
    metadata.write_text(json.dumps(METADATA))
    run = run_pipeline(demo_run.launch_dir, *TEST_PROFILE, "--input_dir", str(demo_input), "-resume", "--nwb",
                       "--nwb_indicator", "GCaMP6f", "--nwb_location", "VISp", "--nwb_pixel_size", "0.78",
                       "--nwb_metadata", str(metadata), outdir=demo_run.launch_dir / "results_nwb")
    assert run.returncode == 0, run.output
    rows = _trace_rows(run)
    assert sorted(status for process, status in rows if process.startswith("NWB")) == ["COMPLETED"] * 2, rows
    assert {status for process, status in rows if not process.startswith(("NWB", "SESSION_SUMMARY"))} == {"CACHED"}
    for plane in DEMO_PLANES:
        folder = run.outdir / plane / "extraction"
        out = folder / f"{plane}.nwb"
        assert nwb_validate(path=str(out)) == [] and critical_findings(out) == []
        got = assert_equal_to_extraction(out, folder / "extraction.h5")
        assert got["plane"]["indicator"] == "GCaMP6f" and got["subject"]["subject_id"] == "mouse-1"


@pytest.mark.slow
def test_suite2p_folder_curation_and_aind_records_on_the_demo(demo_run, demo_input: Path, tmp_path: Path) -> None:
    """--suite2p_folder (and --nwb) turned on later: one SUITE2P_FOLDER task per plane runs; each plane's
    suite2p/plane0 is read back by suite2p's GUI reader; a curation of a copy of plane_0 goes back into its
    extraction.h5, NWB file and figure; MERGE's data-process records and SESSION_SUMMARY's quality-control record
    are valid for aind-data-schema's models."""
    from aind_data_schema.core.processing import DataProcess
    from aind_data_schema.core.quality_control import QualityControl

    assert demo_run.returncode == 0
    run = run_pipeline(demo_run.launch_dir, *TEST_PROFILE, "--input_dir", str(demo_input), "-resume", "--nwb",
                       "--suite2p_folder", "--suite2p_tau", "0.7", outdir=demo_run.launch_dir / "results_suite2p")
    assert run.returncode == 0, run.output
    rows = _trace_rows(run)
    assert sorted(status for process, status in rows if process.startswith("SUITE2P_FOLDER")) == ["COMPLETED"] * 2
    assert {status for process, status in rows if process.startswith(("SUMMARY_IMAGES", "SEGMENT", "EXTRACT",
                                                                       "MERGE"))} == {"CACHED"}
    load_files = gui_io().load_files
    summary = json.loads((run.outdir / "summary.json").read_text())
    assert [row["status"] for row in summary["planes"]] == ["ok", "ok"]
    for plane, row in zip(DEMO_PLANES, summary["planes"]):
        extraction = run.outdir / plane / "extraction" / "extraction.h5"
        stat, ops, F, Fneu, spks, iscell = load_files(str(run.outdir / plane / "suite2p" / "plane0" / "stat.npy"))[:6]
        with h5py.File(extraction, "r") as f:
            np.testing.assert_array_equal(F, f["traces/roi"][()])
            np.testing.assert_array_equal(iscell, f["iscell"][()][:, 0].astype(bool))
            assert len(stat) == row["rois"] and ops["tau"] == 0.7 and ops["fs"] == f.attrs["frame_rate"]
        process = DataProcess.model_validate_json(
            (run.outdir / plane / "extraction" / f"{plane}_extraction_data_process.json").read_text())
        assert process.output_parameters.model_dump()["rois"] == row["rois"]
        assert process.code.input_data[0].url.endswith(f"{plane}_decrosstalk.h5")
        assert process.start_date_time < process.end_date_time
    qc = QualityControl.model_validate_json((run.outdir / "quality_control.json").read_text())
    assert {m.name: m.value for m in qc.metrics}["plane_1 ROIs"] == summary["planes"][1]["rois"]

    # Curation of a copy of plane_0, as suite2p's GUI saves it, through the command line.
    plane = tmp_path / "plane_0"
    shutil.copytree(run.outdir / "plane_0", plane)
    curated = np.load(plane / "suite2p" / "plane0" / "iscell.npy")
    curated[:, 0] = 1 - curated[:, 0]
    np.save(plane / "suite2p" / "plane0" / "iscell.npy", curated)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ophys-extraction"), "apply-curation", str(plane)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "rewrote extraction.h5, plane_0.nwb, detected_ROIs.png, plane_0_extraction.h5" in proc.stdout
    assert validate(plane / "extraction" / "plane_0_extraction.h5") == []
    with h5py.File(plane / "extraction" / "extraction.h5", "r") as f:
        np.testing.assert_array_equal(f["iscell"][()], curated)
        np.testing.assert_array_equal(f["iscell_original"][()][:, 0], 1 - curated[:, 0])
    np.testing.assert_array_equal(read_nwb(plane / "extraction" / "plane_0.nwb")["columns"]["iscell"], curated)
    assert (plane / "extraction" / "detected_ROIs.png").read_bytes() != \
        (run.outdir / "plane_0" / "extraction" / "detected_ROIs.png").read_bytes()


@pytest.mark.slow
def test_functional_detection_alone_and_added_to_cellpose(demo_run, demo_input: Path) -> None:
    """--detection sparsery runs FUNCTIONAL_DETECTION instead of SEGMENT; cellpose+sparsery runs it after SEGMENT
    (cached from the demo run) and keeps every Cellpose ROI first; rois/origin says which is which."""
    assert demo_run.returncode == 0
    with h5py.File(demo_run.outdir / "plane_0" / "extraction" / "extraction.h5", "r") as f:
        n_cellpose = f["traces/corrected"].shape[0]
    for detection, origins in (("sparsery", {1}), ("cellpose+sparsery", {0, 1})):
        run = run_pipeline(demo_run.launch_dir, *TEST_PROFILE, "--input_dir", str(demo_input), "-resume",
                           "--detection", detection, outdir=demo_run.launch_dir / f"results_{detection}")
        assert run.returncode == 0, run.output
        rows = _trace_rows(run)
        assert sorted(status for process, status in rows
                      if process.startswith("FUNCTIONAL_DETECTION")) == ["COMPLETED"] * 2
        segment = {status for process, status in rows if process.startswith("SEGMENT")}
        assert segment == (set() if detection == "sparsery" else {"CACHED"})
        extraction = run.outdir / "plane_0" / "extraction" / "extraction.h5"
        assert validate(extraction) == []
        with h5py.File(extraction, "r") as f:
            origin = f["rois/origin"][()]
            assert set(np.unique(origin)) <= origins and len(origin) > 0
            functional = origin == 1   # scored by suite2p's builtin classifier, made for functional ROIs
            np.testing.assert_array_equal(f["iscell"][()][functional], f["iscell_suite2p"][()][functional])
            if detection != "sparsery":
                assert (origin[:n_cellpose] == 0).all()   # Cellpose's ROIs first, as in the Cellpose-only run


def test_link_file_survives_every_publish_mode(demo_run, demo_input: Path) -> None:
    """<plane>_extraction.h5 reached through each link-making --publish_dir_mode (the default copy is the demo run):
    still a valid alias of its extraction.h5, read as the Allen Institute's tools read it."""
    assert demo_run.returncode == 0
    for mode in ("symlink", "rellink", "link", "copyNoFollow"):
        run = run_pipeline(demo_run.launch_dir, *TEST_PROFILE, "--input_dir", str(demo_input), "-resume",
                           "--publish_dir_mode", mode, outdir=demo_run.launch_dir / f"results_{mode}")
        assert run.returncode == 0, run.output
        for plane in DEMO_PLANES:
            folder = run.outdir / plane / "extraction"
            alias = folder / f"{plane}_extraction.h5"
            assert validate(alias) == [], (mode, validate(alias))
            read_like_allen_tools(alias, demo_run.outdir / plane / "extraction" / "extraction.h5")


def _demo_samplesheet(data: Path, demo_input: Path) -> Path:
    """The demo's planes as a samplesheet (the other input form): the movies linked into `data`/movies and listed by
    relative path; plane_0's frame rate in its row, plane_1's from a processing.json beside its link."""
    movies = data / "movies"
    movies.mkdir(parents=True)
    for plane in ("plane_0", "plane_1"):
        (movies / f"{plane}.h5").symlink_to(demo_input / plane / "decrosstalk" / f"{plane}_decrosstalk.h5")
    write_processing_json(movies, 10.0)
    sheet = data / "samplesheet.csv"
    sheet.write_text("plane_id,movie,frame_rate\nplane_0,movies/plane_0.h5,10\nplane_1,movies/plane_1.h5,\n")
    return sheet


def _interrupt_during_extract(launch: Path, *args: str) -> None:
    """Start the pipeline and kill it (SIGKILL, the whole process group) once an EXTRACT task is running."""
    launch.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command(launch, *TEST_PROFILE, *args), cwd=launch,
                            env=nextflow_env(launch), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            running = [d for d in task_dirs(launch) if "extract.py" in (d / ".command.sh").read_text()
                       and (d / ".command.begin").exists()]
            if running:
                time.sleep(2)  # well inside the extraction
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before EXTRACT could be interrupted"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory: pytest.TempPathFactory, demo_input: Path):
    """The demo from a samplesheet (<launch>/../data), killed during EXTRACT, then resumed."""
    root = tmp_path_factory.mktemp("interrupted")
    sheet = _demo_samplesheet(root / "data", demo_input)
    launch = root / "launch"
    _interrupt_during_extract(launch, "--input", str(sheet))
    # EXTRACT was running when the run was killed, so at least one plane has no extraction.h5; a plane that
    # finished before is complete (valid), and no partial file is left in the outdir.
    finished = list((launch / "results").glob("*/extraction/extraction.h5"))
    assert len(finished) < 2, finished
    assert all(not validate(path) for path in finished)
    assert not [p for p in (launch / "results").rglob("*") if ".tmp" in p.name or ".pending" in p.name]
    return run_pipeline(launch, *TEST_PROFILE, "--input", str(sheet), "-resume")


def test_killed_run_resumes_and_reuses_finished_tasks(interrupted_then_resumed) -> None:
    run = interrupted_then_resumed
    assert run.returncode == 0, run.output
    trace = sorted((run.outdir / "pipeline_info").glob("execution_trace_*.txt"))[-1].read_text()
    cached = [line for line in trace.splitlines() if "\tCACHED\t" in line]
    assert any("SUMMARY_IMAGES" in line for line in cached) and any("SEGMENT" in line for line in cached), trace
    for plane in ("extraction.h5", "detected_ROIs.png"):
        assert len(list(run.outdir.glob(f"*/extraction/{plane}"))) == 2


def test_runs_are_deterministic(demo_run, interrupted_then_resumed) -> None:
    """Two independent runs, one from the input folder, the other from a samplesheet of the same movies and
    interrupted and resumed, give identical datasets."""
    assert_same_extractions(interrupted_then_resumed.outdir, demo_run.outdir)


def _plane_0_again_with(run, name: str, *args: str):
    """(run, EXTRACT's command) of plane_0 of `run` resumed with `args` into <launch>/<name>: only EXTRACT and MERGE
    run again."""
    assert run.returncode == 0, run.output
    sheet = run.launch_dir.parent / "data" / f"plane_0_{name}.csv"
    sheet.write_text("plane_id,movie,frame_rate\nplane_0,movies/plane_0.h5,10\n")
    again = run_pipeline(run.launch_dir, *TEST_PROFILE, "--input", str(sheet), *args, "-resume",
                         outdir=run.launch_dir / name)
    assert again.returncode == 0, again.output
    status = {row["process"]: row for row in trace_rows(again.outdir) if row["process"] != "SESSION_SUMMARY"}
    assert {process: row["status"] for process, row in status.items()} == {
        "SUMMARY_IMAGES": "CACHED", "SEGMENT": "CACHED", "EXTRACT": "COMPLETED", "MERGE": "COMPLETED"}
    [extract_dir] = (run.launch_dir / "work").glob(status["EXTRACT"]["hash"] + "*")
    return again, (extract_dir / ".command.sh").read_text()


def test_extract_option_reaches_the_step_and_changes_its_output(interrupted_then_resumed) -> None:
    """--inner_neuropil_radius (a suite2p setting of EXTRACT) given on the command line is in EXTRACT's command
    (conf/modules.config ext.args), moves the neuropil masks and nothing else about the ROIs; -resume reruns only
    EXTRACT and MERGE (the option is part of their task hash)."""
    run = interrupted_then_resumed
    wider, extract_command = _plane_0_again_with(run, "radius6", "--inner_neuropil_radius", "6")
    assert "--inner_neuropil_radius 6 " in extract_command
    comparison = compare_files(run.outdir / "plane_0" / "extraction" / "extraction.h5",
                               wider.outdir / "plane_0" / "extraction" / "extraction.h5")
    differing = {problem.split(":")[0] for problem in comparison.problems}
    assert {"neuropil_coords", "traces/neuropil"} <= differing, comparison.problems
    assert not differing & {"rois/coords", "rois/data", "traces/roi", "cellpose/masks"}, comparison.problems


def test_a_rerun_leaves_no_result_of_an_earlier_run_beside_its_own(interrupted_then_resumed) -> None:
    """A plane's folder holds this run's results only: the files an earlier run with other options wrote there (an
    NWB file, a suite2p folder) and this run did not are moved to <plane>.stale (said in the plane's warnings, listed
    in stale_folders), or removed with --remove_stale_planes. plane_0 of the demo, resumed (only the new steps run)."""
    run = interrupted_then_resumed
    assert run.returncode == 0, run.output
    sheet = run.launch_dir.parent / "data" / "plane_0_rerun.csv"
    sheet.write_text("plane_id,movie,frame_rate\nplane_0,movies/plane_0.h5,10\n")
    outdir = run.launch_dir / "rerun"

    def again(*args: str) -> dict:
        rerun = run_pipeline(run.launch_dir, *TEST_PROFILE, "--input", str(sheet), *args, "-resume", outdir=outdir)
        assert rerun.returncode == 0, rerun.output
        return json.loads((outdir / "summary.json").read_text())

    again("--nwb", "--suite2p_folder")
    plane = outdir / "plane_0"
    assert (plane / "extraction" / "plane_0.nwb").exists() and (plane / "suite2p" / "plane0" / "stat.npy").exists()
    summary = again()
    assert sorted(f.name for f in plane.rglob("*")) == [
        "detected_ROIs.png", "extraction", "extraction.h5", "plane_0_extraction.h5",
        "plane_0_extraction_data_process.json"]
    aside = outdir / "plane_0.stale"
    assert (aside / "extraction" / "plane_0.nwb").exists() and (aside / "suite2p" / "plane0" / "stat.npy").exists()
    assert summary["stale_folders"] == ["plane_0.stale"]
    [row] = summary["planes"]
    assert row["status"] == "ok" and any(f"moved to {aside}" in w for w in row["warnings"]), row["warnings"]

    (plane / "extraction" / "notes.txt").write_text("not a result of the pipeline")
    summary = again("--remove_stale_planes")
    assert not (plane / "extraction" / "notes.txt").exists() and not aside.exists()
    assert summary["stale_folders"] == []
    assert any("notes.txt) were removed (--remove_stale_planes)" in w for w in summary["planes"][0]["warnings"])


def test_classifier_parameter_reaches_extract(interrupted_then_resumed) -> None:
    """--classifier suite2p reaches EXTRACT (quoted in its command), reruns only EXTRACT and MERGE with -resume, and
    makes iscell suite2p's builtin answer, which the default run keeps as iscell_suite2p."""
    run = interrupted_then_resumed
    builtin, extract_command = _plane_0_again_with(run, "classifier_suite2p", "--classifier", "suite2p")
    assert "--classifier suite2p " in extract_command
    with h5py.File(builtin.outdir / "plane_0" / "extraction" / "extraction.h5", "r") as new, \
            h5py.File(run.outdir / "plane_0" / "extraction" / "extraction.h5", "r") as default:
        np.testing.assert_array_equal(new["iscell"][()], new["iscell_suite2p"][()])
        np.testing.assert_array_equal(new["iscell"][()], default["iscell_suite2p"][()])
        assert default["iscell"][:, 0].sum() > new["iscell"][:, 0].sum()


@pytest.mark.parametrize("args, message", [
    (("--anatomical_only", "7"), "--anatomical_only 7: must be one of 1, 2, 3, 4, 5"),
    (("--lam_percentile", "150"), "--lam_percentile 150: must be in [0, 100] (suite2p: a percentile)"),
    (("--flow_threshold", "-1", "--max_overlap", "2"), "--max_overlap 2: must be in [0, 1]"),  # both named
    (("--flow_threshold", "-1", "--max_overlap", "2"), "--flow_threshold -1: must be >= 0"),
    (("--extract_threads", "1.5"), "--extract_threads 1.5: must be a whole number"),
    (("--soma_crop", "maybe"), "--soma_crop maybe: must be true or false"),
    (("--diamter", "12"), "unknown parameter --diamter"),
    (("--frame_rate", "-3"), "--frame_rate -3: must be > 0"),
    (("--flow_threshold", "high"), "--flow_threshold high: must be a finite number"),
    (("--nwb_metadata", "session.json"), "--nwb_metadata only applies with --nwb"),
    (("--nwb", "--nwb_metadata", "no-such.json"), "no-such.json: file does not exist"),
    # The NWB step's own reader, asked at start (ophys-extraction check-start).
    (("--nwb", "--nwb_metadata", str(REPO / "nextflow_schema.json")), "unknown key(s) $defs, $schema, allOf"),
    (("--nwb", "--publish_dir_mode", "move"), "--publish_dir_mode move cannot be used with --nwb"),
    # EXTRACT's classfile reader, asked at start.
    (("--classifier", "no-such-classifier.npy"), "no-such-classifier.npy is not a file"),
    (("--classifier", str(REPO / "nextflow_schema.json")), "not a suite2p classfile"),
])
def test_bad_parameter_stops_before_any_task(tmp_path: Path, demo_input: Path, args, message: str) -> None:
    run = run_pipeline(tmp_path, *TEST_PROFILE, "--input_dir", str(demo_input), *args, timeout=300)
    assert run.returncode != 0
    assert message in run.output
    assert task_dirs(tmp_path) == []


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "input directory does not exist"),
    (lambda d: d.mkdir(), "no movies found"),
])
def test_bad_input_dir_stops_before_any_task(tmp_path: Path, setup, message: str) -> None:
    input_dir = tmp_path / "input"
    setup(input_dir)
    run = run_pipeline(tmp_path / "launch", *TEST_PROFILE, "--input_dir", str(input_dir), timeout=300)
    assert run.returncode != 0 and message in run.output and str(input_dir) in run.output
    assert task_dirs(tmp_path / "launch") == []


# A plane id that a shell would split, expand or run: it must reach every step and the summary unchanged.
ODD_ID = "good plane 'é' $(touch pwned);`touch pwned2`"


@pytest.fixture(scope="module")
def one_good_one_bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small good plane with an odd name and a plane whose movie has rank 2, as plain files."""
    from ophys_extraction.cli.synthetic import main as synthetic_main
    root = tmp_path_factory.mktemp("mixed")
    session = root / "session"
    assert synthetic_main(["--out", str(session), "--n_planes", "1", "--seed", "7", "--frames", "300",
                           "--height", "128", "--width", "128", "--frame_rate", "10"]) == 0
    input_dir = root / "input"
    input_dir.mkdir()
    (input_dir / f"{ODD_ID}.h5").symlink_to(session / "plane_0" / "decrosstalk" / "plane_0_decrosstalk.h5")
    write_h5(input_dir / "bad.h5", np.zeros((64, 64), np.int16))
    return input_dir, 10.0


def test_bad_movie_fails_its_plane_with_a_clear_message(tmp_path: Path, one_good_one_bad) -> None:
    input_dir, rate = one_good_one_bad
    run = run_pipeline(tmp_path, *TEST_PROFILE, "--input_dir", str(input_dir), "--frame_rate", str(rate))
    assert run.returncode != 0
    assert "bad.h5: dataset 'data' has rank 2" in run.output
    assert not (run.outdir / "bad" / "extraction" / "extraction.h5").exists()
    assert not list(run.outdir.glob("bad/**/*.h5"))


def test_skip_bad_planes_reports_and_finishes_the_rest(tmp_path: Path, one_good_one_bad) -> None:
    """The odd id end to end; the bad plane's reason in summary.json and on the console; a plane folder of an
    earlier run named as stale; exit 0 only because --allow_failed_planes says so."""
    input_dir, rate = one_good_one_bad
    earlier = tmp_path / "results" / "old plane" / "extraction" / "extraction.h5"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("from an earlier run")
    # A model path relative to the launch folder: tasks run elsewhere (their work folders) and still find it.
    model = os.path.relpath(MODEL, tmp_path)
    run = run_pipeline(tmp_path, *TEST_PROFILE, "--input_dir", str(input_dir), "--frame_rate", str(rate),
                       "--skip_bad_planes", "--allow_failed_planes", "--pretrained_model", model, "--nwb")
    assert run.returncode == 0, run.output
    extraction = run.outdir / ODD_ID / "extraction" / "extraction.h5"
    assert validate(extraction) == [] and validate(extraction.parent / f"{ODD_ID}_extraction.h5") == []
    assert (extraction.parent / f"{ODD_ID}.nwb").stat().st_size > 0
    with h5py.File(extraction) as handle:
        assert handle.attrs["plane_id"] == ODD_ID
    assert not (run.outdir / "bad").exists()
    summary = json.loads((run.outdir / "summary.json").read_text(encoding="utf-8"))
    rows = {row["plane"]: row for row in summary["planes"]}
    assert list(rows) == ["bad", ODD_ID]
    assert rows[ODD_ID]["status"] == "ok" and rows[ODD_ID]["error"] is None
    # 300 frames at 10 Hz are 8 bins of 3.7 s: warned about, in the summary and on the console.
    assert len(rows[ODD_ID]["warnings"]) == 1 and "fewer than 10" in rows[ODD_ID]["warnings"][0]
    assert f"plane {ODD_ID}: {rows[ODD_ID]['warnings'][0]}" in run.output
    assert rows["bad"]["status"] == "failed" and "bad.h5: dataset 'data' has rank 2" in rows["bad"]["error"]
    assert f"plane bad failed: {rows['bad']['error']}" in run.output
    assert "1 of 2 planes ok, 1 failed" in run.output
    assert summary["stale_folders"] == ["old plane"] and "old plane: plane folder of an earlier run" in run.output
    assert earlier.exists()
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))


def _max_concurrency(trace_file: Path) -> int:
    """Most tasks running at once, from the trace's start/complete timestamps."""
    lines = trace_file.read_text().splitlines()
    header = lines[0].split("\t")
    events = []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t")))
        if row["status"] == "COMPLETED":
            events += [(row["start"], 1), (row["complete"], -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_eight_planes_finish_and_use_both_cores(tmp_path: Path) -> None:
    from ophys_extraction.cli.synthetic import main as synthetic_main
    session = tmp_path / "session"
    assert synthetic_main(["--out", str(session), "--n_planes", "8", "--seed", "11", "--frames", "200",
                           "--height", "96", "--width", "96"]) == 0
    run = run_pipeline(tmp_path / "launch", *TEST_PROFILE, "--input_dir", str(session))
    assert run.returncode == 0, run.output
    assert len(list(run.outdir.glob("*/extraction/extraction.h5"))) == 8
    trace = sorted((run.outdir / "pipeline_info").glob("execution_trace_*.txt"))[-1]
    assert _max_concurrency(trace) >= 2
