"""`ophys-extraction session-summary`: the run's summary.json/summary.csv/summary.html from the planes'
plane_summary.json, and quality_control.json for AIND's pipeline (with aind-data-schema)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from ophys_extraction.errors import InputError
from ophys_extraction.session_summary import write_session_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ophys-extraction session-summary", description=__doc__)
    parser.add_argument("--run", type=Path, required=True,
                        help='JSON file: {"planes": [{"plane": ID, "error": LINE or null, "warnings": [LINE, ...]}, '
                             '...] (every plane found, in order; warnings optional), "stale_folders": [NAME, ...]}; '
                             "plane ids travel in a file, never on a command line")
    parser.add_argument("--output", type=Path, default=Path("."), help="folder for summary.json, summary.csv, summary.html and quality_control.json")
    parser.add_argument("summaries", nargs="*", type=Path, help="plane_summary.json files of finished planes")
    args = parser.parse_args(argv)
    try:
        run = json.loads(args.run.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(args.run, f"cannot be read as JSON ({type(err).__name__})") from None
    summary = write_session_summary(run, args.summaries, args.output)
    write_quality_control(summary, args.output)
    # Each failed plane's line is the run's console's (lib/RunReport.groovy); here only the counts.
    totals = summary["totals"]
    print(f"{totals['ok']} of {totals['planes']} planes ok, {totals['failed']} failed "
          f"({args.output / 'summary.json'})")
    return 0


def write_quality_control(summary: dict, outdir: Path) -> Path | None:
    """quality_control.json beside summary.json (aind_records.quality_control); None, with a note, without
    aind-data-schema."""
    from ophys_extraction import aind_records

    reason = aind_records.missing()
    if reason:
        print(f"no {aind_records.QUALITY_CONTROL_JSON}: {reason}")
        return None
    return aind_records.write_json(outdir / aind_records.QUALITY_CONTROL_JSON,
                                   aind_records.quality_control(summary, datetime.now(timezone.utc)))
