"""Cell diameter estimation for `--diameter 0` (sizing.py): the size-model regression, its file, and the scan's
choice rule. The real Cellpose estimates on synthetic planes of several sizes are in test_segmentation.py."""

from __future__ import annotations

import numpy as np
import pytest

from ophys_extraction import sizing
from ophys_extraction.errors import InputError
from ophys_extraction.rois import median_mask_diameter


def disks(diameter: float, n: int = 9, size: int = 160) -> np.ndarray:
    """A label image of n disks of this diameter on a grid."""
    labels = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[0:size, 0:size]
    step = size // 3
    for i in range(n):
        cy, cx = step // 2 + step * (i // 3), step // 2 + step * (i % 3)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2] = i + 1
    return labels


def test_size_model_predicts_cellposes_regression_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    model = sizing.SizeModel(A=rng.normal(0, 0.1, 256), smean=rng.normal(0, 1, 256), diam_mean=12.0, ymean=0.3)
    style = rng.normal(0, 1, 256)
    expected = np.exp(model.A @ (style - model.smean) + np.log(12.0) + 0.3)
    assert model.predict(style) == pytest.approx(max(5.0, expected))
    # Never below Cellpose's floor of 5 px.
    assert sizing.SizeModel(A=np.zeros(256), smean=np.zeros(256), diam_mean=12.0, ymean=-5.0).predict(style) == 5.0
    path = tmp_path / "model_size.npy"
    model.save(path)
    loaded = sizing.SizeModel.load(path)
    assert loaded.predict(style) == pytest.approx(model.predict(style))


def test_size_model_file_is_cellposes_name(tmp_path):
    assert sizing.size_model_file(tmp_path / "ophys_cp3") == tmp_path / "ophys_cp3_size.npy"


@pytest.mark.parametrize("content", [b"not numpy", None])
def test_a_bad_size_model_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "m_size.npy"
    if content is None:
        np.save(path, {"A": np.zeros(256), "smean": np.zeros(3), "diam_mean": 12.0, "ymean": 0.0})
    else:
        path.write_bytes(content)
    with pytest.raises(InputError) as err:
        sizing.SizeModel.load(path)
    assert str(path) in str(err.value) and "size model" in str(err.value)


def test_refine_takes_the_median_mask_diameter_or_keeps_the_guess_when_nothing_is_found():
    assert sizing.refine(lambda d: disks(15.0), 10.0) == pytest.approx(median_mask_diameter(disks(15.0)))
    assert abs(sizing.refine(lambda d: disks(15.0), 10.0) - 15.0) < 1.0
    assert sizing.refine(lambda d: np.zeros((50, 50), np.int32), 10.0) == 10.0


def test_scan_keeps_the_candidate_with_the_most_cells_and_refines_it():
    # A segmenter that finds 9 cells of 14 px near 12-17 px and fewer elsewhere.
    found = {6.0: 2, 8.5: 5, 12.0: 9, 17.0: 9, 24.0: 4, 34.0: 0}
    calls = []

    def segment(d):
        calls.append(d)
        return disks(14.0, found[d])

    diameter, counts = sizing.scan(segment)
    assert calls == list(sizing.SCAN_DIAMETERS)
    assert counts == found
    assert abs(diameter - 14.0) < 1.0          # ties (12 and 17: 9 cells each) go to the smaller; refined to 14


def test_scan_without_any_cell_returns_the_candidate_it_settled_on():
    diameter, counts = sizing.scan(lambda d: np.zeros((40, 40), np.int32))
    assert set(counts.values()) == {0}
    assert diameter == sizing.SCAN_DIAMETERS[0]
