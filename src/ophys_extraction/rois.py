"""ROI statistics and cell/neuropil masks from a Cellpose label image, with suite2p 1.x as a library.

The path is suite2p's own for anatomical (Cellpose) detection: `anatomical.masks_to_stats` (pixels, `lam` = the
weights image at those pixels, median pixel, footprint 1), then `stats.roi_stats` with `median=True` (as
`detection_wrapper` calls it for the cellpose algorithm) and the detection settings, then `extraction.masks`.
Additions (docs/output.md, `rois/<stat>`): `solidity` as suite2p 0.14 computed it, `overlap` even when roi_stats does
not set it, and the Cellpose label of every ROI under the key `label` (roi_stats may drop ROIs).

suite2p is imported inside the functions: `import suite2p` takes several seconds.
"""

from __future__ import annotations

import numpy as np

from ophys_extraction.options import EXTRACT

# rois/<stat> datasets (docs/output.md), by shape.
PER_ROI_STATS = ("aspect_ratio", "compact", "footprint", "mrs", "mrs0", "npix", "npix_norm",
                 "npix_norm_no_crop", "npix_soma", "radius", "solidity")
PER_PIXEL_STATS = ("overlap", "soma_crop")
STAT_KEYS = tuple(sorted(PER_ROI_STATS + PER_PIXEL_STATS + ("med",)))
INT_STATS = ("footprint", "npix", "npix_soma")

# Settings this module takes from suite2p's defaults: (section of default_settings(), key).
SUITE2P_SETTINGS = {
    "max_overlap": ("detection", "max_overlap"),
    "soma_crop": ("detection", "soma_crop"),
    "npix_norm_min": ("detection", "npix_norm_min"),
    "npix_norm_max": ("detection", "npix_norm_max"),
    "allow_overlap": ("extraction", "allow_overlap"),
    "inner_neuropil_radius": ("extraction", "inner_neuropil_radius"),
    "min_neuropil_pixels": ("extraction", "min_neuropil_pixels"),
    "circular_neuropil": ("extraction", "circular_neuropil"),
    "neuropil_coefficient": ("extraction", "neuropil_coefficient"),
}


def suite2p_defaults() -> dict:
    """The suite2p 1.x default of every setting in SUITE2P_SETTINGS."""
    from suite2p.parameters import default_settings
    settings = default_settings()
    return {name: settings[section][key] for name, (section, key) in SUITE2P_SETTINGS.items()}


def suite2p_default_diameter() -> float:
    """suite2p's default cell diameter (its `diameter` setting, y and x equal)."""
    from suite2p.parameters import default_settings
    return float(np.mean(default_settings()["diameter"]))


def compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel to 1..n without gaps (masks_to_stats needs that); returns (compact image, original label of 1..n)."""
    labels = np.asarray(labels)
    present = np.unique(labels[labels > 0])
    compact = np.zeros(labels.shape, np.int32)
    inside = labels > 0
    compact[inside] = np.searchsorted(present, labels[inside]) + 1
    return compact, present.astype(np.int64)


def median_mask_diameter(labels: np.ndarray) -> float:
    """suite2p's diameter of a label image (anatomical.roi_detect): median of sqrt(npix) / (sqrt(pi) / 2)."""
    compact, present = compact_labels(labels)
    if present.size == 0:
        return 0.0
    npix = np.bincount(compact.ravel())[1:]
    return float(np.median(npix ** 0.5 / (np.pi ** 0.5 / 2)))


def solidity_014(ypix: np.ndarray, xpix: np.ndarray, soma_crop: np.ndarray) -> float:
    """suite2p 0.14's ROI.solidity (dropped in 1.x): soma pixel count over the area of their convex hull.

    As in 0.14: the hull of the soma-cropped (y, x) points when there are more than 10 of them, an area of 10 when
    there are not or when the hull fails (collinear points).
    """
    from scipy.spatial import ConvexHull
    from scipy.spatial import QhullError
    npix_soma = int(np.sum(soma_crop))
    volume = 10.0
    if npix_soma > 10:
        points = np.stack((ypix[soma_crop], xpix[soma_crop]), axis=1)
        try:
            volume = ConvexHull(points).volume
        except (QhullError, ValueError):
            volume = 10.0
    return npix_soma / volume


def roi_stats(labels: np.ndarray, weights: np.ndarray, diameter: float, max_overlap: float = 0.75,
              soma_crop: bool = True, npix_norm_min: float = 0.0, npix_norm_max: float = 100.0) -> np.ndarray:
    """suite2p ROI stats dicts of every ROI of a label image that suite2p keeps (ndarray of dicts).

    Each dict has suite2p's keys (ypix, xpix, lam, med, footprint, npix, soma_crop, npix_soma, mrs, mrs0, compact,
    radius, aspect_ratio, npix_norm, npix_norm_no_crop, overlap) plus `solidity` (suite2p 0.14) and `label`
    (the ROI's value in `labels`).
    """
    labels = np.asarray(labels)
    weights = np.asarray(weights)
    if labels.shape != weights.shape or labels.ndim != 2:
        raise ValueError(f"labels {labels.shape} and weights {weights.shape} must be equal 2-D shapes")
    compact, present = compact_labels(labels)
    if present.size == 0:
        return np.array([], dtype=object)
    from suite2p.detection import anatomical
    from suite2p.detection import stats as s2p_stats

    Ly, Lx = labels.shape
    stats = anatomical.masks_to_stats(compact, weights)
    for stat, label in zip(stats, present):
        stat["label"] = int(label)
    stats = s2p_stats.roi_stats(stats, Ly, Lx, diameter=[float(diameter), float(diameter)],
                                max_overlap=max_overlap, do_soma_crop=bool(soma_crop),
                                npix_norm_min=npix_norm_min, npix_norm_max=npix_norm_max, median=True)
    if len(stats) and "overlap" not in stats[0]:
        # roi_stats only sets it when max_overlap < 1; same definition: the pixel belongs to more than one ROI.
        stats = s2p_stats.assign_overlaps(stats, Ly, Lx)
    for stat in stats:
        stat["solidity"] = solidity_014(stat["ypix"], stat["xpix"], stat["soma_crop"])
    return stats


def build_masks(stats: np.ndarray, Ly: int, Lx: int, allow_overlap: bool = False, inner_neuropil_radius: int = 2,
                min_neuropil_pixels: int = 350, circular_neuropil: bool = False,
                lam_percentile: float = EXTRACT.default("lam_percentile")) -> tuple[list, list]:
    """suite2p's cell masks [(flat pixel index, lam / sum(lam))] and neuropil masks [flat pixel index].

    lam_percentile > 0 is exactly suite2p's `create_masks`. With 0 (our default) the pixels excluded from every
    neuropil mask are all ROI pixels, which equals `create_masks(lam_percentile=0)` for positive weights and holds
    for any weights. Zero ROIs (create_masks raises) give two empty lists.
    """
    if len(stats) == 0:
        return [], []
    from suite2p.extraction import masks as s2p_masks
    if lam_percentile > 0:
        return s2p_masks.create_masks(stats, Ly, Lx, lam_percentile=lam_percentile, allow_overlap=allow_overlap,
                                      neuropil_extract=True, inner_neuropil_radius=inner_neuropil_radius,
                                      min_neuropil_pixels=min_neuropil_pixels, circular_neuropil=circular_neuropil)
    cell_pix = np.zeros((Ly, Lx), bool)
    for stat in stats:
        cell_pix[stat["ypix"], stat["xpix"]] = True
    cell_masks = [s2p_masks.create_cell_mask(stat, Ly=Ly, Lx=Lx, allow_overlap=allow_overlap) for stat in stats]
    neuropil_masks = s2p_masks.create_neuropil_masks(
        ypixs=[stat["ypix"] for stat in stats], xpixs=[stat["xpix"] for stat in stats], cell_pix=cell_pix,
        inner_neuropil_radius=inner_neuropil_radius, min_neuropil_pixels=min_neuropil_pixels,
        circular=circular_neuropil)
    return cell_masks, neuropil_masks


def _roi_index(sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes), dtype=np.int32), np.asarray(sizes, dtype=np.int64))


def flatten_stats(stats: np.ndarray, Ly: int, Lx: int) -> dict[str, np.ndarray]:
    """The `rois/*` datasets: data (lam, float32), coords (3, n_pixels) int32 (roi, y, x), shape (n_rois, Ly, Lx),
    one (n_rois,) array per scalar stat, med (n_rois, 2), per-pixel stats concatenated like data."""
    n = len(stats)
    sizes = [len(s["ypix"]) for s in stats]
    cat = (lambda key, dtype: np.concatenate([np.asarray(s[key], dtype) for s in stats]) if n
           else np.zeros(0, dtype))
    out = {
        "data": cat("lam", np.float32),
        "coords": np.stack([_roi_index(sizes), cat("ypix", np.int32), cat("xpix", np.int32)]),
        "shape": np.array([n, Ly, Lx], np.int32),
        "med": np.array([s["med"] for s in stats], np.int32).reshape(n, 2),
    }
    for key in PER_ROI_STATS:
        dtype = np.int32 if key in INT_STATS else (np.float32 if key.startswith("npix_norm") else np.float64)
        out[key] = np.array([s[key] for s in stats], dtype).reshape(n)
    for key in PER_PIXEL_STATS:
        out[key] = cat(key, bool)
    return out


def neuropil_coords(neuropil_masks: list, Ly: int, Lx: int) -> np.ndarray:
    """(3, n) int32: (roi index, y, x) of every neuropil mask pixel."""
    sizes = [len(m) for m in neuropil_masks]
    flat = np.concatenate([np.asarray(m, np.int64) for m in neuropil_masks]) if sizes else np.zeros(0, np.int64)
    y, x = np.unravel_index(flat, (Ly, Lx))
    return np.stack([_roi_index(sizes), y.astype(np.int32), x.astype(np.int32)])


def roi_labels(stats: np.ndarray) -> np.ndarray:
    """int32 (n_rois,): the Cellpose label of each ROI."""
    return np.array([s["label"] for s in stats], np.int32).reshape(len(stats))
