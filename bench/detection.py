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
    python bench/detection.py --activity [--n_planes 1] [--families ...]

`--activity` prints issue 25's table: detection from images of activity against the mean image, each from a movie
through the real SUMMARY_IMAGES step. Methods: the bundled model (size estimated, SEGMENT's defaults) on the mean
image (mode 2, the default), the enhanced mean (3) and the correlation image (5); the union of modes 2 and 5 (a
mode-5 ROI is added when at most 25% of its pixels lie in mode-2 ROIs, as `--detection cellpose+...` adds); and suite2p 1.1's functional
detection as `--detection sparsery` runs it (suite2p's defaults: bins of tau = 1 s), and `cellpose+sparsery`. Real: the shared
movie (all 196 labelled ROIs) in FOLDS horizontal bands; a ROI, labelled or predicted, belongs to the band holding its
centroid; mean and standard error over the bands. The bundled model was trained on rows [0, 372) of this image, so
for the Cellpose rows only the last band (rows 384-511) is held out; it is printed on its own. Synthetic: held-out
seeds of each appearance family (one movie of 600 frames at 10 Hz per plane), pooled per family; the worst family
is printed too. Then the ceiling: how many labelled cells stand a background s.d. above their ring in each image.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from common import CONTRAST_BINS, contrast_bin_labels, movie_frame_rate, summary_images  # noqa: E402
from ophys_extraction import segmentation, synthetic  # noqa: E402
from ophys_extraction.functional import UNION_MAX_SHARED, add_rois  # noqa: E402
from ophys_extraction.metrics import (DetectionScores, false_positives_on, found_rois,  # noqa: E402
                                     inside_and_ring_means, match_rois, mean_image_contrast, pooled)
from ophys_extraction.rois import median_mask_diameter  # noqa: E402
from ophys_extraction.segmentation_input import IMAGE_MODES, prepare_image  # noqa: E402
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
        movie = tmp / f"plane{i}.h5"
        sim = synthetic.write_movie(movie, spec)
        images = summary_images(movie, spec.frame_rate, tmp)
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


FOLDS = 4


def union_labels(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """`first`'s ROIs, then `second`'s added by the pipeline's rule (functional.add_rois, as --detection cellpose+...)."""
    rois = [{"ypix": ys, "xpix": xs, "lam": np.ones(len(ys), np.float32)}
            for ys, xs in (np.nonzero(second == label) for label in range(1, int(second.max()) + 1)) if len(ys)]
    n_first = int(first.max())
    return add_rois(first, np.zeros(first.shape, np.float32), np.zeros(n_first, np.int8), rois, UNION_MAX_SHARED)[0]


def sparsery_labels(movie: Path, frame_rate: float) -> np.ndarray:
    """The FUNCTIONAL_DETECTION step's ROIs with `--detection sparsery` and its defaults, as a label image."""
    from ophys_extraction.functional import FunctionalOptions, binned_movie, binning, detect
    from ophys_extraction.movie import open_movie
    options = FunctionalOptions(detection="sparsery")
    with open_movie(movie) as (dset, info):
        binned = binned_movie(dset, info, *binning(info.n_frames, frame_rate, options.tau, options.nbins))
    empty = np.zeros(binned.shape[1:], np.int32)
    stats, _ = detect(binned, options)
    return add_rois(empty, np.zeros(empty.shape, np.float32), np.zeros(0, np.int8), stats, None)[0]


def activity_detections(model, images: dict[str, np.ndarray], movie: Path,
                        frame_rate: float) -> dict[str, tuple[np.ndarray, float]]:
    """(label image, seconds) of each method of the --activity table."""
    params = segmentation.SegmentationParams()
    found: dict[str, tuple[np.ndarray, float]] = {}
    for mode in (2, 3, 5):
        t0 = time.perf_counter()
        masks = segmentation.segment_image(prepare_image(images, mode)[0], np.zeros_like(images["meanImg"]), model,
                                           params).masks
        found[f"cellpose mode {mode}"] = (masks, time.perf_counter() - t0)
    found["union of modes 2, 5"] = (union_labels(found["cellpose mode 2"][0], found["cellpose mode 5"][0]),
                                    found["cellpose mode 2"][1] + found["cellpose mode 5"][1])
    t0 = time.perf_counter()
    found["suite2p sparsery"] = (sparsery_labels(movie, frame_rate), time.perf_counter() - t0)
    found["union of mode 2, sparsery"] = (union_labels(found["cellpose mode 2"][0], found["suite2p sparsery"][0]),
                                          found["cellpose mode 2"][1] + found["suite2p sparsery"][1])
    return found


def band_of(labels: np.ndarray, height: int) -> np.ndarray:
    """Fold (horizontal band) of each ROI of a label image, by its centroid row, in increasing label order."""
    from scipy import ndimage
    ids = np.unique(labels[labels > 0])
    rows = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, ids))[:, 0] if len(ids) else np.zeros(0)
    return np.minimum((rows * FOLDS / height).astype(int), FOLDS - 1)


def visible_in(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per labelled ROI: (mean inside - mean of its 1-4 px ring) / s.d. of the image 4 px or more from every ROI."""
    from scipy import ndimage
    sd = float(np.std(image[~ndimage.binary_dilation(labels > 0, iterations=4)]))
    inside, around = inside_and_ring_means(image, labels)
    return (inside - around) / sd


def activity_table(model, families: list[str], n_planes: int, size: int, frames: int, real_dir: Path,
                   tmp: Path) -> None:
    print("\nissue 25: detection at IoU >= 0.5 from images of activity, bundled model, size estimated")
    if real_dir.is_dir():
        truth = np.load(real_dir / "gt_labels.npy")
        frame_rate = float(movie_frame_rate(real_dir / "movie.h5"))
        t0 = time.time()
        images = summary_images(real_dir / "movie.h5", frame_rate, tmp)
        print(f"real: {real_dir.name}, {int(truth.max())} labelled ROIs, {FOLDS} bands of rows (summary "
              f"{time.time() - t0:.1f} s)")
        header = (f"{'method':22s} {'recall':>13s} {'precision':>13s} {'F1':>6s} {'worst band R/P':>15s} "
                  f"{'last band R/P':>14s} {'TP/true/pred':>13s} {'s':>5s}")
        print(header)
        print("-" * len(header))
        true_band = band_of(truth, truth.shape[0])
        for name, (pred, seconds) in activity_detections(model, images, real_dir / "movie.h5", frame_rate).items():
            hit = found_rois(truth, pred)
            correct = found_rois(pred, truth)
            pred_band = band_of(pred, truth.shape[0])
            recall = np.array([hit[true_band == b].mean() for b in range(FOLDS)])
            precision = np.array([correct[pred_band == b].mean() if np.any(pred_band == b) else 0.0
                                  for b in range(FOLDS)])
            se = lambda x: x.std(ddof=1) / np.sqrt(len(x))   # noqa: E731
            total = match_rois(truth, pred)
            worst = int(np.argmin(recall))
            print(f"{name:22s} {recall.mean():6.3f}±{se(recall):.3f} {precision.mean():6.3f}±{se(precision):.3f} "
                  f"{total.f1:6.3f} {recall[worst]:7.2f}/{precision[worst]:.2f} {recall[-1]:8.2f}/{precision[-1]:.2f} "
                  f"{total.true_positives:>5d}/{total.n_true}/{total.n_pred} {seconds:5.0f}", flush=True)
        for image_name in ("meanImg", "maxImg", "corrImg"):
            z = visible_in(images[image_name], truth)
            print(f"  ceiling: labelled ROIs a background s.d. above their ring in {image_name}: {int(np.sum(z > 1))}"
                  f" (2 s.d.: {int(np.sum(z > 2))}) of {len(z)}")
        either = (visible_in(images["meanImg"], truth) > 1) | (visible_in(images["corrImg"], truth) > 1)
        print(f"  ceiling: in the mean or the correlation image: {int(either.sum())} of {len(either)}")
    else:
        print(f"(no real data at {real_dir}: real rows skipped)")
    print(f"\nsynthetic: held-out seeds, {n_planes} plane(s) of {size}x{size} px x {frames} frames per family")
    header = f"{'method':22s} " + " ".join(f"{f[:15]:>15s}" for f in families) + f" {'worst F1':>9s}"
    print(header + "   (each cell: recall/precision)")
    print("-" * len(header))
    scores: dict[str, dict[str, list[DetectionScores]]] = {}
    for family in families:
        for i in range(n_planes):
            spec = synthetic.SyntheticSpec(height=size, width=size, n_frames=frames, seed=SYNTH_EVAL_SEED0 + 300 + i,
                                           **synthetic.family_fields(family))
            movie = tmp / f"{family}{i}.h5"
            sim = synthetic.write_movie(movie, spec)
            images = summary_images(movie, spec.frame_rate, tmp)
            for name, (pred, _) in activity_detections(model, images, movie, spec.frame_rate).items():
                scores.setdefault(name, {}).setdefault(family, []).append(match_rois(sim.masks, pred))
            movie.unlink()
    for name, per_family in scores.items():
        pooled_scores = [pooled(per_family[f]) for f in families]
        print(f"{name:22s} " + " ".join(f"{s.recall:7.2f}/{s.precision:.2f}" for s in pooled_scores)
              + f" {min(s.f1 for s in pooled_scores):9.3f}", flush=True)


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
    parser.add_argument("--activity", action="store_true",
                        help="issue 25's table: the mean image against images of activity and suite2p's functional "
                             "detection, real (spatial folds) and synthetic (per family), instead of the per-mode tables")
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

    if args.activity:
        with tempfile.TemporaryDirectory(prefix="bench_activity_") as tmp:
            activity_table(next(iter(loaded.values())), args.families, args.n_planes if args.n_planes != 3 else 1,
                           args.size, args.frames, args.real_dir, Path(tmp))
        return 0
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
