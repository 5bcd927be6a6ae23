"""How options reach the steps (docs/architecture.md): nextflow_schema.json -> params -> conf/modules.config ext.args
-> the step's command line. Modules read no params; every option of a step's script is given by its module or by
modules.config; every step parameter of the schema is used there. tests/test_pipeline.py runs one through."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import MODULES_CONFIG, REPO, config_block

SCRIPTS = {"SUMMARY_IMAGES": "summary_images.py", "SEGMENT": "segment.py", "EXTRACT": "extract.py",
           "MERGE": "merge.py", "SUITE2P_FOLDER": "export_suite2p.py"}
# Options of a step's script that the pipeline does not give, and why.
NOT_FROM_THE_PIPELINE = {
    "help": "prints the help",
    "params_json": "merge.py run by hand: records a parameter set; the pipeline's parameters are in pipeline_info/",
}
# Parameters that reach their step as a process input in main.nf rather than through modules.config, and why.
PROCESS_INPUTS = {"pretrained_model": "SEGMENT's `model` input: a path is text that the module quotes"}
STEP_GROUPS = ("summary_images", "segmentation", "extraction")


def _options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--([a-z][a-z0-9_]*)", text))


def _config_options(process: str) -> set[str]:
    """Options modules.config can give the process: literal --name, and the names of a list it turns into --name."""
    block = config_block(process)
    lists = re.findall(r"\[([\s',a-z0-9_]+)\]\s*\.findAll \{ params\[it\] != null \}\.collect \{ \"--\$\{it\} ", block)
    return _options(block) | {name for names in lists for name in re.findall(r"'([a-z0-9_]+)'", names)}


def _module_options(process: str) -> set[str]:
    """Options the module's script block writes itself (inputs, outputs, the plane id)."""
    text = (REPO / "modules" / "local" / process.lower() / "main.nf").read_text()
    script = text[text.index("script:"):text.index("stub:")]
    return _options("\n".join(line for line in script.splitlines() if "ophys-extraction versions" not in line))


def test_modules_read_no_params() -> None:
    modules = sorted((REPO / "modules").rglob("*.nf"))
    assert len(modules) == 8   # seven steps and SESSION_SUMMARY
    for module in modules:
        assert "params." not in module.read_text(), module


@pytest.mark.parametrize("process", SCRIPTS)
def test_every_option_of_a_step_is_given_by_the_pipeline(process: str) -> None:
    """The script's options (its --help usage) = the module's + modules.config's (+ the few listed above)."""
    help_text = subprocess.run([sys.executable, str(REPO / "bin" / SCRIPTS[process]), "--help"], capture_output=True,
                               text=True, timeout=120, check=True).stdout
    usage = _options(help_text.split("\n\n")[0])
    given = _module_options(process) | _config_options(process)
    assert usage - set(NOT_FROM_THE_PIPELINE) == given & usage, process
    assert _config_options(process) <= usage, f"{process}: modules.config gives options the script does not have"


def test_every_step_parameter_reaches_a_step() -> None:
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    names = [name for group in STEP_GROUPS for name in schema["$defs"][group]["properties"]]
    assert len(names) > 20
    workflow = (REPO / "main.nf").read_text().split("\nworkflow {")[1]
    for name in names:
        where = workflow if name in PROCESS_INPUTS else MODULES_CONFIG
        assert re.search(rf"params\.{name}\b|'{name}'", where), f"--{name} reaches no step"
