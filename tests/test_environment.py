"""The pinned environment: Cellpose 3 and suite2p 1.x side by side, and the suite2p functions we rely on run."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import torch


def test_versions_are_the_pinned_families() -> None:
    assert md.version("cellpose").startswith("3.1.")
    assert md.version("suite2p").startswith("1.")
    import cellpose.models  # noqa: F401
    import suite2p  # noqa: F401  (imports with Cellpose 3 although suite2p declares cellpose>=4)


def test_suite2p_roi_pipeline_runs_with_cellpose3() -> None:
    from suite2p.detection.anatomical import masks_to_stats
    from suite2p.detection.stats import roi_stats
    from suite2p.extraction.extract import extract_traces
    from suite2p.extraction.masks import create_masks
    from suite2p.classification import builtin_classfile, classify

    masks = np.zeros((40, 40), np.int32)
    yy, xx = np.mgrid[:40, :40]
    for label, (cy, cx) in enumerate([(10, 10), (25, 28), (30, 8)], start=1):
        masks[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = label
    weights = np.ones(masks.shape, np.float32)
    stat = masks_to_stats(masks, weights)
    stat = roi_stats(np.array(stat), 40, 40, diameter=[8, 8], do_soma_crop=True)  # default max_overlap sets "overlap"
    assert len(stat) == 3 and all("npix_norm" in s and "compact" in s for s in stat)
    cell_masks, neuropil_masks = create_masks(stat, 40, 40)
    movie = np.random.default_rng(0).normal(100, 5, size=(50, 40, 40)).astype(np.float32)
    F, Fneu = extract_traces(movie, cell_masks, neuropil_masks, batch_size=16, device=torch.device("cpu"))[:2]
    assert F.shape == Fneu.shape == (3, 50)
    for s, f in zip(stat, F):
        s["skew"] = float(((f - f.mean()) ** 3).mean() / f.std() ** 3)
    iscell = classify(stat, builtin_classfile)
    assert iscell.shape == (3, 2) and np.all((iscell[:, 1] >= 0) & (iscell[:, 1] <= 1))
