#!/usr/bin/env python3
"""Train the pipeline's Cellpose 3 model from scratch (synthetic + annotated images). See --help."""
from ophys_extraction.errors import run_cli
from ophys_extraction.cli.train_model import main

if __name__ == "__main__":
    run_cli(main)
