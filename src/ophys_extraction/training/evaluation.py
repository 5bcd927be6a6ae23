"""Scoring a model as the SEGMENT step runs it: on held-out synthetic planes and annotated validation parts."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ophys_extraction.metrics import DetectionScores, match_rois, pooled
from ophys_extraction.summary_images import mode_image
from ophys_extraction.training.config import TrainConfig
from ophys_extraction.training.data import (DEMO_NOISE_LEVEL, HIGH_NOISE_LEVEL, SYNTH_EVAL_SEED0, AnnotatedImage,
                                            heldout_planes)

log = logging.getLogger("ophys_extraction.training")


def predict(model: Any, image: np.ndarray, **options: Any) -> np.ndarray:
    """Masks of a loaded model (segmentation.LoadedModel) on one image, as the SEGMENT step computes them with its
    default options, `options` (SegmentationParams fields) replacing some."""
    from ophys_extraction.segmentation import SegmentationParams, segment_image
    params = dataclasses.replace(SegmentationParams(), **options)
    return segment_image(image, np.zeros_like(image), model, params).masks


def load_for_eval(path: Path | str) -> Any:
    from ophys_extraction import segmentation
    import torch
    return segmentation.load_model(segmentation.resolve_model(str(path)), torch.device("cpu"))


def score_images(model: Any, items: list[tuple[np.ndarray, ...]], **kwargs: Any) -> DetectionScores:
    """Pooled scores over (image, labels[, ignore]) items."""
    return pooled([match_rois(item[1], predict(model, item[0], **kwargs), ignore=item[2] if len(item) > 2 else None)
                   for item in items])


def evaluate(model_path: Path, cfg: TrainConfig, annotated: list[AnnotatedImage]) -> dict[str, Any]:
    """Held-out synthetic F1 (demo and high noise) and annotated validation P/R/F1, per mode."""
    model = load_for_eval(model_path)
    out: dict[str, Any] = {"synthetic": {}, "annotated_validation": {}}
    for noise in (DEMO_NOISE_LEVEL, HIGH_NOISE_LEVEL):
        planes = heldout_planes(cfg.n_eval_synthetic, cfg.eval_size, noise)
        for mode in cfg.modes:
            scores = score_images(model, [(mode_image(p.mean, p.max, mode), p.masks) for p in planes])
            out["synthetic"][f"noise {noise:g}, mode {mode}"] = scores.as_dict()
            log.info("held-out synthetic (%d planes %dx%d, seeds %d+, noise %g), mode %d: %s", len(planes),
                     cfg.eval_size, cfg.eval_size, SYNTH_EVAL_SEED0, noise, mode, scores)
    for item in annotated:
        if item.val_start >= item.labels.shape[item.axis]:
            continue
        for mode in sorted(item.images):
            scores = score_images(model, [item.part("val", mode)])
            out["annotated_validation"][f"{item.name}, mode {mode}"] = scores.as_dict()
            log.info("validation split of %s, mode %d: %s", item.name, mode, scores)
    return out
