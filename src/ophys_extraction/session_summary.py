"""The session summary: one row per plane found, finished or not, with why it failed and what was odd about it.

summary.json and summary.csv hold the rows (docs/output.md lists the columns); summary.html is the one-page overview
a person reads: the counts of every plane in one table, then every plane's detected_ROIs.png.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

# rois_baseline_at_or_below_zero: ROIs whose corrected trace has its median <= 0 (no usable dF/F; extraction.h5's
# traces/baseline_at_or_below_zero).
COLUMNS = ("plane", "status", "frames", "rois", "cells", "rois_baseline_at_or_below_zero", "runtime_seconds",
           "error", "warnings")
COUNTS = ("rois", "cells", "rois_baseline_at_or_below_zero")
FIGURE = "extraction/detected_ROIs.png"   # of each plane, relative to its folder in the output folder
# Why a plane without a result failed when no step recorded a reason (a task stopped by the infrastructure).
NO_REASON = "no result and no error recorded (see .nextflow.log)"


def summarise(planes: Iterable[dict], plane_summaries: Iterable[dict]) -> list[dict]:
    """Rows in the order of `planes` ({"plane": id, "error": the one ERROR line or None, "warnings": what the run
    itself says about the plane, such as where its previous results went}); a plane without a summary did not
    finish (bad input, skipped), one with a summary and an error failed after MERGE (NWB, or publishing)."""
    done = {row["plane"]: row for row in plane_summaries}
    rows = []
    for plane in planes:
        row = done.get(plane["plane"])
        run_warnings = list(plane.get("warnings") or [])
        if row is None:
            rows.append({**{key: None for key in COLUMNS}, "plane": plane["plane"], "status": "failed",
                         "error": plane.get("error") or NO_REASON, "warnings": run_warnings})
        else:
            error = plane.get("error")
            rows.append({**{key: row.get(key) for key in COLUMNS}, "status": "failed" if error else "ok",
                         "error": error, "warnings": list(row.get("warnings") or []) + run_warnings})
    return rows


# A text cell beginning with one of these is run as a formula by spreadsheets (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text value a spreadsheet would run as a formula, preceded by ' so that it shows as text (numbers as is)."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        cells = {**row, "warnings": " | ".join(row["warnings"])}
        writer.writerow({key: ("" if cells[key] is None else spreadsheet_safe(cells[key])) for key in COLUMNS})
    return out.getvalue()


def write_session_summary(run: dict, summary_files: list[Path], outdir: Path) -> dict:
    """summary.json and summary.csv in `outdir`, from the run's description (`planes`: every plane found, in order,
    with the reason of those that failed before, in a task or in publishing; `stale_folders`: plane folders in the output folder
    from an earlier run) and the finished planes' plane_summary.json files (missing ones are ignored: their plane
    reads 'failed'). Returns what summary.json holds."""
    summaries = [json.loads(path.read_text()) for path in summary_files if path.is_file()]
    rows = summarise(run.get("planes", []), summaries)
    ok = sum(r["status"] == "ok" for r in rows)
    totals = {"planes": len(rows), "ok": ok, "failed": len(rows) - ok,
              **{key: sum(r[key] or 0 for r in rows) for key in COUNTS}}
    summary = {"totals": totals, "planes": rows, "stale_folders": list(run.get("stale_folders", []))}
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (outdir / "summary.csv").write_text(to_csv(rows), encoding="utf-8")
    (outdir / "summary.html").write_text(to_html(summary), encoding="utf-8")
    return summary


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: right; vertical-align: top; }
th { position: sticky; top: 0; background: #f4f4f4; }
td.text, th.text { text-align: left; max-width: 40em; }
tr.failed td { background: #fde8e8; }
.flag { color: #b0179b; font-weight: bold; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 16px; }
figure { margin: 0; } figure img { width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 13px; margin: 2px 0 4px; }
"""


def _cell(value: object) -> str:
    return "" if value is None else html.escape(str(value))


def to_html(summary: dict) -> str:
    """summary.html: a table of every plane's counts (plane names link to their figures below), then each ok
    plane's detected_ROIs.png, linked by relative paths (the page sits in the output folder). A failed plane's
    figure is never linked: its folder holds nothing of this run (the pipeline sets it aside)."""
    totals = summary["totals"]
    rows = summary["planes"]
    head = ("<tr><th class=text>plane</th><th class=text>status</th><th>frames</th><th>ROIs</th><th>cells</th>"
            "<th>baseline &le; 0<br>(no dF/F)</th><th>runtime (s)</th><th class=text>error / warnings</th></tr>")
    lines = []
    for i, row in enumerate(rows):
        name = _cell(row["plane"])
        plane = f'<a href="#plane-{i}">{name}</a>' if row["status"] == "ok" else name
        flagged = row["rois_baseline_at_or_below_zero"]
        notes = "<br>".join(_cell(note) for note in ([row["error"]] if row["error"] else []) + row["warnings"])
        lines.append(f'<tr class="{_cell(row["status"])}"><td class=text>{plane}</td><td class=text>'
                     f'{_cell(row["status"])}</td><td>{_cell(row["frames"])}</td><td>{_cell(row["rois"])}</td>'
                     f'<td>{_cell(row["cells"])}</td><td{" class=flag" if flagged else ""}>{_cell(flagged)}</td>'
                     f'<td>{_cell(row["runtime_seconds"])}</td><td class=text>{notes}</td></tr>')
    figures = []
    for i, row in enumerate(rows):
        if row["status"] != "ok":
            continue
        src = html.escape(f"{quote(str(row['plane']))}/{FIGURE}")
        figures.append(f'<figure id="plane-{i}"><figcaption><b>{_cell(row["plane"])}</b>: {_cell(row["rois"])} '
                       f'ROIs, {_cell(row["cells"])} cells, {_cell(row["rois_baseline_at_or_below_zero"])} with '
                       f'baseline &le; 0</figcaption><a href="{src}"><img src="{src}" loading="lazy" '
                       f'alt="detected ROIs of {_cell(row["plane"])}"></a></figure>')
    stale = "".join(f"<li>{_cell(name)}</li>" for name in summary.get("stale_folders", []))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>ophys-extraction session</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>ophys-extraction: {totals['ok']} of {totals['planes']} planes ok</h1>",
        f"<p>{totals['rois']} ROIs, {totals['cells']} cells; {totals['rois_baseline_at_or_below_zero']} ROIs with the "
        "median of their corrected trace at or below zero (no usable dF/F: <code>traces/baseline_at_or_below_zero"
        "</code>). The same rows are in summary.json and summary.csv.</p>",
        f"<table>{head}{''.join(lines)}</table>",
        f"<h2>Plane folders of an earlier run (not planes of this run)</h2><ul>{stale}</ul>" if stale else "",
        "<h2>Detected ROIs</h2><p>Click a figure for full size.</p>",
        f'<div class=grid>{"".join(figures)}</div>', "</body></html>", ""])
