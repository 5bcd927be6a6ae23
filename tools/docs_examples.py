#!/usr/bin/env python3
"""Copy the demo's session overview and QC figures into docs/examples/ (`make docs-examples`, after `make demo`).

summary.html and summary.json as they are; each plane's detected_ROIs.png at the same relative path (so the page's
links work), reduced to a 256-colour palette (median cut, no dithering: about 2.5x smaller, no visible change) to
keep the repository small. The pipeline's own figures stay full colour.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

FIGURE = Path("extraction") / "detected_ROIs.png"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("results"), help="the demo's output folder")
    parser.add_argument("--out", type=Path, default=Path("docs/examples"))
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    for name in ("summary.html", "summary.json"):
        shutil.copy(args.results / name, args.out / name)
    for figure in sorted(args.results.glob(f"*/{FIGURE}")):
        target = args.out / figure.relative_to(args.results)
        target.parent.mkdir(parents=True)
        image = Image.open(figure).convert("RGB")
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            target, optimize=True)
        print(f"{figure} -> {target} ({figure.stat().st_size // 1024} -> {target.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
