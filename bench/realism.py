#!/usr/bin/env python3
"""How cells look in the synthetic mean images next to the annotated real one (issue 7: generator realism).

Prints, for the real development image (`../shared/data/neurofinder-00xx-left`) and for held-out synthetic planes
at the demo defaults (noise-free mean images, so only the scene is compared), the median radial profile around
the ground-truth ROIs (mean image at each distance from the ROI outline over its mean 5-9 px outside), the
distribution of the ROIs' mean-image contrast and of their core's brightness (how dark a nucleus is), and how many
dark spots (non-expressing somata, vessel cross-sections) lie away from the ROIs. Real two-photon somata (GCaMP,
nucleus excluded) are mostly dim rings: a centre darker than the neuropil and a faint rim; a generator whose cells
are bright blobs trains a detector that misses them, and one without dark non-cells trains one that takes every
dark disk for a cell.

    python bench/realism.py [--n_planes 4] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ophys_extraction import synthetic  # noqa: E402
from ophys_extraction.metrics import core_ratio, dark_spot_density, mean_image_contrast, radial_profile  # noqa: E402
from ophys_extraction.training.data import SYNTH_EVAL_SEED0  # noqa: E402

from common import CONTRAST_BINS, contrast_bin_labels  # noqa: E402

REAL_DIR = REPO.parent / "shared" / "data" / "neurofinder-00xx-left"
DISTANCES = range(-4, 8)
CORE_QUANTILES = (10, 25, 50, 75, 90)
DARK_SPOT_LEVELS = (0.8, 0.65)


def describe(name: str, images: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    profiles = np.array([radial_profile(img, lab, DISTANCES) for img, lab in images])
    contrast = np.concatenate([mean_image_contrast(img, lab) for img, lab in images])
    core = np.concatenate([core_ratio(img, lab) for img, lab in images])
    spots = [float(np.mean([dark_spot_density(img, lab, level) for img, lab in images])) for level in DARK_SPOT_LEVELS]
    return {"name": name, "profile": np.nanmean(profiles, axis=0), "contrast": contrast[~np.isnan(contrast)],
            "core": core[~np.isnan(core)], "spots": spots}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n_planes", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--real_dir", type=Path, default=REAL_DIR)
    args = parser.parse_args()
    rows = []
    if args.real_dir.is_dir():
        rows.append(describe(f"real ({args.real_dir.name})", [(np.load(args.real_dir / "mean.npy"),
                                                              np.load(args.real_dir / "gt_labels.npy"))]))
    else:
        print(f"(no real data at {args.real_dir}: synthetic rows only)")
    planes = [synthetic.make_training_image(SYNTH_EVAL_SEED0 + i, height=args.size, width=args.size,
                                            noise_level=0.0) for i in range(args.n_planes)]
    rows.append(describe(f"synthetic ({args.n_planes} planes, noise-free)", [(m, lab) for m, _, lab in planes]))

    print("median radial profile around ground-truth ROIs (mean image / its mean 5-9 px outside)")
    print(f"{'distance from outline (px)':40s}" + "".join(f"{d:6d}" for d in DISTANCES))
    for row in rows:
        print(f"{row['name']:40s}" + "".join(f"{v:6.2f}" for v in row["profile"]))
    print("\nshare of ROIs by mean-image contrast (ROI mean / ring 1-4 px outside - 1)")
    bins = contrast_bin_labels()
    print(f"{'':40s}" + "".join(f"{b:>12s}" for b in bins) + f"{'median':>8s}")
    for row in rows:
        contrast = row["contrast"]
        shares = [np.mean((contrast >= lo) & (contrast < hi)) for lo, hi in CONTRAST_BINS]
        print(f"{row['name']:40s}" + "".join(f"{s:12.2f}" for s in shares) + f"{np.median(contrast):8.2f}")
    print("\nROI core (eroded 2 px) over a ring 2-6 px outside: quantiles, share below 0.8; dark spots per 10^4 px "
          "away from the ROIs")
    print(f"{'':40s}" + "".join(f"{'q' + str(q):>7s}" for q in CORE_QUANTILES) + f"{'< 0.8':>8s}"
          + "".join(f"{'spots < ' + str(level):>15s}" for level in DARK_SPOT_LEVELS))
    for row in rows:
        core = row["core"]
        print(f"{row['name']:40s}" + "".join(f"{v:7.2f}" for v in np.percentile(core, CORE_QUANTILES))
              + f"{np.mean(core < 0.8):8.2f}" + "".join(f"{v:15.1f}" for v in row["spots"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
