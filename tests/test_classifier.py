"""The cell classifier: the anatomical features (roi_features), the --classifier values, the classfile format
(suite2p's, trained by classifier_training) and the bundled classfile with its record. EXTRACT's use of it is in
tests/test_extraction.py; the measured quality is bench/classifier.py's (README, "Which ROIs are cells")."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import MODEL

from ophys_extraction import classifier_training as ct
from ophys_extraction import classify, roi_features
from ophys_extraction.errors import InputError
from ophys_extraction.options import EXTRACT

H, W = 40, 60
# The held-out plane below (realistic, seed CLASSIFIER_SEED0 + 99): measured recall 0.90 (60 of 67 matched ROIs
# kept) and precision 0.81 (60 of 74 kept) on 2026-12-03; suite2p's builtin classifier kept 12 of 67 (0.18).
RECALL_FLOOR, PRECISION_FLOOR = 0.8, 0.75


def discs(centres, radius=5, shape=(H, W)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    masks = np.zeros(shape, np.int32)
    for k, (y, x) in enumerate(centres, start=1):
        masks[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = k
    return masks


def test_ring_contrast_sign_and_invariance():
    """A bright disc stands out (> 0), a dark one (a non-expressing soma) is below its ring (< 0); the value does not
    depend on the image's scale or offset."""
    masks = discs([(20, 15), (20, 45)])
    rng = np.random.default_rng(0)
    image = 100 + rng.normal(0, 1, (H, W))
    image[masks == 1] += 30
    image[masks == 2] -= 30
    c = roi_features.ring_contrast(image, masks, np.array([1, 2]))
    assert c[0] > 0.3 and c[1] < -0.3
    np.testing.assert_allclose(roi_features.ring_contrast(7 * image - 50, masks, np.array([1, 2])), c, rtol=1e-9)


def test_ring_is_outside_every_mask_and_nearest_to_its_own():
    masks = discs([(20, 15), (20, 28)])
    ring = roi_features.ring_labels(masks)
    assert not np.any((ring > 0) & (masks > 0))
    assert set(np.unique(ring)) == {0, 1, 2}


def test_flow_error_low_for_the_masks_own_flows():
    """Cellpose's flow error: ~0 where the network's flows are those of the mask, larger where they are another
    mask's (here the flows of one big disc over two small ones)."""
    from cellpose.dynamics import masks_to_flows
    import torch
    masks = discs([(20, 15), (20, 45)])
    own = 5 * masks_to_flows(masks, device=torch.device("cpu"))
    other = 5 * masks_to_flows(discs([(20, 30)], radius=16), device=torch.device("cpu"))
    good = roi_features.flow_error(masks, own, np.array([1, 2]))
    bad = roi_features.flow_error(masks, other, np.array([2]))
    assert np.all(good < 1e-6) and bad[0] > 0.1


def test_classifier_option_values():
    assert EXTRACT.problems({"classifier": "suite2p"}) == []
    assert EXTRACT.problems({"classifier": classify.BUNDLED_CLASSIFIER}) == []
    assert EXTRACT.problems({"classifier": "/no/such/file.npy"}) == [
        "--classifier /no/such/file.npy: must be suite2p, anatomical or an existing classfile (suite2p's format, "
        ".npy); /no/such/file.npy is not a file"]
    assert classify.classifier_path("suite2p") == classify.builtin_classifier_path()
    assert classify.classifier_path("anatomical") == classify.BUNDLED_CLASSFILE


def table(n: int = 200, seed: int = 0) -> ct.RoiTable:
    rng = np.random.default_rng(seed)
    matched = rng.random(n) < 0.6
    features = {k: rng.normal(matched * 1.0, 1.0) for k in ct.ALL_KEYS}
    no = np.zeros(n, bool)   # on a non-cell, near miss
    return ct.RoiTable(features, matched, no, no, np.where(np.arange(n) < n // 2, "real", "realistic"),
                       np.full(n, "p"), rng.uniform(0, 512, n), np.full(n, 512), rng.random(n))


def test_training_is_deterministic_and_writes_suite2p_s_format(tmp_path):
    """The same table gives the same classfile, byte for byte; suite2p's Classifier loads it and separates the
    classes it was trained on; the record beside it says what it was trained on."""
    from suite2p.classification import Classifier
    keys = ("cellprob", "contrast", "skew")
    a, b = tmp_path / "a" / "c.npy", tmp_path / "b" / "c.npy"
    ct.train(table(), ct.Candidate(keys, 1.5), a, {"data": "test"})
    ct.train(table(), ct.Candidate(keys, 1.5), b, {"data": "test"})
    assert a.read_bytes() == b.read_bytes()
    model = np.load(a, allow_pickle=True).item()
    n_rows = model["stats"].shape[0]
    assert model["stats"].shape == (n_rows, 3) and model["iscell"].shape == (n_rows,)
    assert list(model["keys"]) == list(keys)
    assert classify.read_keys(a) == keys
    loaded = Classifier(str(a), keys=list(keys))
    assert loaded.loaded
    record = json.loads(a.with_suffix(".json").read_text())
    assert record["keys"] == list(keys) and record["rois"] == 200 and record["rows"] == n_rows
    assert record["data"] == "test" and "date" in record and record["cell_weight"] == 1.5
    cells = int(table().matched.sum())
    assert record["cells"] == cells and record["cell_rows"] == int(model["iscell"].sum()) == int(1.5 * cells + 1e-9)


def test_cross_validation_never_scores_training_rows():
    """Every ROI gets a probability from a classifier that did not see it; a classifier on informative features
    beats chance on them."""
    t = table(400, seed=1)
    prob = ct.cross_validated(t, ct.Candidate(("cellprob", "contrast", "skew")))
    assert np.isfinite(prob).all()
    s = ct.score(prob, t.matched, t.near_miss)
    assert s.recall > 0.7 and s.precision > 0.7


def test_bad_classfiles_are_named(tmp_path):
    cases = {"not_a_dict.npy": np.zeros(3),
             "no_keys.npy": {"stats": np.zeros((2, 1)), "iscell": np.array([0, 1])},
             "one_class.npy": {"stats": np.zeros((2, 1)), "iscell": np.array([1, 1]), "keys": ["skew"]},
             "shape.npy": {"stats": np.zeros((2, 2)), "iscell": np.array([0, 1]), "keys": ["skew"]}}
    for name, content in cases.items():
        np.save(tmp_path / name, content, allow_pickle=True)
        with pytest.raises(InputError) as error:
            classify.read_keys(tmp_path / name)
        assert str(tmp_path / name) in str(error.value)
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(InputError):
        classify.read_keys(tmp_path / "text.npy")


def test_bundled_classfile_and_its_record():
    """The bundled classfile is small, in suite2p's format, on keys EXTRACT provides, with the record of how
    tools/train_classifier.py trained it beside it."""
    path = classify.BUNDLED_CLASSFILE
    assert path.is_file() and path.stat().st_size < 1_000_000
    keys = classify.read_keys(path)
    assert set(keys) <= set(ct.ALL_KEYS)
    record = json.loads(path.with_suffix(".json").read_text())
    model = np.load(path, allow_pickle=True).item()
    assert record["keys"] == list(keys) and record["rows"] == model["stats"].shape[0]
    assert record["cell_rows"] == int(model["iscell"].sum())
    assert {"data", "date", "command", "candidate", "cells", "rois", "cell_weight"} <= set(record)


@pytest.mark.slow
def test_default_classifier_keeps_cells_of_a_plane_it_never_saw(tmp_path):
    """A synthetic plane of a seed no training used (realistic family, with its silent cells and non-expressing
    somata), run through SUMMARY_IMAGES, SEGMENT and EXTRACT: the default iscell keeps most ROIs that match a cell
    and few that do not, far more than suite2p's builtin classifier keeps."""
    from ophys_extraction import classifier_planes as planes
    source = planes.PlaneSource("heldout", "realistic", planes.CLASSIFIER_SEED0 + 99)
    folder = planes.run_plane(source, tmp_path, MODEL, tmp_path)
    t = ct.plane_table(folder, source.family)
    import h5py
    with h5py.File(folder / "traces.h5", "r") as f:
        ours = ct.score(f["iscell"][()][:, 1], t.matched, t.near_miss)
        builtin = ct.score(f["iscell_suite2p"][()][:, 1], t.matched, t.near_miss)
    assert t.matched.sum() >= 40 and not (t.near_miss & t.matched).any()
    assert ours.recall >= RECALL_FLOOR and ours.precision >= PRECISION_FLOOR, (ours, builtin)
    assert builtin.recall < ours.recall


def test_near_misses_count_as_cells_only_in_the_second_precision():
    """A kept ROI that lies on a labelled cell without matching it (IoU 0.3-0.5) lowers the precision but not the
    precision on cells; one on no labelled cell lowers both."""
    prob = np.array([0.9, 0.9, 0.9, 0.9, 0.1])
    matched = np.array([True, True, False, False, True])
    near_miss = np.array([False, False, True, False, False])
    s = ct.score(prob, matched, near_miss)
    assert (s.kept, s.kept_matched, s.kept_near_miss) == (4, 2, 1)
    assert s.precision == 0.5 and s.precision_on_cells == 0.75 and s.recall == pytest.approx(2 / 3)
