#!/usr/bin/env python3
"""SEGMENT step: Cellpose 3 on a plane's summary image (summary.h5 -> segmentation.h5). See --help."""
from ophys_extraction.errors import run_cli
from ophys_extraction.cli.segment import main

if __name__ == "__main__":
    run_cli(main)
