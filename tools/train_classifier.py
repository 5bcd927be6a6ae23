#!/usr/bin/env python3
"""Regenerate the bundled cell classifier (src/ophys_extraction/classifiers/anatomical.npy and its record
anatomical.json) deterministically: the classifier's planes go the pipeline's way (SUMMARY_IMAGES, SEGMENT with the
bundled model, EXTRACT; cached in bench/out/classifier_planes), their ROIs are labelled against the ground truth, and
suite2p's classifier format is written with the chosen keys. bench/classifier.py measures the candidates; the logic
is src/ophys_extraction/classifier_training.py.

    .venv/bin/python tools/train_classifier.py [--n_per_family 8] [--output PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ophys_extraction import classifier_training as ct  # noqa: E402
from ophys_extraction.classify import BUNDLED_CLASSFILE  # noqa: E402



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ct.add_table_arguments(parser, REPO)
    parser.add_argument("--candidate", default=ct.CHOSEN, choices=list(ct.CANDIDATES))
    parser.add_argument("--output", type=Path, default=BUNDLED_CLASSFILE)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    model = ct.segmentation_model(REPO)
    table = ct.build_table(args.cache, args.n_per_family, args.real_dir, model)
    candidate = ct.CANDIDATES[args.candidate]
    scores = ct.evaluate(table, {args.candidate: candidate})[args.candidate]
    record = {"data": ct.describe(table), "real_data": args.real_dir.name, "candidate": args.candidate,
              "segmentation_model": model.name, "versions": ct.versions(),
              "folds": f"real: {ct.REAL_FOLDS} spatial folds (bands of rows by ROI centre), each scored by a "
                       "classifier trained on the other folds and every synthetic plane; synthetic: leave one "
                       "family out (trained on the other families and the whole real movie)",
              "cross_validated": {group: {"recall": round(s.recall, 3), "precision": round(s.precision, 3),
                                          "matched": s.matched, "kept": s.kept, "rois": s.rois}
                                  for group, s in scores.items()},
              "measured_by": "bench/classifier.py",
              "command": " ".join(["tools/train_classifier.py", *(argv if argv is not None else sys.argv[1:])])}
    ct.train(table, candidate, args.output, record)
    print(f"{args.output}: {len(table)} ROIs ({int(table.matched.sum())} cells, weight {candidate.weight:g}), keys "
          f"{', '.join(candidate.keys)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
