#!/usr/bin/env python3
"""Detection as a function of the diameter Cellpose runs at, per held-out plane: the data behind the size estimate
(sizing.py) and its held-out table (bench/sizes.py).

For each plane (the project generator's families x sizes, the independent renderer's looks x sizes, the real
annotated image at four zooms) it runs the model at a grid of diameters around the truth (a factor 2^(1/6) apart,
0.56x-2x) and records, per diameter, the label-free quantities a size choice may use (number of masks, their median
diameter, mean cell probability inside them, their flow errors, one per mask) and the scores
against the labels (P, R, F1). Also the style vector at the network's own scale (the size model's input) and the
size model's guess. One .npz per plane under bench/out/size_sweep/ (a cache: delete it to recompute).

    python bench/size_sweep.py [--sources family other real] [--n_planes 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ophys_extraction import segmentation, synthetic  # noqa: E402
from ophys_extraction.metrics import match_rois  # noqa: E402
from ophys_extraction.rois import median_mask_diameter  # noqa: E402
from ophys_extraction.synthetic.other_render import OTHER_LOOKS, render_other  # noqa: E402
from ophys_extraction.training.data import (SYNTH_EVAL_SEED0, load_real_dir, plane_fields,  # noqa: E402
                                            rescale_pair, synthetic_plane)
from ophys_extraction.training.evaluation import load_for_eval  # noqa: E402

REAL_DIR = REPO.parent / "shared" / "data" / "neurofinder-00xx-left"
OUT = REPO / "bench" / "out" / "size_sweep"
SIZES = (7.0, 10.0, 14.0, 20.0)            # centres of issue 14's size bins 6-8.5, 8.5-12, 12-17, 17-24 px
ZOOMS = (0.7, 1.0, 1.4, 2.0)
GRID = 2.0 ** (np.arange(-5, 7) / 6)        # x the true diameter
COVERAGE = 0.25


def planes(sources: list[str], n_planes: int, size: int):
    """(key, group, image, truth) of every held-out plane."""
    if "family" in sources:
        for family in synthetic.FAMILIES:
            for k, d in enumerate(SIZES):
                for i in range(n_planes):
                    seed = SYNTH_EVAL_SEED0 + 500 + 10 * k + i
                    yield (f"family-{family}-{d:g}-{i}", f"family:{family}", seed,
                           lambda s=seed, d=d, f=family: _family(s, d, f, size))
    if "other" in sources:
        for look in OTHER_LOOKS:
            for k, d in enumerate(SIZES):
                for i in range(n_planes):
                    seed = 700 + 10 * k + i
                    yield (f"other-{look}-{d:g}-{i}", f"other:{look}", seed,
                           lambda s=seed, d=d, lk=look: _other(s, d, lk, size))
    if "real" in sources and REAL_DIR.is_dir():
        for zoom in ZOOMS:
            yield f"real-{zoom:g}", "real", 0, lambda z=zoom: _real(z)


def _family(seed: int, d: float, family: str, size: int):
    p = synthetic_plane(seed, size, vary=False, **plane_fields(d, COVERAGE, family))
    return p.mean, p.masks


def _other(seed: int, d: float, look: str, size: int):
    p = render_other(seed, d, look, size)
    return p.mean, p.masks


def _real(zoom: float):
    real = load_real_dir(REAL_DIR, 0.0, 0)
    return rescale_pair(real.images[2], real.labels, zoom)


def sweep(model, image: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Every recorded quantity at each diameter of the grid (see the module docstring)."""
    params = segmentation.SegmentationParams()
    true_d = median_mask_diameter(truth)
    style = model.net.eval(image, channels=[0, 0], diameter=model.diam_mean, compute_masks=False)[-1]
    out: dict[str, list] = {k: [] for k in ("diameter", "n", "n_raw", "median_d", "mean_cellprob", "flow_error",
                                             "precision", "recall", "f1", "seconds")}
    per_mask: dict[str, list] = {"mask_flow_error": [], "mask_cellprob": [], "mask_area": [], "mask_grid_index": [],
                                 "mask_cellprob_grid_index": []}
    for factor in GRID:
        d = max(segmentation.sizing.MIN_DIAMETER, true_d * factor)
        t0 = time.perf_counter()
        _, flows, _ = model.net.eval(image, channels=[0, 0], diameter=d, compute_masks=False)
        dP, cellprob = np.asarray(flows[1], np.float32), np.asarray(flows[2], np.float32)
        niter = segmentation.dynamics_niter(model.net.diam_mean, d)
        masks, _, errors = segmentation.masks_and_final_locations(dP, cellprob, params.cellprob_threshold,
                                                                  params.flow_threshold, niter, model.device)
        masks = segmentation.relabel_sequential(masks)
        out["seconds"].append(time.perf_counter() - t0)
        n = int(masks.max())
        cp = np.bincount(masks.ravel(), cellprob.ravel(), n + 1)[1:] / np.maximum(np.bincount(masks.ravel(),
                                                                                              minlength=n + 1)[1:], 1)
        scores = match_rois(truth, masks)
        out["diameter"].append(d)
        out["n"].append(n)
        out["n_raw"].append(len(errors))
        out["median_d"].append(median_mask_diameter(masks))
        out["mean_cellprob"].append(float(cp.mean()) if n else np.nan)
        out["flow_error"].append(float(errors.mean()) if len(errors) else np.nan)
        out["precision"].append(scores.precision)
        out["recall"].append(scores.recall)
        out["f1"].append(scores.f1)
        per_mask["mask_flow_error"].append(errors)
        per_mask["mask_grid_index"].append(np.full(len(errors), len(out["f1"]) - 1))
        per_mask["mask_cellprob"].append(cp)
        per_mask["mask_area"].append(np.bincount(masks.ravel(), minlength=n + 1)[1:])
        per_mask["mask_cellprob_grid_index"].append(np.full(n, len(out["f1"]) - 1))
    record = {k: np.asarray(v, np.float64) for k, v in out.items()}
    record.update({k: np.concatenate(v) if v else np.zeros(0) for k, v in per_mask.items()})
    record["style"] = np.asarray(style, np.float64).ravel()
    record["true_d"] = np.float64(true_d)
    record["size_model_d"] = np.float64(model.size_model.predict(style) if model.size_model else np.nan)
    record["n_true"] = np.int64(truth.max())
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "assets" / "models" / segmentation.BUNDLED_MODEL)
    parser.add_argument("--sources", nargs="+", default=["family", "other", "real"])
    parser.add_argument("--n_planes", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(2)
    model = load_for_eval(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    for key, group, seed, make in planes(args.sources, args.n_planes, args.size):
        path = args.out / f"{key}.npz"
        if path.exists():
            continue
        image, truth = make()
        t0 = time.time()
        rec = sweep(model, np.asarray(image, np.float32), truth)
        np.savez(path, group=group, seed=seed, image=image.astype(np.float32), truth=truth.astype(np.int32), **rec)
        best = int(np.argmax(rec["f1"]))
        print(f"{key:28s} true {rec['true_d']:5.1f} size model {rec['size_model_d']:5.1f} best {rec['diameter'][best]:5.1f}"
              f" F1 {rec['f1'][best]:.2f}  ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
