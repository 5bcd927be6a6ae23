"""One error type for bad input, and the CLI wrapper that turns it into one line and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad user input (file, parameter, model). The message is one line naming the thing and the problem."""

    def __init__(self, subject: str | Path, problem: str):
        self.subject = str(subject)
        self.problem = problem
        super().__init__(f"{self.subject}: {problem}")


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a CLI entry point; InputError becomes `ERROR: <file>: <problem>` on stderr and exit code 2."""
    try:
        code = main(argv)
    except InputError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(code or 0)
