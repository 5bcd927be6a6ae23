"""One error type for bad input, and the CLI wrapper that turns it into one line and a non-zero exit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

EXIT_BAD_INPUT = 2
# Set by the pipeline's processes: the `ERROR:` line also goes to this file, which carries a bad plane's reason
# into the session summary (modules/local/*/main.nf, lib/PlaneStep.groovy).
ERROR_FILE_VARIABLE = "OPHYS_EXTRACTION_ERROR_FILE"


class InputError(Exception):
    """Bad user input (file, parameter, model). The message is one line naming the thing and the problem."""

    def __init__(self, subject: str | Path, problem: str):
        self.subject = str(subject)
        self.problem = problem
        super().__init__(f"{self.subject}: {problem}")


def report(err: InputError) -> int:
    """Print `ERROR: <file>: <problem>` (one line, whatever characters the file name has) on stderr, and into the
    file named by $OPHYS_EXTRACTION_ERROR_FILE if set; returns the exit code for bad input."""
    line = "ERROR: " + str(err).replace("\r", "\\r").replace("\n", "\\n")
    print(line, file=sys.stderr)
    if os.environ.get(ERROR_FILE_VARIABLE):
        Path(os.environ[ERROR_FILE_VARIABLE]).write_text(line + "\n", encoding="utf-8")
    return EXIT_BAD_INPUT


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a CLI entry point; InputError becomes `ERROR: <file>: <problem>` on stderr and exit code 2."""
    try:
        code = main(argv)
    except InputError as err:
        sys.exit(report(err))
    sys.exit(code or 0)
