"""One default per option: each step's dataclass (`summary_images.SummaryImagesOptions`,
`segmentation.SegmentationParams`, `extraction.ExtractionOptions`, `nwb.NwbOptions`,
`suite2p_folder.Suite2pFolderOptions`) is where its options' defaults are written. nextflow_schema.json mirrors
them: every parameter that conf/modules.config turns into a step option has
the default of the dataclass field behind that option (null in the schema = "the step's default", so the field's
default is None too). Each step's command line takes its defaults from the dataclass and has no other defaults
(`nextflow.config` mirrors the schema: tests/test_profiles.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from conftest import REPO
from ophys_extraction.cli import export_suite2p as export_suite2p_cli
from ophys_extraction.cli import extract as extract_cli
from ophys_extraction.cli import nwb as nwb_cli
from ophys_extraction.cli import segment as segment_cli
from ophys_extraction.cli import summary_images as summary_images_cli
from ophys_extraction.extraction import ExtractionOptions
from ophys_extraction.nwb import NwbOptions
from ophys_extraction.segmentation import SegmentationParams
from ophys_extraction.suite2p_folder import Suite2pFolderOptions
from ophys_extraction.summary_images import SummaryImagesOptions
from test_step_options import config_block

SCHEMA = json.loads((REPO / "nextflow_schema.json").read_text())
SCHEMA_DEFAULTS = {name: spec.get("default") for group in SCHEMA["$defs"].values()
                   for name, spec in group["properties"].items()}


@dataclasses.dataclass(frozen=True)
class Step:
    options: type                                     # the dataclass holding the step's defaults
    parser: Callable[[], argparse.ArgumentParser]     # the step's command line
    # Command-line options whose dataclass field has another name.
    field_of_option: dict[str, str] = dataclasses.field(default_factory=dict)
    # Command-line options that are not step options (inputs, outputs, what the pipeline finds), and why.
    not_options: dict[str, str] = dataclasses.field(default_factory=dict)
    # Dataclass fields no schema parameter gives through modules.config, and why.
    not_from_modules_config: dict[str, str] = dataclasses.field(default_factory=dict)


FILES = {"movie": "input", "output": "output", "summary": "input", "segmentation": "input"}
STEPS = {
    "SUMMARY_IMAGES": Step(SummaryImagesOptions, summary_images_cli.build_parser,
                           not_options={**FILES, "frame_rate": "found per plane by lib/PlaneFinder.groovy"}),
    "SEGMENT": Step(SegmentationParams, segment_cli.build_parser,
                    not_options={**FILES, "pretrained_model": "SEGMENT's `model` input (main.nf): required, its "
                                                           "default is the schema's"}),
    "EXTRACT": Step(ExtractionOptions, extract_cli.build_parser, not_options=FILES),
    "NWB": Step(NwbOptions, nwb_cli.build_parser, field_of_option={"pixel_size": "pixel_size_um"},
                not_options={"extraction": "input", "outdir": "output folder (the module writes into its own)",
                             "metadata": "the --nwb_metadata file, NWB's `metadata` input (main.nf); its contents "
                                         "become NwbOptions.metadata"},
                not_from_modules_config={"metadata": "read from the --nwb_metadata file (a process input)"}),
    "SUITE2P_FOLDER": Step(Suite2pFolderOptions, export_suite2p_cli.build_parser,
                           not_options={"plane_out": "input", "folder": "output folder (the module writes into its "
                                                                         "own)"}),
}


def parameter_of_option(process: str) -> dict[str, str]:
    """{step option: schema parameter} as conf/modules.config builds the process's ext.args."""
    block = config_block(process)
    pairs = re.findall(r"--(\w+)[ =][^\n]*?params\.(\w+)", block)                      # "--x ${params.y}"
    pairs += [(option, name) for name, option in
              re.findall(r"params\.(\w+)\.toString\(\) == 'true' \? '--(\w+)'", block)]  # flags
    lists = re.findall(r"\[([\s',a-z0-9_]+)\]\s*\.findAll \{ params\[it\] != null \}", block)
    pairs += [(name, name) for names in lists for name in re.findall(r"'(\w+)'", names)]   # same-name lists
    mapping: dict[str, str] = {}
    for option, name in pairs:
        assert mapping.setdefault(option, name) == name, f"{process}: --{option} from two parameters"
    return mapping


def _argparse_defaults(parser: argparse.ArgumentParser) -> dict[str, tuple[Any, bool]]:
    """{option dest: (default, required)} of every option but --help."""
    return {action.dest: (action.default, action.required) for action in parser._actions
            if not isinstance(action, argparse._HelpAction)}


def _field_defaults(options: type) -> dict[str, Any]:
    return {field.name: field.default if field.default is not dataclasses.MISSING else field.default_factory()
            for field in dataclasses.fields(options)}


@pytest.mark.parametrize("process", STEPS)
def test_schema_defaults_equal_the_dataclass(process: str) -> None:
    step = STEPS[process]
    fields = _field_defaults(step.options)
    mapping = parameter_of_option(process)
    assert mapping, f"{process}: no parameters found in conf/modules.config"
    for option, name in mapping.items():
        field = step.field_of_option.get(option, option)
        assert field in fields, f"{process}: --{option} (from --{name}) is no field of {step.options.__name__}"
        assert name in SCHEMA_DEFAULTS, f"--{name} is not in nextflow_schema.json"
        default, expected = SCHEMA_DEFAULTS[name], fields[field]
        # Values, not text: 0 (an integer in JSON) equals 0.0; but false is not 0.
        assert default == expected and isinstance(default, bool) == isinstance(expected, bool), (
            f"{process}: schema --{name} defaults to {default!r}, {step.options.__name__}.{field} to {expected!r}")
    reached = {step.field_of_option.get(option, option) for option in mapping}
    assert set(fields) - reached == set(step.not_from_modules_config), (
        f"{process}: fields no schema parameter sets: {sorted(set(fields) - reached)}")


@pytest.mark.parametrize("process", STEPS)
def test_cli_defaults_come_from_the_dataclass(process: str) -> None:
    step = STEPS[process]
    fields = _field_defaults(step.options)
    cli = _argparse_defaults(step.parser())
    cli_fields = {step.field_of_option.get(dest, dest): value for dest, value in cli.items()
                  if dest not in step.not_options}
    assert set(cli_fields) == set(fields) - set(step.not_from_modules_config), process
    for field, (default, required) in cli_fields.items():
        assert not required and default == fields[field] and type(default) is type(fields[field]), (
            f"{process}: --{field} defaults to {default!r}, {step.options.__name__}.{field} to {fields[field]!r}")


def test_every_schema_parameter_of_a_step_is_compared() -> None:
    """Each parameter modules.config passes to a step has a dataclass default (the test above checks it)."""
    compared = {name for process in STEPS for name in parameter_of_option(process).values()}
    # 3 SUMMARY_IMAGES + 6 SEGMENT + 14 EXTRACT + 3 NWB + 1 SUITE2P_FOLDER - chunk_frames (in two steps)
    assert len(compared) == 26, sorted(compared)
    step_groups = ("summary_images", "segmentation", "extraction", "nwb_output", "suite2p_output")
    in_groups = {name for group in step_groups for name in SCHEMA["$defs"][group]["properties"]}
    # Step parameters that are not options of a step's command line, and why.
    assert in_groups - compared == {"pretrained_model",  # SEGMENT's model input
                                    "nwb",               # switches the NWB step on
                                    "nwb_metadata",      # NWB's metadata file input
                                    "suite2p_folder"}    # switches the SUITE2P_FOLDER step on
