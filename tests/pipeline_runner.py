"""Running the real Nextflow on the project's main.nf from tests, hermetically (own NXF_HOME, work and launch dirs)."""

from __future__ import annotations

import csv
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


from conftest import REPO
from ophys_extraction.validation import validate

NEXTFLOW = REPO / ".venv" / "bin" / "nextflow"


@dataclass
class Run:
    returncode: int
    output: str
    launch_dir: Path
    outdir: Path


def nextflow_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NXF_")}
    env.update(NXF_HOME=str(home / "nxf_home"), NXF_OFFLINE="true", NXF_ANSI_LOG="false")
    return env


def command(launch_dir: Path, *args: str, outdir: Path | None = None, quiet: bool = False) -> list[str]:
    outdir = outdir or launch_dir / "results"
    return [str(NEXTFLOW), *(["-q"] if quiet else []), "-log", str(launch_dir / "nextflow.log"), "run",
            str(REPO / "main.nf"), "--outdir", str(outdir), *args]


def run_pipeline(launch_dir: Path, *args: str, outdir: Path | None = None, timeout: float = 1800,
                 extra_env: Mapping[str, str] | None = None, quiet: bool = False) -> Run:
    """`nextflow [-q] run main.nf --outdir OUTDIR ARGS` from `launch_dir` (OUTDIR defaults to <launch_dir>/results);
    `output` is stdout and stderr together; `extra_env` is added to Nextflow's environment; `quiet`: Nextflow's -q."""
    launch_dir.mkdir(parents=True, exist_ok=True)
    outdir = outdir or launch_dir / "results"
    env = nextflow_env(launch_dir) | dict(extra_env or {})
    proc = subprocess.run(command(launch_dir, *args, outdir=outdir, quiet=quiet), cwd=launch_dir, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return Run(proc.returncode, proc.stdout, launch_dir, outdir)


def trace_rows(outdir: Path) -> list[dict[str, str]]:
    """The rows of the run's latest execution trace (pipeline_info/execution_trace_*.txt), one per task attempt."""
    trace = sorted((outdir / "pipeline_info").glob("execution_trace_*.txt"))[-1]
    with trace.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def task_dirs(launch_dir: Path) -> list[Path]:
    """Work directories of the tasks Nextflow started (each has a .command.sh)."""
    work = launch_dir / "work"
    return sorted(p.parent for p in work.glob("*/*/.command.sh")) if work.exists() else []


def assert_same_extractions(outdir: Path, reference: Path) -> None:
    """Every plane's extraction.h5 under `outdir` is valid, and bit-identical in every dataset to the one under
    `reference` (the same planes)."""
    from ophys_extraction.compare import compare_outputs
    results = compare_outputs(reference, outdir)
    assert results, f"no extraction.h5 under {reference}"
    for plane, comparison in results.items():
        assert comparison.identical, (plane, comparison.problems)
        assert validate(outdir / plane / "extraction" / "extraction.h5") == [], plane