"""The session summary: every plane found, in order, with its reason when it failed and its warnings; the HTML
overview."""

from __future__ import annotations

import csv
import html
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from ophys_extraction.cli.session_summary import main
from ophys_extraction.session_summary import NO_REASON

ODD_IDS = ["plane 0", "é日本, \"quoted\" <b>&", "a$(touch x);b", "-dash"]


def test_rows_reasons_warnings_and_odd_ids(tmp_path: Path, capsys) -> None:
    finished = tmp_path / "planes" / "0" / "plane_summary.json"
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps({"plane": ODD_IDS[1], "frames": 300, "rois": 12, "cells": 3,
                                    "rois_baseline_at_or_below_zero": 2, "runtime_seconds": 4.2,
                                    "warnings": ["short", "odd rate"]}))
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
    assert summary["totals"] == {"planes": 4, "ok": 1, "failed": 3, "rois": 12, "cells": 3,
                                 "rois_baseline_at_or_below_zero": 2}
    assert summary["planes"][1]["rois_baseline_at_or_below_zero"] == 2
    assert summary["stale_folders"] == ["old plane"]
    with (tmp_path / "out" / "summary.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # A leading '-' (or =, +, @) would make a spreadsheet run the cell: a ' in front shows it as text.
    assert [row["plane"] for row in rows] == [*ODD_IDS[:3], "'-dash"]
    assert rows[1]["warnings"] == "short | odd rate" and rows[0]["error"] == "/in/plane 0.h5: has rank 2"
    printed = capsys.readouterr().out
    assert "1 of 4 planes ok, 3 failed" in printed and "failed:" not in printed   # those lines: lib/RunReport


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.rows = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self.rows += tag == "tr"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_overview_lists_every_plane_and_links_each_figure(tmp_path: Path) -> None:
    """summary.html: one table row per plane (a header row besides), one figure per ok plane at its relative
    path (a plane that failed after MERGE has none: its folder is set aside), odd ids escaped in text and quoted
    in links; 100 planes still make one page."""
    ids = [*ODD_IDS, *(f"plane_{i:03d}" for i in range(96))]
    summaries = []
    for i, plane in enumerate(ids[1:], start=1):
        path = tmp_path / "planes" / str(i) / "plane_summary.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"plane": plane, "frames": 300, "rois": 10, "cells": 4,
                                    "rois_baseline_at_or_below_zero": i % 3, "runtime_seconds": 1.0,
                                    "warnings": []}))
        summaries.append(path)
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"planes": [{"plane": ids[0], "error": "/in/plane 0.h5: has rank 2"},
                                          {"plane": ids[1], "error": "extraction.h5: the NWB step failed"},
                                          *({"plane": plane, "error": None} for plane in ids[2:])],
                               "stale_folders": []}))
    assert main(["--run", str(run), "--output", str(tmp_path / "out"), *map(str, summaries)]) == 0
    page = (tmp_path / "out" / "summary.html").read_text(encoding="utf-8")
    parsed = _Links()
    parsed.feed(page)
    assert parsed.rows == 1 + len(ids)
    assert [unquote(src) for src in parsed.images] == [f"{plane}/extraction/detected_ROIs.png" for plane in ids[2:]]
    assert "<b>&" not in page and html.escape(ids[1]) in page and ids[1] in "".join(parsed.text)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    # A plane whose NWB step failed after MERGE is failed, with its counts (its extraction.h5 exists).
    assert summary["planes"][1]["status"] == "failed" and summary["planes"][1]["rois"] == 10
    assert summary["totals"]["failed"] == 2


def test_csv_cells_a_spreadsheet_would_run_are_text(tmp_path: Path) -> None:
    """Plane ids, errors and warnings that begin with =, +, -, @, a tab or a carriage return get a leading ' in
    summary.csv (not in summary.json); numbers and other text are as they are."""
    ids = ["=HYPERLINK(\"http://x\")", "+1", "@SUM(A1)", "\tx", "plain = fine"]
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"planes": [{"plane": plane, "error": "=cmd|' /C calc'!A0"} for plane in ids]}))
    assert main(["--run", str(run), "--output", str(tmp_path / "out")]) == 0
    with (tmp_path / "out" / "summary.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["plane"] for row in rows] == [f"'{plane}" for plane in ids[:4]] + [ids[4]]
    assert {row["error"] for row in rows} == {"'=cmd|' /C calc'!A0"}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert [row["plane"] for row in summary["planes"]] == ids


def test_failed_plane_with_results_links_no_figure_and_carries_the_runs_notes(tmp_path: Path) -> None:
    """A plane that finished MERGE but then failed (its results could not be published) is failed, its figure is
    not linked (its folder was set aside), and what the run did with its folder is among its warnings."""
    finished = tmp_path / "planes" / "0" / "plane_summary.json"
    finished.parent.mkdir(parents=True)
    for plane, path in (("a", finished), ("b", tmp_path / "planes" / "1" / "plane_summary.json")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"plane": plane, "frames": 300, "rois": 4, "cells": 2,
                                    "rois_baseline_at_or_below_zero": 0, "runtime_seconds": 1.0,
                                    "warnings": ["short"]}))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"planes": [
        {"plane": "a", "error": "/out/a/extraction/extraction.h5: could not be published (No space left on device)",
         "warnings": ["its folder ... was moved to /out/a.stale"]},
        {"plane": "b", "error": None, "warnings": []}], "stale_folders": ["a.stale"]}))
    assert main(["--run", str(run), "--output", str(tmp_path / "out"), str(finished),
                 str(tmp_path / "planes" / "1" / "plane_summary.json")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    a, b = summary["planes"]
    assert a["status"] == "failed" and "No space left on device" in a["error"]
    assert a["warnings"] == ["short", "its folder ... was moved to /out/a.stale"]
    assert b["status"] == "ok" and summary["totals"]["ok"] == 1
    links = _Links()
    links.feed((tmp_path / "out" / "summary.html").read_text(encoding="utf-8"))
    assert links.images == ["b/extraction/detected_ROIs.png"]
