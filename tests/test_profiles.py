"""Every profile resolves with `nextflow config` (awsbatch is only resolved, never run: its plugin is not here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from pipeline_runner import NEXTFLOW, nextflow_env

pytestmark = [pytest.mark.nextflow, pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")]


def config(tmp_path: Path, profile: str, extra_config: str = "") -> str:
    """`nextflow config -profile PROFILE`; `extra_config` is config text layered on top (as `-c` would be)."""
    extra = tmp_path / "extra.config"
    extra.write_text(extra_config)
    proc = subprocess.run([str(NEXTFLOW), "-c", str(extra), "config", str(REPO), "-profile", profile], cwd=tmp_path,
                          env=nextflow_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("profile, expected", [
    ("standard", ["executor = 'local'", "/.venv/bin:$PATH"]),
    ("test", ["demo_data", "assets/models/ophys_cp3"]),
    ("docker", ["enabled = true", "readOnlyInputs = true", "-u $(id -u):$(id -g)",
                "ophys-extraction-segmentation:0.1.0", "ophys-extraction-extraction:0.1.0"]),
    ("podman", ["enabled = true", "readOnlyInputs = true", "--network none", "ophys-extraction-segmentation:0.1.0",
                "ophys-extraction-extraction:0.1.0"]),
    ("apptainer", ["autoMounts = true", "ophys-extraction-extraction:0.1.0"]),
    ("gpu", ["accelerator = 1"]),
    ("awsbatch", ["executor = 'awsbatch'", "cliPath = '/home/ec2-user/miniconda/bin/aws'", "region = 'us-west-2'"]),
])
def test_profile_resolves(tmp_path: Path, profile: str, expected: list[str]) -> None:
    text = config(tmp_path, profile)
    for fragment in expected:
        assert fragment in text, f"{profile}: {fragment!r} not in\n{text}"


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_container_tasks_use_the_images_environment_even_with_the_test_profile(tmp_path: Path, engine: str) -> None:
    """`test` points PATH at the host's .venv, which Nextflow mounts into the container with the demo's inputs."""
    text = config(tmp_path, f"test,{engine}")
    assert "PATH = '$PATH'" in text and ".venv/bin" not in text, text


def test_awsbatch_queues_come_from_params(tmp_path: Path) -> None:
    text = config(tmp_path, "awsbatch,gpu,docker",
                  "params.aws_cpu_queue = 'cpu-q'\nparams.aws_gpu_queue = 'gpu-q'\nparams.aws_region = 'eu-west-1'\n")
    assert "queue = 'cpu-q'" in text and "queue = 'gpu-q'" in text and "region = 'eu-west-1'" in text


def test_config_defaults_match_the_schema(tmp_path: Path) -> None:
    """nextflow.config's params and nextflow_schema.json's defaults say the same thing."""
    import json
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    defaults = {name: spec.get("default") for group in schema["$defs"].values()
                for name, spec in group["properties"].items()}
    proc = subprocess.run([str(NEXTFLOW), "config", str(REPO), "-flat"], cwd=tmp_path, env=nextflow_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    flat = dict(line.split(" = ", 1) for line in proc.stdout.splitlines() if line.startswith("params."))
    for name, default in defaults.items():
        value = flat.get(f"params.{name}")
        if default is None:
            assert value in (None, "null"), name
        elif isinstance(default, str):
            assert value == f"'{default}'", (name, value, default)
        else:
            assert value is not None and json.loads(value.lower()) == default, (name, value, default)
