"""NWB step: extraction.h5 -> <plane>.nwb (pynwb), never the movie. The mapping is in docs/output.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ophys_extraction.errors import InputError
from ophys_extraction.options import NWB
from ophys_extraction.nwb import METADATA_KEYS, NwbOptions, output_name, read_metadata, write_nwb

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nwb.py", description=__doc__,
        epilog="Writes DIR/<plane_id>.nwb atomically. Metadata file keys: "
               + "; ".join(f"{key}: {text}" for key, text in METADATA_KEYS.items()))
    parser.add_argument("extraction", type=Path, help="extraction.h5 (or <plane>_extraction.h5) of one plane")
    parser.add_argument("--outdir", type=Path, default=None, metavar="DIR",
                        help="folder to write <plane_id>.nwb into (default: the extraction file's folder)")
    NWB.add_arguments(parser)
    parser.add_argument("--metadata", type=Path, default=None, metavar="FILE",
                        help="JSON file with what the pipeline cannot know: session start time, subject, ... "
                             "(keys below); default: recorded as unknown")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    NWB.check({name: getattr(args, name) for name in NWB.names()})
    metadata = read_metadata(args.metadata) if args.metadata is not None else {}
    options = NwbOptions(indicator=args.indicator, location=args.location, pixel_size_um=args.pixel_size,
                         metadata=metadata)
    import h5py
    try:
        with h5py.File(args.extraction, "r") as handle:
            plane_id = str(handle.attrs.get("plane_id", ""))
    except OSError as err:
        raise InputError(args.extraction, f"cannot be opened as HDF5 ({err})") from None
    if not plane_id or "/" in plane_id:
        raise InputError(args.extraction, f"plane_id attribute {plane_id!r} cannot name a file")
    outdir = args.outdir if args.outdir is not None else args.extraction.parent
    output = write_nwb(args.extraction, outdir / output_name(plane_id), options)
    print(f"nwb: {args.extraction} -> {output} in {time.time() - t0:.1f} s", file=sys.stdout)
    return 0
