"""`ophys-extraction session-summary`: the run's summary.json/summary.csv from the planes' plane_summary.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ophys_extraction.errors import InputError
from ophys_extraction.session_summary import write_session_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ophys-extraction session-summary", description=__doc__)
    parser.add_argument("--run", type=Path, required=True,
                        help='JSON file: {"planes": [{"plane": ID, "error": LINE or null, "warnings": [LINE, ...]}, '
                             '...] (every plane found, in order; warnings optional), "stale_folders": [NAME, ...]}; '
                             "plane ids travel in a file, never on a command line")
    parser.add_argument("--output", type=Path, default=Path("."), help="folder for summary.json and summary.csv")
    parser.add_argument("summaries", nargs="*", type=Path, help="plane_summary.json files of finished planes")
    args = parser.parse_args(argv)
    try:
        run = json.loads(args.run.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(args.run, f"cannot be read as JSON ({type(err).__name__})") from None
    summary = write_session_summary(run, args.summaries, args.output)
    # Each failed plane's line is the run's console's (lib/RunReport.groovy); here only the counts.
    totals = summary["totals"]
    print(f"{totals['ok']} of {totals['planes']} planes ok, {totals['failed']} failed "
          f"({args.output / 'summary.json'})")
    return 0
