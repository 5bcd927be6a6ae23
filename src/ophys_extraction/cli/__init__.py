"""Command-line entry points: argument parsing and file I/O around the logic modules.

Each module has `main(argv) -> int`; `bin/<name>.py` calls it through `errors.run_cli`.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with main(argv) -> int, one-line help). Imported only when dispatched: `--help` stays fast.
COMMANDS = {
    "synthetic": ("ophys_extraction.cli.synthetic", "write a synthetic session with ground truth (demo and tests)"),
    "summary-images": ("ophys_extraction.cli.summary_images", "movie -> summary.h5 (mean, max, ratio, enhanced)"),
    "segment": ("ophys_extraction.cli.segment", "summary.h5 -> segmentation.h5 (Cellpose 3)"),
    "functional-detection": ("ophys_extraction.cli.functional_detection",
                             "movie [+ segmentation.h5] -> segmentation.h5 (suite2p's sparsery / sourcery)"),
    "extract": ("ophys_extraction.cli.extract", "movie + segmentation.h5 -> traces.h5 (suite2p)"),
    "merge": ("ophys_extraction.cli.merge", "summary/segmentation/traces.h5 -> extraction.h5 + detected_ROIs.png"),
    "nwb": ("ophys_extraction.cli.nwb", "extraction.h5 -> <plane>.nwb (pynwb; never reads the movie)"),
    "export-suite2p": ("ophys_extraction.cli.export_suite2p", "extraction.h5 -> suite2p/plane0/ (suite2p's GUI opens it)"),
    "apply-curation": ("ophys_extraction.cli.apply_curation",
                       "a curated iscell.npy (suite2p's GUI) -> iscell of extraction.h5, NWB and figure rewritten"),
    "compare": ("ophys_extraction.cli.compare", "are two runs' extraction.h5 datasets identical? (files or outdirs)"),
    "validate": ("ophys_extraction.cli.validate", "check extraction.h5 files against the schema"),
    "check-start": ("ophys_extraction.cli.check_start", "checks main.nf makes before any task (the NWB metadata file)"),
    "session-summary": ("ophys_extraction.cli.session_summary", "the run's summary.json/csv from plane summaries"),
    "versions": ("ophys_extraction.cli.versions", "versions.yml of a Nextflow process"),
    "warm-up": ("ophys_extraction.cli.warm_up", "compile and cache the numba kernels once (install, image build)"),
    "train-model": ("ophys_extraction.cli.train_model", "train the project's Cellpose 3 model (slow)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ophys-extraction COMMAND [ARGS...]   (ophys-extraction COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`ophys-extraction COMMAND ARGS...`: run that step's main; bad input is one `ERROR:` line and exit 2."""
    from ophys_extraction.errors import EXIT_BAD_INPUT, InputError, report

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return EXIT_BAD_INPUT
    if argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        from ophys_extraction import __version__
        print(f"ophys-extraction {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"ophys-extraction: unknown command '{command}'\n\n{usage()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return int(module.main(rest) or 0)
    except InputError as err:
        return report(err)
    except SystemExit as exc:  # argparse --help / usage errors
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
