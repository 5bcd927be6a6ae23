"""Trace statistics and suite2p's default (builtin) cell classifier (docs/output.md, `traces/` and `iscell`).

suite2p's pipeline (pipeline_s2p.py) computes `skew(dF, axis=1)` and `np.std(dF, axis=1)` of the neuropil-subtracted
traces, stores them in the stat dicts, and `classification.classify` then uses the keys the classifier file and the
stats share: ("skew", "npix_norm", "compact"). Here dF is our corrected trace, so the classifier sees that skew.
"""

from __future__ import annotations

import numpy as np

CLASSIFIER_KEYS = ("skew", "npix_norm", "compact")


def trace_stats(corrected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(skew, std), float32 (n_rois,), of the corrected traces, as suite2p computes them (scipy.stats.skew, np.std).
    Each row's figures depend on that row only, so EXTRACT calls this on blocks of rows.

    A constant trace has std 0 and skew NaN (scipy's answer); the classifier treats NaN as the lowest value.
    """
    from scipy.stats import skew
    corrected = np.asarray(corrected)
    if corrected.shape[0] == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        sk = np.asarray(skew(corrected, axis=1), np.float32)
    return sk, np.std(corrected, axis=1).astype(np.float32)


def baseline_at_or_below_zero(corrected: np.ndarray) -> np.ndarray:
    """bool (n_rois,): True where the corrected trace's baseline, its median over the whole recording, is <= 0.

    dF/F divides by the baseline F0, so such a trace has no usable dF/F (division by about zero, or a sign flip).
    The median, because a cell is at rest in most frames: the common F0 estimators (a running median, a low
    percentile, suite2p's maximin) lie at or below it over most of the recording, so a median <= 0 breaks all of
    them. Row by row, like `trace_stats`.
    """
    corrected = np.asarray(corrected)
    if corrected.shape[0] == 0 or corrected.shape[1] == 0:
        return np.zeros(corrected.shape[0], bool)
    return np.median(corrected, axis=1) <= 0


def builtin_classifier_path():
    from suite2p.classification import builtin_classfile
    return builtin_classfile


def classify(stats: np.ndarray, skew: np.ndarray, classfile=None, seed: int = 0) -> np.ndarray:
    """iscell, float32 (n_rois, 2): column 0 is 0/1 (probability > 0.5), column 1 the probability.

    `stats` are the ROI stat dicts (npix_norm, compact); `skew` is set into them as suite2p's pipeline does.
    `classfile` defaults to suite2p's builtin classifier. The classifier refits a logistic regression with
    liblinear, which draws its seed from numpy's global RNG: it is seeded here (and restored) so runs are
    deterministic.
    """
    n = len(stats)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    from suite2p.classification import classify as s2p_classify
    for stat, value in zip(stats, skew):
        stat["skew"] = float(value)
    classfile = builtin_classifier_path() if classfile is None else classfile
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        iscell = s2p_classify(stat=stats, classfile=classfile, keys=CLASSIFIER_KEYS)
    finally:
        np.random.set_state(state)
    return np.asarray(iscell, np.float32).reshape(n, 2)
