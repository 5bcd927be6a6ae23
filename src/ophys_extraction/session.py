"""The session summary: one row per plane found, finished or not."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

COLUMNS = ("plane", "status", "frames", "rois", "cells", "runtime_seconds")


def summarise(plane_ids: Iterable[str], plane_summaries: Iterable[dict]) -> list[dict]:
    """Rows in the order of `plane_ids`; a plane without a summary did not finish (bad input, skipped)."""
    done = {row["plane"]: row for row in plane_summaries}
    rows = []
    for plane in plane_ids:
        row = done.get(plane)
        if row is None:
            rows.append({"plane": plane, "status": "failed", "frames": None, "rois": None, "cells": None,
                         "runtime_seconds": None})
        else:
            rows.append({"status": "ok", **{key: row.get(key) for key in COLUMNS if key != "status"}})
    return rows


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: ("" if row[key] is None else row[key]) for key in COLUMNS} for row in rows)
    return out.getvalue()


def write_session_summary(plane_ids: list[str], summary_files: list[Path], outdir: Path) -> list[dict]:
    """summary.json and summary.csv in `outdir`; missing summary files are ignored (their plane reads 'failed')."""
    summaries = [json.loads(path.read_text()) for path in summary_files if path.is_file()]
    rows = summarise(plane_ids, summaries)
    totals = {"planes": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
              "rois": sum(r["rois"] or 0 for r in rows), "cells": sum(r["cells"] or 0 for r in rows)}
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "summary.json").write_text(json.dumps({"totals": totals, "planes": rows}, indent=2) + "\n")
    (outdir / "summary.csv").write_text(to_csv(rows))
    return rows
