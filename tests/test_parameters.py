"""Each option written once: src/ophys_extraction/options.py holds every step option's type, default, range and help.
From that table come the step's command line and its check, the defaults of the step's options dataclass, and the
step's entries of nextflow_schema.json, which the pipeline's start check (lib/ParamsChecker.groovy) reads. These tests
hold each of those equal to the table, and try a value just outside each end of every option's range: at the step's
command line, and (one Nextflow run per end) at the pipeline's start, where every violation is named at once."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, config_block
from ophys_extraction import options
from ophys_extraction.cli import export_suite2p as export_suite2p_cli
from ophys_extraction.cli import extract as extract_cli
from ophys_extraction.cli import functional_detection as functional_cli
from ophys_extraction.cli import nwb as nwb_cli
from ophys_extraction.cli import segment as segment_cli
from ophys_extraction.cli import summary_images as summary_images_cli
from ophys_extraction.errors import run_cli
from ophys_extraction.extraction import ExtractionOptions
from ophys_extraction.functional import FunctionalOptions
from ophys_extraction.nwb import NwbOptions
from ophys_extraction.options import Option, Table
from ophys_extraction.segmentation import SegmentationParams
from ophys_extraction.suite2p_folder import Suite2pFolderOptions
from ophys_extraction.summary_images import SummaryImagesOptions

sys.path.insert(0, str(REPO / "tools"))
import write_schema  # noqa: E402

SCHEMA = json.loads((REPO / "nextflow_schema.json").read_text())


@dataclasses.dataclass(frozen=True)
class Step:
    table: Table
    group: str                                        # its group in nextflow_schema.json
    options: type                                     # the dataclass the step's code takes
    parser: Callable[[], argparse.ArgumentParser]     # the step's command line
    main: Callable[[list[str] | None], int]
    files: tuple[str, ...]                            # the command line's file arguments (none need exist)
    field_of_option: dict[str, str] = dataclasses.field(default_factory=dict)
    # Dataclass fields that are no option, and why.
    not_options: dict[str, str] = dataclasses.field(default_factory=dict)


STEPS = {
    "SUMMARY_IMAGES": Step(options.SUMMARY_IMAGES, "summary_images", SummaryImagesOptions,
                           summary_images_cli.build_parser, summary_images_cli.main,
                           ("--movie", "missing.h5", "--output", "out.h5", "--frame_rate", "10")),
    "SEGMENT": Step(options.SEGMENT, "segmentation", SegmentationParams, segment_cli.build_parser, segment_cli.main,
                    ("--summary", "missing.h5", "--output", "out.h5", "--pretrained_model", "cyto3")),
    "FUNCTIONAL_DETECTION": Step(options.FUNCTIONAL, "functional_detection", FunctionalOptions,
                                 functional_cli.build_parser, functional_cli.main,
                                 ("--movie", "missing.h5", "--frame_rate", "10", "--output", "out.h5")),
    "EXTRACT": Step(options.EXTRACT, "extraction", ExtractionOptions, extract_cli.build_parser, extract_cli.main,
                    ("--movie", "missing.h5", "--segmentation", "missing.h5", "--output", "out.h5")),
    "NWB": Step(options.NWB, "nwb_output", NwbOptions, nwb_cli.build_parser, nwb_cli.main, ("missing.h5",),
                field_of_option={"pixel_size": "pixel_size_um"},
                not_options={"metadata": "the contents of the --nwb_metadata file (a process input)"}),
    "SUITE2P_FOLDER": Step(options.SUITE2P_FOLDER, "suite2p_output", Suite2pFolderOptions,
                           export_suite2p_cli.build_parser, export_suite2p_cli.main, ("missing.h5",)),
}
# Step parameters of the schema that are no option of a step's command line, and why.
NOT_STEP_OPTIONS = {"pretrained_model": "SEGMENT's `model` input (main.nf)",
                    "nwb": "switches the NWB step on",
                    "nwb_metadata": "NWB's metadata file input (main.nf)",
                    "suite2p_folder": "switches the SUITE2P_FOLDER step on"}


def test_the_schema_is_written_from_the_tables() -> None:
    text = (REPO / "nextflow_schema.json").read_text(encoding="utf-8")
    assert write_schema.rendered(text) == text, "run: .venv/bin/python tools/write_schema.py"


@pytest.mark.parametrize("process", STEPS)
def test_the_schema_group_of_a_step_is_its_table(process: str) -> None:
    step = STEPS[process]
    group = set(SCHEMA["$defs"][step.group]["properties"]) - set(NOT_STEP_OPTIONS)
    shared = {options.CHUNK_FRAMES.param} if process == "EXTRACT" else set()   # in SUMMARY_IMAGES' group
    assert group | shared == {option.param for option in step.table.options}, process


def parameter_of_option(process: str) -> dict[str, str]:
    """{step option: pipeline parameter} as conf/modules.config builds the process's ext.args."""
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


@pytest.mark.parametrize("process", STEPS)
def test_modules_config_gives_each_option_its_parameter(process: str) -> None:
    assert parameter_of_option(process) == {option.name: option.param for option in STEPS[process].table.options}


@pytest.mark.parametrize("process", STEPS)
def test_the_dataclass_takes_the_tables_defaults(process: str) -> None:
    step = STEPS[process]
    fields = {field.name: field for field in dataclasses.fields(step.options)}
    assert set(fields) - set(step.not_options) == {step.field_of_option.get(name, name)
                                                   for name in step.table.names()}, process
    for option in step.table.options:
        default = fields[step.field_of_option.get(option.name, option.name)].default
        assert default == option.default and type(default) is type(option.default), (process, option.name)


@pytest.mark.parametrize("process", STEPS)
def test_the_command_line_is_the_table(process: str) -> None:
    step = STEPS[process]
    actions = {action.dest: action for action in step.parser()._actions}
    for option in step.table.options:
        action = actions[option.name]
        assert not action.required and action.default == option.default, (process, option.name)
        assert type(action.default) is type(option.default) and action.help == option.full_help(), option.name


def test_every_step_parameter_is_in_a_table() -> None:
    in_groups = {name for step in STEPS.values() for name in SCHEMA["$defs"][step.group]["properties"]}
    in_tables = {option.param for table in options.TABLES for option in table.options}
    assert in_groups - in_tables == set(NOT_STEP_OPTIONS)
    # 3 SUMMARY_IMAGES + 6 SEGMENT + 6 FUNCTIONAL_DETECTION + 15 EXTRACT + 3 NWB + 1 SUITE2P_FOLDER, chunk_frames
    # shared
    assert len(in_tables) == 33


def test_every_numeric_option_has_a_range_and_says_where_it_comes_from() -> None:
    for table in options.TABLES:
        for option in table.options:
            if option.kind in ("number", "integer") and option.name != "cellprob_threshold" or option.choices:
                assert option.range_text(), f"{table.step} --{option.name}: no range"
            if option.minimum is not None or option.maximum is not None or option.exclusive_minimum is not None:
                assert option.why_range, f"{table.step} --{option.name}: range without its reason"


def _just_outside(option: Option) -> list[tuple[str, Any]]:
    """(which end, a value just beyond it) for each end of the option's range."""
    step = 1 if option.kind == "integer" else 1e-6
    ends = []
    if option.choices is not None:
        numbers = [c for c in option.choices if isinstance(c, (int, float))]
        ends.append(("choices", max(numbers) + 1 if numbers else "none_of_these"))
    if option.minimum is not None:
        ends.append(("minimum", option.minimum - step))
    if option.exclusive_minimum is not None:
        ends.append(("exclusive minimum", option.exclusive_minimum))
    if option.maximum is not None:
        ends.append(("maximum", option.maximum + step))
    return ends


OUTSIDE = [pytest.param(process, option, value, id=f"{process}-{option.name}-{end}")
           for process, step in STEPS.items() for option in step.table.options
           for end, value in _just_outside(option)]


@pytest.mark.parametrize("process, option, value", OUTSIDE)
def test_a_value_just_outside_each_end_is_refused_by_the_step(process: str, option: Option, value: Any,
                                                              tmp_path: Path, capsys, monkeypatch) -> None:
    """The step's own command line refuses it with one line naming the option, its value and its range, before it
    reads any file; the end itself is accepted."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        run_cli(STEPS[process].main, [*STEPS[process].files, f"--{option.name}={value}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, err
    shown = float(value) if option.kind == "number" else value
    assert err[0] == f"ERROR: --{option.name} {shown}: {option.range_problem()}", err
    for end in (option.minimum, option.maximum):
        if end is not None:
            assert option.problem(end) is None, (option.name, end)


def test_the_step_names_every_bad_value_at_once() -> None:
    with pytest.raises(Exception) as exc:
        ExtractionOptions(max_overlap=2.0, lam_percentile=-1.0, threads=-1).validate()
    message = str(exc.value)
    assert "3 bad values" in message and "--max_overlap 2.0: must be in [0, 1]" in message, message
    assert "--lam_percentile -1.0: must be in [0, 100]" in message and "--threads -1: must be >= 0" in message


# ------------------------------------------------------------------------------------------ the pipeline's start

def _pipeline_value(option: Option, value: Any) -> str:
    return str(int(value)) if option.kind == "integer" else str(value)


START_ENDS = {end: [(option, value) for table in options.TABLES for option in table.options
                    for which, value in _just_outside(option) if which == end
                    and option.param not in ("segmentation_device",)]   # device: a word, tried in `choices` below
              for end in ("minimum", "maximum")}


@pytest.mark.slow
@pytest.mark.nextflow
@pytest.mark.parametrize("end", START_ENDS)
def test_the_start_check_names_every_violation_before_any_task(tmp_path: Path, end: str) -> None:
    """One run with every option just below its minimum (or above its maximum): each is named, with the range the
    step would give, and no task runs."""
    from pipeline_runner import NEXTFLOW, run_pipeline, task_dirs
    if not NEXTFLOW.exists():
        pytest.skip("run `make install` first")
    given = START_ENDS[end] + ([(options.SEGMENT["anatomical_only"], 9), (options.SEGMENT["device"], "tpu")]
                               if end == "maximum" else [(options.FRAME_RATE, 0), (options.SUITE2P_FOLDER["tau"], 0)])
    args = [arg for option, value in given for arg in (f"--{option.param}", _pipeline_value(option, value))]
    run = run_pipeline(tmp_path / "launch", "-profile", "test", *args, timeout=300)
    assert run.returncode == 1, run.output
    for option, value in given:
        expected = f"--{option.param} {_pipeline_value(option, value)}: {option.range_problem()}"
        assert expected in run.output, f"{expected!r} not in\n{run.output}"
    assert task_dirs(tmp_path / "launch") == []
