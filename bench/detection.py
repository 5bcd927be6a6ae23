#!/usr/bin/env python3
"""Detection quality of Cellpose models: precision, recall and F1 at IoU >= 0.5, per --anatomical_only mode.

* Synthetic: fresh held-out planes (seeds SYNTH_EVAL_SEED0 + 100 + i: never trained on) at the demo noise level and
  a higher one. By default each plane goes the pipeline's whole way: a movie from `synthetic.write_movie`, then the
  real SUMMARY_IMAGES step (`summary_images.py --movie --output`), then the SEGMENT step's image preparation and
  Cellpose; `--fast` uses the generator's direct training-image path instead (no movie).
* Real: the validation split (bottom quarter, after a 24-px gap band) of the annotated development image
  (`../shared/data/neurofinder-00xx-left` beside the repository, if present). Many bright cells there are not
  annotated, so recall is the trustworthy figure; precision understates.

A second table breaks recall down by how visible each ground-truth ROI is in the mean image: its contrast, the
ROI's mean over the mean of a ring 1-4 px around it, minus 1 (measured on the noise-free mean image for synthetic
planes, on the mean image itself for the real one). It shows which cells a model misses: the dim ones, or not.
A third says what the false positives on synthetic planes are: how many lie on a non-expressing soma (a dark disk
with no rim, not ground truth), the distractor a mean-image detector confuses with a ring-shaped cell.

`--sizes` prints instead the table of issue 14: held-out synthetic planes of each appearance family
(`synthetic.FAMILIES`; "bright_ring" is held out of training) at cell diameters of 7, 10, 14 and 20 px (size bins
6-8.5, 8.5-12, 12-17, 17-24 px), densities up to ~300 cells per 256 x 256 plane, segmented as the pipeline does by
default (`--diameter 0`: estimated) and at the true diameter; P / R / F1 of each, and the estimated against the true
diameter (Cellpose's median equivalent-disk diameter of the ground-truth masks). The real validation split follows.

Several models can be compared (`--models a b`), e.g. the bundled mixed-data model against a synthetic-only one
trained with `bin/train_model.py --output bench/out/synthetic_only` (no --real_dir; kept out of git). The generator's
before/after on real data: train the same way with the generator as it was before commit ed26471 (bright blobs) first
on the path, e.g. a copy of `src/` with `git show ed26471^:src/ophys_extraction/synthetic.py` in it on PYTHONPATH,
into `bench/out/synthetic_only_oldgen`, and compare the two here (always on the current generator's planes).

    python bench/detection.py [--models assets/models/ophys_cp3 bench/out/synthetic_only] [--fast]
    python bench/detection.py --sizes [--n_planes 2] [--families realistic bright_ring]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from common import CONTRAST_BINS, contrast_bin_labels  # noqa: E402
from ophys_extraction import segmentation, synthetic  # noqa: E402
from ophys_extraction.metrics import (DetectionScores, false_positives_on, found_rois, match_rois,  # noqa: E402
                                     mean_image_contrast, pooled)
from ophys_extraction.rois import median_mask_diameter  # noqa: E402
from ophys_extraction.segmentation_input import IMAGE_MODES, SUMMARY_DATASETS, prepare_image  # noqa: E402
from ophys_extraction.summary_images import mode_image  # noqa: E402
from ophys_extraction.training.data import (DEMO_NOISE_LEVEL, HELDOUT_FAMILY, HIGH_NOISE_LEVEL,  # noqa: E402
                                            SYNTH_EVAL_SEED0, load_real_dir, plane_fields, synthetic_plane)
from ophys_extraction.training.evaluation import load_for_eval  # noqa: E402

REAL_DIR = REPO.parent / "shared" / "data" / "neurofinder-00xx-left"
DEFAULT_MODELS = [REPO / "assets" / "models" / segmentation.BUNDLED_MODEL, REPO / "bench" / "out" / "synthetic_only"]




def synthetic_summaries(n_planes: int, size: int, noise: float, frames: int, fast: bool, tmp: Path):
    """(summary images dict, ground-truth masks, contrast per ground-truth ROI, non-expressing somata label image) of
    fresh held-out planes."""
    for i in range(n_planes):
        seed = SYNTH_EVAL_SEED0 + 100 + i
        clean_mean, _, clean_masks = synthetic.make_training_image(seed, height=size, width=size, noise_level=0.0,
                                                                   n_frames=frames)
        contrast = mean_image_contrast(clean_mean, clean_masks)
        spec = synthetic.SyntheticSpec(height=size, width=size, n_frames=frames, seed=seed, noise_level=noise)
        if fast:
            mean, mx, masks = synthetic.make_training_image(seed, height=size, width=size, noise_level=noise,
                                                            n_frames=frames)
            images = {"meanImg": mean, "maxImg": mx, "max_mean_ratio": mode_image(mean, mx, 1),
                      "meanImgE": mode_image(mean, mx, 3)}
            yield images, masks, contrast, synthetic.simulate(spec).hole_masks
            continue
        from ophys_extraction.cli.summary_images import main as summary_main
        movie, summary = tmp / f"plane{i}.h5", tmp / f"summary{i}.h5"
        sim = synthetic.write_movie(movie, spec)
        assert summary_main(["--movie", str(movie), "--output", str(summary),
                             "--frame_rate", str(spec.frame_rate)]) == 0
        with h5py.File(summary, "r") as f:
            images = {name: f[name][()] for name in SUMMARY_DATASETS}
        movie.unlink()
        yield images, sim.masks, contrast, sim.hole_masks


def score(model, image: np.ndarray, truth: np.ndarray,
          ignore: np.ndarray | None = None) -> tuple[DetectionScores, np.ndarray, np.ndarray]:
    """(scores, found flag per ground-truth ROI, predicted masks) of the pipeline's default SEGMENT settings."""
    params = segmentation.SegmentationParams()
    result = segmentation.segment_image(image, np.zeros_like(image), model, params)
    return (match_rois(truth, result.masks, ignore=ignore), found_rois(truth, result.masks, ignore=ignore),
            result.masks)


# Size bins of issue 14, each measured at its centre diameter; cells cover ~25% of the field (capped at ~300 cells per
# 256 x 256 px), as in dense two-photon fields of view.
SIZE_BINS = {7.0: "6-8.5", 10.0: "8.5-12", 14.0: "12-17", 20.0: "17-24"}
SIZE_COVERAGE = 0.25


def size_table(loaded: dict, families: list[str], n_planes: int, size: int, noise: float) -> None:
    """Per model, family and size bin: scores at the estimated diameter (the pipeline's default) and at the true
    one, and the estimate's error (median over planes of estimated / true - 1, and the largest |error|)."""
    params = segmentation.SegmentationParams()
    header = (f"{'model':14s} {'family':17s} {'size px':>7s} {'true d':>6s} {'est. d':>6s} {'error':>6s} "
              f"{'max|err|':>8s} {'P':>5s} {'R':>5s} {'F1':>5s}  {'P':>5s} {'R':>5s} {'F1':>5s}  TP/true/pred (est.)")
    print(f"\nheld-out synthetic planes, {n_planes} per cell, {size}x{size} px, noise {noise:g}, mean image: "
          "at the estimated diameter (--diameter 0) | at the true diameter")
    print(header)
    print("-" * len(header))
    for name, model in loaded.items():
        for family in families:
            for k, (centre, label) in enumerate(SIZE_BINS.items()):
                est, oracle, true_d, est_d = [], [], [], []
                for i in range(n_planes):
                    plane = synthetic_plane(SYNTH_EVAL_SEED0 + 200 + 10 * k + i, size, noise, vary=False,
                                            **plane_fields(centre, SIZE_COVERAGE, family))
                    truth = median_mask_diameter(plane.masks)
                    result = segmentation.segment_image(plane.mean, np.zeros_like(plane.mean), model, params)
                    at_truth = segmentation.segment_image(
                        plane.mean, np.zeros_like(plane.mean), model,
                        segmentation.SegmentationParams(diameter=truth))
                    est.append(match_rois(plane.masks, result.masks))
                    oracle.append(match_rois(plane.masks, at_truth.masks))
                    true_d.append(truth)
                    est_d.append(result.attrs["diameter_used"])
                a, b = pooled(est), pooled(oracle)
                err = np.array(est_d) / np.array(true_d) - 1
                tag = family + (" (held out)" if family == HELDOUT_FAMILY else "")
                print(f"{name[:14]:14s} {tag[:17]:17s} {label:>7s} {np.median(true_d):6.1f} {np.median(est_d):6.1f} "
                      f"{np.median(err):+6.0%} {np.abs(err).max():8.0%} {a.precision:5.2f} {a.recall:5.2f} "
                      f"{a.f1:5.2f}  {b.precision:5.2f} {b.recall:5.2f} {b.f1:5.2f}  "
                      f"{a.true_positives}/{a.n_true}/{a.n_pred}", flush=True)


def contrast_row(contrast: np.ndarray, found: np.ndarray) -> list[str]:
    cells = []
    for lo, hi in CONTRAST_BINS:
        sel = (contrast >= lo) & (contrast < hi)
        cells.append(f"{found[sel].mean():.2f} ({sel.sum()})" if sel.any() else "- (0)")
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, nargs="+", default=None,
                        help="model files (default: the bundled model, and bench/out/synthetic_only if present)")
    parser.add_argument("--modes", type=int, nargs="+", default=sorted(IMAGE_MODES))
    parser.add_argument("--n_planes", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--noise_levels", type=float, nargs="+", default=[DEMO_NOISE_LEVEL, HIGH_NOISE_LEVEL])
    parser.add_argument("--real_dir", type=Path, default=REAL_DIR)
    parser.add_argument("--fast", action="store_true", help="synthetic summary images without rendering movies")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    parser.add_argument("--sizes", action="store_true",
                        help="the per-family, per-size table at the estimated and the true diameter (then the real "
                             "validation split), instead of the per-mode tables")
    parser.add_argument("--families", nargs="+", default=list(synthetic.FAMILIES), choices=list(synthetic.FAMILIES))
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(2)
    models = args.models or [m for m in DEFAULT_MODELS if m.is_file()]
    loaded = {m.name: load_for_eval(m) for m in models}
    rows: list[dict] = []
    by_contrast: list[tuple[str, str, str, int, list[str]]] = []
    on_holes: list[tuple[str, str, str, int, int, int]] = []
    t0 = time.time()

    if args.sizes:
        size_table(loaded, args.families, args.n_planes, args.size, args.noise_levels[0])
        args.modes, args.noise_levels = [2], []
    with tempfile.TemporaryDirectory(prefix="bench_detection_") as tmp:
        for noise in args.noise_levels:
            per = {(name, mode): [] for name in loaded for mode in args.modes}
            found = {(name, mode): [] for name in loaded for mode in args.modes}
            false = {(name, mode): np.zeros(2, int) for name in loaded for mode in args.modes}
            contrasts = []
            for images, truth, contrast, holes in synthetic_summaries(args.n_planes, args.size, noise, args.frames,
                                                                      args.fast, Path(tmp)):
                contrasts.append(contrast)
                for mode in args.modes:
                    image, _ = prepare_image(images, mode)
                    for name, model in loaded.items():
                        scores, hits, pred = score(model, image, truth)
                        per[name, mode].append(scores)
                        found[name, mode].append(hits)
                        false[name, mode] += false_positives_on(truth, pred, holes)
            data = f"synthetic {args.n_planes}x{args.size}px" + (" (image path)" if args.fast else " (movie->summary)")
            for (name, mode), scores in per.items():
                rows.append({"model": name, "data": data, "noise": noise, "mode": mode, **pooled(scores).as_dict()})
                by_contrast.append((name, data, f"{noise:g}", mode,
                                    contrast_row(np.concatenate(contrasts), np.concatenate(found[name, mode]))))
                on_holes.append((name, data, f"{noise:g}", mode, *map(int, false[name, mode])))

    if args.real_dir.is_dir():
        real = load_real_dir(args.real_dir, 0.25, 24)
        for mode in args.modes:
            if mode not in real.images:
                continue
            image, truth, ignore = real.part("val", mode)
            contrast = mean_image_contrast(real.part("val", 2)[0], truth)
            for name, model in loaded.items():
                scores, hits, _ = score(model, image, truth, ignore)
                data = f"real validation ({real.name})"
                rows.append({"model": name, "data": data, "noise": float("nan"), "mode": mode, **scores.as_dict()})
                by_contrast.append((name, data, "", mode, contrast_row(contrast, hits)))
    else:
        print(f"(no real data at {args.real_dir}: real validation rows skipped)")

    w = max(len("model"), *(len(name) for name in loaded))
    header = f"{'model':{w}s} {'data':34s} {'noise':>5s} {'mode':>4s} {'precision':>9s} {'recall':>6s} " \
             f"{'F1':>5s}  TP/true/pred"
    print(f"detection at IoU >= 0.5 ({time.time() - t0:.0f} s)")
    print(header)
    print("-" * len(header))
    for r in rows:
        noise = "" if np.isnan(r["noise"]) else f"{r['noise']:g}"
        print(f"{r['model']:{w}s} {r['data']:34s} {noise:>5s} {r['mode']:>4d} {r['precision']:9.3f} "
              f"{r['recall']:6.3f} {r['f1']:5.3f}  {r['true_positives']}/{r['n_true']}/{r['n_pred']}")
    bins = contrast_bin_labels()
    print("\nrecall (number of ground-truth ROIs) by the ROI's mean-image contrast")
    header = f"{'model':{w}s} {'data':34s} {'noise':>5s} {'mode':>4s} " + " ".join(f"{b:>11s}" for b in bins)
    print(header)
    print("-" * len(header))
    for name, data, noise, mode, cells in by_contrast:
        print(f"{name:{w}s} {data:34s} {noise:>5s} {mode:>4d} " + " ".join(f"{c:>11s}" for c in cells))
    print("\nfalse positives on synthetic planes, and how many lie on a non-expressing soma (>= 30% of their pixels)")
    header = f"{'model':{w}s} {'data':34s} {'noise':>5s} {'mode':>4s} {'false pos.':>10s} {'on soma':>8s} {'share':>6s}"
    print(header)
    print("-" * len(header))
    for name, data, noise, mode, n_false, n_on in on_holes:
        share = f"{n_on / n_false:6.2f}" if n_false else f"{'-':>6s}"
        print(f"{name:{w}s} {data:34s} {noise:>5s} {mode:>4d} {n_false:10d} {n_on:8d} {share}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
