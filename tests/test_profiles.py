"""Every profile resolves with `nextflow config` (awsbatch is only resolved, never run: its plugin is not here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from pipeline_runner import NEXTFLOW, nextflow_env

pytestmark = [pytest.mark.nextflow, pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")]


def config(tmp_path: Path, profile: str, extra_config: str = "", *options: str) -> str:
    """`nextflow config -profile PROFILE OPTIONS`; `extra_config` is config text layered on top (as `-c` would be)."""
    extra = tmp_path / "extra.config"
    extra.write_text(extra_config)
    proc = subprocess.run([str(NEXTFLOW), "-c", str(extra), "config", str(REPO), "-profile", profile, *options],
                          cwd=tmp_path,
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
    ("slurm", ["executor = 'slurm'", "slurm_time_single", "/.venv/bin:$PATH"]),
    ("awsbatch", ["executor = 'awsbatch'", "cliPath = '/home/ec2-user/miniconda/bin/aws'", "region = 'us-west-2'"]),
])
def test_profile_resolves(tmp_path: Path, profile: str, expected: list[str]) -> None:
    text = config(tmp_path, profile)
    for fragment in expected:
        assert fragment in text, f"{profile}: {fragment!r} not in\n{text}"


def flat_config(tmp_path: Path, profile: str, extra_config: str = "") -> dict[str, str]:
    """`nextflow config -flat`: option name -> value as Nextflow prints it (closures as their source text)."""
    lines = config(tmp_path, profile, extra_config, "-flat").splitlines()
    flat: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(" = ")
        if sep and not line[:1].isspace():
            flat[name] = value
        elif flat:  # a closure printed over several lines
            flat[next(reversed(flat))] += "\n" + line
    return flat


def test_awsbatch_gpu_resolves_queues_containers_accelerator_and_retries(tmp_path: Path) -> None:
    defaults = flat_config(tmp_path, "awsbatch,gpu")
    expected = {
        "process.executor": "'awsbatch'",
        "process.container": "'ophys-extraction-extraction:0.1.0'",
        "process.'withName:SEGMENT'.container": "'ophys-extraction-segmentation:0.1.0'",
        "process.'withLabel:process_gpu'.accelerator": "1",
        "process.maxRetries": "2",
        "aws.batch.maxSpotAttempts": "3",
        "aws.region": "'us-west-2'",
    }
    assert {name: defaults.get(name) for name in expected} == expected
    assert "task.exitStatus in ((130..145) + 104 + 175) ? 'retry'" in defaults["process.errorStrategy"]
    assert "task.exitStatus == 2 && params.skip_bad_planes ? 'ignore' : 'terminate'" in defaults["process.errorStrategy"]
    for label in ("process_single", "process_gpu"):
        assert "task.attempt" in defaults[f"process.'withLabel:{label}'.memory"], label
    # `nextflow config` takes no --params and reads -c files after nextflow.config, so the params are given the way
    # `nextflow run --aws_cpu_queue ...` gives them: known before conf/awsbatch.config is read.
    given = {"aws_cpu_queue": "'cpu-q'", "aws_gpu_queue": "'gpu-q'", "aws_region": "'eu-west-1'",
             "aws_cli_path": "'/opt/aws/bin/aws'", "aws_max_spot_attempts": "5"}
    extra = "".join(f"params.{name} = {value}\n" for name, value in given.items())
    resolved = flat_config(tmp_path, "awsbatch,gpu", f"{extra}includeConfig '{REPO}/conf/awsbatch.config'\n")
    expected = {
        "process.queue": "'cpu-q'",
        "process.'withLabel:process_gpu'.queue": "'gpu-q'",
        "aws.region": "'eu-west-1'",
        "aws.batch.cliPath": "'/opt/aws/bin/aws'",
        "aws.batch.maxSpotAttempts": "5",
    }
    assert {name: resolved.get(name) for name in expected} == expected


def test_slurm_profile(tmp_path: Path) -> None:
    flat = flat_config(tmp_path, "slurm")
    assert flat["process.executor"] == "'slurm'"
    for label, param in (("process_single", "slurm_time_single"), ("process_low", "slurm_time_low")):
        assert param in flat[f"process.'withLabel:{label}'.time"] and "task.attempt" in flat[f"process.'withLabel:{label}'.time"]
        assert f"process.'withLabel:{label}'.cpus" in flat and f"process.'withLabel:{label}'.memory" in flat, label
    # The GPU request is tied to the accelerator, which only the gpu profile sets.
    assert "process.'withLabel:process_gpu'.accelerator" not in flat
    assert flat["process.'withLabel:process_gpu'.clusterOptions"] == "{ task.accelerator ? params.slurm_gpu_options : '' }"
    assert flat_config(tmp_path, "slurm,gpu")["process.'withLabel:process_gpu'.accelerator"] == "1"


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_container_tasks_use_the_images_environment_even_with_the_test_profile(tmp_path: Path, engine: str) -> None:
    """`test` points PATH at the host's .venv, which Nextflow mounts into the container with the demo's inputs."""
    text = config(tmp_path, f"test,{engine}")
    assert "PATH = '$PATH'" in text and ".venv/bin" not in text, text


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
