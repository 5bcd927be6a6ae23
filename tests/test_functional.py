"""suite2p's functional detection as a choice of --detection (ophys_extraction.functional, FUNCTIONAL_DETECTION):
the binning suite2p chooses, the union rule, and the step on a synthetic movie with the real suite2p."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from ophys_extraction import schema
from ophys_extraction.cli.functional_detection import main as functional_main
from ophys_extraction.errors import run_cli
from ophys_extraction.functional import UNION_MAX_SHARED, FunctionalOptions, add_rois, binned_movie, binning
from ophys_extraction.metrics import found_rois
from ophys_extraction.schema import ORIGIN_CELLPOSE, ORIGIN_FUNCTIONAL
from ophys_extraction.movie import open_movie

from conftest import write_h5


@pytest.mark.parametrize("n_frames, rate, tau, nbins, expected", [
    (1200, 10.0, 1.0, 5000, (10, 120)),    # tau x frame rate
    (600, 7.0, 1.0, 5000, (7, 85)),
    (50_000, 30.0, 1.0, 1000, (50, 1000)),  # capped: n_frames // nbins frames per bin
    (5, 30.0, 0.01, 5000, (1, 5)),          # at least one frame per bin
])
def test_binning_is_suite2ps(n_frames: int, rate: float, tau: float, nbins: int, expected: tuple[int, int]) -> None:
    assert binning(n_frames, rate, tau, nbins) == expected


def test_binned_movie_is_the_mean_of_consecutive_frames(tmp_path: Path) -> None:
    movie = np.random.default_rng(1).integers(0, 4000, (103, 9, 11)).astype(np.uint16)
    with open_movie(write_h5(tmp_path / "m.h5", movie)) as (dset, info):
        binned = binned_movie(dset, info, bin_size=10, n_bins=10, chunk=7)   # chunks that do not line up with bins
    expected = movie[:100].astype(np.float64).reshape(10, 10, 9, 11).mean(axis=1)
    np.testing.assert_allclose(binned, expected, rtol=1e-6)


def _roi(ypix: list[int], xpix: list[int]) -> dict:
    return {"ypix": np.array(ypix), "xpix": np.array(xpix), "lam": np.linspace(1, 2, len(ypix))}


def test_union_adds_functional_rois_that_share_little_with_cellposes() -> None:
    labels = np.zeros((10, 10), np.int32)
    labels[0:2, 0:2] = 1                                                   # one Cellpose ROI of 4 pixels
    weights = np.where(labels > 0, 0.5, 0).astype(np.float32)
    apart = _roi([5, 5, 6, 6], [5, 6, 5, 6])                               # shares nothing: added
    a_quarter = _roi([1, 2, 2, 2], [1, 1, 2, 3])                           # shares 1 of 4 pixels: added, 3 pixels
    half = _roi([0, 1, 3, 3], [0, 0, 0, 1])                                # shares 2 of 4: left out
    assert 0.25 == UNION_MAX_SHARED
    out, out_weights, origin = add_rois(labels, weights, np.array([ORIGIN_CELLPOSE]), [apart, a_quarter, half],
                                        UNION_MAX_SHARED)
    assert origin.tolist() == [ORIGIN_CELLPOSE, ORIGIN_FUNCTIONAL, ORIGIN_FUNCTIONAL]
    assert np.count_nonzero(out == 1) == 4 and np.count_nonzero(out == 2) == 4 and np.count_nonzero(out == 3) == 3
    assert out[1, 1] == 1 and out_weights[1, 1] == 0.5                    # Cellpose keeps its pixels
    np.testing.assert_array_equal(out_weights[out == 2], apart["lam"].astype(np.float32))
    assert out.max() == 3


def test_alone_every_roi_with_a_free_pixel_is_kept() -> None:
    empty = np.zeros((6, 6), np.int32)
    first, overlapping = _roi([1, 1, 2], [1, 2, 1]), _roi([1, 2, 3], [1, 1, 1])
    out, _, origin = add_rois(empty, np.zeros((6, 6), np.float32), np.zeros(0, np.int8), [first, overlapping], None)
    assert origin.tolist() == [ORIGIN_FUNCTIONAL, ORIGIN_FUNCTIONAL]
    assert out[1, 1] == 1 and out[3, 1] == 2 and np.count_nonzero(out == 2) == 1


@pytest.fixture(scope="module")
def active_movie(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """128 x 128 x 1200 frames at 10 Hz: disks that fire often on a noisy background, and the disks' labels."""
    rng = np.random.default_rng(3)
    frames, size = 1200, 128
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    movie = rng.normal(1000, 20, (frames, size, size)).astype(np.float32)
    for k, (cy, cx) in enumerate([(30, 30), (30, 90), (90, 30), (90, 90), (60, 60)], start=1):
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= 25
        labels[disk] = k
        events = np.convolve(rng.random(frames) < 0.03, np.exp(-np.arange(30) / 8))[:frames]
        movie[:, disk] += 300 * events[:, None]
    path = write_h5(tmp_path_factory.mktemp("functional") / "movie.h5", movie.astype(np.uint16))
    return path, labels


def test_sparsery_alone_finds_the_firing_cells(active_movie, tmp_path: Path) -> None:
    movie, truth = active_movie
    out = tmp_path / "segmentation.h5"
    assert functional_main(["--movie", str(movie), "--frame_rate", "10", "--output", str(out),
                            "--detection", "sparsery"]) == 0
    with h5py.File(out, "r") as f:
        masks = f["cellpose/masks"][()]
        assert f[schema.LABEL_ORIGIN][()].tolist() == [ORIGIN_FUNCTIONAL] * int(masks.max())
        assert not f["cellpose/flows"][()].any() and f["cellpose/styles"].shape == (256,)   # no Cellpose run
        assert f["image"].shape == masks.shape and f["weights"][()][masks > 0].min() > 0
        assert f.attrs["detection"] == "sparsery" and f.attrs["functional_bin_size"] == 10
        assert f.attrs["diameter_used"] == FunctionalOptions().diameter
    # 5 of 5 found at IoU >= 0.5 (measured on 2026-12-03, with 0 other ROIs)
    assert found_rois(truth, masks).all()
    again = tmp_path / "again.h5"
    functional_main(["--movie", str(movie), "--frame_rate", "10", "--output", str(again), "--detection", "sparsery"])
    with h5py.File(out, "r") as a, h5py.File(again, "r") as b:
        np.testing.assert_array_equal(a["cellpose/masks"][()], b["cellpose/masks"][()])   # deterministic


def test_sourcery_alone_finds_the_firing_cells(active_movie, tmp_path: Path) -> None:
    movie, truth = active_movie
    out = tmp_path / "segmentation.h5"
    assert functional_main(["--movie", str(movie), "--frame_rate", "10", "--output", str(out),
                            "--detection", "sourcery", "--diameter", "10"]) == 0
    with h5py.File(out, "r") as f:
        masks = f["cellpose/masks"][()]
        assert f.attrs["detection"] == "sourcery" and f.attrs["diameter_used"] == 10.0
    # measured on 2026-12-03: every firing disk found at IoU >= 0.5
    assert found_rois(truth, masks).all()


def test_added_to_cellpose_keeps_cellposes_rois(active_movie, tmp_path: Path) -> None:
    movie, truth = active_movie
    cellpose = tmp_path / "cellpose.h5"
    with h5py.File(cellpose, "w") as f:       # SEGMENT's output with one ROI: the first disk
        first = (truth == 1).astype(np.int32)
        f["cellpose/masks"], f["weights"] = first, first.astype(np.float32)
        f["image"] = np.zeros(truth.shape, np.float32)
        f.attrs.update({"anatomical_only": 2, "diameter_used": 10.0})
    out = tmp_path / "union.h5"
    assert functional_main(["--movie", str(movie), "--frame_rate", "10", "--output", str(out), "--detection",
                            "cellpose+sparsery", "--segmentation", str(cellpose)]) == 0
    with h5py.File(out, "r") as f:
        masks, origin = f["cellpose/masks"][()], f[schema.LABEL_ORIGIN][()]
        assert origin[0] == ORIGIN_CELLPOSE and (origin[1:] == ORIGIN_FUNCTIONAL).all()
        np.testing.assert_array_equal(masks == 1, truth == 1)
        assert f.attrs["anatomical_only"] == 2 and f.attrs["diameter_used"] == 10.0   # SEGMENT's attributes kept
        assert f.attrs["functional_added"] == len(origin) - 1
    assert found_rois(truth, masks).all()


@pytest.mark.parametrize("args, message", [
    (["--detection", "cellpose"], "--detection cellpose: Cellpose alone is SEGMENT's"),
    (["--detection", "cellpose+sourcery"], "--detection cellpose+sourcery: needs --segmentation"),
    (["--detection", "sparsery", "--segmentation", "x.h5"], "--detection sparsery: takes no --segmentation"),
    (["--detection", "suite2p"], "--detection suite2p: must be one of cellpose, sparsery, sourcery"),
    (["--detection", "sparsery", "--spatial_scale", "5"], "--spatial_scale 5: must be in [0, 4]"),
])
def test_bad_options_are_one_line(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    movie = write_h5(tmp_path / "m.h5", np.zeros((20, 8, 8), np.uint16))
    with pytest.raises(SystemExit) as exit_info:
        run_cli(functional_main, ["--movie", str(movie), "--frame_rate", "10", "--output", str(tmp_path / "out.h5"),
                                  *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out.h5").exists()
