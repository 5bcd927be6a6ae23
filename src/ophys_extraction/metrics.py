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
    pred_labels = np.asarray(pred_labels)
    if ignore is not None and np.any(ignore):
        pred = _compact(pred_labels)
        area = np.bincount(pred.ravel())
        inside = np.bincount(pred[ignore], minlength=len(area))
        drop = np.flatnonzero(inside >= 0.5 * np.maximum(area, 1))
        pred_labels = np.where(np.isin(pred, drop[drop > 0]), 0, pred)
    iou = iou_matrix(true_labels, pred_labels)
    n_true, n_pred = iou.shape
    tp = 0
    if n_true and n_pred:
        good = iou >= iou_threshold
        if good.any():
            rows, cols = linear_sum_assignment(-good.astype(float) - 1e-3 * iou)
            tp = int(good[rows, cols].sum())
    precision = tp / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * tp / (n_true + n_pred) if (n_true + n_pred) else 1.0
    return DetectionScores(n_true, n_pred, tp, float(precision), float(recall), float(f1), iou_threshold)


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
