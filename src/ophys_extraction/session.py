"""The session summary: one row per plane found, finished or not, with why it failed and what was odd about it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

COLUMNS = ("plane", "status", "frames", "rois", "cells", "runtime_seconds", "error", "warnings")
# Why a plane without a result failed when no step recorded a reason (a task stopped by the infrastructure).
NO_REASON = "no result and no error recorded (see .nextflow.log)"


def summarise(planes: Iterable[dict], plane_summaries: Iterable[dict]) -> list[dict]:
    """Rows in the order of `planes` ({"plane": id, "error": the one ERROR line or None}); a plane without a
    summary did not finish (bad input, skipped)."""
    done = {row["plane"]: row for row in plane_summaries}
    rows = []
    for plane in planes:
        row = done.get(plane["plane"])
        if row is None:
            rows.append({"plane": plane["plane"], "status": "failed", "frames": None, "rois": None, "cells": None,
                         "runtime_seconds": None, "error": plane.get("error") or NO_REASON, "warnings": []})
        else:
            rows.append({**{key: row.get(key) for key in COLUMNS}, "status": "ok", "error": None,
                         "warnings": list(row.get("warnings") or [])})
    return rows


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        cells = {**row, "warnings": " | ".join(row["warnings"])}
        writer.writerow({key: ("" if cells[key] is None else cells[key]) for key in COLUMNS})
    return out.getvalue()


def write_session_summary(run: dict, summary_files: list[Path], outdir: Path) -> dict:
    """summary.json and summary.csv in `outdir`, from the run's description (`planes`: every plane found, in order,
    with the reason of those that failed before or in a task; `stale_folders`: plane folders in the output folder
    from an earlier run) and the finished planes' plane_summary.json files (missing ones are ignored: their plane
    reads 'failed'). Returns what summary.json holds."""
    summaries = [json.loads(path.read_text()) for path in summary_files if path.is_file()]
    rows = summarise(run.get("planes", []), summaries)
    ok = sum(r["status"] == "ok" for r in rows)
    totals = {"planes": len(rows), "ok": ok, "failed": len(rows) - ok,
              "rois": sum(r["rois"] or 0 for r in rows), "cells": sum(r["cells"] or 0 for r in rows)}
    summary = {"totals": totals, "planes": rows, "stale_folders": list(run.get("stale_folders", []))}
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (outdir / "summary.csv").write_text(to_csv(rows), encoding="utf-8")
    return summary
