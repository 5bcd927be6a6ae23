"""Plane ids name output folders and reach shell scripts: any file name works end to end, and ids that would
collide with the pipeline's own outputs or with each other stop the run before any task. Stub runs: the
pipeline's plumbing only (tests/test_pipeline.py runs an odd id through the real steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_runner import NEXTFLOW, run_pipeline, task_dirs

pytestmark = [pytest.mark.nextflow, pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")]

ODD_IDS = ["plane 0", "é日本", "it's", "a$(touch PWNED)b", "-dash", "semi;colon", "star*q?", "back`touch PWNED2`",
           'dq"x', "50%"]
RATE = {"data_processes": [{"parameters": {"movie_frame_rate_hz": 9}}]}


def _allen_planes(input_dir: Path, ids: list[str]) -> None:
    """Empty movies (stubs never read them) in Allen plane folders named `ids`."""
    for plane in ids:
        folder = input_dir / plane / "decrosstalk"
        folder.mkdir(parents=True)
        (folder / f"{plane}_decrosstalk.h5").touch()
        (folder / "processing.json").write_text(json.dumps(RATE))


def test_odd_ids_reach_their_folders_and_no_shell_runs_them(tmp_path: Path) -> None:
    """Also: a loose movie beside plane folders is warned about; a stale plane folder is named, then removed with
    --remove_stale_planes (and a folder that is not a plane output is never touched)."""
    input_dir = tmp_path / "input"
    _allen_planes(input_dir, ODD_IDS)
    (input_dir / "loose.h5").touch()
    launch = tmp_path / "launch"
    stale = launch / "results" / "old plane" / "extraction"
    stale.mkdir(parents=True)
    (launch / "results" / "notes").mkdir()
    run = run_pipeline(launch, "-stub-run", "--input_dir", str(input_dir), timeout=600)
    assert run.returncode == 0, run.output
    for plane in ODD_IDS:
        assert (run.outdir / plane / "extraction" / "extraction.h5").is_file(), plane
    assert f"{input_dir}: loose.h5 not processed: with plane folders" in run.output
    assert "old plane: plane folder of an earlier run" in run.output and stale.is_dir()
    assert not list(tmp_path.rglob("PWNED*"))

    again = run_pipeline(launch, "-stub-run", "--input_dir", str(input_dir), "--remove_stale_planes", "-resume",
                         timeout=600)
    assert again.returncode == 0, again.output
    assert "Removed" in again.output and not stale.parent.exists() and (launch / "results" / "notes").is_dir()
    assert all((run.outdir / plane / "extraction").is_dir() for plane in ODD_IDS)


@pytest.mark.parametrize("ids, message", [
    (["summary.json", "p1"], "plane id 'summary.json' is the name of the pipeline's own output <outdir>/summary.json"),
    (["pipeline_info"], "plane id 'pipeline_info' is the name of the pipeline's own output <outdir>/pipeline_info"),
    (["SUMMARY.csv"], "plane id 'SUMMARY.csv' is the name of the pipeline's own output <outdir>/summary.csv"),
    (["Plane1", "plane1"], "plane ids 'Plane1' and 'plane1' would share one output folder"),
    (["e\u0301", "\u00e9"], "would share one output folder on file systems that ignore case or Unicode"),
    (["tab\there"], 'plane id "tab\\there" contains a control character'),
])
def test_colliding_or_unusable_ids_stop_before_any_task(tmp_path: Path, ids: list[str], message: str) -> None:
    input_dir = tmp_path / "input"
    _allen_planes(input_dir, ids)
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input_dir", str(input_dir), timeout=300)
    assert run.returncode == 1 and message in run.output, run.output
    assert "rename it, or link it under another name" in run.output
    assert task_dirs(tmp_path / "launch") == [] and not list((tmp_path / "launch").glob("results/*/extraction"))
