"""Train the bundled Cellpose 3 model from scratch on synthetic planes mixed with annotated real images
(`init_model`: or continue from weights this script wrote, keeping their training log in the new one).

Data
  * Synthetic: `synthetic.make_training_image` planes (mean image, max projection, ground-truth masks) with varied
    noise, brightness, cell size and density, from seeds `SYNTH_TRAIN_SEED0 + i` (disjoint from the held-out seeds
    `SYNTH_EVAL_SEED0 + i` used here, in `bench/detection.py` and in the tests).
  * Annotated images (optional): a folder like `neurofinder-00xx-left/` (`mean.npy`, `max.npy`, `gt_labels.npy`),
    and/or pairs of `--images` / `--masks` files (.npy or .tif; masks are label images, 0 = background). Each
    annotated image is split SPATIALLY along its longer axis: the first part trains, the last `val_fraction`
    validates, and a gap band between them (moved to rows no ROI crosses) belongs to neither, so no ROI and no
    pixel is both trained and validated on.

Augmentation
  Cellpose's own `random_rotate_and_resize` (inside `train_seg`) already flips, rotates by any angle, rescales
  (+-25 %) and crops `bsize` patches at random positions. What it lacks for two-photon summary images is done here,
  on `copies` pre-rendered versions of every annotated training image (`train_seg` takes a fixed list): a smooth
  multiplicative illumination field (vignetting), gamma, contrast/offset, and Gaussian noise at a random level.
  The synthetic planes need none of that: each is a fresh scene with its own noise.

Everything is seeded: the synthetic seeds, the augmentation RNG, torch, and `train_seg` (which seeds numpy with the
epoch number).
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ophys_extraction.errors import InputError
from ophys_extraction.provenance import package_version
from ophys_extraction.summary_images import mode_image
from ophys_extraction.sizing import size_model_file
from ophys_extraction.training.calibration import calibrate_cellprob, shift_cellprob_bias
from ophys_extraction.training.config import TrainConfig
from ophys_extraction.training.data import (DEMO_NOISE_LEVEL, HIGH_NOISE_LEVEL, REAL_SCALES, SYNTH_EVAL_SEED0,
                                            SYNTH_TRAIN_SEED0, AnnotatedImage, augment_intensity, describe_variation,
                                            load_image_pairs, load_real_dir, rescale_pair, synthetic_plane)
from ophys_extraction.training.evaluation import evaluate
from ophys_extraction.training.record import code_version, human_readable

log = logging.getLogger("ophys_extraction.training")


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in ("cellpose.train", "ophys_extraction.training"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.INFO)
        if not lg.handlers:
            lg.addHandler(handler)
        lg.propagate = False


def _to_half(src: Path, dst: Path) -> None:
    """Float16 copy of a model file (diam_mean / diam_labels stay float32)."""
    import torch
    state = torch.load(src, map_location="cpu", weights_only=True)
    half = {k: (v.half() if v.is_floating_point() and k not in ("diam_mean", "diam_labels") else v)
            for k, v in state.items()}
    torch.save(half, dst)


def load_annotated(cfg: TrainConfig) -> list[AnnotatedImage]:
    """The annotated images of `cfg`, split, each checked to have an image for every mode trained."""
    annotated = [load_real_dir(Path(d), cfg.val_fraction, cfg.gap) for d in cfg.real_dirs]
    annotated += load_image_pairs([Path(p) for p in cfg.images], [Path(p) for p in cfg.masks], cfg.modes[0],
                                  cfg.val_fraction, cfg.gap)
    for item in annotated:
        missing = [m for m in cfg.modes if m not in item.images]
        if missing and not (len(cfg.images) and item.name in {Path(p).stem for p in cfg.images}):
            raise InputError(item.name, f"has no image for mode(s) {missing} (needs max.npy)")
    return annotated


def training_data(cfg: TrainConfig, annotated: list[AnnotatedImage]
                  ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(images, label images, is-annotated flag per image): the synthetic training planes, then `cfg.copies`
    versions of each annotated image's training part (zoomed by REAL_SCALES, intensity-augmented but the first)."""
    log.info("rendering %d synthetic training planes (%dx%d, seeds %d..%d)", cfg.n_synthetic, cfg.synthetic_size,
             cfg.synthetic_size, SYNTH_TRAIN_SEED0, SYNTH_TRAIN_SEED0 + cfg.n_synthetic - 1)
    data: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for i in range(cfg.n_synthetic):
        plane = synthetic_plane(SYNTH_TRAIN_SEED0 + i, cfg.synthetic_size)
        data.append(mode_image(plane.mean, plane.max, cfg.modes[i % len(cfg.modes)]))
        labels.append(plane.masks)
    n_synthetic = len(data)
    rng = np.random.default_rng([cfg.seed, 11])
    for item in annotated:
        modes = [m for m in cfg.modes if m in item.images]
        for c in range(cfg.copies):
            img, lab, _ = item.part("train", modes[c % len(modes)])
            img, lab = rescale_pair(img, lab, REAL_SCALES[c % len(REAL_SCALES)])
            data.append(augment_intensity(img, rng) if c else img.astype(np.float32))
            labels.append(lab)
        log.info("annotated %s: %d training copies at scales %s; split %s", item.name, cfg.copies, REAL_SCALES,
                 item.describe())
    return data, labels, np.arange(len(data)) >= n_synthetic


# Size model fitting: patches of Cellpose's evaluation tile size (224 px), so a style seen in training is one seen
# when a plane is segmented.
SIZE_PATCH = 224
SIZE_PATCHES_PER_EPOCH = 256


def train_size_model(net: Any, model_file: Path, data: list[np.ndarray], labels: list[np.ndarray],
                     cfg: TrainConfig) -> Path:
    """Fit Cellpose's size model of a trained network (`cellpose.train.train_size`: styles of random patches of the
    training images at random scales 0.5-1.5x, regressed on their log median cell diameter) and write it beside the
    model file (`sizing.size_model_file`). Every training image counts alike: the size model must cover the sizes,
    not the mix the network was trained on."""
    from cellpose import train as cp_train
    np.random.seed(cfg.seed)
    cp_train.train_size(net, str(model_file), train_data=data, train_labels=labels, channels=[0, 0],
                        normalize=True, min_train_masks=1, batch_size=cfg.batch_size, bsize=SIZE_PATCH,
                        nimg_per_epoch=min(len(data), SIZE_PATCHES_PER_EPOCH), n_epochs=cfg.size_epochs)
    return size_model_file(model_file)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate, save `cfg.output` (+ .training_log.json / .txt). Returns the log."""
    import torch
    from cellpose import models, train as cp_train

    _setup_logging()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    t_start = time.time()
    cfg.output.parent.mkdir(parents=True, exist_ok=True)

    annotated = load_annotated(cfg)  # cheap checks before the slow parts

    init_log = None
    if cfg.init_model:
        # Continue training (or fine-tune) a model this script wrote: its diam_mean comes with the weights, and its
        # own training log goes into this one, so the chain of runs stays reproducible. Loaded (and checked)
        # before the slow rendering below.
        net = models.CellposeModel(gpu=False, pretrained_model=str(cfg.init_model), nchan=2)
        if float(net.diam_mean) != cfg.diam_mean:
            raise InputError(cfg.init_model, f"has diam_mean {float(net.diam_mean):g}, not --diam_mean "
                                             f"{cfg.diam_mean:g}; pass --diam_mean {float(net.diam_mean):g}")
        init_log_path = Path(cfg.init_model).with_name(Path(cfg.init_model).name + ".training_log.json")
        init_log = json.loads(init_log_path.read_text()) if init_log_path.is_file() else None
    else:
        net = models.CellposeModel(gpu=False, pretrained_model=False, diam_mean=cfg.diam_mean, nchan=2)
    data, labels, is_real = training_data(cfg, annotated)
    probs = np.ones(len(data))
    if is_real.any() and (~is_real).any():
        probs[is_real] = cfg.real_share / is_real.sum()
        probs[~is_real] = (1 - cfg.real_share) / (~is_real).sum()
    probs /= probs.sum()

    log.info("training from %s: %d images (%d synthetic, %d annotated copies), %d epochs x %d patches of "
             "%d px, batch %d, AdamW lr %g, diam_mean %g", cfg.init_model or "scratch", len(data), (~is_real).sum(),
             is_real.sum(), cfg.n_epochs, cfg.nimg_per_epoch, cfg.bsize, cfg.batch_size, cfg.learning_rate,
             cfg.diam_mean)
    work = cfg.output.parent / f".{cfg.output.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    t_train = time.time()
    model_file, train_losses, _ = cp_train.train_seg(
        net.net, train_data=data, train_labels=labels, train_probs=probs, channels=[0, 0], normalize=True,
        n_epochs=cfg.n_epochs, nimg_per_epoch=cfg.nimg_per_epoch, batch_size=cfg.batch_size, bsize=cfg.bsize,
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, save_path=str(work),
        save_every=10**9, model_name=cfg.output.name, min_train_masks=1)
    train_seconds = time.time() - t_train
    full = Path(model_file)
    diam_labels = float(net.net.diam_labels.item())
    log.info("trained in %.0f s; diam_labels %.2f; fitting the size model", train_seconds, diam_labels)
    t_size = time.time()
    size_file = train_size_model(net.net, full, data, labels, cfg)
    size_seconds = time.time() - t_size

    offset, calibration = 0.0, []
    if cfg.calibrate:
        offset, calibration = calibrate_cellprob(full, cfg, annotated)
        log.info("cell probability offset chosen on training data: %+.1f", offset)
        if offset:
            shift_cellprob_bias(full, full, offset)
    scores = evaluate(full, cfg, annotated)
    precision, final_scores, keep = "float32", scores, full
    if cfg.half:
        half = full.with_name(full.name + ".half")
        _to_half(full, half)
        shutil.copyfile(size_file, size_model_file(half))
        half_scores = evaluate(half, cfg, annotated)
        if _f1s(half_scores) == _f1s(scores):
            precision, final_scores, keep = "float16", half_scores, half
        else:
            log.info("float16 copy changes F1 (%s vs %s): keeping float32", _f1s(half_scores), _f1s(scores))
    keep.replace(cfg.output)
    size_model_file(keep).replace(size_model_file(cfg.output))
    for leftover in work.rglob("*"):
        if leftover.is_file():
            leftover.unlink()
    for folder in sorted(work.rglob("*"), reverse=True):
        folder.rmdir()
    work.rmdir()

    record = {
        "model": cfg.output.name,
        "model_bytes": cfg.output.stat().st_size,
        "precision": precision,
        "cellpose_version": package_version("cellpose"),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "command_line": cfg.command_line,
        "code_version": code_version(),
        "config": {k: (list(map(str, v)) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
                   for k, v in asdict(cfg).items() if k not in ("command_line",)},
        "data": {
            "synthetic_training": {"n": cfg.n_synthetic, "size": cfg.synthetic_size,
                                   "seeds": [SYNTH_TRAIN_SEED0, SYNTH_TRAIN_SEED0 + cfg.n_synthetic - 1],
                                   "varied": describe_variation()},
            "synthetic_heldout": {"n": cfg.n_eval_synthetic, "size": cfg.eval_size,
                                  "seeds": [SYNTH_EVAL_SEED0, SYNTH_EVAL_SEED0 + cfg.n_eval_synthetic - 1],
                                  "noise_levels": [DEMO_NOISE_LEVEL, HIGH_NOISE_LEVEL]},
            "annotated": [item.describe() for item in annotated],
            "n_training_images": len(data),
            "patches_seen": cfg.n_epochs * cfg.nimg_per_epoch,
        },
        "diam_mean": cfg.diam_mean,
        "diam_labels": diam_labels,
        "epochs": cfg.n_epochs,
        "train_seconds": round(train_seconds, 1),
        "size_model": size_model_file(cfg.output).name,
        "size_model_seconds": round(size_seconds, 1),
        "total_seconds": round(time.time() - t_start, 1),
        "final_train_loss": float(train_losses[-1]),
        "cellprob_offset": offset,
        "calibration": calibration,
        "train_loss_every_10_epochs": [round(float(x), 4) for x in train_losses[::10]],
        "init_model": str(cfg.init_model) if cfg.init_model else None,
        "init_model_log": init_log,
        "scores": final_scores,
        "scores_float32": scores,
    }
    log_path = cfg.output.with_name(cfg.output.name + ".training_log.json")
    log_path.write_text(json.dumps(record, indent=2) + "\n")
    cfg.output.with_name(cfg.output.name + ".training_log.txt").write_text(human_readable(record))
    print(human_readable(record))
    return record


def add_size_model(cfg: TrainConfig, model_file: Path) -> Path:
    """Fit and write the size model of an existing model file (one trained before size models were, or by other
    means) on the training data `cfg` describes; the network itself is not changed."""
    import torch
    from cellpose import models
    _setup_logging()
    torch.set_num_threads(cfg.threads)
    annotated = load_annotated(cfg)
    net = models.CellposeModel(gpu=False, pretrained_model=str(model_file), nchan=2)
    data, labels, _ = training_data(cfg, annotated)
    t0 = time.time()
    path = train_size_model(net.net, model_file, data, labels, cfg)
    log.info("size model of %s fitted on %d images in %.0f s -> %s", model_file, len(data), time.time() - t0, path)
    return path


def _f1s(scores: dict[str, Any]) -> list[float]:
    return [round(v["f1"], 3) for group in scores.values() for v in group.values()]
