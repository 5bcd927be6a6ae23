"""Per-ROI features that anatomical (Cellpose) ROIs carry, for the cell classifier (classify.py).

suite2p's builtin classifier sees activity (`skew`) and shape (`npix_norm`, `compact`), which fits functional ROIs:
those are found because they are active. Cellpose's ROIs are found from their look in a summary image, so what tells
a soma from a distractor there is the look: how sure the network was (its cell probability inside the mask), how
well the mask agrees with the network's flows (Cellpose's flow error, the quantity its flow threshold cuts at), and
how the mask stands out from its surroundings (its contrast against a ring around it). EXTRACT puts these into the
suite2p stat dicts under FEATURE_KEYS, so suite2p's classifier machinery reads them like its own keys, and a lab's
own classfile can use them too.

Every function takes whole label images and returns one value per requested label: no per-ROI Python loop over the
image, so the cost stays a small part of EXTRACT's (bench/classifier.py --timing).
"""

from __future__ import annotations

import numpy as np

# Ring around a mask for its contrast: background pixels (in no mask) 1 < d <= RING_OUTER px from their nearest mask.
RING_INNER, RING_OUTER = 1.0, 4.0

FEATURE_KEYS = ("cellprob", "flow_error", "contrast", "neuropil_ratio")
# The segmentation.h5 dataset each feature comes from (EXTRACT checks the file has it when the classifier uses it).
FEATURE_SOURCES = {"cellprob": "cellpose/cellprob", "flow_error": "cellpose/flows", "contrast": "image"}
DESCRIPTIONS = {
    "cellprob": "mean of Cellpose's cell probability (logit, cellpose/cellprob) over the ROI's mask",
    "flow_error": "Cellpose's flow error of the mask: mean squared difference between the network's flows and the "
                  "flows of the mask (cellpose.metrics.flow_error; the quantity --flow_threshold cuts at)",
    "contrast": "the mask's mean minus the mean of a ring 1-4 px around it (pixels of no ROI), in the image Cellpose "
                "segmented, in units of that image's 1st-99th percentile range",
    "neuropil_ratio": "mean of the raw ROI trace over the mean of its neuropil trace (the mask against suite2p's "
                      "neuropil ring, in the mean image)",
}


def label_means(values: np.ndarray, labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Mean of `values` over each label of `index` in `labels` (NaN where a label has no pixel)."""
    flat, vals = labels.ravel(), values.ravel().astype(np.float64)
    n = int(max(labels.max(), index.max() if index.size else 0)) + 1
    sums = np.bincount(flat, vals, minlength=n)
    counts = np.bincount(flat, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts)[index]


def ring_labels(masks: np.ndarray, inner: float = RING_INNER, outer: float = RING_OUTER) -> np.ndarray:
    """int32 label image of each mask's ring: pixels in no mask whose nearest mask pixel is more than `inner` and
    at most `outer` px away, labelled with that mask's label."""
    from scipy import ndimage
    masks = np.asarray(masks)
    if not masks.any():
        return np.zeros(masks.shape, np.int32)
    distance, (iy, ix) = ndimage.distance_transform_edt(masks == 0, return_indices=True)
    nearest = masks[iy, ix]
    return np.where((distance > inner) & (distance <= outer), nearest, 0).astype(np.int32)


def ring_contrast(image: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per label of `labels`: mean of `image` in the mask minus the mean in its ring, over the image's 1st-99th
    percentile range (so scale and offset of the image do not matter); NaN where the ring is empty."""
    image = np.asarray(image, np.float64)
    low, high = np.percentile(image, [1, 99])
    scale = high - low if high > low else 1.0
    inside = label_means(image, masks, labels)
    ring = label_means(image, ring_labels(masks), labels)
    return ((inside - ring) / scale).astype(np.float64)


def flow_error(masks: np.ndarray, flows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per label of `labels`: Cellpose's flow error (cellpose.metrics.flow_error on the CPU) of its mask against the
    network's flows `flows` (2, H, W), as Cellpose's flow threshold computes it."""
    from cellpose import metrics

    from ophys_extraction.rois import compact_labels
    masks = np.asarray(masks)
    if not masks.any() or labels.size == 0:
        return np.zeros(labels.size)
    compact, present = compact_labels(masks)
    errors, _ = metrics.flow_error(compact, np.asarray(flows, np.float32), device=_cpu())
    return np.asarray(errors, np.float64)[np.searchsorted(present, labels)]


def _cpu():
    import torch
    return torch.device("cpu")


def neuropil_ratio(f_mean: np.ndarray, fneu_mean: np.ndarray) -> np.ndarray:
    """Mean of each raw ROI trace over the mean of its neuropil trace (NaN where that is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(f_mean, np.float64) / np.asarray(fneu_mean, np.float64)


def roi_features(masks: np.ndarray, labels: np.ndarray, cellprob: np.ndarray, flows: np.ndarray,
                 image: np.ndarray, f_mean: np.ndarray, fneu_mean: np.ndarray) -> dict[str, np.ndarray]:
    """{key of FEATURE_KEYS: float64 (n_rois,)} for the ROIs whose Cellpose labels are `labels` (in ROI order),
    from SEGMENT's outputs (`masks`, `cellprob`, `flows`, `image`) and the time means of the ROI and neuropil
    traces. NaN where a value is undefined (suite2p's classifier reads NaN as the lowest value)."""
    labels = np.asarray(labels, np.int64)
    ratio = neuropil_ratio(f_mean, fneu_mean)
    return {
        "cellprob": label_means(np.asarray(cellprob), np.asarray(masks), labels) if labels.size else np.zeros(0),
        "flow_error": flow_error(masks, flows, labels),
        "contrast": ring_contrast(image, masks, labels) if labels.size else np.zeros(0),
        "neuropil_ratio": ratio,
    }
