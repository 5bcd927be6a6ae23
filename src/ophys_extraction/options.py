"""Each step's options, written once: name, type, default, range (and where the range comes from) and help.

One table per step (as suite2p's `parameters.py` keeps one per setting). From it come:
- the step's command line (`Table.add_arguments`) and its check (`Table.problems`: every violation at once);
- the defaults of the step's options dataclass (`Table.default`);
- the step's entries of nextflow_schema.json (`schema_property`; `tools/write_schema.py` writes them, and
  tests/test_parameters.py checks the file equals them), which the pipeline's start check (lib/ParamsChecker.groovy)
  reads, so that a bad value stops the run before any task with the same rule the step applies.
A pipeline parameter has the option's name unless `parameter` says otherwise (conf/modules.config maps one to the
other; tests/test_parameters.py checks that mapping against these tables).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ophys_extraction.classify import BUNDLED_CLASSIFIER, SUITE2P, classifier_problem
from ophys_extraction.errors import InputError
from ophys_extraction.segmentation_input import IMAGE_MODES, describe_modes

# The JSON-schema type of each kind of option.
KINDS = ("number", "integer", "boolean", "string")


@dataclass(frozen=True)
class Option:
    name: str                              # the step's command-line option, --name
    kind: str                              # one of KINDS
    default: Any
    help: str
    parameter: str | None = None           # the pipeline parameter, where it is not `name`
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False                 # None: the library's default (said in the help)
    why_range: str = ""                    # where the range comes from (the library's meaning of the value)
    check: Callable[[Any], str | None] | None = None  # a further rule of a string option (why a value is refused)

    @property
    def param(self) -> str:
        return self.parameter or self.name

    def range_text(self) -> str:
        """"[0, 1]", "> 0", ">= 0", "one of 1, 2" or "" when any value of the type goes."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        low = (f"> {self.exclusive_minimum:g}" if self.exclusive_minimum is not None
               else f">= {self.minimum:g}" if self.minimum is not None else "")
        if self.maximum is None:
            return low
        if self.minimum is not None:
            return f"[{self.minimum:g}, {self.maximum:g}]"
        return f"<= {self.maximum:g}" if not low else f"{low} and <= {self.maximum:g}"

    def full_help(self) -> str:
        """The help text, with the range and where it comes from: argparse's help and the schema's description."""
        text = self.help
        if self.range_text():
            text += f" Range: {self.range_text()}" + (f" ({self.why_range})" if self.why_range else "") + "."
        return text

    def range_problem(self) -> str:
        """What a value out of range is told: the range, and where it comes from (the schema's errorMessage)."""
        where = "in " if self.range_text().startswith("[") else ""
        return f"must be {where}{self.range_text()}" + (f" ({self.why_range})" if self.why_range else "")

    def problem(self, value: Any) -> str | None:
        """Why `value` is not a valid value of this option, or None."""
        if value is None:
            return None if self.nullable else "needs a value"
        if self.kind == "boolean":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "string":
            if not isinstance(value, str) or not value.strip():
                return "must be non-empty text"
            if self.check is not None:
                return self.check(value)
            return None if self.choices is None or value in self.choices else self.range_problem()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "must be a finite number"
        if self.kind == "integer" and value != int(value):
            return "must be a whole number"
        if self.choices is not None:
            return None if value in self.choices else self.range_problem()
        if ((self.minimum is not None and value < self.minimum)
                or (self.exclusive_minimum is not None and value <= self.exclusive_minimum)
                or (self.maximum is not None and value > self.maximum)):
            return self.range_problem()
        return None

    def add_argument(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        flag = f"--{self.name}"
        if self.kind == "boolean" and not self.nullable and self.default is False:
            parser.add_argument(flag, action="store_true", default=False, help=self.full_help())
            return
        parse = {"number": float, "integer": int, "boolean": parse_bool, "string": str}[self.kind]
        # No argparse `choices`: a value outside them gets the table's one-line error, as any value out of range.
        parser.add_argument(flag, type=parse, default=self.default, help=self.full_help(),
                            metavar=self.name.upper())


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Table:
    """The options of one step."""
    step: str
    options: tuple[Option, ...]

    def __getitem__(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        raise KeyError(f"{self.step} has no option {name!r}")

    def names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self.options)

    def default(self, name: str) -> Any:
        return self[name].default

    def add_arguments(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      names: Iterable[str] | None = None) -> None:
        for name in (self.names() if names is None else names):
            self[name].add_argument(parser)

    def problems(self, values: Mapping[str, Any]) -> list[str]:
        """"--name value: why" for every option in `values` whose value is out of range (all of them, in order)."""
        found = []
        for option in self.options:
            if option.name in values:
                problem = option.problem(values[option.name])
                if problem:
                    found.append(f"--{option.name} {values[option.name]}: {problem}")
        return found

    def check(self, values: Mapping[str, Any]) -> None:
        """One InputError naming every bad option, or nothing."""
        found = self.problems(values)
        if len(found) == 1:
            subject, _, problem = found[0].partition(": ")
            raise InputError(subject, problem)
        if found:
            raise InputError(f"{self.step} options", f"{len(found)} bad values: " + "; ".join(found))


def schema_property(option: Option) -> dict[str, Any]:
    """The option's entry in nextflow_schema.json (the pipeline parameter's)."""
    kind: Any = [option.kind, "null"] if option.nullable else option.kind
    entry: dict[str, Any] = {"type": kind, "default": option.default}
    if option.kind == "string" and option.choices is None:
        entry["minLength"] = 1
    if option.choices is not None:
        entry["enum"] = list(option.choices)
    for key, value in (("minimum", option.minimum), ("exclusiveMinimum", option.exclusive_minimum),
                       ("maximum", option.maximum)):
        if value is not None:
            entry[key] = value
    if option.range_text():
        entry["errorMessage"] = option.range_problem()
    entry["description"] = option.full_help()
    return entry


# ------------------------------------------------------------------------------------------------------ the tables

# Shared by SUMMARY_IMAGES and EXTRACT (one pipeline parameter, --chunk_frames).
CHUNK_FRAMES = Option(
    "chunk_frames", "integer", 0,
    "Frames read per chunk by SUMMARY_IMAGES and EXTRACT; 0 = about 16 MiB of float32 frames, in whole HDF5 chunks.",
    minimum=0, why_range="a count of frames; memory grows with it, not with the movie's length")

# The frame rate is found per plane by the pipeline (lib/PlaneFinder.groovy checks what it reads from
# processing.json or session.json with this rule, through the schema) and given to SUMMARY_IMAGES' --frame_rate.
FRAME_RATE = Option(
    "frame_rate", "number", None,
    "Frame rate in Hz for every plane (a samplesheet's frame_rate column overrides it); default: read from "
    "processing.json or session.json beside the movie.",
    exclusive_minimum=0, nullable=True, why_range="frames per second")

SUMMARY_IMAGES = Table("SUMMARY_IMAGES", (
    Option("bin_duration", "number", 3.7,
           "Seconds of movie averaged into one bin before the projections (Allen's capsule: 3.7).",
           exclusive_minimum=0, why_range="seconds; a bin longer than the movie is one bin of the whole movie"),
    Option("denoise", "boolean", False,
           "PCA-denoise the binned movie before the projections (suite2p's denoise)."),
    CHUNK_FRAMES,
))

SEGMENT = Table("SEGMENT", (
    Option("anatomical_only", "integer", 2,
           f"Image Cellpose segments (suite2p's anatomical_only): {describe_modes()}.",
           choices=tuple(sorted(IMAGE_MODES))),
    Option("diameter", "number", 0.0,
           "Cell diameter in pixels; 0 = chosen for each plane's image: the diameter at which the model segments it "
           "best, judged without labels from how well the model's flows agree with its masks, searched from the "
           "model's size model where it has one (built-ins, models from bin/train_model.py: <model>_size.npy), "
           "else from a scan. The value used and how it was chosen are in the output's attributes (diameter_used, "
           "diameter_source). SEGMENT also refuses a diameter above half the image's smaller side.",
           minimum=0, why_range="pixels; 0 = estimate"),
    Option("cellprob_threshold", "number", 0.0,
           "Cellpose cell-probability threshold (lower finds more, dimmer cells). Models trained by "
           "bin/train_model.py, the bundled one included, have a calibration offset folded into their "
           "cell-probability output (cellprob_offset in the model's training log): threshold 0 with such a model "
           "means threshold -offset before calibration.",
           minimum=-6.0, maximum=6.0,
           why_range="the range of Cellpose's own GUI: a threshold on the network's logit, beyond which every "
                     "pixel is in, or none"),
    Option("flow_threshold", "number", 1.5,
           "Cellpose flow-error threshold (higher keeps more masks; 0 keeps every mask, as Cellpose's 0).",
           minimum=0, why_range="Cellpose: a mean squared error between flows, so not negative"),
    Option("spatial_hp_cp", "number", 0.0,
           "If > 0, normalise the image and subtract a Gaussian blur of sigma diameter * this before Cellpose "
           "(suite2p's spatial_hp_cp).",
           minimum=0, why_range="suite2p: a multiple of the diameter; 0 = off"),
    Option("device", "string", "auto",
           "Where SEGMENT runs Cellpose: auto = the GPU if torch sees one (the gpu profile gives SEGMENT one), "
           "else the CPU.",
           parameter="segmentation_device", choices=("auto", "cpu", "cuda")),
))

EXTRACT = Table("EXTRACT", (
    Option("use_suite2p_neuropil", "boolean", False,
           "Use suite2p's fixed neuropil coefficient (--neuropil_coefficient) instead of the per-ROI "
           "mutual-information r."),
    Option("diameter", "number", 0.0,
           "Cell diameter in pixels for suite2p's ROI statistics; 0 = the diameter SEGMENT used (its attribute "
           "diameter_used), else suite2p's median mask diameter, else suite2p's default diameter (a plane without "
           "ROIs).",
           parameter="roi_diameter", minimum=0, why_range="pixels; 0 = from the segmentation"),
    CHUNK_FRAMES,
    Option("threads", "integer", 0,
           "Threads of EXTRACT's trace pass and neuropil fit; 0 = every CPU this process may use (in the pipeline "
           "the task's cpus: conf/modules.config passes them). More than the task's cpus are not used: give EXTRACT "
           "more cpus in a config (process.withName:EXTRACT.cpus).",
           parameter="extract_threads", minimum=0, why_range="a count; 0 = the CPUs given"),
    Option("max_overlap", "number", None,
           "suite2p max_overlap: ROIs with a larger fraction of their pixels shared with other ROIs are dropped "
           "(1 keeps every ROI). null = suite2p's default.",
           nullable=True, minimum=0, maximum=1, why_range="suite2p: a fraction of the ROI's pixels"),
    Option("soma_crop", "boolean", None,
           "suite2p soma_crop: crop dendrites before the compactness and aspect-ratio statistics. null = suite2p's "
           "default.", nullable=True),
    Option("npix_norm_min", "number", None,
           "suite2p npix_norm_min: ROIs whose normalised size (npix_norm: pixels over the plane's mean) is smaller "
           "are dropped. null = suite2p's default.",
           nullable=True, minimum=0, why_range="suite2p: a size relative to the mean ROI, not negative"),
    Option("npix_norm_max", "number", None,
           "suite2p npix_norm_max: ROIs whose normalised size (npix_norm) is larger are dropped. null = suite2p's "
           "default.",
           nullable=True, minimum=0, why_range="suite2p: a size relative to the mean ROI, not negative"),
    Option("allow_overlap", "boolean", None,
           "suite2p allow_overlap: keep pixels shared by ROIs in their cell masks (and traces). null = suite2p's "
           "default.", nullable=True),
    Option("inner_neuropil_radius", "integer", None,
           "suite2p inner_neuropil_radius: pixels between a ROI and its neuropil mask. null = suite2p's default.",
           nullable=True, minimum=0, why_range="suite2p: a distance in pixels"),
    Option("min_neuropil_pixels", "integer", None,
           "suite2p min_neuropil_pixels: the neuropil mask grows until it has this many pixels. null = suite2p's "
           "default.",
           nullable=True, minimum=1, why_range="suite2p: a count of pixels; a neuropil mask needs one"),
    Option("circular_neuropil", "boolean", None,
           "suite2p circular_neuropil: grow neuropil masks as circles. null = suite2p's default.", nullable=True),
    Option("lam_percentile", "number", 0.0,
           "suite2p lam_percentile: cell pixels whose weight is above this percentile of their ROI's weights are "
           "left out of every neuropil mask. 0 here, not suite2p's 50, so that neuropil masks leave out every cell "
           "pixel (docs/output.md, neuropil_coords).",
           minimum=0, maximum=100, why_range="suite2p: a percentile"),
    Option("neuropil_coefficient", "number", None,
           "suite2p neuropil_coefficient: the fixed r of --use_suite2p_neuropil. null = suite2p's default "
           "(its neucoeff, 0.7).",
           nullable=True, minimum=0, maximum=2,
           why_range="suite2p's neucoeff: 0 = no correction; above 1 subtracts more neuropil than was measured, "
                     "above 2 no recording calls for"),
    Option("classifier", "string", BUNDLED_CLASSIFIER,
           f"The cell classifier of iscell: {BUNDLED_CLASSIFIER} = the bundled one, trained for this pipeline's "
           "anatomical ROIs (Cellpose's cell probability and flow error inside the mask, the mask's contrast, "
           f"activity and shape; README's classifier table); {SUITE2P} = suite2p's builtin one (skew, npix_norm, "
           "compact; the original capsule's); or the path of a classfile in suite2p's format (a lab's own, on ROI "
           "statistics the ROIs have). suite2p's builtin answer is also kept, as iscell_suite2p.",
           check=classifier_problem),
))

NWB = Table("NWB", (
    Option("indicator", "string", "unknown",
           "With --nwb: the calcium indicator recorded in the imaging plane, e.g. GCaMP6f.",
           parameter="nwb_indicator"),
    Option("location", "string", "unknown",
           "With --nwb: the brain area of the imaging plane, e.g. VISp (an Allen CCF acronym for mice).",
           parameter="nwb_location"),
    Option("pixel_size", "number", None,
           "With --nwb: micrometres per pixel (x and y), recorded as the imaging plane's grid spacing; default: "
           "not recorded.",
           parameter="nwb_pixel_size", nullable=True, exclusive_minimum=0, why_range="micrometres"),
))

SUITE2P_FOLDER = Table("SUITE2P_FOLDER", (
    Option("tau", "number", 1.0,
           "With --suite2p_folder: the indicator's decay time in seconds for suite2p's deconvolution (spks.npy), "
           "suite2p's tau (its default 1.0): about 0.7 for GCaMP6f, 1.0-1.25 for GCaMP6s.",
           parameter="suite2p_tau", exclusive_minimum=0,
           why_range="suite2p: seconds, the decay time constant of OASIS's kernel"),
))

DETECTIONS = ("cellpose", "sparsery", "sourcery", "cellpose+sparsery", "cellpose+sourcery")

FUNCTIONAL = Table("FUNCTIONAL_DETECTION", (
    Option("detection", "string", "cellpose",
           "How ROIs are found: cellpose (Cellpose on the --anatomical_only image); sparsery or sourcery (suite2p's "
           "functional detection on the binned movie, no Cellpose); cellpose+sparsery or cellpose+sourcery "
           "(Cellpose's ROIs, then the functional ROIs that share at most 25% of their pixels with them; "
           "rois/origin says which is which).",
           choices=DETECTIONS),
    Option("tau", "number", 1.0,
           "Functional detection: seconds per bin of the movie (suite2p's tau, default 1.0: bins of tau x frame "
           "rate frames).",
           parameter="functional_tau", exclusive_minimum=0, why_range="seconds"),
    Option("threshold_scaling", "number", 1.0,
           "Functional detection: suite2p's threshold_scaling (higher finds fewer ROIs; default 1.0).",
           exclusive_minimum=0, why_range="suite2p: a factor on the activity threshold"),
    Option("spatial_scale", "integer", 0,
           "sparsery: suite2p's spatial_scale (0 estimated from the data; 1-4 ROI sizes of 6, 12, 24, 48 px).",
           minimum=0, maximum=4, why_range="suite2p: 0 = estimated, else one of its four scales"),
    Option("diameter", "number", 12.0,
           "sourcery: the expected ROI diameter in pixels (suite2p's diameter, default 12).",
           parameter="functional_diameter", exclusive_minimum=0, why_range="pixels"),
    Option("nbins", "integer", 5000,
           "Functional detection: at most this many bins of the movie, held in memory (suite2p's nbins, default "
           "5000); longer movies get longer bins. The step's peak memory is about 6x the binned movie (suite2p's "
           "working copies; measured 6.4 GB for 1000 bins of 512 x 512 px).",
           parameter="functional_nbins", minimum=1, why_range="a count of bins; memory grows with it"),
))

TABLES = (SUMMARY_IMAGES, SEGMENT, EXTRACT, NWB, SUITE2P_FOLDER, FUNCTIONAL)


def schema_entries() -> dict[str, dict[str, Any]]:
    """{pipeline parameter: its nextflow_schema.json entry} for every option of a step, and the frame rate."""
    entries = {FRAME_RATE.param: schema_property(FRAME_RATE)}
    for table in TABLES:
        for option in table.options:
            entry = schema_property(option)
            assert entries.setdefault(option.param, entry) == entry, f"--{option.param}: two definitions"
    return entries
