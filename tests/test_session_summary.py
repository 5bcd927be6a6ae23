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
    assert [row["plane"] for row in rows] == ODD_IDS
    assert rows[1]["warnings"] == "short | odd rate" and rows[0]["error"] == "/in/plane 0.h5: has rank 2"
    printed = capsys.readouterr().out
    assert "1 of 4 planes ok, 3 failed" in printed and "plane -dash failed: /in/-dash.h5: zero frames" in printed


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
    """summary.html: one table row per plane (a header row besides), one figure per finished plane at its relative
    path, odd ids escaped in text and quoted in links; 100 planes still make one page."""
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
    assert [unquote(src) for src in parsed.images] == [f"{plane}/extraction/detected_ROIs.png" for plane in ids[1:]]
    assert "<b>&" not in page and html.escape(ids[1]) in page and ids[1] in "".join(parsed.text)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    # A plane whose NWB step failed after MERGE is failed, with its counts (its extraction.h5 exists).
    assert summary["planes"][1]["status"] == "failed" and summary["planes"][1]["rois"] == 10
    assert summary["totals"]["failed"] == 2
