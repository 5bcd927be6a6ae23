#!/usr/bin/env python3
"""SUITE2P_FOLDER step: extraction.h5 -> suite2p/plane0/ (suite2p's GUI opens it). See --help."""
from ophys_extraction.errors import run_cli
from ophys_extraction.cli.export_suite2p import main

if __name__ == "__main__":
    run_cli(main)
