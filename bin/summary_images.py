#!/usr/bin/env python3
"""SUMMARY_IMAGES step: mean image, high-passed max projection, max/mean ratio and enhanced mean image of a movie
(one streaming pass) -> summary.h5. See `summary_images.py --help`."""

from ophys_extraction.cli.summary_images import main
from ophys_extraction.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
