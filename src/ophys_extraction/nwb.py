"""A plane's extraction.h5 as an NWB file (pynwb), the field's format for sharing (DANDI). docs/output.md maps it.

Read from extraction.h5 only (never the movie): the imaging plane (frame rate from the file; indicator, location
and pixel size from the options), one `PlaneSegmentation` with every ROI's weighted image mask and per-ROI columns
(`iscell`, the neuropil coefficients, the dF/F baseline flag, skew, std), the raw, neuropil and corrected traces
as `RoiResponseSeries` in one `Fluorescence`, and the summary images. Images and masks are stored as NWB orders
them, (x, y): the transpose of extraction.h5's (y, x) arrays, as neuroconv and roiextractors write them. Traces
are (frames, ROIs); traces and masks are written in blocks of ROIs of about 64 MB (at least 16 ROIs), so memory
does not grow with the number of ROIs, nor with the frames below a million.

What the pipeline cannot know (when the session started, the subject, who recorded it) comes from an optional
metadata JSON file (`METADATA_KEYS`); without it the NWB file says so in its own terms: an unknown subject
(`subject_id` "unknown", sex "U", age "P0D/", i.e. any age) and a session start of 1970-01-01T00:00:00Z, noted in
the session description. The identifier is derived from the content (the same input gives the same identifier);
`file_create_date` is when the file was written, the one field that differs between two runs.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction import schema, validation
from ophys_extraction.errors import InputError
from ophys_extraction.h5io import iter_row_blocks
from ophys_extraction.options import NWB

UNKNOWN = "unknown"
UNKNOWN_START = datetime(1970, 1, 1, tzinfo=timezone.utc)
UNKNOWN_START_NOTE = " Session start time unknown (1970-01-01T00:00:00Z stands for it)."
UNKNOWN_SUBJECT = {"subject_id": UNKNOWN, "sex": "U", "age": "P0D/",
                   "description": "Not given to ophys-extraction (its --nwb_metadata file has no subject)."}
# Keys of the metadata file, with what they are. `subject` holds pynwb.file.Subject's fields.
METADATA_KEYS = {
    "session_start_time": "ISO 8601 date and time with its time zone, e.g. 2025-03-01T10:15:00-08:00",
    "session_description": "text",
    "experiment_description": "text",
    "experimenter": "a name or a list of names ('Last, First')",
    "institution": "text",
    "lab": "text",
    "subject": "an object: subject_id, species, sex (M/F/O/U), age (ISO 8601 duration, e.g. P90D) or "
               "date_of_birth (ISO 8601), genotype, strain, weight ('25 g'), description",
    "excitation_lambda": "excitation wavelength in nm",
    "emission_lambda": "emission wavelength in nm",
}
SUBJECT_KEYS = ("subject_id", "species", "sex", "age", "date_of_birth", "genotype", "strain", "weight",
                "description")
# Names inside the NWB file (docs/output.md).
MODULE, SEGMENTATION, PLANE_SEGMENTATION, FLUORESCENCE, IMAGES = (
    "ophys", "ImageSegmentation", "PlaneSegmentation", "Fluorescence", "SummaryImages")
SERIES = {"raw": ("traces/roi", "raw ROI traces (neuropil-corrupted), extraction.h5 traces/roi"),
          "neuropil": ("traces/neuropil", "neuropil traces, extraction.h5 traces/neuropil"),
          "corrected": ("traces/corrected", "neuropil-corrected traces: raw - neuropil_rcoef * neuropil, "
                                            "extraction.h5 traces/corrected")}
IMAGE_DATASETS = {"meanImg": "mean image", "maxImg": "max projection of the high-pass filtered binned movie",
                  "corrImg": "correlation image: mean Pearson r of each pixel with its 8 neighbours over the "
                             "high-pass filtered binned movie"}
COLUMNS = {"iscell": ("iscell", "two columns: 0/1 cell, probability; from the classifier EXTRACT's --classifier "
                                "chose (parameters attribute: classifier), or a curation"),
           schema.ISCELL_ORIGINAL: (schema.ISCELL_ORIGINAL, "iscell as the classifier gave it, before curation "
                                                            "(only in a curated file)"),
           "iscell_suite2p": ("iscell_suite2p", "two columns: 0/1 cell, probability; from suite2p's builtin "
                                                "classifier (the original capsule's iscell)"),
           "neuropil_rcoef": ("neuropil_rcoef", "neuropil coefficient r used for the corrected trace"),
           schema.RAW_RCOEF: (schema.RAW_RCOEF, "mutual-information r before r >= 1 was replaced"),
           "baseline_at_or_below_zero": (schema.LOW_BASELINE,
                                         "median of the corrected trace <= 0: no usable dF/F for this ROI"),
           "skew": ("traces/skew", "skewness of the corrected trace"),
           "std": ("traces/std", "standard deviation of the corrected trace")}
KEYWORDS = ["two-photon calcium imaging", "cell segmentation", "Cellpose", "suite2p", "neuropil correction"]
BLOCK_BYTES = 64 * 2**20      # memory per block of traces or masks
ROI_CHUNK = 16                # ROIs per HDF5 chunk of the traces


@dataclass(frozen=True)
class NwbOptions:
    """NWB's options (defaults, ranges and help: options.NWB). `metadata` is the contents of the --nwb_metadata
    file."""
    indicator: str = NWB.default("indicator")
    location: str = NWB.default("location")
    pixel_size_um: float | None = NWB.default("pixel_size")   # micrometres per pixel (x and y)
    metadata: dict[str, Any] = field(default_factory=dict)


def output_name(plane_id: str) -> str:
    return f"{plane_id}.nwb"


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata file (`METADATA_KEYS`), checked; every problem is an InputError naming the file."""
    if not Path(path).is_file():
        raise InputError(path, "file does not exist" if not Path(path).exists() else "is not a file")
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    if not isinstance(doc, dict):
        raise InputError(path, "must hold a JSON object")
    unknown = sorted(set(doc) - set(METADATA_KEYS))
    if unknown:
        raise InputError(path, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(METADATA_KEYS)})")
    if "session_start_time" in doc:
        _parse_time(path, "session_start_time", doc["session_start_time"])
    for key in ("session_description", "experiment_description", "institution", "lab"):
        if key in doc and not isinstance(doc[key], str):
            raise InputError(path, f"'{key}' must be text")
    experimenter = doc.get("experimenter", "")
    if not (isinstance(experimenter, str)
            or (isinstance(experimenter, list) and all(isinstance(name, str) for name in experimenter))):
        raise InputError(path, "'experimenter' must be a name or a list of names")
    subject = doc.get("subject")
    if subject is not None:
        if not isinstance(subject, dict):
            raise InputError(path, "'subject' must be an object")
        unknown = sorted(set(subject) - set(SUBJECT_KEYS))
        if unknown:
            raise InputError(path, f"unknown subject key(s) {', '.join(unknown)} (known: {', '.join(SUBJECT_KEYS)})")
        for key, value in subject.items():
            if not isinstance(value, str) and not (key == "weight" and isinstance(value, (int, float))):
                raise InputError(path, f"'subject.{key}' must be text")
        if "date_of_birth" in subject:
            _parse_time(path, "subject.date_of_birth", subject["date_of_birth"])
    for key in ("excitation_lambda", "emission_lambda"):
        if key in doc and not (isinstance(doc[key], (int, float)) and doc[key] > 0):
            raise InputError(path, f"'{key}' must be a number > 0 (nm)")
    return doc


def _parse_time(path: Path | str, key: str, value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(path, f"'{key}' is not an ISO 8601 date and time: {value!r}") from None
    if parsed.tzinfo is None:
        raise InputError(path, f"'{key}' has no time zone ({value!r}); add one, e.g. +00:00 or -08:00")
    return parsed


def identifier(extraction: h5py.File, options: NwbOptions) -> str:
    """A UUID derived from the plane's provenance, ROIs, corrected traces and the NWB options: the same input gives
    the same identifier, a different input or different metadata another."""
    digest = hashlib.sha256()
    for key in ("plane_id", "parameters", "versions"):
        digest.update(str(extraction.attrs.get(key)).encode())
    digest.update(json.dumps([options.indicator, options.location, options.pixel_size_um, options.metadata],
                             sort_keys=True, default=str).encode())
    for path in ("rois/coords", "rois/data"):
        digest.update(np.ascontiguousarray(extraction[path][()]).tobytes())
    for _, block in iter_row_blocks(extraction["traces/corrected"]):
        digest.update(np.ascontiguousarray(block).tobytes())
    return str(uuid.UUID(bytes=digest.digest()[:16], version=5))


def _blocks_iterator(shape: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...],
                     blocks: Iterator[tuple[tuple[slice, ...], np.ndarray]]):
    """An hdmf data-chunk iterator writing `blocks` ((selection, values) pairs) into a dataset of `shape`."""
    from hdmf.data_utils import AbstractDataChunkIterator, DataChunk

    class Blocks(AbstractDataChunkIterator):
        def __iter__(self):
            return self

        def __next__(self) -> DataChunk:
            selection, values = next(blocks)
            return DataChunk(data=values, selection=selection)

        def recommended_chunk_shape(self) -> tuple[int, ...]:
            return chunks

        def recommended_data_shape(self) -> tuple[int, ...]:
            return shape

        @property
        def dtype(self) -> np.dtype:
            return np.dtype(dtype)

        @property
        def maxshape(self) -> tuple[int, ...]:
            return shape

    return Blocks()


def _roi_block(row_bytes: int) -> int:
    """ROIs per block: about BLOCK_BYTES, a multiple of ROI_CHUNK (each chunk written once)."""
    return max(ROI_CHUNK, (BLOCK_BYTES // max(row_bytes, 1)) // ROI_CHUNK * ROI_CHUNK)


def _traces_data(dset: h5py.Dataset):
    """(frames, n_rois) from a (n_rois, frames) dataset, written in blocks of ROIs, gzip-compressed."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO

    n_rois, frames = dset.shape
    if n_rois == 0:
        return np.zeros((frames, 0), np.float32)
    step = _roi_block(frames * dset.dtype.itemsize)
    chunks = (min(frames, max(1, 2**18 // min(n_rois, ROI_CHUNK))), min(n_rois, ROI_CHUNK))
    blocks = (((slice(0, frames), slice(start, min(start + step, n_rois))), dset[start:start + step].T)
              for start in range(0, n_rois, step))
    return H5DataIO(_blocks_iterator((frames, n_rois), dset.dtype, chunks, blocks), compression="gzip",
                    compression_opts=4, shuffle=True)


def _masks_data(coords: np.ndarray, weights: np.ndarray, n_rois: int, height: int, width: int):
    """(n_rois, width, height) weighted image masks (NWB's (x, y) order), written in blocks of ROIs."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO

    if n_rois == 0:
        return np.zeros((0, width, height), np.float32)
    roi, ys, xs = (np.asarray(c, np.int64) for c in coords)
    order = np.argsort(roi, kind="stable")
    bounds = np.searchsorted(roi[order], np.arange(n_rois + 1))
    step = _roi_block(height * width * 4)

    def blocks() -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
        for start in range(0, n_rois, step):
            stop = min(start + step, n_rois)
            block = np.zeros((stop - start, width, height), np.float32)
            sel = order[bounds[start]:bounds[stop]]
            block[roi[sel] - start, xs[sel], ys[sel]] = weights[sel]
            yield (slice(start, stop), slice(0, width), slice(0, height)), block

    return H5DataIO(_blocks_iterator((n_rois, width, height), np.float32, (1, width, height), blocks()),
                    compression="gzip", compression_opts=4, shuffle=True)


def build_nwbfile(extraction: h5py.File, options: NwbOptions, written_at: datetime):
    """The pynwb NWBFile of an open, valid extraction.h5. Large datasets are iterators over `extraction`: write the
    file while it is open."""
    from hdmf.common import VectorData
    from pynwb import NWBFile
    from pynwb.base import Images
    from pynwb.file import Subject
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel, PlaneSegmentation

    from ophys_extraction import __version__

    meta = options.metadata
    plane_id = str(extraction.attrs["plane_id"])
    frame_rate = extraction.attrs.get("frame_rate")
    if frame_rate is None:
        raise InputError(extraction.filename, "has no frame_rate attribute (an NWB file needs the imaging rate)")
    n_rois, height, width = (int(v) for v in extraction["rois/shape"][()])
    start = _parse_time("metadata", "session_start_time", meta["session_start_time"]) \
        if "session_start_time" in meta else UNKNOWN_START
    description = meta.get("session_description") or default_description(plane_id)
    if "session_start_time" not in meta:
        description += UNKNOWN_START_NOTE
    nwbfile = NWBFile(
        session_description=description, identifier=identifier(extraction, options), session_start_time=start,
        file_create_date=written_at, session_id=plane_id, source_script=f"ophys-extraction {__version__}",
        source_script_file_name="ophys_extraction/nwb.py",
        experimenter=meta.get("experimenter"), institution=meta.get("institution"), lab=meta.get("lab"),
        experiment_description=meta.get("experiment_description"), keywords=KEYWORDS,
        subject=Subject(**_subject_fields(meta.get("subject"))))
    device = nwbfile.create_device(name="Microscope", description="two-photon microscope")
    channel = OpticalChannel(name="OpticalChannel", description="the channel the movie was recorded in",
                             emission_lambda=float(meta.get("emission_lambda", np.nan)))
    spacing = {} if options.pixel_size_um is None else {
        "grid_spacing": [options.pixel_size_um, options.pixel_size_um], "grid_spacing_unit": "micrometers"}
    plane = nwbfile.create_imaging_plane(
        name="ImagingPlane", optical_channel=channel, description=f"plane {plane_id}", device=device,
        excitation_lambda=float(meta.get("excitation_lambda", np.nan)), imaging_rate=float(frame_rate),
        indicator=options.indicator, location=options.location, **spacing)
    ophys = nwbfile.create_processing_module(name=MODULE, description="ophys-extraction: Cellpose 3 ROIs, suite2p "
                                             "traces and neuropil correction")

    masks = VectorData(name="image_mask", description="weighted image mask of each ROI (suite2p's lam), (x, y)",
                       data=_masks_data(extraction["rois/coords"][()], extraction["rois/data"][()], n_rois,
                                        height, width))
    segmentation = PlaneSegmentation(name=PLANE_SEGMENTATION, imaging_plane=plane, id=list(range(n_rois)),
                                     columns=[masks], description="ROIs of extraction.h5; id = ROI index "
                                     "(row of its traces, label id + 1 in cellpose/masks)")
    for column, (path, text) in COLUMNS.items():
        if path in extraction:
            values = extraction[path][()]
            segmentation.add_column(name=column, description=text,
                                    data=values.astype(bool) if values.dtype == np.bool_ else values)
    ophys.add(ImageSegmentation(name=SEGMENTATION, plane_segmentations=[segmentation]))
    fluorescence = Fluorescence(name=FLUORESCENCE)
    ophys.add(fluorescence)
    region = segmentation.create_roi_table_region(description="every ROI", region=list(range(n_rois)))
    for name, (path, text) in SERIES.items():
        fluorescence.create_roi_response_series(name=name, data=_traces_data(extraction[path]), rois=region,
                                                unit="a.u.", rate=float(frame_rate), starting_time=0.0,
                                                description=text)
    images = [GrayscaleImage(name=name, data=extraction[name][()].T, description=f"{text}, (x, y)")
              for name, text in IMAGE_DATASETS.items() if name in extraction]
    ophys.add(Images(name=IMAGES, images=images, description="summary images of the movie"))
    return nwbfile


def default_description(plane_id: str) -> str:
    """The session description when the metadata file gives none."""
    return f"Imaging plane {plane_id}: cells (Cellpose 3) and traces (suite2p) extracted by ophys-extraction."


def options_from_nwb(path: Path) -> NwbOptions:
    """The options an NWB file of `write_nwb` was written with, read back from it (to write it again after a
    curation): the imaging plane's indicator, location and grid spacing, and the metadata file's values, where the
    file records them rather than what stands for the unknown (UNKNOWN_START, UNKNOWN_SUBJECT, the default
    description, NaN wavelengths)."""
    from pynwb import NWBHDF5IO

    try:
        io = NWBHDF5IO(str(path), "r")
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read as an NWB file ({err})") from None
    with io:
        nwbfile = io.read()
        plane = nwbfile.imaging_planes["ImagingPlane"]
        spacing = plane.grid_spacing
        meta: dict[str, Any] = {}
        if nwbfile.session_start_time != UNKNOWN_START:
            meta["session_start_time"] = nwbfile.session_start_time.isoformat()
        description = nwbfile.session_description
        if "session_start_time" not in meta and description.endswith(UNKNOWN_START_NOTE):
            description = description[:-len(UNKNOWN_START_NOTE)]
        if description != default_description(str(nwbfile.session_id)):
            meta["session_description"] = description
        for key in ("experiment_description", "institution", "lab"):
            if getattr(nwbfile, key) is not None:
                meta[key] = getattr(nwbfile, key)
        if nwbfile.experimenter is not None:
            meta["experimenter"] = list(nwbfile.experimenter)
        subject = {key: getattr(nwbfile.subject, key) for key in SUBJECT_KEYS
                   if getattr(nwbfile.subject, key, None) is not None}
        if subject != UNKNOWN_SUBJECT:
            if "date_of_birth" in subject:
                subject["date_of_birth"] = subject["date_of_birth"].isoformat()
            meta["subject"] = {key: str(value) for key, value in subject.items()}
        wavelengths = {"excitation_lambda": plane.excitation_lambda,
                       "emission_lambda": plane.optical_channel[0].emission_lambda}
        meta.update({key: float(value) for key, value in wavelengths.items() if np.isfinite(value)})
        return NwbOptions(indicator=plane.indicator, location=plane.location,
                          pixel_size_um=None if spacing is None else float(spacing[0]), metadata=meta)


def _subject_fields(subject: dict[str, Any] | None) -> dict[str, Any]:
    if subject is None:
        return dict(UNKNOWN_SUBJECT)
    fields = dict(subject)
    if "date_of_birth" in fields:
        fields["date_of_birth"] = datetime.fromisoformat(fields["date_of_birth"])
    return fields


def write_nwb(extraction_path: Path, output: Path, options: NwbOptions) -> Path:
    """Write `output` from `extraction_path` atomically (temporary name in the same folder, then rename)."""
    import os

    from pynwb import NWBHDF5IO

    problems = validation.validate(extraction_path)
    if problems:
        raise InputError(extraction_path, f"not a valid extraction.h5 ({len(problems)} problem(s), first: "
                                          f"{problems[0]}; see `ophys-extraction validate`)")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp-{os.getpid()}.nwb")
    try:
        with h5py.File(extraction_path, "r") as extraction:
            nwbfile = build_nwbfile(extraction, options, written_at=datetime.now(timezone.utc))
            with NWBHDF5IO(tmp, "w") as io:
                io.write(nwbfile)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return output
