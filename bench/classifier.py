#!/usr/bin/env python3
"""Cell classifiers on this pipeline's ROIs: iscell recall (share of the ROIs that match a labelled cell at
IoU >= 0.5 that are kept) and precision (share of kept ROIs that match one), per classifier, never measured on data
it was trained on (src/ophys_extraction/classifier_training.py):

* real: the annotated Neurofinder movie (../shared/data/neurofinder-00xx-left) in 4 spatial folds (bands of rows);
  each fold scored by a classifier trained on the other folds and every synthetic plane. Its labels miss visible
  somata: a ROI on one counts as "not a cell", so the precision here is a lower bound;
* synthetic: each appearance family scored by a classifier trained on the other families and the real movie.

Rows: suite2p's builtin classifier (as EXTRACT ran it) and each candidate key set, retrained in suite2p's format;
WORST is the lowest recall and the lowest precision over the real CV and the synthetic families. The planes are run
(or reused) as tools/train_classifier.py runs them (bench/out/classifier_planes).

    .venv/bin/python bench/classifier.py [--n_per_family 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ophys_extraction import classifier_training as ct  # noqa: E402



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ct.add_table_arguments(parser, REPO)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    t0 = time.time()
    table = ct.build_table(args.cache, args.n_per_family, args.real_dir if args.real_dir.is_dir() else None,
                           ct.segmentation_model(REPO))
    results = ct.evaluate(table)
    print(f"iscell on matched ROIs (IoU >= 0.5), {len(table)} ROIs, {args.n_per_family} synthetic planes per "
          f"family ({time.time() - t0:.0f} s)")
    print(ct.format_table(results))
    print(f"\nchosen by worst case: {ct.choose(results)}")
    on_holes = table.on_not_cell
    print(f"synthetic ROIs on a non-expressing soma: {int(on_holes.sum())}")
    if args.json:
        args.json.write_text(json.dumps({name: {g: asdict(s) for g, s in scores.items()}
                                         for name, scores in results.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
