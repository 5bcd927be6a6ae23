"""A second, independent renderer of mean images with ground truth, used only to VALIDATE (the size choice,
bench/sizes.py): no parameter is fitted on it (README, "How held out the table is", says how it informed the size
choice's design), and it shares no code with the main generator (`scene`, `render`), so a method that only works on
the main generator's look fails here.

What differs from the main generator on purpose:
* cells are ellipses (axis ratio 0.6-1, any orientation) with a wavy outline (radial harmonics 2-5), not disks;
* the optics: a Gaussian point-spread function proportional to the cell size (as zoom scales both) plus a wide
  scattering halo, instead of the main generator's per-soma profiles;
* the noise model: gamma-distributed shot noise (variance proportional to the signal) of a mean over few frames, with
  resonant-scanner line stripes and a fixed-pattern offset per column; no neuropil movie is simulated;
* the background: neuropil texture of blurred speckle at the cell scale, vignetting along one axis.

Looks (`OTHER_LOOKS`), each a distinct way the somata stand out:
* "bright": filled somata 1.6-3x the neuropil, sparse (coverage ~0.15);
* "dim": rings (dark nucleus, rim 1.1-1.4x the neuropil), among dark unlabelled holes of the same size;
* "dense": touching somata of mixed brightness, coverage ~0.45, some dimmer than the neuropil around them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

OTHER_LOOKS = ("bright", "dim", "dense")
_LOOK = {  # coverage, cell/neuropil brightness range, ring (dark nucleus) share, holes per cell
    "bright": (0.15, (1.6, 3.0), 0.0, 0.0),
    "dim": (0.25, (1.1, 1.4), 1.0, 0.6),
    "dense": (0.45, (0.8, 2.2), 0.4, 0.0),
}


@dataclass(frozen=True)
class OtherPlane:
    mean: np.ndarray      # float32 (H, W)
    masks: np.ndarray     # int32 (H, W), 1..n
    look: str
    diameter: float       # the cells' median diameter as drawn (px)


def _ellipse_mask(shape: tuple[int, int], cy: float, cx: float, a: float, b: float, theta: float,
                  harmonics: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Pixels inside an ellipse (semi-axes a, b) whose radius is modulated by 1 + sum_k h_k cos(k phi + p_k)."""
    h, w = shape
    r = int(np.ceil(max(a, b) * 1.4)) + 1
    y0, y1, x0, x1 = max(0, int(cy) - r), min(h, int(cy) + r + 1), max(0, int(cx) - r), min(w, int(cx) + r + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    phi = np.arctan2(v, u)
    wave = 1 + sum(hk * np.cos(k * phi + pk) for k, hk, pk in zip(range(2, 2 + len(harmonics)), harmonics, phases))
    inside = (u / a) ** 2 + (v / b) ** 2 <= wave**2
    out = np.zeros(shape, bool)
    out[y0:y1, x0:x1] = inside
    return out


def render_other(seed: int, diameter: float, look: str, size: int = 256) -> OtherPlane:
    """One plane of `look` whose cells have this median equivalent diameter (px, sd 15%)."""
    if look not in _LOOK:
        raise ValueError(f"look must be one of {OTHER_LOOKS}, got {look!r}")
    coverage, (lo, hi), ring_share, holes_per_cell = _LOOK[look]
    rng = np.random.default_rng([seed, 424242])
    shape = (size, size)
    n_cells = int(round(coverage * size * size / (np.pi / 4 * diameter**2)))
    masks = np.zeros(shape, np.int32)
    occupied = np.zeros(shape, bool)
    cells = np.zeros(shape, np.float32)
    placed = 0
    for _ in range(n_cells * 30):
        if placed >= n_cells:
            break
        d = diameter * np.exp(rng.normal(0, 0.15))
        ratio = rng.uniform(0.6, 1.0)
        a, b = d / 2 / np.sqrt(ratio), d / 2 * np.sqrt(ratio)   # area of a disk of diameter d
        cy, cx = rng.uniform(0, size, 2)
        m = _ellipse_mask(shape, cy, cx, a, b, rng.uniform(0, np.pi), rng.uniform(0, 0.08, 4),
                          rng.uniform(0, 2 * np.pi, 4))
        if m.sum() < 8 or (m & occupied).sum() > (0.1 if look == "dense" else 0.0) * m.sum():
            continue
        m &= ~occupied
        placed += 1
        masks[m] = placed
        occupied |= m if look == "dense" else ndimage.binary_dilation(m)
        brightness = rng.uniform(lo, hi)
        if rng.random() < ring_share:
            core = ndimage.binary_erosion(m, iterations=max(1, int(round(d * 0.2))))
            cells[m] += brightness
            cells[core] -= brightness * rng.uniform(0.6, 0.95)
        else:
            cells[m] += brightness
    holes = np.zeros(shape, np.float32)
    for _ in range(int(round(holes_per_cell * placed))):
        d = diameter * np.exp(rng.normal(0, 0.15))
        cy, cx = rng.uniform(0, size, 2)
        m = _ellipse_mask(shape, cy, cx, d / 2, d / 2 * rng.uniform(0.7, 1), rng.uniform(0, np.pi),
                          np.zeros(1), np.zeros(1)) & ~occupied
        holes[m] = rng.uniform(0.3, 0.7)
    speckle = ndimage.gaussian_filter(rng.standard_normal(shape), diameter / 4)
    neuropil = 1.0 + 0.25 * speckle / max(speckle.std(), 1e-9)
    neuropil *= 1 - holes
    vignette = 0.6 + 0.4 * np.cos(np.linspace(-1.1, 1.1, size))[None, :]
    # Somata displace the neuropil they sit in: a cell's value is its own brightness, not neuropil + brightness.
    scene = np.where(masks > 0, cells, neuropil) * vignette
    psf = ndimage.gaussian_filter(scene, 0.09 * diameter) * 0.9 + ndimage.gaussian_filter(scene, 1.5 * diameter) * 0.1
    photons = np.maximum(psf, 1e-3) * 40.0                       # photons per pixel in the mean of the frames
    mean = rng.gamma(photons, 1.0) / 40.0                         # shot noise: var proportional to the signal
    mean += 0.03 * rng.standard_normal((size, 1)) + 0.02 * rng.standard_normal((1, size))   # lines, columns
    return OtherPlane((mean * 1000 + 200).astype(np.float32), masks, look, float(diameter))
