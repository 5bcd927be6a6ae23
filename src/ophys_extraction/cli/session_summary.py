"""`ophys-extraction session-summary`: the run's summary.json/summary.csv from the planes' plane_summary.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from ophys_extraction.session import write_session_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ophys-extraction session-summary", description=__doc__)
    parser.add_argument("--planes", nargs="*", default=[], help="every plane id found in the input, in order")
    parser.add_argument("--output", type=Path, default=Path("."), help="folder for summary.json and summary.csv")
    parser.add_argument("summaries", nargs="*", type=Path, help="plane_summary.json files of finished planes")
    args = parser.parse_args(argv)
    rows = write_session_summary(args.planes, args.summaries, args.output)
    failed = [row["plane"] for row in rows if row["status"] != "ok"]
    failures = f"; failed: {', '.join(failed)}" if failed else ""
    print(f"{len(rows) - len(failed)} of {len(rows)} planes finished{failures}")
    return 0
