"""The offline Nextflow that tools/install_nextflow.sh puts into <repo>/.venv/bin/nextflow.

The pinned version is read from tools/nextflow/VERSION (the only place it is written).
Every run gets its own NXF_HOME under tmp_path, so the tests do not touch ~/.nextflow.
"""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.nextflow

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / ".venv" / "bin" / "nextflow"
PINNED_VERSION = (REPO / "tools" / "nextflow" / "VERSION").read_text().strip()

WORKFLOW = """\
params.outdir = 'results'
params.n = 2

process SAY {
    publishDir params.outdir, mode: 'copy'

    input:
    val x

    output:
    path "out_${x}.txt"

    script:
    \"\"\"
    echo "hello ${x}" > out_${x}.txt
    \"\"\"
}

workflow {
    SAY(channel.of(1..(params.n as Integer)))
}
"""


def _launcher() -> Path:
    if not LAUNCHER.exists():
        pytest.fail(f"{LAUNCHER} is missing: run `make install` (or tools/install_nextflow.sh .venv)")
    return LAUNCHER


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("NXF_VER", "NXF_CACHE_DIR", "NXF_WORK", "NXF_OPTS", "NXF_SYNTAX_PARSER"):
        env.pop(key, None)
    env.update(
        NXF_HOME=str(tmp_path / "nxf_home"),
        NXF_OFFLINE="true",
        NXF_DISABLE_CHECK_LATEST="true",
        NXF_ANSI_LOG="false",
    )
    return env


def _nextflow(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300):
    proc = subprocess.run(
        [str(_launcher()), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"nextflow {' '.join(args)} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def _trace_statuses(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return [row["status"] for row in csv.DictReader(fh, delimiter="\t")]


def test_version_is_pinned(tmp_path):
    out = _nextflow(["-version"], cwd=tmp_path, env=_env(tmp_path), timeout=120).stdout
    assert "version" in out
    if "NXF_LAUNCHER_KIND=wrapper" in _launcher().read_text():
        pytest.skip(f"launcher wraps a nextflow already on PATH; pinned {PINNED_VERSION}, got: {out.strip()}")
    assert f"version {PINNED_VERSION} " in out, out


def test_run_and_resume(tmp_path):
    env = _env(tmp_path)
    (tmp_path / "main.nf").write_text(WORKFLOW)

    first = _nextflow(["run", "main.nf", "-with-trace", "trace1.txt"], cwd=tmp_path, env=env)
    for i in (1, 2):
        assert (tmp_path / "results" / f"out_{i}.txt").read_text() == f"hello {i}\n"
    assert _trace_statuses(tmp_path / "trace1.txt") == ["COMPLETED", "COMPLETED"], first.stdout

    second = _nextflow(["run", "main.nf", "-resume", "-with-trace", "trace2.txt"], cwd=tmp_path, env=env)
    assert "Cached process > SAY" in second.stdout, second.stdout
    assert _trace_statuses(tmp_path / "trace2.txt") == ["CACHED", "CACHED"], second.stdout


@pytest.mark.parametrize("user_setting, seen", [(None, "true"), ("false", "false")])
def test_offline_is_a_default_the_user_can_override(tmp_path, user_setting, seen):
    """The launcher defaults NXF_OFFLINE to true and keeps a value the user set (e.g. false, so that Nextflow may
    download the nf-amazon plugin for AWS Batch), and likewise NXF_HOME, where Nextflow keeps its plugins."""
    env = _env(tmp_path)
    env.pop("NXF_OFFLINE")
    if user_setting is not None:
        env["NXF_OFFLINE"] = user_setting
    (tmp_path / "env.nf").write_text("println \"offline=${System.getenv('NXF_OFFLINE')} home=${System.getenv('NXF_HOME')}\"\n")
    out = _nextflow(["run", "env.nf"], cwd=tmp_path, env=env).stdout
    assert f"offline={seen} home={tmp_path / 'nxf_home'}" in out, out
