#!/usr/bin/env python3
"""MERGE step: summary.h5 + segmentation.h5 + traces.h5 -> extraction.h5 and detected_ROIs.png. See --help."""
from ophys_extraction.errors import run_cli
from ophys_extraction.cli.merge import main

if __name__ == "__main__":
    run_cli(main)
