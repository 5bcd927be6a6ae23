"""`python -m ophys_extraction.synthetic`: see cli/synthetic.py."""

from ophys_extraction.cli.synthetic import main
from ophys_extraction.errors import run_cli

run_cli(main)
