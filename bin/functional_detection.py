#!/usr/bin/env python3
"""FUNCTIONAL_DETECTION step: suite2p's functional detection on a plane's movie (-> segmentation.h5). See --help."""
from ophys_extraction.errors import run_cli
from ophys_extraction.cli.functional_detection import main

if __name__ == "__main__":
    run_cli(main)
