"""Synthetic planes: their parameters (`SyntheticSpec`), the appearance families, the simulated scene and activity
(`Simulation`), and the seeded random streams everything is drawn from."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from ophys_extraction.errors import InputError

# Frames per noise block: fixed so the noise (and so the movie) does not depend on the write chunk size.
BLOCK = 64
# RNG stream ids, so that e.g. adding a distractor type does not reshuffle the noise.
SCENE_STREAM, ACTIVITY_STREAM, NOISE_STREAM = 1, 2, 3


@dataclass(frozen=True)
class SyntheticSpec:
    """One plane. Brightness values are in counts; densities are per 10,000 pixels (100 x 100 um at ~1 um/px)."""

    height: int = 256
    width: int = 256
    n_frames: int = 600
    frame_rate: float = 10.0
    seed: int = 0
    n_cells: int | None = None          # None: from cell_density
    cell_density: float = 14.0          # Neurofinder 00.xx has ~15 annotated cells per 10^4 px
    cell_diameter_mean: float = 10.0    # px; real somata at ~1 um/px are 8-18 px
    cell_diameter_sd: float = 2.0
    nucleus_fraction: float = 0.75      # fraction of cells with a dark (excluded) nucleus: ring-shaped
    ring_brightness: float = 0.4        # median baseline of ring cells (dark nucleus), x the neuropil level
    filled_brightness: float = 1.6      # median baseline of nucleus-filled cells, x the neuropil level
    nucleus_neuropil_loss: tuple[float, float] = (0.1, 0.4)  # neuropil a nucleus displaces beyond neuropil_coef
    hole_density: float = 14.0          # non-expressing somata: dark holes in the neuropil, not ground truth
    hole_darkness: tuple[float, float] = (0.4, 0.8)  # how much of the neuropil a hole removes at its centre
    out_of_focus_density: float = 2.0   # large blurred somata, not ground truth
    dendrite_density: float = 10.0      # active dendrite segments, not ground truth
    punctum_density: float = 20.0       # small active puncta (boutons), not ground truth
    vessel_density: float = 3.0         # dark blood vessels
    background: float = 300.0           # neuropil level at the brightest point, counts
    brightness: float = 1.0             # scales all fluorescence (deeper planes are dimmer)
    neuropil_coef: float = 0.7          # fraction of the neuropil still seen through a soma
    neuropil_strength: float = 1.0      # scales the neuropil's temporal fluctuations
    spike_rate_median: float = 0.25     # Hz; log-normal across cells, so some are nearly silent
    decay_tau_range: tuple[float, float] = (0.5, 1.5)  # s, GCaMP6-like
    bleach_fraction: float = 0.15       # asymptotic loss to photobleaching
    bleach_tau: float = 1500.0          # s
    noise_level: float = 1.0            # 1 = demo default; shot and read noise scale with it, 0 = noise-free
    gain: float = 100.0                 # counts per photon at noise_level 1 (~3 photons/px/frame in the neuropil)
    read_noise: float = 10.0            # counts, sd
    offset: float = 100.0               # counts added to every pixel
    shot_noise: str = "poisson"         # "poisson" (exact) or "gaussian" (same variance, ~5x faster)

    def __post_init__(self) -> None:
        for name in ("height", "width", "n_frames"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name}", f"must be >= 1, got {getattr(self, name)}")
        for name in ("frame_rate", "cell_diameter_mean", "background", "brightness", "gain", "ring_brightness",
                     "filled_brightness"):
            if not getattr(self, name) > 0:
                raise InputError(f"--{name}", f"must be > 0, got {getattr(self, name)}")
        if self.noise_level < 0:
            raise InputError("--noise_level", f"must be >= 0, got {self.noise_level}")
        if self.shot_noise not in ("poisson", "gaussian"):
            raise InputError("--shot_noise", f"must be 'poisson' or 'gaussian', got {self.shot_noise!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


# Appearance families: how the somata look in the mean image (SyntheticSpec fields each sets). "realistic" is the
# generator's default mix, matched to the annotated Neurofinder image (bench/realism.py); the others isolate one
# look each, so detection can be scored per look and a family can be held out of training.
FAMILIES: dict[str, dict[str, Any]] = {
    "realistic": {},                                                     # 75% dim rings, 25% bright filled somata
    "bright_filled": {"nucleus_fraction": 0.0},                          # bright somata, nucleus filled
    "bright_ring": {"nucleus_fraction": 1.0, "ring_brightness": 1.6},    # bright rim, dark nucleus
    "dim_ring": {"nucleus_fraction": 1.0},                               # faint rim, dark nucleus (most real cells)
    "blob_distractors": {"out_of_focus_density": 10.0},                  # realistic cells among many out-of-focus
}                                                                        # blobs, which are not cells


def family_fields(family: str) -> dict[str, Any]:
    """SyntheticSpec fields of an appearance family (`FAMILIES`)."""
    if family not in FAMILIES:
        raise InputError("--family", f"must be one of {', '.join(FAMILIES)}, got {family!r}")
    return dict(FAMILIES[family])


@dataclass
class Simulation:
    """A rendered scene and its activity; rows 0..n_cells-1 of the source arrays are the ground-truth cells."""

    spec: SyntheticSpec
    masks: np.ndarray              # int32 (H, W), 0 = background, 1..n_cells
    footprints: sparse.csr_matrix  # float32 (n_sources, H*W): counts per unit of source trace
    np_spatial: np.ndarray         # float32 (1+K, H*W): static neuropil, then its K fluctuating components
    np_temporal: np.ndarray        # float32 (1+K, T): drift, then drift x component fluctuation
    source_traces: np.ndarray      # float32 (n_sources, T): baseline * (1 + dF/F) * drift
    drift: np.ndarray              # float32 (T,): photobleaching and slow drift, multiplies everything
    cells: dict[str, np.ndarray]   # per-cell parameters and activity (spikes, dff, baseline, ...)
    hole_masks: np.ndarray         # int32 (H, W): the non-expressing somata (not ground truth), 1..n

    @property
    def n_cells(self) -> int:
        return int(self.masks.max())


# ---------------------------------------------------------------------------------------------------------------- RNG

def stream_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def plane_seed(session_seed: int, plane: int) -> int:
    """Seed of one plane of a session: distinct per plane, stable across runs."""
    return int(np.random.SeedSequence([session_seed, plane]).generate_state(1)[0])

