#!/usr/bin/env python3
"""Issue 25, step 4: does a second input channel, the correlation image beside the mean image, help Cellpose find
the labelled cells? A budgeted fine-tune of the bundled model, measured against the same fine-tune without it.

For each `--real_shares` value, two models are fine-tuned from the bundled one with the same recipe, data, seed and
patches, and differ only in Cellpose's second channel: `corrImg` ("mean+corr") or zeros ("mean+zeros", the
control; the bundled model was trained with zeros there). Both are scored, with the bundled model, by SEGMENT's own
code at its defaults (`segment_image`, the size search included):
  * the shared real movie (`../shared/data/neurofinder-00xx-left`, 600 frames), recall and precision at
    IoU >= 0.5 in four 128-row bands by ROI centroid. Rows 0-371 train, as they trained the bundled model, so only
    the last band (rows 384-511) is held out;
  * held-out synthetic movies (seeds SYNTH_EVAL_SEED0 + 300.., 256 x 256 x 600 frames), 2 per appearance family
    (`bright_ring` is no training family).

Training data: the real movie's training rows (24 copies: zoomed by REAL_SCALES, intensity-augmented but the first,
each channel apart) and `--n_synth` synthetic 192 x 192 planes drawn as the bundled model's were
(`training.data.synthetic_plane`'s variation), each rendered as a movie and summarised by SUMMARY_IMAGES so that
it has a correlation image. Each fine-tune is 200 epochs of 32 96-px patches (about 6 minutes on 2 cores); data
and trained models are kept in `--workdir`, so a rerun resumes after the last finished model.

    .venv/bin/python bench/two_channel.py [--real_shares 0.4 0.75] [--n_synth 64] [--epochs 200] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import REPO, movie_frame_rate, print_table, summary_images

sys.path.insert(0, str(REPO / "src"))
from ophys_extraction import segmentation, synthetic  # noqa: E402
from ophys_extraction.metrics import found_rois, match_rois  # noqa: E402
from ophys_extraction.training.data import (HELDOUT_FAMILY, REAL_SCALES, SYNTH_EVAL_SEED0,  # noqa: E402
                                            SYNTH_TRAIN_SEED0, TRAIN_FAMILIES, AnnotatedImage, augment_intensity,
                                            rescale_pair, split_spatially, varied_fields)

REAL_DIR = REPO.parent / "shared" / "data" / "neurofinder-00xx-left"
BUNDLED = REPO / "assets" / "models" / segmentation.BUNDLED_MODEL
FAMILIES = (*TRAIN_FAMILIES, HELDOUT_FAMILY)
BANDS = 4
COPIES = 24
SEED = 0


def rendered(spec: synthetic.SyntheticSpec, cache: Path) -> dict[str, np.ndarray]:
    """Mean and correlation images and the masks of a synthetic movie, rendered once."""
    if not cache.exists():
        movie = cache.with_suffix(".h5")
        sim = synthetic.write_movie(movie, spec)
        images = summary_images(movie, spec.frame_rate, cache.parent)
        movie.unlink()
        np.savez(cache, masks=sim.masks.astype(np.int32), **images)
    with np.load(cache) as f:
        return dict(f)


def real_images(workdir: Path) -> dict[str, np.ndarray]:
    cache = workdir / "real.npz"
    if not cache.exists():
        movie = REAL_DIR / "movie.h5"
        np.savez(cache, **summary_images(movie, float(movie_frame_rate(movie)), workdir))
    with np.load(cache) as f:
        return dict(f)


def channels(mean: np.ndarray, corr: np.ndarray, two: bool) -> np.ndarray:
    """(H, W, 2): the mean image and the correlation image, or zeros (the control)."""
    return np.dstack([mean, corr if two else np.zeros_like(mean)]).astype(np.float32)


def training_set(workdir: Path, n_synth: int, real_share: float, two: bool
                 ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(images (2, H, W), label images, sampling probability per image)."""
    data, labels = [], []
    for i in range(n_synth):
        fields = varied_fields(SYNTH_TRAIN_SEED0 + i)
        spec = synthetic.SyntheticSpec(height=192, width=192, seed=SYNTH_TRAIN_SEED0 + i, **fields)
        plane = rendered(spec, workdir / f"train_{i}.npz")
        data.append(channels(plane["meanImg"], plane["corrImg"], two).transpose(2, 0, 1))
        labels.append(plane["masks"])
    real = real_images(workdir)
    item = split_spatially(AnnotatedImage("real", {2: real["meanImg"], 5: real["corrImg"]},
                                          np.load(REAL_DIR / "gt_labels.npy").astype(np.int32)), 0.25, 24)
    rng = np.random.default_rng([SEED, 11])
    for c in range(COPIES):
        (mean, lab, _), (corr, _, _) = item.part("train", 2), item.part("train", 5)
        scale = REAL_SCALES[c % len(REAL_SCALES)]
        (mean, zoomed), (corr, _) = rescale_pair(mean, lab, scale), rescale_pair(corr, lab, scale)
        if c:
            mean, corr = augment_intensity(mean, rng), augment_intensity(corr, rng)
        data.append(channels(mean, corr, two).transpose(2, 0, 1))
        labels.append(zoomed)
    probs = np.r_[np.full(n_synth, (1 - real_share) / n_synth), np.full(COPIES, real_share / COPIES)]
    return data, labels, probs / probs.sum()


def fine_tune(workdir: Path, name: str, n_synth: int, real_share: float, two: bool, epochs: int) -> Path:
    """The bundled model fine-tuned (kept in workdir: a rerun reuses it)."""
    out = workdir / name
    if out.exists():
        return out
    import torch
    from cellpose import models, train as cp_train
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    net = models.CellposeModel(gpu=False, pretrained_model=str(BUNDLED), nchan=2)
    data, labels, probs = training_set(workdir, n_synth, real_share, two)
    (workdir / "work").mkdir(exist_ok=True)
    t0 = time.time()
    model_file, _, _ = cp_train.train_seg(
        net.net, train_data=data, train_labels=labels, train_probs=probs, channels=[1, 2], channel_axis=0,
        normalize=True, n_epochs=epochs, nimg_per_epoch=32, batch_size=8, bsize=96, learning_rate=0.005,
        weight_decay=1e-5, save_path=str(workdir / "work"), save_every=10**9, model_name=name, min_train_masks=1)
    Path(model_file).replace(out)
    print(f"{name}: fine-tuned in {time.time() - t0:.0f} s", flush=True)
    return out


def scores(model_file: Path, two: bool, workdir: Path) -> dict[str, tuple[float, float]]:
    """Recall and precision per real band and per synthetic family."""
    import torch
    torch.set_num_threads(2)
    model = segmentation.load_model(segmentation.resolve_model(str(model_file)), torch.device("cpu"))
    params = segmentation.SegmentationParams()

    def segment(mean: np.ndarray, corr: np.ndarray) -> np.ndarray:
        image = channels(mean, corr, True) if two else mean.astype(np.float32)
        return segmentation.segment_image(image, np.zeros_like(mean), model, params).masks

    from detection import band_of
    out: dict[str, tuple[float, float]] = {}
    real = real_images(workdir)
    truth = np.load(REAL_DIR / "gt_labels.npy")
    pred = segment(real["meanImg"], real["corrImg"])
    hit, correct = found_rois(truth, pred), found_rois(pred, truth)
    true_band, pred_band = band_of(truth, truth.shape[0]), band_of(pred, truth.shape[0])
    for b in range(BANDS):
        out[f"real band {b + 1}"] = (float(hit[true_band == b].mean()), float(correct[pred_band == b].mean()))
    for family in FAMILIES:
        tp = n_true = n_pred = 0
        for i in range(2):
            spec = synthetic.SyntheticSpec(height=256, width=256, n_frames=600, seed=SYNTH_EVAL_SEED0 + 300 + i,
                                           **synthetic.family_fields(family))
            plane = rendered(spec, workdir / f"eval_{family}_{i}.npz")
            s = match_rois(plane["masks"], segment(plane["meanImg"], plane["corrImg"]))
            tp, n_true, n_pred = tp + s.true_positives, n_true + s.n_true, n_pred + s.n_pred
        out[family] = (tp / n_true, tp / max(n_pred, 1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real_shares", type=float, nargs="+", default=[0.4, 0.75])
    parser.add_argument("--n_synth", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "two_channel")
    args = parser.parse_args(argv)
    if not (REAL_DIR / "movie.h5").exists():
        print(f"needs the real movie at {REAL_DIR}")
        return 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    models = {"bundled (mean image)": (BUNDLED, False)}
    for share in args.real_shares:
        for two in (True, False):
            name = f"{'mean+corr' if two else 'mean+zeros'}, real {share:g}"
            file_name = name.replace(", ", "_").replace(" ", "").replace("+", "_")
            models[name] = (fine_tune(args.workdir, file_name, args.n_synth, share, two, args.epochs), two)
    rows = []
    for name, (model_file, two) in models.items():
        s = scores(model_file, two, args.workdir)
        rows.append([name] + [f"{r:.2f}/{p:.2f}" for r, p in s.values()])
        print(name, json.dumps({k: [round(v, 3) for v in rp] for k, rp in s.items()}), flush=True)
    print_table(f"issue 25 step 4: recall/precision at IoU >= 0.5, SEGMENT's defaults ({args.epochs} epochs x 32 "
                f"patches from the bundled model; real band 4 held out, bands 1-3 train)",
                ["model"] + list(s), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
