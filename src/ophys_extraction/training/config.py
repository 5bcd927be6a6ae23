"""What a training run is told (`bin/train_model.py` builds it from its options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    output: Path
    modes: tuple[int, ...] = (2,)
    n_synthetic: int = 96
    synthetic_size: int = 192
    real_dirs: tuple[Path, ...] = ()
    images: tuple[Path, ...] = ()
    masks: tuple[Path, ...] = ()
    val_fraction: float = 0.25
    gap: int = 24
    copies: int = 24                 # augmented versions of each annotated training image
    real_share: float = 0.5          # share of each epoch's patches drawn from annotated images (if any)
    n_epochs: int = 150
    nimg_per_epoch: int = 24
    batch_size: int = 8
    bsize: int = 128
    learning_rate: float = 0.005
    weight_decay: float = 1e-5
    diam_mean: float = 12.0
    seed: int = 0
    n_eval_synthetic: int = 6
    eval_size: int = 256
    threads: int = 2
    half: bool = True
    calibrate: bool = True
    size_epochs: int = 10            # size model: epochs of up to SIZE_PATCHES_PER_EPOCH patches
    init_model: Path | None = None   # start from these weights (None: from scratch)
    command_line: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
