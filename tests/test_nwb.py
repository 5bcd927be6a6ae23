"""The NWB step: extraction.h5 -> <plane>.nwb, valid for pynwb's validator and nwbinspector, and read back equal.

The extraction.h5 files are MERGE's output on conftest's fixture planes (make_plane; the end-to-end run with --nwb is
in test_pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from ophys_extraction import nwb, schema
from ophys_extraction.cli import main as dispatch
from ophys_extraction.cli.nwb import main as nwb_main
from conftest import METADATA, assert_equal_to_extraction, critical_findings, make_plane, read_nwb, run_merge


def merged_plane(root: Path, **kwargs) -> Path:
    paths = make_plane(root / "in", **kwargs)
    assert run_merge(paths, root / "out", "--plane_id", "plane_7") == 0
    return root / "out" / "extraction.h5"


@pytest.fixture(scope="module")
def extraction(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return merged_plane(tmp_path_factory.mktemp("nwb"))


def test_nwb_is_valid_and_equal_to_extraction_h5(tmp_path: Path, extraction: Path) -> None:
    from pynwb import validate

    assert nwb_main([str(extraction), "--outdir", str(tmp_path), "--indicator", "GCaMP6f", "--location", "VISp",
                     "--pixel_size", "0.78"]) == 0
    out = tmp_path / "plane_7.nwb"
    assert validate(path=str(out)) == []
    assert critical_findings(out) == []
    got = assert_equal_to_extraction(out, extraction)
    assert got["plane"]["indicator"] == "GCaMP6f" and got["plane"]["location"] == "VISp"
    assert got["plane"]["grid_spacing"] == [0.78, 0.78]
    # What the pipeline cannot know is recorded as unknown, in NWB's terms.
    assert got["subject"]["subject_id"] == "unknown" and got["subject"]["sex"] == "U"
    assert got["session_start_time"].year == 1970
    # The fixture has a ROI with its baseline below zero and one without.
    assert set(got["columns"]["baseline_at_or_below_zero"]) == {False, True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plane_7.nwb"]   # no temporary left


def test_metadata_file_fills_what_the_pipeline_cannot_know(tmp_path: Path, extraction: Path) -> None:
    from pynwb import validate

    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(METADATA))
    assert nwb_main([str(extraction), "--outdir", str(tmp_path / "a"), "--metadata", str(metadata)]) == 0
    out = tmp_path / "a" / "plane_7.nwb"
    assert validate(path=str(out)) == [] and critical_findings(out) == []
    got = assert_equal_to_extraction(out, extraction)
    assert got["subject"]["subject_id"] == "mouse-1" and got["subject"]["species"] == "Mus musculus"
    assert got["session_start_time"].isoformat() == "2025-03-01T10:15:00-08:00"
    assert list(got["experimenter"]) == ["Doe, Jane"] and got["plane"]["excitation_lambda"] == 920
    assert got["plane"]["grid_spacing"] is None
    # The identifier follows the content: the same input gives the same one, other metadata another.
    assert nwb_main([str(extraction), "--outdir", str(tmp_path / "b"), "--metadata", str(metadata)]) == 0
    assert read_nwb(tmp_path / "b" / "plane_7.nwb")["identifier"] == got["identifier"]
    assert read_nwb(tmp_path / "b" / "plane_7.nwb")["identifier"] != read_nwb_default_id(tmp_path, extraction)


def read_nwb_default_id(tmp_path: Path, extraction: Path) -> str:
    assert nwb_main([str(extraction), "--outdir", str(tmp_path / "default")]) == 0
    return read_nwb(tmp_path / "default" / "plane_7.nwb")["identifier"]


def test_blocks_of_rois_and_the_suite2p_neuropil_plane(tmp_path: Path, monkeypatch) -> None:
    """Traces and masks written in several blocks (2 ROIs each) equal the file; without the mutual-information r
    there is no such column."""
    extraction = merged_plane(tmp_path / "s2p", mutual_info=False, drop=())
    monkeypatch.setattr(nwb, "BLOCK_BYTES", 1)
    monkeypatch.setattr(nwb, "ROI_CHUNK", 2)
    assert nwb_main([str(extraction), "--outdir", str(tmp_path)]) == 0
    got = assert_equal_to_extraction(tmp_path / "plane_7.nwb", extraction)
    assert len(got["ids"]) == 6 and schema.RAW_RCOEF not in got["columns"]


def test_zero_roi_plane(tmp_path: Path) -> None:
    from pynwb import validate

    extraction = merged_plane(tmp_path / "zero", n_labels=0, drop=())
    assert dispatch(["nwb", str(extraction)]) == 0      # default: beside the input
    out = extraction.parent / "plane_7.nwb"
    assert validate(path=str(out)) == [] and critical_findings(out) == []
    got = assert_equal_to_extraction(out, extraction)
    assert got["series"]["corrected"][0].shape == (4000, 0)


def test_the_link_file_is_a_valid_input(tmp_path: Path, extraction: Path) -> None:
    assert nwb_main([str(extraction.parent / "plane_7_extraction.h5"), "--outdir", str(tmp_path)]) == 0
    assert_equal_to_extraction(tmp_path / "plane_7.nwb", extraction)


@pytest.mark.parametrize("metadata, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "must hold a JSON object"),
    ('{"session_start": "2025-01-01T00:00:00Z"}', "unknown key(s) session_start"),
    ('{"session_start_time": "2025-01-01T00:00:00"}', "has no time zone"),
    ('{"session_start_time": "yesterday"}', "not an ISO 8601 date and time"),
    ('{"subject": {"subject_id": "m1", "name": "x"}}', "unknown subject key(s) name"),
    ('{"subject": {"subject_id": 7}}', "'subject.subject_id' must be text"),
    ('{"experimenter": 3}', "'experimenter' must be a name or a list of names"),
    ('{"excitation_lambda": -1}', "'excitation_lambda' must be a number > 0"),
])
def test_bad_metadata_is_one_line_and_writes_nothing(tmp_path: Path, extraction: Path, capsys, metadata: str,
                                                     message: str) -> None:
    path = tmp_path / "meta.json"
    path.write_text(metadata)
    assert dispatch(["nwb", str(extraction), "--outdir", str(tmp_path / "out"), "--metadata", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ERROR: {path}: ") and message in err[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_invalid_extraction_file_is_refused(tmp_path: Path, extraction: Path, capsys) -> None:
    broken = tmp_path / "extraction.h5"
    broken.write_bytes(extraction.read_bytes())
    with h5py.File(broken, "a") as f:
        del f["iscell"]
    assert dispatch(["nwb", str(broken), "--outdir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"ERROR: {broken}: not a valid extraction.h5" in err and "iscell: missing dataset" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_failure_while_writing_leaves_nothing(tmp_path: Path, extraction: Path, monkeypatch) -> None:
    from pynwb import NWBHDF5IO

    def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(NWBHDF5IO, "write", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        nwb_main([str(extraction), "--outdir", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []


def test_bin_script_help() -> None:
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run([sys.executable, str(REPO / "bin" / "nwb.py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "session_start_time" in out.stdout and "--pixel_size" in out.stdout
