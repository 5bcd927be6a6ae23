"""Trace statistics and the cell classifier (docs/output.md, `traces/` and `iscell`).

suite2p's pipeline (pipeline_s2p.py) computes `skew(dF, axis=1)` and `np.std(dF, axis=1)` of the neuropil-subtracted
traces, stores them in the stat dicts, and `classification.classify` then uses the keys the classifier file and the
stats share (its builtin classfile: "skew", "npix_norm", "compact"). Here dF is our corrected trace, so the
classifier sees that skew. EXTRACT also puts the anatomical features (roi_features.FEATURE_KEYS) into the stat dicts,
and classifies with the --classifier's classfile: the bundled one (`anatomical`, trained by
tools/train_classifier.py for this pipeline's ROIs), suite2p's builtin one, or a lab's own.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ophys_extraction.errors import InputError

SUITE2P_KEYS = ("skew", "npix_norm", "compact")   # suite2p's builtin classfile's keys
SUITE2P = "suite2p"                                # --classifier value: suite2p's builtin classifier
BUNDLED_CLASSIFIER = "anatomical"                  # --classifier value: the bundled classfile (the default)
BUNDLED_CLASSFILE = Path(__file__).parent / "classifiers" / f"{BUNDLED_CLASSIFIER}.npy"


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


def builtin_classifier_path() -> Path:
    from suite2p.classification import builtin_classfile
    return Path(builtin_classfile)


def classifier_path(value: str) -> Path:
    """The classfile of a --classifier value: "suite2p" (suite2p's builtin classifier), the bundled classifier's
    name, or the path of a classfile (suite2p's format)."""
    if value == SUITE2P:
        return builtin_classifier_path()
    if value == BUNDLED_CLASSIFIER:
        return BUNDLED_CLASSFILE
    return Path(value)


def classifier_problem(value: str) -> str | None:
    """Why a --classifier value cannot be used (the option's one-line check), or None. A path's content is checked
    when the step reads it (`read_keys`)."""
    if value in (SUITE2P, BUNDLED_CLASSIFIER):
        return None
    path = Path(value)
    if not path.is_file():
        return (f"must be {SUITE2P}, {BUNDLED_CLASSIFIER} or an existing classfile (suite2p's format, .npy); "
                f"{path} is not a file")
    return None


def read_keys(classfile: Path) -> tuple[str, ...]:
    """The keys of a classfile, after checking it is one suite2p's Classifier can load (which prints and goes on
    with a classifier that cannot run on a bad file): a np.save'd dict with 'stats' (n, n_keys), 'iscell' (n,) of
    0/1 with both classes, 'keys' (n_keys names)."""
    try:
        model = np.load(classfile, allow_pickle=True).item()
    except (OSError, ValueError, AttributeError, EOFError, pickle.UnpicklingError) as error:
        raise InputError(classfile, f"not a suite2p classfile (np.save'd dict): {error}") from None
    if not isinstance(model, dict) or not {"stats", "iscell", "keys"} <= set(model):
        raise InputError(classfile, "not a suite2p classfile: expected a dict with 'stats', 'iscell' and 'keys'")
    stats, iscell, keys = np.asarray(model["stats"]), np.asarray(model["iscell"]), [str(k) for k in model["keys"]]
    if stats.ndim != 2 or stats.shape[1] != len(keys) or len(keys) == 0:
        raise InputError(classfile, f"'stats' has shape {stats.shape} for {len(keys)} keys; expected (n, n_keys)")
    if iscell.shape != (stats.shape[0],) or not np.isin(iscell, (0, 1)).all() or np.unique(iscell).size < 2:
        raise InputError(classfile, "'iscell' must be 0/1 for each row of 'stats', with both classes")
    return tuple(keys)


def set_stats(stats: np.ndarray, values: dict[str, np.ndarray]) -> None:
    """Put per-ROI values into the stat dicts under their key names (as suite2p's pipeline does with skew), so
    suite2p's classifier reads them like its own statistics."""
    for key, column in values.items():
        for stat, value in zip(stats, column):
            stat[key] = float(value)


def classify(stats: np.ndarray, classfile: Path | str, seed: int = 0) -> np.ndarray:
    """iscell, float32 (n_rois, 2): column 0 is 0/1 (probability > 0.5), column 1 the probability, from the
    classfile (suite2p's `classify`, on the classfile's keys; every one must be in the stat dicts).

    The classifier refits a logistic regression with liblinear, which draws its seed from numpy's global RNG: it is
    seeded here (and restored) so runs are deterministic.
    """
    classfile = Path(classfile)
    keys = read_keys(classfile)
    n = len(stats)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    missing = [k for k in keys if k not in stats[0]]
    if missing:
        raise InputError(classfile, f"uses {', '.join(missing)}, which the ROIs do not have (they have "
                                    f"{', '.join(sorted(k for k, v in stats[0].items() if np.isscalar(v)))})")
    from suite2p.classification import classify as s2p_classify
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        iscell = s2p_classify(stat=stats, classfile=str(classfile), keys=keys)
    finally:
        np.random.set_state(state)
    return np.asarray(iscell, np.float32).reshape(n, 2)
