"""The cell-probability offset of a trained model, chosen on training data and folded into the network's bias."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ophys_extraction.summary_images import mode_image
from ophys_extraction.training.config import TrainConfig
from ophys_extraction.training.data import SYNTH_TRAIN_SEED0, AnnotatedImage, synthetic_plane
from ophys_extraction.training.evaluation import load_for_eval, score_images

log = logging.getLogger("ophys_extraction.training")

# Negative offsets matter when continuing from a model whose bias was already shifted.
CALIBRATION_OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
N_CALIBRATION_SYNTHETIC = 6


def calibrate_cellprob(model_path: Path, cfg: TrainConfig, annotated: list[AnnotatedImage]
                       ) -> tuple[float, list[dict[str, Any]]]:
    """Choose, on TRAINING data only, the cell-probability offset that maximises detection F1 at the pipeline's
    default `--cellprob_threshold 0`.

    A network trained on incomplete annotations (many real cells are unannotated) comes out under-confident: at
    threshold 0 it misses cells it segments well at threshold -1 or -2. Rather than asking every user for a
    threshold, the offset is folded into the bias of the network's cell-probability output (output.2.bias[2]), so
    threshold 0 with this model means what threshold -offset means with the raw network. Scored: the mean of the F1
    on the annotated training parts and on the first synthetic training planes (validation data is never used)."""
    model = load_for_eval(model_path)
    synth = [synthetic_plane(SYNTH_TRAIN_SEED0 + i, cfg.synthetic_size)
             for i in range(min(N_CALIBRATION_SYNTHETIC, cfg.n_synthetic))]
    groups: dict[str, list[tuple[np.ndarray, ...]]] = {}
    for i, plane in enumerate(synth):
        mode = cfg.modes[i % len(cfg.modes)]
        groups.setdefault("synthetic training planes", []).append((mode_image(plane.mean, plane.max, mode),
                                                                   plane.masks))
    for item in annotated:
        for mode in cfg.modes:
            if mode in item.images:
                groups.setdefault("annotated training parts", []).append(item.part("train", mode)[:2])
    table = []
    for offset in CALIBRATION_OFFSETS:
        row: dict[str, Any] = {"offset": offset}
        for name, items in groups.items():
            row[name] = score_images(model, items, cellprob_threshold=-offset).as_dict()
        row["mean_f1"] = float(np.mean([row[name]["f1"] for name in groups]))
        table.append(row)
        log.info("calibration: offset %.1f -> mean training F1 %.3f (%s)", offset, row["mean_f1"],
                 ", ".join(f"{name}: P {row[name]['precision']:.2f} R {row[name]['recall']:.2f}" for name in groups))
    return best_offset(table), table


def best_offset(table: list[dict[str, Any]]) -> float:
    """The calibration row with the highest mean F1 (to 3 decimals); ties go to the smallest shift."""
    return float(max(table, key=lambda r: (round(r["mean_f1"], 3), -abs(r["offset"])))["offset"])


def shift_cellprob_bias(src: Path, dst: Path, offset: float) -> None:
    import torch
    state = torch.load(src, map_location="cpu", weights_only=True)
    bias = state["output.2.bias"].clone()
    bias[2] += offset
    state["output.2.bias"] = bias
    torch.save(state, dst)
