"""Running the real Nextflow on the project's main.nf from tests, hermetically (own NXF_HOME, work and launch dirs)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO

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


def command(launch_dir: Path, *args: str, outdir: Path | None = None) -> list[str]:
    outdir = outdir or launch_dir / "results"
    return [str(NEXTFLOW), "-log", str(launch_dir / "nextflow.log"), "run", str(REPO / "main.nf"),
            "--outdir", str(outdir), *args]


def run_pipeline(launch_dir: Path, *args: str, outdir: Path | None = None, timeout: float = 1800) -> Run:
    """`nextflow run main.nf --outdir OUTDIR ARGS` from `launch_dir` (OUTDIR defaults to <launch_dir>/results);
    `output` is stdout and stderr together."""
    launch_dir.mkdir(parents=True, exist_ok=True)
    outdir = outdir or launch_dir / "results"
    proc = subprocess.run(command(launch_dir, *args, outdir=outdir), cwd=launch_dir, env=nextflow_env(launch_dir),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return Run(proc.returncode, proc.stdout, launch_dir, outdir)


def task_dirs(launch_dir: Path) -> list[Path]:
    """Work directories of the tasks Nextflow started (each has a .command.sh)."""
    work = launch_dir / "work"
    return sorted(p.parent for p in work.glob("*/*/.command.sh")) if work.exists() else []
