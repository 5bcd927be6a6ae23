"""`ophys-extraction versions --process NAME`: versions.yml for a Nextflow process."""

from __future__ import annotations

import argparse
import sys

from ophys_extraction.provenance import versions_yaml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ophys-extraction versions", description=__doc__)
    parser.add_argument("--process", required=True, help="the Nextflow process name (task.process)")
    sys.stdout.write(versions_yaml(parser.parse_args(argv).process))
    return 0
