"""The session summary: every plane found, in order, with its reason when it failed and its warnings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ophys_extraction.cli.session_summary import main
from ophys_extraction.session import NO_REASON

ODD_IDS = ["plane 0", "é日本, \"quoted\"", "a$(touch x);b", "-dash"]


def test_rows_reasons_warnings_and_odd_ids(tmp_path: Path, capsys) -> None:
    finished = tmp_path / "planes" / "0" / "plane_summary.json"
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps({"plane": ODD_IDS[1], "frames": 300, "rois": 12, "cells": 3,
                                    "runtime_seconds": 4.2, "warnings": ["short", "odd rate"]}))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"planes": [{"plane": ODD_IDS[0], "error": "/in/plane 0.h5: has rank 2"},
                                          {"plane": ODD_IDS[1], "error": None},
                                          {"plane": ODD_IDS[2], "error": None},
                                          {"plane": ODD_IDS[3], "error": "/in/-dash.h5: zero frames"}],
                               "stale_folders": ["old plane"]}))
    assert main(["--run", str(run), "--output", str(tmp_path / "out"), str(finished),
                 str(tmp_path / "planes" / "missing" / "plane_summary.json")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert [row["plane"] for row in summary["planes"]] == ODD_IDS
    assert [row["status"] for row in summary["planes"]] == ["failed", "ok", "failed", "failed"]
    assert [row["error"] for row in summary["planes"]] == ["/in/plane 0.h5: has rank 2", None, NO_REASON,
                                                           "/in/-dash.h5: zero frames"]
    assert summary["planes"][1]["warnings"] == ["short", "odd rate"]
    assert summary["totals"] == {"planes": 4, "ok": 1, "failed": 3, "rois": 12, "cells": 3}
    assert summary["stale_folders"] == ["old plane"]
    with (tmp_path / "out" / "summary.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["plane"] for row in rows] == ODD_IDS
    assert rows[1]["warnings"] == "short | odd rate" and rows[0]["error"] == "/in/plane 0.h5: has rank 2"
    printed = capsys.readouterr().out
    assert "1 of 4 planes ok, 3 failed" in printed and "plane -dash failed: /in/-dash.h5: zero frames" in printed
