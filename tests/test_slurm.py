"""The demo on a real SLURM cluster with the slurm profile: a single-node cluster on this machine
(tools/slurm/start_cluster.sh, which installs Debian's slurm-wlm and munge if missing), every task submitted with
sbatch and found in SLURM's job-completion log (`sacct -c`), outputs valid and equal to the local run's.

Skipped, with the start script's reason, where no cluster can be started (not root, no apt-get); `make slurm-test`
sets OPHYS_REQUIRE_SLURM=1, which turns that skip into a failure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from pipeline_runner import NEXTFLOW, assert_same_extractions, run_pipeline, task_dirs, trace_rows

pytestmark = [pytest.mark.nextflow, pytest.mark.slow,
              pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")]

SLURM_TOOLS = REPO / "tools" / "slurm"
# Nextflow looks for finished jobs every 5 s by default; once a second keeps the test's idle time down.
FAST_POLLING = """\
executor.'$slurm'.pollInterval = '1 sec'
executor.'$slurm'.queueStatInterval = '10 sec'
"""


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    """SLURM_CONF of a running cluster: started here (and stopped afterwards) unless one already runs."""
    proc = subprocess.run([str(SLURM_TOOLS / "start_cluster.sh")], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        reason = f"no SLURM cluster: {(proc.stderr.strip().splitlines() or ['start_cluster.sh failed'])[-1]}"
        if os.environ.get("OPHYS_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    started_here = "already running" not in proc.stderr
    name, _, value = proc.stdout.strip().splitlines()[-1].partition("=")
    assert name == "SLURM_CONF" and Path(value).exists(), proc.stdout
    yield {"SLURM_CONF": value}
    if started_here:
        subprocess.run([str(SLURM_TOOLS / "stop_cluster.sh")], check=True, timeout=120)


def sacct_jobs(slurm_env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Finished jobs from SLURM's job-completion log, by job id."""
    proc = subprocess.run(["sacct", "-c", "--parsable2", "--noheader", "--format=JobID,JobName,State,ExitCode"],
                          env=os.environ | slurm_env, capture_output=True, text=True, timeout=60, check=True)
    rows = [line.split("|") for line in proc.stdout.splitlines() if line]
    return {job_id: {"name": name, "state": state, "exit": code} for job_id, name, state, code in rows}


def fast_polling_config(root: Path) -> Path:
    config = root / "fast_polling.config"
    config.write_text(FAST_POLLING)
    return config


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory: pytest.TempPathFactory, slurm_env: dict[str, str], demo_input: Path):
    """The demo as a user runs it on a cluster (`-profile slurm`, tasks in the project's .venv), with the test
    profile's model."""
    root = tmp_path_factory.mktemp("slurm")
    return run_pipeline(root / "launch", "-profile", "slurm", "-c", str(fast_polling_config(root)),
                        "--input_dir", str(demo_input), "--pretrained_model", str(REPO / "assets/models/ophys_cp3"),
                        extra_env=slurm_env)


def test_every_task_is_a_slurm_job(slurm_run, slurm_env: dict[str, str]) -> None:
    assert slurm_run.returncode == 0, slurm_run.output
    rows = trace_rows(slurm_run.outdir)
    assert len(rows) == 9 and {row["status"] for row in rows} == {"COMPLETED"}, rows
    jobs = sacct_jobs(slurm_env)
    for row in rows:
        job = jobs.get(row["native_id"])
        assert job is not None, f"{row['name']}: job {row['native_id']} is not in `sacct -c`"
        assert job["name"].startswith(f"nf-{row['process']}") and job["state"] == "COMPLETED" \
            and job["exit"] == "0:0", (row, job)
    for task in task_dirs(slurm_run.launch_dir):
        header = (task / ".command.run").read_text()
        assert "#SBATCH -t " in header and "#SBATCH --mem " in header, task
        assert "--gres" not in header, f"{task}: the demo must not ask this GPU-less cluster for a GPU"


def test_slurm_outputs_equal_the_local_run(slurm_run, demo_run) -> None:
    assert slurm_run.returncode == 0 and demo_run.returncode == 0
    assert_same_extractions(slurm_run.outdir, demo_run.outdir)

def test_gpu_profile_asks_slurm_for_a_gpu(tmp_path: Path, slurm_env: dict[str, str]) -> None:
    """With the gpu profile SEGMENT's job asks for a GPU in --slurm_gpu_queue; the other jobs stay in --slurm_queue
    without one. This cluster has no GPU, so sbatch refuses SEGMENT's job and the (stub) run stops there."""
    (tmp_path / "in").mkdir()
    for plane in ("p1", "p2"):
        (tmp_path / "in" / f"{plane}.h5").touch()  # stubs never open it
    run = run_pipeline(tmp_path / "launch", "-stub-run", "-profile", "test,slurm,gpu",
                       "-c", str(fast_polling_config(tmp_path)), "--input_dir", str(tmp_path / "in"),
                       "--frame_rate", "10", "--slurm_queue", "main", "--slurm_gpu_queue", "gpu",
                       "--slurm_account", "lab", extra_env=slurm_env, timeout=600)
    assert run.returncode != 0 and "sbatch: error:" in run.output, run.output
    headers = [(task / ".command.run").read_text() for task in task_dirs(tmp_path / "launch")]
    segment = [header for header in headers if "#SBATCH -J nf-SEGMENT_" in header]
    others = [header for header in headers if "#SBATCH -J nf-SEGMENT_" not in header]
    assert segment and others, headers
    for header in segment:
        assert "#SBATCH --gres=gpu:1" in header and "#SBATCH -p gpu\n" in header and "#SBATCH -A lab" in header
    for header in others:
        assert "--gres" not in header and "#SBATCH -p main\n" in header and "#SBATCH -A lab" in header
