"""Retries through the real Nextflow (local executor): a step killed with SIGKILL on its first attempt is retried
with more memory and the run's outputs equal an uninterrupted run's; a bad movie (exit 2) is never retried."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, write_h5
from pipeline_runner import NEXTFLOW, assert_same_extractions, run_pipeline, task_dirs, trace_rows

pytestmark = [pytest.mark.nextflow, pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")]

# A stand-in for bin/extract.py, put first on the tasks' PATH by the test's own config. The first call for each
# movie starts the real step and kills it with SIGKILL 3 s later (inside its imports), as the out-of-memory killer
# or a lost node would; every later call is the real step alone.
KILL_FIRST_ATTEMPT = """\
#!/usr/bin/env bash
movie=
previous=
for arg in "$@"; do [[ "$previous" == --movie ]] && movie=$arg; previous=$arg; done
if mkdir "$KILL_ONCE_STATE/$(basename "$movie")" 2>/dev/null; then
    ( sleep 3; kill -KILL $$ ) > /dev/null 2>&1 &
fi
exec "$KILL_ONCE_REAL" "$@"
"""


@pytest.fixture(scope="module")
def killed_then_retried(tmp_path_factory: pytest.TempPathFactory, demo_input: Path):
    root = tmp_path_factory.mktemp("retry")
    wrappers, state = root / "wrappers", root / "state"
    wrappers.mkdir()
    state.mkdir()
    wrapper = wrappers / "extract.py"
    wrapper.write_text(KILL_FIRST_ATTEMPT)
    wrapper.chmod(0o755)
    config = root / "kill_once.config"
    config.write_text(textwrap.dedent(f"""\
        env.PATH = "{wrappers}:{REPO}/.venv/bin:\\$PATH"
        env.KILL_ONCE_STATE = "{state}"
        env.KILL_ONCE_REAL = "{REPO}/bin/extract.py"
    """))
    # --max_memory 10.GB: the second attempt's 2 x 6 GB is capped (process.resourceLimits).
    return run_pipeline(root / "launch", "-profile", "test", "-c", str(config), "--input_dir", str(demo_input),
                        "--max_memory", "10.GB")


def test_killed_task_is_retried_with_more_memory_up_to_the_limit(killed_then_retried) -> None:
    run = killed_then_retried
    assert run.returncode == 0, run.output
    extract = [row for row in trace_rows(run.outdir) if row["process"] == "EXTRACT"]
    for plane in ("plane_0", "plane_1"):
        attempts = sorted((row for row in extract if row["tag"] == plane), key=lambda row: int(row["attempt"]))
        assert [(row["attempt"], row["status"], row["exit"]) for row in attempts] == [
            ("1", "FAILED", "137"), ("2", "COMPLETED", "0")], attempts
        assert [row["memory"] for row in attempts] == ["6 GB", "10 GB"], attempts
    assert "Process `EXTRACT (plane_0)` terminated with an error exit status (137) -- Execution is retried (1)" in run.output


def test_retried_run_equals_an_uninterrupted_one(killed_then_retried, demo_run) -> None:
    assert killed_then_retried.returncode == 0 and demo_run.returncode == 0
    assert_same_extractions(killed_then_retried.outdir, demo_run.outdir)

@pytest.mark.parametrize("skip_bad_planes", [False, True])
def test_bad_movie_fails_once_and_is_never_retried(tmp_path: Path, skip_bad_planes: bool) -> None:
    input_dir = tmp_path / "input"
    write_h5(input_dir / "bad.h5", np.zeros((64, 64), np.int16))
    run = run_pipeline(tmp_path / "launch", "-profile", "test", "--input_dir", str(input_dir), "--frame_rate", "10",
                       *(["--skip_bad_planes"] if skip_bad_planes else []), timeout=600)
    assert "Execution is retried" not in run.output
    summary_tasks = [d for d in task_dirs(tmp_path / "launch") if "summary_images.py" in (d / ".command.sh").read_text()]
    assert len(summary_tasks) == 1 and (summary_tasks[0] / ".exitcode").read_text().strip() == "2"
    assert "bad.h5: dataset 'data' has rank 2" in (summary_tasks[0] / ".command.err").read_text()
    rows = [row for row in trace_rows(run.outdir) if row["process"] == "SUMMARY_IMAGES"]
    assert [(row["attempt"], row["status"], row["exit"]) for row in rows] == [("1", "FAILED", "2")], rows
    if skip_bad_planes:
        assert run.returncode == 0, run.output
        planes = json.loads((run.outdir / "summary.json").read_text())["planes"]
        assert [(row["plane"], row["status"]) for row in planes] == [("bad", "failed")]
    else:
        assert run.returncode != 0
        assert not (run.outdir / "summary.json").exists()


def test_resource_limits_cap_every_request(tmp_path: Path, demo_input: Path) -> None:
    run = run_pipeline(tmp_path, "-stub-run", "-profile", "test", "--input_dir", str(demo_input),
                       "--max_cpus", "1", "--max_memory", "5.GB", timeout=300)
    assert run.returncode == 0, run.output
    rows = trace_rows(run.outdir)
    assert len(rows) == 9 and {(row["cpus"], row["memory"]) for row in rows} == {("1", "5 GB")}, rows
