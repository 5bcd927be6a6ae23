#!/usr/bin/env python3
"""EXTRACT step: suite2p ROI stats and masks, F/Fneu in one streaming pass over the movie, neuropil correction
and classification (movie + segmentation.h5 -> traces.h5). See --help."""
from ophys_extraction.errors import run_cli
from ophys_extraction.cli.extract import main

if __name__ == "__main__":
    run_cli(main)
