#!/usr/bin/env python3
"""Check extraction.h5 files against the schema: prints `OK <file>` or `<file>: <problem>` lines. See --help."""
from ophys_extraction.errors import run_cli
from ophys_extraction.cli.validate import main

if __name__ == "__main__":
    run_cli(main)
