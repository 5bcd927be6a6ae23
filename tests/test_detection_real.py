"""The bundled model on real two-photon data: recall on the validation split of the annotated development image.

The image (`neurofinder-00xx-left`, mean image 512 x 256 with 196 annotated ROIs) lives beside the repository in
`../shared/data/` and is not redistributed; without it this test skips. The model was trained on the top part of
the image only (rows [0, 372)); the validation split is rows [396, 512) (41 ROIs wholly inside), so no pixel scored
here was trained on. Many bright cells in it are not annotated, so recall is checked, not precision.
"""

from __future__ import annotations

import json

import pytest

from ophys_extraction import segmentation
from ophys_extraction.metrics import match_rois
from ophys_extraction.training.data import load_real_dir
from ophys_extraction.training.evaluation import load_for_eval, predict

from conftest import REPO

REAL_DIR = REPO.parent / "shared" / "data" / "neurofinder-00xx-left"
MODEL = REPO / "assets" / "models" / segmentation.BUNDLED_MODEL
# Regression pin, a little below the measured state. The bundled model measured 0.561 (23 of 41) at its training size
# (10.19 px, the old default); issue 14's estimate (9.10 px here) 0.512 (21 of 41, 2026-12-02), so the pin went from
# 0.53 to 0.50; issue 24's choice (11.65 px) 0.561 again (23 of 41, 2026-12-03; the best of any fixed diameter from
# 5 to 20 px is 0.561 too), so it is back at 0.53. Issue 7's target 0.6 is not met.
MIN_RECALL = 0.53


@pytest.mark.skipif(not REAL_DIR.is_dir(), reason=f"real annotated data not available at {REAL_DIR}")
def test_bundled_model_recall_on_real_validation_split():
    real = load_real_dir(REAL_DIR, val_fraction=0.25, gap=24)
    image, truth, ignore = real.part("val", 2)
    assert truth.max() >= 30                                  # the split holds a meaningful number of ROIs
    scores = match_rois(truth, predict(load_for_eval(MODEL), image), ignore=ignore)
    assert scores.recall >= MIN_RECALL, scores


def test_training_log_matches_the_split():
    """The log committed beside the model records the same split as this test uses."""
    log = json.loads(MODEL.with_name(MODEL.name + ".training_log.json").read_text())
    annotated = {item["name"]: item for item in log["data"]["annotated"]}
    assert "neurofinder-00xx-left" in annotated, sorted(annotated)   # the bundled model is trained on it
    item = annotated["neurofinder-00xx-left"]
    assert item["train"] == "rows [0, 372)" and item["validation"] == "rows [396, 512)"
