"""AIND's processing records: MERGE's per-plane `<plane>_extraction_data_process.json` and SESSION_SUMMARY's
`quality_control.json`, read back and validated by aind-data-schema's own models; without aind-data-schema both
steps still write everything else. The demo end to end is in test_pipeline."""

from __future__ import annotations

import builtins
import json
from datetime import datetime, timezone
from pathlib import Path

import h5py
import pytest

from conftest import make_plane, run_merge
from ophys_extraction import aind_records
from ophys_extraction.cli.session_summary import main as session_summary_main


def validated_data_process(path: Path):
    from aind_data_schema.core.processing import DataProcess, Processing

    process = DataProcess.model_validate_json(path.read_text())
    Processing(data_processes=[process])           # and it is a valid record for AIND's processing.json
    return process


def validated_quality_control(path: Path):
    from aind_data_schema.core.quality_control import QualityControl

    return QualityControl.model_validate_json(path.read_text())


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aind")
    paths = make_plane(root / "in")
    with h5py.File(paths["summary"], "a") as f:
        f.attrs["started_at"] = "2026-01-02T03:04:05+00:00"     # SUMMARY_IMAGES' start
    assert run_merge(paths, root / "out", "--aind_data_process") == 0
    return root / "out"


def test_merge_writes_a_valid_data_process_record(merged: Path) -> None:
    from aind_data_schema_models.process_names import ProcessName

    process = validated_data_process(merged / "plane_7_extraction_data_process.json")
    assert process.process_type == ProcessName.VIDEO_ROI_TIMESERIES_EXTRACTION and process.name == "ophys-extraction plane_7"
    assert process.start_date_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert process.end_date_time > process.start_date_time
    assert str(process.output_path) == "plane_7/extraction"
    assert process.code.name == "ophys-extraction" and process.code.version and process.code.url
    assert process.code.core_dependency.name == "suite2p" and process.code.core_dependency.version == "1.1.0"
    assert process.code.input_data[0].url == "file:///data/session/plane_7/motion_correction/plane_7_registered.h5"
    with h5py.File(merged / "extraction.h5", "r") as f:
        parameters = json.loads(f.attrs["parameters"])
        n_rois = f["traces/corrected"].shape[0]
        assert "started_at" not in parameters["summary_images"]        # run-specific: not in extraction.h5
    assert process.code.parameters.model_dump() == parameters
    assert process.output_parameters.model_dump() == {"frames": 4000, "rois": n_rois, "cells": 3,
                                                      "rois_baseline_at_or_below_zero": 1}


def plane_summary(folder: Path, plane: str, **row) -> Path:
    path = folder / plane / "plane_summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"plane": plane, "frames": 600, "rois": 10, "cells": 4,
                                "rois_baseline_at_or_below_zero": 0, "runtime_seconds": 1.0, "warnings": [],
                                **row}))
    return path


def test_session_summary_writes_a_valid_quality_control_record(tmp_path: Path) -> None:
    from aind_data_schema.core.quality_control import Status

    run = tmp_path / "run.json"
    run.write_text(json.dumps({"planes": [{"plane": "a"}, {"plane": "b"}, {"plane": "c"},
                                          {"plane": "d", "error": "ERROR: d.h5: no dataset 'data'"}]}))
    summaries = [plane_summary(tmp_path, "a"),
                 plane_summary(tmp_path, "b", rois=0, cells=0, warnings=["no ROIs: ..."]),
                 plane_summary(tmp_path, "c", rois_baseline_at_or_below_zero=2)]
    assert session_summary_main(["--run", str(run), "--output", str(tmp_path),
                                 *map(str, summaries)]) == 0
    qc = validated_quality_control(tmp_path / "quality_control.json")
    by_name = {metric.name: metric for metric in qc.metrics}
    assert set(by_name) == {f"{p} {e}" for p in "abc" for e in ("ROIs", "Cells", "ROIs with baseline at or below "
                                                                "zero", "Warnings")} | {"d Processing"}
    assert by_name["a ROIs"].value == 10 and by_name["a Cells"].value == 4
    assert by_name["a ROIs"].tags == {"plane": "a", "evaluation": "ROIs"}
    assert by_name["a ROIs"].reference == "a/extraction/detected_ROIs.png"
    assert {name for name, m in by_name.items() if m.status.status != Status.PASS} == {
        "b ROIs", "b Cells", "b Warnings", "c ROIs with baseline at or below zero", "d Processing"}
    assert by_name["d Processing"].status.status == Status.FAIL and by_name["d Processing"].value.startswith("ERROR")
    assert by_name["b Warnings"].value == ["no ROIs: ..."]
    assert qc.status["plane:a"] == Status.PASS and qc.status["plane:d"] == Status.FAIL
    assert (tmp_path / "summary.json").is_file()


def test_without_aind_data_schema_the_steps_still_work(tmp_path: Path, monkeypatch, capsys) -> None:
    """The package missing (its import fails): MERGE and SESSION_SUMMARY write everything else and say why there
    is no record."""
    real_import = builtins.__import__

    def no_aind(name, *args, **kwargs):
        if name.startswith("aind_data_schema"):
            raise ImportError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_aind)
    assert aind_records.missing() == "aind-data-schema is not installed (No module named 'aind_data_schema')"

    paths = make_plane(tmp_path / "in")
    assert run_merge(paths, tmp_path / "out", "--aind_data_process") == 0
    assert "merge: no plane_7_extraction_data_process.json: aind-data-schema is not installed" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["detected_ROIs.png", "extraction.h5",
                                                                    "plane_7_extraction.h5"]
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"planes": [{"plane": "a"}]}))
    assert session_summary_main(["--run", str(run), "--output", str(tmp_path / "summary"),
                                 str(plane_summary(tmp_path, "a"))]) == 0
    assert "no quality_control.json: aind-data-schema is not installed" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "summary").iterdir()) == ["summary.csv", "summary.html", "summary.json"]


def test_merge_by_hand_writes_no_record_unless_asked(tmp_path: Path) -> None:
    paths = make_plane(tmp_path / "in")
    assert run_merge(paths, tmp_path / "out") == 0
    assert not list((tmp_path / "out").glob("*_data_process.json"))
