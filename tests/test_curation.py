"""Curation back in (`ophys-extraction apply-curation`): a curated iscell.npy becomes extraction.h5's `iscell`, the
classifier's is kept as `iscell_original`, the curation is recorded in `parameters`, and the NWB file (with the
options it was written with), detected_ROIs.png, <plane>_extraction.h5 and the suite2p folder's iscell.npy follow;
a curation that does not fit changes nothing. The round trip through suite2p's GUI itself is in
test_suite2p_folder; the demo end to end in test_pipeline."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import METADATA, assert_equal_to_extraction, critical_findings, merged_plane_output, read_nwb
from ophys_extraction import nwb, schema
from ophys_extraction.cli import main as dispatch
from ophys_extraction.curation import apply_curation
from ophys_extraction.validation import validate


@pytest.fixture(scope="module")
def plane_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<root>/plane_7: extraction/ (extraction.h5, plane_7_extraction.h5, detected_ROIs.png, plane_7.nwb written with
    the metadata file and options) and suite2p/plane0/; each test works on a copy."""
    root = tmp_path_factory.mktemp("curation")
    extraction = merged_plane_output(root)
    metadata = root / "metadata.json"
    metadata.write_text(json.dumps(METADATA))
    assert dispatch(["nwb", str(extraction), "--indicator", "GCaMP6f", "--location", "VISp", "--pixel_size", "0.78",
                     "--metadata", str(metadata)]) == 0
    assert dispatch(["export-suite2p", str(root / "plane_7")]) == 0
    return root / "plane_7"


@pytest.fixture
def plane(tmp_path: Path, plane_template: Path) -> Path:
    copy = tmp_path / "plane_7"
    shutil.copytree(plane_template, copy)
    return copy


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_curation_round_trip(plane: Path) -> None:
    extraction = plane / "extraction" / "extraction.h5"
    before = snapshot(plane)
    with h5py.File(extraction, "r") as f:
        original = f["iscell"][()]
    curated = original.copy()
    curated[[0, 1], 0] = 1 - curated[[0, 1], 0]         # one ROI each way (the fixture's classes alternate)
    curated[2, 1] = 0.5                                  # a probability the GUI's classifier changed
    np.save(plane / "suite2p" / "plane0" / "iscell.npy", curated)   # where suite2p's GUI saves it
    assert dispatch(["apply-curation", str(plane)]) == 0

    assert validate(extraction) == [] and validate(plane / "extraction" / "plane_7_extraction.h5") == []
    with h5py.File(extraction, "r") as f:
        np.testing.assert_array_equal(f["iscell"][()], curated)
        np.testing.assert_array_equal(f[schema.ISCELL_ORIGINAL][()], original)
        record = json.loads(f.attrs["parameters"])["curation"]
        assert f["iscell"].dtype == np.float32
    assert len(record) == 1
    assert record[0]["to_cell"] == [1] and record[0]["to_not_cell"] == [0] and record[0]["probabilities_changed"] == 1
    assert record[0]["iscell_file"] == str((plane / "suite2p" / "plane0" / "iscell.npy").resolve())
    assert record[0]["cells_before"] == record[0]["cells_after"] == 3
    assert record[0]["original_kept_as"] == "iscell_original" and len(record[0]["iscell_sha256"]) == 64
    # The NWB file is written again, from the curated file, with the options it had.
    got = assert_equal_to_extraction(plane / "extraction" / "plane_7.nwb", extraction)
    np.testing.assert_array_equal(got["columns"]["iscell"], curated)
    np.testing.assert_array_equal(got["columns"]["iscell_original"], original)
    assert got["plane"]["indicator"] == "GCaMP6f" and got["plane"]["location"] == "VISp"
    assert got["plane"]["grid_spacing"] == [0.78, 0.78] and got["subject"]["subject_id"] == "mouse-1"
    assert got["session_start_time"].isoformat() == "2025-03-01T10:15:00-08:00"
    assert critical_findings(plane / "extraction" / "plane_7.nwb") == []
    after = snapshot(plane)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"extraction/extraction.h5", "extraction/plane_7_extraction.h5", "extraction/plane_7.nwb",
                       "extraction/detected_ROIs.png", "suite2p/plane0/iscell.npy", "suite2p/plane0/iscell.npy.sha256"}
    # the digest now names the curated iscell.npy: a later run sees an applied curation, not an unapplied GUI edit
    assert iscell_digest_holds(plane)
    # no temporary left; added: the curation's record beside extraction.h5, where the pipeline's start finds it
    assert set(after) == set(before) | {"extraction/curation.json"}
    assert json.loads((plane / "extraction" / "curation.json").read_text()) == {"curation": record}


def iscell_digest_holds(plane: Path) -> bool:
    """The suite2p folder's iscell.npy.sha256 is the SHA-256 of its iscell.npy, in sha256sum's format."""
    folder = plane / "suite2p" / "plane0"
    expected = hashlib.sha256((folder / "iscell.npy").read_bytes()).hexdigest()
    return (folder / "iscell.npy.sha256").read_text() == f"{expected}  iscell.npy\n"


def test_a_curated_file_elsewhere_updates_the_suite2p_folder_and_a_second_curation_keeps_the_original(
        plane: Path, tmp_path: Path) -> None:
    extraction = plane / "extraction" / "extraction.h5"
    with h5py.File(extraction, "r") as f:
        original = f["iscell"][()]
    first = tmp_path / "curated" / "iscell.npy"
    first.parent.mkdir()
    flags = original[:, 0].copy()
    flags[4] = 1 - flags[4]
    np.save(first, flags.astype(bool))                    # (n_rois,) 0/1: the probabilities stay
    result = apply_curation(plane, first)
    assert result is not None and result.written[0] == extraction
    np.testing.assert_array_equal(np.load(plane / "suite2p" / "plane0" / "iscell.npy")[:, 0], flags)
    assert iscell_digest_holds(plane)
    second = np.column_stack([np.ones(5), original[:, 1]]).astype(np.float32)
    np.save(first, second)
    assert apply_curation(plane / "extraction", first).cells_after == 5
    with h5py.File(extraction, "r") as f:
        np.testing.assert_array_equal(f["iscell"][()], second)
        np.testing.assert_array_equal(f[schema.ISCELL_ORIGINAL][()], original)   # the classifier's, not the 1st
        assert [r["cells_after"] for r in json.loads(f.attrs["parameters"])["curation"]] == [result.cells_after, 5]
    # The same marks again: nothing to do, nothing written.
    before = snapshot(plane)
    assert apply_curation(extraction, first) is None
    assert snapshot(plane) == before


@pytest.mark.parametrize("values, message", [
    (np.zeros((4, 2), np.float32), "4 ROIs, but {extraction} has 5: a curation that merged, added or removed ROIs "
                                   "cannot be applied (only cell / not-cell marks); nothing changed"),
    (np.full((5, 2), 2.0), "column 0 (cell) has values other than 0 and 1"),
    (np.column_stack([np.ones(5), np.full(5, 1.5)]), "column 1 (probability) has values outside [0, 1]"),
    (np.zeros((5, 3)), "shape (5, 3), expected (n_rois, 2) as suite2p's GUI saves iscell.npy, or (n_rois,)"),
    (np.array(["a"] * 5), "dtype <U1, expected numbers"),
    (None, "cannot be read as a .npy array"),
])
def test_a_curation_that_does_not_fit_is_one_line_and_changes_nothing(plane: Path, tmp_path: Path, capsys,
                                                                      values, message: str) -> None:
    curated = tmp_path / "iscell.npy"
    if values is None:
        curated.write_text("not an array")
    else:
        np.save(curated, values)
    before = snapshot(plane)
    assert dispatch(["apply-curation", str(plane), "--iscell", str(curated)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    extraction = plane / "extraction" / "extraction.h5"
    assert len(err) == 1 and err[0].startswith(f"ERROR: {curated}: ") and message.format(extraction=extraction) in err[0]
    assert snapshot(plane) == before


def test_no_plane_or_no_curated_file(tmp_path: Path, plane: Path, capsys) -> None:
    assert dispatch(["apply-curation", str(tmp_path / "none")]) == 2
    assert "no extraction.h5 here" in capsys.readouterr().err
    shutil.rmtree(plane / "suite2p")
    assert dispatch(["apply-curation", str(plane)]) == 2
    assert capsys.readouterr().err.strip() == f"ERROR: {plane / 'suite2p' / 'plane0' / 'iscell.npy'}: file does not exist"


def test_only_what_is_there_is_written_again(plane: Path, tmp_path: Path) -> None:
    """Without an NWB file, a figure or a link file, none is made (the curation's record is, and the digest of the
    suite2p folder's iscell.npy, which the GUI saved: it is the curated file)."""
    for name in ("plane_7.nwb", "detected_ROIs.png", "plane_7_extraction.h5"):
        (plane / "extraction" / name).unlink()
    curated = np.load(plane / "suite2p" / "plane0" / "iscell.npy")
    curated[:, 0] = 1
    np.save(plane / "suite2p" / "plane0" / "iscell.npy", curated)
    result = apply_curation(plane)
    assert [p.name for p in result.written] == ["extraction.h5", "iscell.npy.sha256", "curation.json"]
    assert sorted(p.name for p in (plane / "extraction").iterdir()) == ["curation.json", "extraction.h5"]


@pytest.mark.parametrize("metadata", [{}, METADATA])
def test_nwb_options_are_read_back(tmp_path: Path, plane_template: Path, metadata: dict) -> None:
    """options_from_nwb(a file written with options) gives options that write the same metadata again."""
    extraction = plane_template / "extraction" / "extraction.h5"
    options = nwb.NwbOptions(indicator="GCaMP6s", location="VISl", pixel_size_um=None if metadata else 1.5,
                             metadata=metadata)
    first = nwb.write_nwb(extraction, tmp_path / "a.nwb", options)
    again = nwb.write_nwb(extraction, tmp_path / "b.nwb", nwb.options_from_nwb(first))
    a, b = read_nwb(first), read_nwb(again)
    for key in ("subject", "session_start_time", "experimenter", "plane"):
        assert a[key] == b[key] or (key == "plane" and str(a[key]) == str(b[key])), key
    with h5py.File(first, "r") as fa, h5py.File(again, "r") as fb:
        assert fa["session_description"][()] == fb["session_description"][()]


def test_the_validator_checks_iscell_original(plane: Path) -> None:
    """iscell_original is part of the format (docs/output.md): accepted when right, its shape and values checked."""
    extraction = plane / "extraction" / "extraction.h5"
    with h5py.File(extraction, "a") as f:
        f["iscell_original"] = f["iscell"][()]
    assert validate(extraction) == []
    with h5py.File(extraction, "a") as f:
        f["iscell_original"][0, 0] = 0.5
    assert validate(extraction) == ["iscell_original: column 0 has values other than 0/1"]
    with h5py.File(extraction, "a") as f:
        del f["iscell_original"]
        f["iscell_original"] = np.zeros((4, 2), np.float32)
    assert any(p.startswith("iscell_original: shape (4, 2) has n_rois=4") for p in validate(extraction))
