"""The static scene of a synthetic plane: illumination, vessels, somata (cells and non-expressing "holes"), their
footprints and ground-truth masks, distractors (out-of-focus somata, dendrites, puncta) and the neuropil image."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage, sparse, special

from ophys_extraction.synthetic.spec import SCENE_STREAM, SyntheticSpec, stream_rng


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


def build_scene(spec: SyntheticSpec) -> tuple[np.ndarray, sparse.csr_matrix, np.ndarray, dict[str, np.ndarray],
                                                     list[str], np.ndarray]:
    """Static part: (masks, footprints (n_sources, H*W), neuropil spatial (1+K, H*W), cell table, source kinds,
    label image of the non-expressing somata)."""
    rng = stream_rng(spec.seed, SCENE_STREAM)
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

