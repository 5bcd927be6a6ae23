#!/usr/bin/env python3
"""The QC figure (detected_ROIs.png) of a full-size plane: 512 x 512, 500 ROIs, six 20,000-frame example traces.
Prints the CPU and wall seconds of each of --runs renders (MERGE draws one per plane).

    .venv/bin/python bench/qc_figure.py [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ophys_extraction import qc


def render_full_size_plane(path: Path) -> None:
    rng = np.random.default_rng(1)
    centres = rng.integers(6, 506, size=(500, 2))
    yy, xx = np.mgrid[-4:5, -4:5]
    disc = yy**2 + xx**2 <= 16
    coords = np.concatenate([np.stack([np.full(disc.sum(), i), yy[disc] + cy, xx[disc] + cx])
                             for i, (cy, cx) in enumerate(centres)], axis=1)
    image = rng.standard_normal((512, 512)).astype(np.float32)
    iscell = np.stack([rng.integers(0, 2, 500), rng.uniform(0, 1, 500)], axis=1)
    low_baseline = rng.uniform(0, 1, 500) < 0.05
    examples = [qc.TraceExample(i, *(rng.standard_normal((3, 20_000)).astype(np.float32)), 0.7, 1.0, True, False)
                for i in range(6)]
    qc.render_detected_rois(path, images=[("mean image", image), ("max projection", image + 1)],
                            coords=coords, n_rois=500, iscell=iscell, centres=centres, low_baseline=low_baseline,
                            examples=examples, n_top=4, frame_rate=30.0, title="big")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("run  cpu_s  wall_s")
        for run in range(args.runs):
            cpu, wall = time.process_time(), time.perf_counter()
            render_full_size_plane(Path(tmp) / f"plane{run}.png")
            print(f"{run:3d}  {time.process_time() - cpu:5.2f}  {time.perf_counter() - wall:6.2f}")


if __name__ == "__main__":
    main()
