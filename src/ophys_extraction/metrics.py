"""Detection scores: match predicted to ground-truth ROIs one-to-one at IoU >= 0.5, then precision, recall, F1.

Used by the tests, `bench/detection.py` and the model training's held-out evaluation, so every figure the project
reports about detection quality is computed the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class DetectionScores:
    n_true: int
    n_pred: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    iou_threshold: float = IOU_THRESHOLD

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f}  "
                f"(TP {self.true_positives}, true {self.n_true}, predicted {self.n_pred})")


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..n in order of first value (0 stays background)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label images must be 2-D, got shape {labels.shape}")
    uniq, inverse = np.unique(labels.ravel(), return_inverse=True)
    if uniq[0] != 0:  # no background pixel: keep label 0 reserved anyway
        inverse = inverse + 1
    return inverse.reshape(labels.shape)


def iou_matrix(true_labels: np.ndarray, pred_labels: np.ndarray) -> np.ndarray:
    """IoU (n_true, n_pred) between every ground-truth and predicted ROI (labels need not be contiguous)."""
    true_c, pred_c = _compact(true_labels), _compact(pred_labels)
    if true_c.shape != pred_c.shape:
        raise ValueError(f"label images differ in shape: {true_c.shape} vs {pred_c.shape}")
    n_t, n_p = int(true_c.max()), int(pred_c.max())
    t, p = true_c.ravel(), pred_c.ravel()
    overlap = sparse.coo_matrix((np.ones(t.size, np.int64), (t, p)), shape=(n_t + 1, n_p + 1)).toarray()
    area_t, area_p = overlap.sum(axis=1), overlap.sum(axis=0)
    inter = overlap[1:, 1:]
    union = area_t[1:, None] + area_p[None, 1:] - inter
    return inter / np.maximum(union, 1)


def match_rois(true_labels: np.ndarray, pred_labels: np.ndarray, iou_threshold: float = IOU_THRESHOLD,
               ignore: np.ndarray | None = None) -> DetectionScores:
    """One-to-one matching that maximises the number of pairs with IoU >= `iou_threshold`.

    `ignore` (bool image, optional): where the ground truth is unknown (e.g. ROIs cut by the edge of a validation
    crop, left out of `true_labels`); predicted ROIs with at least half their pixels there are not scored.
    """
    iou = iou_matrix(true_labels, _drop_ignored(pred_labels, ignore))
    n_true, n_pred = iou.shape
    tp = int(_matched(iou, iou_threshold).sum())
    precision = tp / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * tp / (n_true + n_pred) if (n_true + n_pred) else 1.0
    return DetectionScores(n_true, n_pred, tp, float(precision), float(recall), float(f1), iou_threshold)


def _drop_ignored(pred_labels: np.ndarray, ignore: np.ndarray | None) -> np.ndarray:
    """Predicted ROIs with at least half their pixels in `ignore` set to background."""
    pred_labels = np.asarray(pred_labels)
    if ignore is None or not np.any(ignore):
        return pred_labels
    pred = _compact(pred_labels)
    area = np.bincount(pred.ravel())
    inside = np.bincount(pred[ignore], minlength=len(area))
    drop = np.flatnonzero(inside >= 0.5 * np.maximum(area, 1))
    return np.where(np.isin(pred, drop[drop > 0]), 0, pred)


def _matched(iou: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Per ground-truth ROI (rows of `iou`): matched one-to-one to a prediction with IoU >= the threshold, in the
    assignment that maximises the number of such pairs."""
    found = np.zeros(iou.shape[0], bool)
    good = iou >= iou_threshold
    if good.any():
        rows, cols = linear_sum_assignment(-good.astype(float) - 1e-3 * iou)
        found[rows[good[rows, cols]]] = True
    return found


def found_rois(true_labels: np.ndarray, pred_labels: np.ndarray, iou_threshold: float = IOU_THRESHOLD,
               ignore: np.ndarray | None = None) -> np.ndarray:
    """Bool per ground-truth ROI, in increasing label order: is it one of `match_rois`'s true positives?"""
    return _matched(iou_matrix(true_labels, _drop_ignored(pred_labels, ignore)), iou_threshold)


def false_positives_on(true_labels: np.ndarray, pred_labels: np.ndarray, other_labels: np.ndarray,
                       min_overlap: float = 0.3) -> tuple[int, int]:
    """(false positives, how many of them have at least `min_overlap` of their pixels on `other_labels` > 0): what a
    detector's false positives are, e.g. the non-expressing somata of a synthetic plane."""
    pred = _compact(pred_labels)
    false = np.nonzero(~found_rois(pred, true_labels))[0] + 1
    if not len(false):
        return 0, 0
    on_other = np.bincount(pred.ravel(), weights=(np.asarray(other_labels) > 0).ravel(), minlength=pred.max() + 1)
    size = np.bincount(pred.ravel(), minlength=pred.max() + 1)
    return int(len(false)), int(np.sum(on_other[false] >= min_overlap * size[false]))


def inside_and_ring_means(image: np.ndarray, labels: np.ndarray, inner: int = 1,
                          outer: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per ROI (increasing label order): the mean of `image` inside the ROI, and over a ring `inner`..`outer` px
    outside it (pixels of any ROI excluded; NaN when the ring is empty)."""
    from scipy import ndimage
    labels = _compact(labels)
    inside, around = np.full(int(labels.max()), np.nan), np.full(int(labels.max()), np.nan)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        box = tuple(slice(max(s.start - outer, 0), s.stop + outer) for s in box)
        roi = labels[box] == k
        ring = (ndimage.binary_dilation(roi, iterations=outer) & ~ndimage.binary_dilation(roi, iterations=inner)
                & (labels[box] == 0))
        inside[k - 1] = float(image[box][roi].mean())
        if ring.any():
            around[k - 1] = float(image[box][ring].mean())
    return inside, around


def mean_image_contrast(mean_img: np.ndarray, labels: np.ndarray, inner: int = 1, outer: int = 4) -> np.ndarray:
    """Per ROI (increasing label order): mean of the image inside the ROI over the mean of a ring `inner`..`outer`
    px outside it (ROI pixels of any ROI excluded), minus 1. How visible a soma is in a mean image: 0 = as bright as
    its surroundings; NaN when the ring is empty."""
    inside, around = inside_and_ring_means(mean_img, labels, inner, outer)
    return inside / around - 1


def core_ratio(mean_img: np.ndarray, labels: np.ndarray, erode: int = 2, ring: tuple[int, int] = (2, 6)
               ) -> np.ndarray:
    """Per ROI (increasing label order): mean of the ROI's core (the ROI eroded by `erode` px) over the mean of a
    ring `ring` px outside it (other ROIs' pixels excluded). A dark nucleus gives < 1 (how dark real ring-shaped
    somata are, unlike the ROI-wide `mean_image_contrast`); NaN when the core or the ring is (nearly) empty."""
    from scipy import ndimage
    labels = _compact(labels)
    out = np.full(int(labels.max()), np.nan)
    margin = ring[1] + 1
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        box = tuple(slice(max(s.start - margin, 0), s.stop + margin) for s in box)
        roi = labels[box] == k
        core = ndimage.binary_erosion(roi, iterations=erode)
        outside = (ndimage.binary_dilation(roi, iterations=ring[1]) & ~ndimage.binary_dilation(roi, iterations=ring[0])
                   & (labels[box] == 0))
        if core.sum() >= 3 and outside.sum() >= 10:
            out[k - 1] = float(mean_img[box][core].mean() / mean_img[box][outside].mean())
    return out


def dark_spot_density(mean_img: np.ndarray, labels: np.ndarray, below: float, sigma: float = 1.5,
                      surround: float = 10.0, size: int = 9) -> float:
    """Dark spots per 10,000 px away from the ROIs: local minima (in `size` x `size` windows) of the image smoothed
    by `sigma` over its smoothing by `surround`, lower than `below`, more than 3 px from any ROI. How many dark
    non-cell somata and vessel cross-sections a mean image has, which a detector must not take for ring cells."""
    from scipy import ndimage
    img = np.asarray(mean_img, np.float64)
    rel = ndimage.gaussian_filter(img, sigma) / np.maximum(ndimage.gaussian_filter(img, surround), 1e-12)
    away = ~ndimage.binary_dilation(np.asarray(labels) > 0, iterations=3)
    minima = (rel == ndimage.minimum_filter(rel, size)) & away & (rel < below)
    return float(minima.sum() / img.size * 1e4)


def radial_profile(mean_img: np.ndarray, labels: np.ndarray, distances: range = range(-4, 8),
                   reference: tuple[int, int] = (5, 9)) -> np.ndarray:
    """Median over ROIs of the image's mean at each signed distance from the ROI's outline (px; <= 0 inside,
    > 0 outside, other ROIs' pixels excluded), relative to its mean `reference` px outside. How cells look in a
    mean image on average: filled blobs (> 1 inside) or rings (dark centre, bright rim). NaN where no ROI has
    pixels at that distance."""
    from scipy import ndimage
    labels = _compact(labels)
    margin = max(max(distances), reference[1]) + 1
    rows = []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        box = tuple(slice(max(s.start - margin, 0), s.stop + margin) for s in box)
        roi = labels[box] == k
        signed = np.where(roi, 1 - ndimage.distance_transform_edt(roi), ndimage.distance_transform_edt(~roi))
        signed = np.round(signed)
        usable = (labels[box] == 0) | roi
        ref = mean_img[box][(signed >= reference[0]) & (signed <= reference[1]) & usable]
        if ref.size < 10:
            continue
        row = [mean_img[box][(signed == d) & usable].mean() / ref.mean() if ((signed == d) & usable).any()
               else np.nan for d in distances]
        rows.append(row)
    if not rows:
        return np.full(len(distances), np.nan)
    table = np.array(rows)
    return np.array([np.median(col[~np.isnan(col)]) if (~np.isnan(col)).any() else np.nan for col in table.T])


def pooled(scores: list[DetectionScores]) -> DetectionScores:
    """Scores of several images pooled (sums of counts, not a mean of ratios)."""
    n_true = sum(s.n_true for s in scores)
    n_pred = sum(s.n_pred for s in scores)
    tp = sum(s.true_positives for s in scores)
    threshold = scores[0].iou_threshold if scores else IOU_THRESHOLD
    precision = tp / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * tp / (n_true + n_pred) if (n_true + n_pred) else 1.0
    return DetectionScores(n_true, n_pred, tp, float(precision), float(recall), float(f1), threshold)
