"""Synthetic two-photon calcium-imaging movies with ground truth, for the demo, the tests, model training and benchmarks.

The movie is a sum of low-rank and sparse parts, so it can be rendered block by block with memory that does not grow
with the number of frames:

    signal(t, x) = np_temporal(t) @ np_spatial(x)      neuropil: static texture x (1 + a few smooth components)
                 + source_traces(t) @ footprints(x)     somata (ground truth) and distractors (not ground truth)
    movie        = int16(signal + shot noise + read noise + offset)

Everything is expressed in counts. The neuropil is attenuated, not removed, inside somata (`neuropil_coef`, ~0.7 as in
real data), so neuropil correction matters; an excluded nucleus displaces a little more, so ring-shaped cells have
cores as dark as the annotated real image's. Distractors that are not cells: out-of-focus somata (large blurred
blobs), active dendrite segments and puncta (boutons), plus static non-expressing somata ("holes", as many and as
dark as the real image's dark spots) and blood vessels that darken the neuropil. Illumination falls off away from a
random off-centre point (vignetting).

Determinism: the scene and activity come from RNG streams keyed by (seed, stream), the noise from one stream per fixed
block of BLOCK frames keyed by (seed, block index), so the output is byte-identical for a given spec whatever the
chunk size used to write it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy import ndimage, signal, sparse, special

from ophys_extraction.errors import InputError, run_cli

# Frames per noise block: fixed so the noise (and so the movie) does not depend on the write chunk size.
BLOCK = 64
# RNG stream ids, so that e.g. adding a distractor type does not reshuffle the noise.
_SCENE, _ACTIVITY, _NOISE = 1, 2, 3
_INT16 = np.iinfo(np.int16)


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

def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def plane_seed(session_seed: int, plane: int) -> int:
    """Seed of one plane of a session: distinct per plane, stable across runs."""
    return int(np.random.SeedSequence([session_seed, plane]).generate_state(1)[0])


# ------------------------------------------------------------------------------------------------------ spatial parts

def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian random field with zero mean and unit sd (sd measured, so small fields are not under-scaled)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / max(field.std(), 1e-12)


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Vignetting: brightest at an off-centre point, dimmer towards the edges, with slow irregular variation."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r2 = ((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2
    falloff = np.exp(-r2 / (2 * rng.uniform(0.25, 0.5) ** 2))
    return (falloff * np.exp(0.25 * _smooth_field(rng, shape, max(h, w) / 6))).astype(np.float32)


def _curve(rng: np.random.Generator, start: np.ndarray, angle: float, length: float, wiggle: float) -> np.ndarray:
    """Points (n, 2) every half pixel along a smoothly bending path."""
    steps = max(2, int(length * 2))
    turns = ndimage.gaussian_filter1d(rng.normal(0, wiggle, steps), 8)
    angles = angle + np.cumsum(turns)
    return start + 0.5 * np.cumsum(np.stack([np.sin(angles), np.cos(angles)], axis=1), axis=0)


def _vessels(rng: np.random.Generator, shape: tuple[int, int], density: float) -> np.ndarray:
    """Transmission (H, W) in (0, 1]: dark curvy tubes of varied width and length (short segments, long trunks)."""
    h, w = shape
    transmission = np.ones(shape, np.float32)
    for _ in range(rng.poisson(density * h * w / 1e5)):
        length = rng.uniform(20, 1.2 * max(h, w))
        path = _curve(rng, rng.uniform([0, 0], [h, w]), rng.uniform(0, 2 * np.pi), length, 0.03)
        pix = np.round(path).astype(int)
        pix = pix[(pix[:, 0] >= 0) & (pix[:, 0] < h) & (pix[:, 1] >= 0) & (pix[:, 1] < w)]
        if len(pix) == 0:
            continue
        centre = np.ones(shape, bool)
        centre[pix[:, 0], pix[:, 1]] = False
        dist = ndimage.distance_transform_edt(centre)
        radius = rng.uniform(1.5, 5.0)
        profile = special.expit((radius - dist) / 0.8)  # 1 / (1 + exp((dist - radius) / 0.8)), no overflow
        transmission *= (1 - rng.uniform(0.6, 0.85) * profile).astype(np.float32)
    return transmission


def _local_grid(cy: float, cx: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel coordinates of a square box around (cy, cx), not clipped to the frame."""
    ys = np.arange(int(np.floor(cy - half)), int(np.ceil(cy + half)) + 1)
    xs = np.arange(int(np.floor(cx - half)), int(np.ceil(cx + half)) + 1)
    return np.meshgrid(ys, xs, indexing="ij")


def _ellipse_radius(yy: np.ndarray, xx: np.ndarray, shape: dict[str, Any]) -> np.ndarray:
    """Normalised radius (1 on the outline) of a rotated ellipse whose outline is bent by low angular harmonics
    (real somata are rounded triangles and teardrops rather than ellipses)."""
    dy, dx = yy - shape["cy"], xx - shape["cx"]
    c, s = np.cos(shape["theta"]), np.sin(shape["theta"])
    u, v = c * dx + s * dy, -s * dx + c * dy
    phi = np.arctan2(v, u)
    bend = 1 + sum(a * np.cos(m * phi + p) for m, a, p in zip((2, 3), shape["harm_amp"], shape["harm_phase"]))
    return np.sqrt((u / shape["a"]) ** 2 + (v / shape["b"]) ** 2) / bend


def _soma_shape(rng: np.random.Generator, cy: float, cx: float, diameter: float) -> dict[str, Any]:
    aspect = 1 + min(abs(rng.normal(0, 0.18)), 0.6)
    return {"cy": cy, "cx": cx, "radius": diameter / 2, "theta": rng.uniform(0, np.pi),
            "a": diameter / 2 * np.sqrt(aspect), "b": diameter / 2 / np.sqrt(aspect),
            "harm_amp": rng.normal(0, 0.05, 2), "harm_phase": rng.uniform(0, 2 * np.pi, 2)}


def _soma_body(shape: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(yy, xx, body): body in [0, 1] with a soft edge, 0.5 on the outline."""
    yy, xx = _local_grid(shape["cy"], shape["cx"], max(shape["a"], shape["b"]) * 1.4 + 3)
    rnorm = _ellipse_radius(yy, xx, shape)
    return yy, xx, 1 / (1 + np.exp((rnorm - 1) * shape["radius"] / 0.6))


def _place(rng: np.random.Generator, shape: tuple[int, int], diameters: np.ndarray, preference: np.ndarray,
           vessels: np.ndarray) -> np.ndarray:
    """Centres (n, 2) for somata of the given diameters, NaN where no place was found. Rejection sampling: centres
    keep 0.85 x the sum of radii apart (small overlaps), avoid vessels, prefer where `preference` (0..1) is high,
    and may lie slightly outside the frame so some somata are cut by its edge."""
    h, w = shape
    centres = np.full((len(diameters), 2), np.nan)
    placed = np.zeros((0, 3))  # y, x, radius
    for i, d in enumerate(diameters):
        for _ in range(40):
            y, x = rng.uniform(-0.3 * d, h - 1 + 0.3 * d), rng.uniform(-0.3 * d, w - 1 + 0.3 * d)
            iy, ix = min(max(int(y), 0), h - 1), min(max(int(x), 0), w - 1)
            if rng.random() > preference[iy, ix] or vessels[iy, ix] < 0.7:
                continue
            if len(placed) and np.any(np.hypot(placed[:, 0] - y, placed[:, 1] - x) < 0.85 * (placed[:, 2] + d / 2)):
                continue
            centres[i] = y, x
            placed = np.vstack([placed, [y, x, d / 2]])
            break
    return centres


def _count(density: float, shape: tuple[int, int]) -> int:
    return int(round(density * shape[0] * shape[1] / 1e4))


class _Sources:
    """Accumulates sparse footprints (source index, flat pixel, weight), clipped to the frame."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.rows: list[np.ndarray] = []
        self.pixels: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.n = 0

    def add(self, yy: np.ndarray, xx: np.ndarray, weight: np.ndarray, cutoff: float = 0.02) -> int:
        h, w = self.shape
        keep = (weight > cutoff) & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        self.rows.append(np.full(int(keep.sum()), self.n))
        self.pixels.append(yy[keep] * w + xx[keep])
        self.weights.append(weight[keep].astype(np.float32))
        self.n += 1
        return self.n - 1

    def matrix(self, illumination: np.ndarray) -> sparse.csr_matrix:
        # The leading empty arrays keep a scene without any source valid.
        pixels = np.concatenate([np.zeros(0, np.int64), *self.pixels]).astype(np.int64)
        weights = np.concatenate([np.zeros(0, np.float32), *self.weights]) * illumination.ravel()[pixels]
        rows = np.concatenate([np.zeros(0, np.int64), *self.rows])
        return sparse.csr_matrix((weights.astype(np.float32), (rows, pixels)),
                                 shape=(self.n, self.shape[0] * self.shape[1]), dtype=np.float32)


def _line_footprint(rng: np.random.Generator, start: np.ndarray, angle: float, length: float,
                    sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A thin curvy process as (yy, xx, weight) with peak weight 1 (tapering along its length)."""
    path = _curve(rng, start, angle, length, 0.03)
    lo = np.floor(path.min(axis=0)).astype(int) - 4
    hi = np.ceil(path.max(axis=0)).astype(int) + 5
    img = np.zeros(hi - lo)
    idx = np.round(path).astype(int) - lo
    np.add.at(img, (idx[:, 0], idx[:, 1]), np.linspace(1.0, 0.4, len(idx)))
    img = ndimage.gaussian_filter(img, sigma)
    yy, xx = np.mgrid[lo[0]:hi[0], lo[1]:hi[1]]
    return yy, xx, img / max(img.max(), 1e-12)


def _blob(cy: float, cx: float, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = _local_grid(cy, cx, 3 * sigma)
    return yy, xx, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def _somata(rng: np.random.Generator, spec: SyntheticSpec, vessels: np.ndarray
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shapes of the expressing cells and of the non-expressing somata (holes), placed together so neither overlaps
    the other much."""
    shape = (spec.height, spec.width)
    n_cells = spec.n_cells if spec.n_cells is not None else _count(spec.cell_density, shape)
    n_holes = _count(spec.hole_density, shape)
    lo, hi = 0.6 * spec.cell_diameter_mean, 1.8 * spec.cell_diameter_mean
    diameters = np.clip(rng.normal(spec.cell_diameter_mean, spec.cell_diameter_sd, n_cells + n_holes), lo, hi)
    is_cell = np.arange(n_cells + n_holes) < n_cells
    diameters[~is_cell] *= 0.85  # non-expressing somata look smaller: their dark edge blends into the neuropil
    order = rng.permutation(len(diameters))  # neither kind gets first pick of the space
    # Cells cluster in some regions and thin out in others, as in real fields of view.
    preference = np.clip(0.55 + 0.35 * _smooth_field(rng, shape, max(shape) / 8), 0.15, 1.0)
    centres = np.full((len(diameters), 2), np.nan)
    centres[order] = _place(rng, shape, diameters[order], preference, vessels)
    found = ~np.isnan(centres[:, 0])
    shapes = [_soma_shape(rng, *centres[i], diameters[i]) if found[i] else None for i in range(len(diameters))]
    cells = [s for s, c in zip(shapes, is_cell) if s is not None and c]
    holes = [s for s, c in zip(shapes, is_cell) if s is not None and not c]
    return cells, holes


def _visible(shape: dict[str, Any], frame: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The soma body if at least 40% of it lies inside the frame (smaller slivers are not annotatable)."""
    yy, xx, body = _soma_body(shape)
    inside = (yy >= 0) & (yy < frame[0]) & (xx >= 0) & (xx < frame[1])
    return (yy, xx, body) if body[inside].sum() >= 0.4 * body.sum() and (body[inside] > 0.5).sum() >= 10 else None


def _cell_pattern(rng: np.random.Generator, shape: dict[str, Any], yy: np.ndarray, xx: np.ndarray,
                  body: np.ndarray, nucleus: bool) -> tuple[np.ndarray, np.ndarray]:
    """(fluorescence pattern of a soma: the body, a dimmer nucleus when excluded, mild granularity; the nucleus in
    [0, 1], zeros when not excluded)."""
    pattern = body.copy()
    inner = np.zeros_like(body)
    if nucleus:
        frac = rng.uniform(0.6, 0.85)
        nuc = dict(shape, a=shape["a"] * frac, b=shape["b"] * frac, radius=shape["radius"] * frac,
                   cy=shape["cy"] + rng.normal(0, 0.1) * shape["radius"],
                   cx=shape["cx"] + rng.normal(0, 0.1) * shape["radius"])
        inner = 1 / (1 + np.exp((_ellipse_radius(yy, xx, nuc) - 1) * nuc["radius"] / 0.8))
        pattern *= 1 - rng.uniform(0.8, 1.0) * inner
    return pattern * (1 + 0.1 * rng.standard_normal(body.shape)).clip(0.7, 1.3), inner


def _dendrite_stub(rng: np.random.Generator, shape: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A proximal dendrite leaving the soma (same activity as the soma, outside its ground-truth mask)."""
    angle = rng.uniform(0, 2 * np.pi)
    start = np.array([shape["cy"], shape["cx"]]) + 0.9 * shape["radius"] * np.array([np.sin(angle), np.cos(angle)])
    yy, xx, weight = _line_footprint(rng, start, angle, rng.uniform(6, 20), rng.uniform(0.7, 1.0))
    return yy, xx, 0.35 * weight


def _label_somata(shapes: list[dict[str, Any]], frame: tuple[int, int]
                  ) -> tuple[np.ndarray, list[tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """(label image 1..n, the kept somata with their bodies, occupancy). A pixel goes to the soma it is most inside
    of; somata mostly outside the frame or (almost) hidden by neighbours are dropped, so labels have no gaps."""
    h, w = frame
    candidates = [(s, *found) for s in shapes if (found := _visible(s, frame)) is not None]
    owner = np.zeros(frame, np.int32)
    best = np.full(frame, 0.5, np.float32)
    for label, (_, yy, xx, body) in enumerate(candidates, start=1):
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        y_in, x_in, b_in = yy[inside], xx[inside], body[inside].astype(np.float32)
        win = b_in > best[y_in, x_in]
        owner[y_in[win], x_in[win]] = label
        best[y_in[win], x_in[win]] = b_in[win]
    present = np.bincount(owner.ravel(), minlength=len(candidates) + 1)[1:] >= 10
    relabel = np.zeros(len(candidates) + 1, np.int32)
    relabel[1:][present] = np.arange(1, present.sum() + 1)
    # Dropped somata do not exist at all: only the kept ones displace neuropil.
    kept = [c for c, p in zip(candidates, present) if p]
    occupancy = np.zeros(frame, np.float32)
    for _, yy, xx, body in kept:
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        occupancy[yy[inside], xx[inside]] = np.maximum(occupancy[yy[inside], xx[inside]], body[inside])
    return relabel[owner], kept, occupancy


def _neuropil_static(rng: np.random.Generator, spec: SyntheticSpec, vessels: np.ndarray,
                     holes: list[dict[str, Any]], occupancy: np.ndarray) -> np.ndarray:
    """Mean neuropil image before illumination: grainy texture, darkened by vessels and non-expressing somata,
    attenuated to `neuropil_coef` inside cells."""
    frame = (spec.height, spec.width)
    h, w = frame
    texture = np.clip(1 + 0.1 * _smooth_field(rng, frame, 0.8) + 0.1 * _smooth_field(rng, frame, 3.0), 0.3, None)
    static = spec.background * spec.brightness * texture * vessels
    for shape in holes:
        yy, xx, body = _soma_body(shape)
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        static[yy[inside], xx[inside]] *= 1 - rng.uniform(*spec.hole_darkness) * body[inside]
    return (static * (1 - (1 - spec.neuropil_coef) * occupancy)).astype(np.float32)


def _build_scene(spec: SyntheticSpec) -> tuple[np.ndarray, sparse.csr_matrix, np.ndarray, dict[str, np.ndarray],
                                                     list[str], np.ndarray]:
    """Static part: (masks, footprints (n_sources, H*W), neuropil spatial (1+K, H*W), cell table, source kinds,
    label image of the non-expressing somata)."""
    rng = _rng(spec.seed, _SCENE)
    frame = (spec.height, spec.width)
    illumination = _illumination(rng, frame)
    vessels = _vessels(rng, frame, spec.vessel_density)
    cell_shapes, hole_shapes = _somata(rng, spec, vessels)
    masks, kept, occupancy = _label_somata(cell_shapes, frame)

    sources = _Sources(frame)
    nucleus = rng.random(len(kept)) < spec.nucleus_fraction
    h, w = frame
    # How much of the neuropil a nucleus displaces beyond the soma's own attenuation (per cell).
    nucleus_dark = np.zeros(frame, np.float32)
    for (shape, yy, xx, body), has_nucleus in zip(kept, nucleus):
        pattern, inner = _cell_pattern(rng, shape, yy, xx, body, has_nucleus)
        if has_nucleus:
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            dark = rng.uniform(*spec.nucleus_neuropil_loss) * inner[inside]
            nucleus_dark[yy[inside], xx[inside]] = np.maximum(nucleus_dark[yy[inside], xx[inside]], dark)
        if rng.random() < 0.3:  # a visible proximal dendrite, driven by the soma's own activity
            sy, sx, sw = _dendrite_stub(rng, shape)
            yy, xx, pattern = (np.concatenate([a.ravel(), b.ravel()]) for a, b in ((yy, sy), (xx, sx), (pattern, sw)))
        sources.add(yy, xx, pattern)
    cells = {
        "centers": np.array([(s["cy"], s["cx"]) for s, *_ in kept], np.float32).reshape(-1, 2),
        "diameters": np.array([2 * s["radius"] for s, *_ in kept], np.float32),
        "nucleus_excluded": nucleus,
        # Nucleus-filled cells are the brightest in real data. Most cells are rings: a nucleus darker than the
        # neuropil around them and a faint rim. Levels set so the median radial profile around the ROIs
        # (bench/realism.py) follows the annotated Neurofinder image's: centre ~0.85, rim ~1.07 x the surroundings.
        "baseline_rel": rng.lognormal(np.where(nucleus, np.log(spec.ring_brightness), np.log(spec.filled_brightness)),
                                      0.5).astype(np.float32),
    }
    kinds = ["cell"] * len(kept)
    for _ in range(_count(spec.out_of_focus_density, frame)):
        sources.add(*_blob(rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 8)))
        kinds.append("out_of_focus")
    for _ in range(_count(spec.dendrite_density, frame)):
        start = rng.uniform([0, 0], [h, w])
        sources.add(*_line_footprint(rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(15, 60),
                                     rng.uniform(0.6, 0.9)))
        kinds.append("dendrite")
    for _ in range(_count(spec.punctum_density, frame)):
        sources.add(*_blob(rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.6, 1.0)))
        kinds.append("punctum")

    static = _neuropil_static(rng, spec, vessels, hole_shapes, occupancy) * (1 - nucleus_dark) * illumination
    components = [np.exp(0.5 * _smooth_field(rng, frame, rng.uniform(0.1, 0.25) * max(frame))) for _ in range(3)]
    np_spatial = np.stack([static] + [static * c / c.mean() for c in components]).reshape(4, -1)
    hole_masks = _hole_labels(hole_shapes, frame)
    return masks, sources.matrix(illumination), np_spatial.astype(np.float32), cells, kinds, hole_masks


def _hole_labels(shapes: list[dict[str, Any]], frame: tuple[int, int]) -> np.ndarray:
    """Label image (1..n) of the non-expressing somata's bodies (> 0.5) inside the frame (for scoring detectors:
    a detection there is a dark disk taken for a cell)."""
    h, w = frame
    labels = np.zeros(frame, np.int32)
    for label, shape in enumerate(shapes, start=1):
        yy, xx, body = _soma_body(shape)
        keep = (body > 0.5) & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        labels[yy[keep], xx[keep]] = label
    return labels


# ------------------------------------------------------------------------------------------------------ temporal parts

def _slow(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """Smooth noise with unit variance whatever n (scaled by the filter's gain, not by the sample sd)."""
    return ndimage.gaussian_filter1d(rng.standard_normal(n), sigma_frames) * np.sqrt(2 * np.sqrt(np.pi) * sigma_frames)


def _calcium(spikes: np.ndarray, fs: float, tau_rise: float, tau_decay: float) -> np.ndarray:
    """Spikes convolved with a difference-of-exponentials kernel of peak 1 (an AR(2) filter, O(T))."""
    pd, pr = np.exp(-1 / (tau_decay * fs)), np.exp(-1 / (tau_rise * fs))
    k = np.arange(int(5 * tau_decay * fs) + 3)
    peak = np.max(pd ** (k + 1) - pr ** (k + 1))
    return signal.lfilter([(pd - pr) / peak], [1, -(pd + pr), pd * pr], spikes)


# Activity of each kind of source: (median rate Hz or None for the spec's, log-sd of rate, dF/F per spike range,
# decay tau range s or None for the spec's, baseline range relative to the neuropil level or None for the cell table).
_KINDS = {
    "cell": (None, 1.0, (0.2, 0.6), None, None),
    "out_of_focus": (None, 1.0, (0.1, 0.3), None, (0.15, 0.35)),
    "dendrite": (0.2, 0.8, (0.5, 2.0), (0.3, 0.8), (0.1, 0.3)),
    "punctum": (0.1, 0.8, (1.0, 3.0), (0.2, 0.5), (0.2, 0.7)),
}


def _activity(spec: SyntheticSpec, kinds: list[str], baseline_rel: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(source traces (n_sources, T) without drift, neuropil fluctuations (3, T), per-cell activity)."""
    rng = _rng(spec.seed, _ACTIVITY)
    fs, n = spec.frame_rate, spec.n_frames
    traces = np.empty((len(kinds), n), np.float32)
    n_cells = len(baseline_rel)
    cell = {"spikes": np.empty((n_cells, n), np.uint8), "dff": np.empty((n_cells, n), np.float32),
            "spike_rate_hz": np.empty(n_cells, np.float32), "decay_tau_s": np.empty(n_cells, np.float32),
            "baseline": np.empty(n_cells, np.float32)}
    for i, kind in enumerate(kinds):
        median_rate, rate_sd, amp_range, tau_range, base_range = _KINDS[kind]
        rate = np.clip(rng.lognormal(np.log(median_rate or spec.spike_rate_median), rate_sd), 0.003, 3.0)
        tau = rng.uniform(*(tau_range or spec.decay_tau_range))
        events = rng.poisson(rate / fs, n)
        spikes = events + rng.poisson(rng.uniform(0, 3) * events)  # some events are bursts
        dff = rng.uniform(*amp_range) * _calcium(spikes * rng.lognormal(0, 0.2, n), fs, rng.uniform(0.05, 0.1), tau)
        dff = dff / (1 + dff / 4)  # indicator saturation
        base = (baseline_rel[i] if base_range is None else rng.uniform(*base_range)) * spec.background * spec.brightness
        traces[i] = base * (1 + dff)
        if i < n_cells:
            cell["spikes"][i] = np.minimum(spikes, 255)
            cell["dff"][i], cell["spike_rate_hz"][i], cell["decay_tau_s"][i], cell["baseline"][i] = dff, rate, tau, base
    # Neuropil: slow wandering plus population events shared by its components, plus their own events.
    population = _calcium(rng.poisson(0.05 / fs, n) * rng.uniform(0.05, 0.12), fs, 0.2, 2.0)
    fluct = np.stack([0.05 * _slow(rng, n, 10 * fs) + rng.uniform(0.5, 1.0) * population
                      + _calcium(rng.poisson(0.05 / fs, n) * 0.1, fs, 0.2, 1.5) for _ in range(3)])
    return traces, (spec.neuropil_strength * fluct).astype(np.float32), cell


def _drift(spec: SyntheticSpec) -> np.ndarray:
    """Photobleaching (exponential towards 1 - bleach_fraction) and 1% slow drift of the whole field."""
    t = np.arange(spec.n_frames) / spec.frame_rate
    wander = 1 + 0.01 * _slow(_rng(spec.seed, _ACTIVITY, 1), spec.n_frames, 60 * spec.frame_rate)
    return ((1 - spec.bleach_fraction * (1 - np.exp(-t / spec.bleach_tau))) * wander).astype(np.float32)


def simulate(spec: SyntheticSpec) -> Simulation:
    """The scene and its activity for `spec` (everything but the noise)."""
    masks, footprints, np_spatial, cells, kinds, hole_masks = _build_scene(spec)
    traces, fluct, activity = _activity(spec, kinds, cells.pop("baseline_rel"))
    drift = _drift(spec)
    cells.update(activity)
    np_temporal = np.vstack([drift, drift * fluct]).astype(np.float32)
    traces *= drift  # in place: for long movies this is the largest array
    return Simulation(spec, masks, footprints, np_spatial, np_temporal, traces, drift, cells, hole_masks)


# ------------------------------------------------------------------------------------------------------ rendering

def _signal(sim: Simulation, np_temporal: np.ndarray, source_traces: np.ndarray) -> np.ndarray:
    """Noise-free frames (n, H*W) float32 for the given temporal factors."""
    frames = np_temporal.T @ sim.np_spatial
    frames += (sim.footprints.T @ source_traces).T
    return frames


def _noise_params(spec: SyntheticSpec) -> tuple[float, float]:
    """(counts per photon, read noise sd) at the spec's noise level: both noise sds scale with noise_level."""
    return spec.gain * spec.noise_level**2, spec.read_noise * spec.noise_level


def _add_noise(spec: SyntheticSpec, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot noise on photon counts plus Gaussian read noise plus offset, rounded and clipped to int16."""
    gain, read = _noise_params(spec)
    np.maximum(frames, 0, out=frames)
    if spec.noise_level > 0:
        if spec.shot_noise == "poisson":
            frames = (gain * rng.poisson(frames / gain)).astype(np.float32)
            frames += read * rng.standard_normal(frames.shape, np.float32)
        else:
            sd = np.sqrt(frames * gain + read**2)
            frames += sd * rng.standard_normal(frames.shape, np.float32)
    frames += spec.offset
    return np.clip(np.rint(frames), _INT16.min, _INT16.max).astype(np.int16)


def render(sim: Simulation, start: int, stop: int) -> np.ndarray:
    """Movie frames [start, stop) as int16 (n, H, W). Noise is drawn per fixed BLOCK of frames, so any split of the
    movie into ranges gives the same pixels."""
    spec = sim.spec
    blocks = []
    for block in range(start // BLOCK, -(-stop // BLOCK)):
        b0, b1 = block * BLOCK, min((block + 1) * BLOCK, spec.n_frames)
        frames = _signal(sim, sim.np_temporal[:, b0:b1], sim.source_traces[:, b0:b1])
        frames = _add_noise(spec, frames, _rng(spec.seed, _NOISE, block))
        blocks.append(frames[max(start - b0, 0): stop - b0])
    return np.concatenate(blocks).reshape(-1, spec.height, spec.width)


def write_movie(path: str | Path, spec: SyntheticSpec, chunk_frames: int = 256,
                sim: Simulation | None = None) -> Simulation:
    """Write the movie as HDF5 dataset `data` (frames, H, W) int16, chunked by up to 64 frames, uncompressed,
    streaming `chunk_frames` frames at a time (memory independent of the number of frames). Written to a temporary
    name and renamed, so a file at `path` is always complete. Returns the simulation (for the ground truth)."""
    sim = sim if sim is not None else simulate(spec)
    path = Path(path)
    step = max(BLOCK, chunk_frames // BLOCK * BLOCK)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        dset = f.create_dataset("data", (spec.n_frames, spec.height, spec.width), np.int16,
                                chunks=(min(BLOCK, spec.n_frames), spec.height, spec.width))
        for start in range(0, spec.n_frames, step):
            stop = min(start + step, spec.n_frames)
            dset[start:stop] = render(sim, start, stop)
    tmp.replace(path)
    return sim


# ------------------------------------------------------------------------------------------------------ ground truth

def _mask_mean_matrix(masks: np.ndarray) -> sparse.csr_matrix:
    """(n_cells, H*W): row i averages the pixels of label i+1."""
    flat = masks.ravel()
    pixels = np.flatnonzero(flat)
    labels = flat[pixels] - 1
    area = np.bincount(labels, minlength=int(masks.max()))
    return sparse.csr_matrix((1.0 / area[labels], (labels, pixels)), shape=(int(masks.max()), flat.size))


def contamination(sim: Simulation) -> np.ndarray:
    """(n_cells, T) float32: mean over each cell's mask of everything in the noise-free movie except the cell's own
    fluorescence (neuropil, distractors, spill-over from overlapping neighbours)."""
    means = _mask_mean_matrix(sim.masks)
    on_neuropil = (means @ sim.np_spatial.T.astype(np.float64)).astype(np.float32)
    on_sources = (means @ sim.footprints.T).toarray().astype(np.float32)
    np.fill_diagonal(on_sources[:, : sim.n_cells], 0)
    result = on_neuropil @ sim.np_temporal
    result += on_sources @ sim.source_traces
    return result


def write_ground_truth(path: str | Path, sim: Simulation) -> None:
    """Ground truth of one plane as HDF5; `attrs['description']` says what each dataset means."""
    n = sim.n_cells
    coo = sim.footprints[:n].tocoo()
    width = sim.spec.width
    big = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("masks", data=sim.masks, **big)
        f.create_dataset("traces", data=sim.source_traces[:n], **big)
        f.create_dataset("dff", data=sim.cells["dff"], **big)
        f.create_dataset("spikes", data=sim.cells["spikes"], **big)
        f.create_dataset("neuropil", data=contamination(sim), **big)
        f.create_dataset("drift", data=sim.drift)
        f.create_dataset("footprints/data", data=coo.data.astype(np.float32), **big)
        f.create_dataset("footprints/coords", data=np.stack([coo.row, coo.col // width, coo.col % width])
                         .astype(np.int32), **big)
        f.create_dataset("footprints/shape", data=np.array([n, sim.spec.height, width], np.int64))
        for key in ("centers", "diameters", "nucleus_excluded", "baseline", "spike_rate_hz", "decay_tau_s"):
            f.create_dataset(key, data=sim.cells[key])
        f.attrs["seed"] = sim.spec.seed
        f.attrs["n_cells"] = n
        f.attrs["frame_rate"] = sim.spec.frame_rate
        f.attrs["spec"] = sim.spec.to_json()
        f.attrs["description"] = (
            "masks: label image, cell i has label i+1. traces: cell fluorescence per unit footprint weight, "
            "baseline*(1+dff)*drift, counts; the movie's noise-free signal is sum_i footprint_i*traces_i + neuropil. "
            "footprints: COO (cell, y, x) -> counts per unit trace. neuropil: mean over each mask of the noise-free "
            "movie minus the cell's own fluorescence (contamination). spikes: counts per frame. Movie value = "
            "signal + shot/read noise + offset, int16.")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------------ sessions

def _plane_spec(base: SyntheticSpec, session_seed: int, plane: int) -> SyntheticSpec:
    """Planes lie at increasing depth: each is dimmer and a little sparser than the one above, with its own seed."""
    return dataclasses.replace(base, seed=plane_seed(session_seed, plane), brightness=base.brightness * 0.85**plane,
                               cell_density=base.cell_density * max(0.5, 1 - 0.1 * plane))


def write_session(out_dir: str | Path, n_planes: int = 2, seed: int = 0, chunk_frames: int = 256,
                  **spec_fields: Any) -> list[Path]:
    """Allen-style session: `<out_dir>/plane_<i>/decrosstalk/plane_<i>_decrosstalk.h5` with `processing.json`
    (frame rate) beside it and `<out_dir>/plane_<i>/ground_truth.h5`. Returns the movie paths."""
    if n_planes < 1:
        raise InputError("--n_planes", f"must be >= 1, got {n_planes}")
    base = SyntheticSpec(**spec_fields)
    movies = []
    for plane in range(n_planes):
        spec = _plane_spec(base, seed, plane)
        plane_id = f"plane_{plane}"
        folder = Path(out_dir) / plane_id / "decrosstalk"
        folder.mkdir(parents=True, exist_ok=True)
        movie = folder / f"{plane_id}_decrosstalk.h5"
        sim = write_movie(movie, spec, chunk_frames)
        write_ground_truth(folder.parent / "ground_truth.h5", sim)
        processing = {"processing_pipeline": {"data_processes": [{
            "name": "Synthetic movie (ophys_extraction.synthetic)",
            "parameters": {"movie_frame_rate_hz": spec.frame_rate, "session_seed": seed, "plane_seed": spec.seed}}]}}
        (folder / "processing.json").write_text(json.dumps(processing, indent=2) + "\n")
        movies.append(movie)
    return movies


# ------------------------------------------------------------------------------------------------------ training

def make_training_image(seed: int, height: int = 256, width: int = 256, noise_level: float = 1.0,
                        n_frames: int = 600, frame_rate: float = 10.0, bin_duration: float = 3.7,
                        high_pass: int = 100, **spec_fields: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean image, max projection, masks) as the pipeline would compute them from the movie of this spec, without
    rendering the movie: the binned movie is rendered directly (binning is linear), with the noise of a mean of
    `bin_duration * frame_rate` frames. The max projection is that of the temporally high-passed binned movie
    (suite2p's rolling-mean high pass over windows of `high_pass` bins), so it shows activity, not baseline."""
    spec = SyntheticSpec(height=height, width=width, n_frames=n_frames, frame_rate=frame_rate, seed=seed,
                         noise_level=noise_level, **spec_fields)
    sim = simulate(spec)
    bin_frames = min(max(1, int(round(bin_duration * frame_rate))), n_frames)
    n_bins = n_frames // bin_frames

    def binned(x: np.ndarray) -> np.ndarray:
        return x[:, : n_bins * bin_frames].reshape(len(x), n_bins, bin_frames).mean(axis=2)

    frames = _signal(sim, binned(sim.np_temporal), binned(sim.source_traces))
    gain, read = _noise_params(spec)
    sd = np.sqrt(np.maximum(frames, 0) * gain + read**2) / np.sqrt(bin_frames)
    frames += sd * _rng(seed, _NOISE, 2**32 - 1).standard_normal(frames.shape, np.float32) + spec.offset
    mean = frames.mean(axis=0)
    for start in range(0, n_bins, high_pass):
        frames[start:start + high_pass] -= frames[start:start + high_pass].mean(axis=0)
    shape = (height, width)
    return mean.reshape(shape).astype(np.float32), frames.max(axis=0).reshape(shape).astype(np.float32), sim.masks


# ------------------------------------------------------------------------------------------------------ CLI

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ophys_extraction.synthetic",
        description="Write a synthetic multi-plane two-photon session (Allen layout) with ground truth.")
    parser.add_argument("--out", required=True, type=Path, help="session folder to create")
    parser.add_argument("--n_planes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=SyntheticSpec.n_frames)
    parser.add_argument("--height", type=int, default=SyntheticSpec.height)
    parser.add_argument("--width", type=int, default=SyntheticSpec.width)
    parser.add_argument("--frame_rate", type=float, default=SyntheticSpec.frame_rate)
    parser.add_argument("--noise_level", type=float, default=SyntheticSpec.noise_level,
                        help="1 = demo default, higher = noisier, 0 = noise-free")
    parser.add_argument("--n_cells", type=int, default=None, help="cells per plane (default: from --cell_density)")
    parser.add_argument("--cell_density", type=float, default=SyntheticSpec.cell_density, help="cells per 10^4 px")
    parser.add_argument("--cell_diameter", type=float, default=SyntheticSpec.cell_diameter_mean, help="mean, px")
    parser.add_argument("--family", choices=list(FAMILIES), default="realistic",
                        help="how the somata look (appearance family)")
    parser.add_argument("--neuropil_strength", type=float, default=SyntheticSpec.neuropil_strength)
    parser.add_argument("--offset", type=float, default=SyntheticSpec.offset)
    parser.add_argument("--shot_noise", choices=("poisson", "gaussian"), default=SyntheticSpec.shot_noise,
                        help="gaussian: same variance, much faster for very long movies")
    parser.add_argument("--chunk_frames", type=int, default=256, help="frames rendered and written at a time")
    args = parser.parse_args(argv)
    movies = write_session(args.out, args.n_planes, args.seed, args.chunk_frames, n_frames=args.frames,
                           height=args.height, width=args.width, frame_rate=args.frame_rate,
                           noise_level=args.noise_level, n_cells=args.n_cells, cell_density=args.cell_density,
                           cell_diameter_mean=args.cell_diameter, neuropil_strength=args.neuropil_strength,
                           offset=args.offset, shot_noise=args.shot_noise, **family_fields(args.family))
    for movie in movies:
        print(movie)
    return 0


if __name__ == "__main__":
    run_cli(main)
