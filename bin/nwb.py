#!/usr/bin/env python3
"""NWB step: extraction.h5 -> <plane>.nwb (pynwb). See --help."""
from ophys_extraction.errors import run_cli
from ophys_extraction.cli.nwb import main

if __name__ == "__main__":
    run_cli(main)
