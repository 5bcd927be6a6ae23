"""EXTRACT: suite2p ROI stats and masks, streaming F/Fneu (checked against suite2p's own extract_traces), the
mutual-information neuropil coefficient (checked against the per-ROI skimage loop), classification and the CLI.

Inputs are written directly (a movie and a segmentation.h5 with `cellpose/masks` and `weights`, and the Cellpose
outputs and image the bundled classifier's features come from).
suite2p is imported once per session (about 10 s) by the `s2p` fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ophys_extraction import classify, rois, traces
from ophys_extraction import neuropil as npl
from ophys_extraction.cli.extract import main as extract_main
from ophys_extraction.errors import run_cli

HEIGHT, WIDTH = 48, 64                       # not square: catches transposed axes
CENTRES = [(8, 10), (10, 30), (9, 52), (24, 14), (26, 36), (22, 54), (39, 8), (40, 28), (38, 48)]
LABELS = [3, 5, 6, 9, 10, 12, 20, 21, 30]    # with gaps: extract keeps Cellpose's own labels
RADIUS = 4


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def s2p():
    import suite2p
    return suite2p


def disc_masks(height=HEIGHT, width=WIDTH, centres=CENTRES, labels=LABELS, radius=RADIUS) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    masks = np.zeros((height, width), np.int32)
    for label, (cy, cx) in zip(labels, centres):
        masks[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = label
    return masks


def make_movie(masks: np.ndarray, frames: int, seed: int = 0, dtype=np.int16) -> tuple[np.ndarray, np.ndarray]:
    """(movie, true cell traces): smooth neuropil fluctuations everywhere (70% of it seen through cells), sparse
    calcium transients in each cell, Gaussian noise."""
    rng = np.random.default_rng(seed)
    height, width = masks.shape
    labels = np.unique(masks[masks > 0])
    t = np.arange(frames)
    neuropil = 200 + 30 * np.sin(t / 17.0) + np.cumsum(rng.normal(0, 2, frames))
    spatial = 1 + 0.2 * rng.random((height, width))
    kernel = np.exp(-np.arange(40) / 8.0)
    cells = np.array([np.convolve(rng.random(frames) < 0.03, kernel)[:frames] * rng.uniform(80, 200) + 50
                      for _ in labels]).reshape(len(labels), frames)
    movie = neuropil[:, None, None] * spatial[None]
    for k, label in enumerate(labels):
        inside = masks == label
        movie[:, inside] = 0.7 * movie[:, inside] + cells[k][:, None]
    movie += rng.normal(0, 5, movie.shape)
    return movie.astype(dtype), cells


def mask_flows(masks: np.ndarray) -> np.ndarray:
    from cellpose.dynamics import masks_to_flows
    if not masks.any():
        return np.zeros((2, *masks.shape), np.float32)
    return (5 * masks_to_flows(masks.astype(np.int32), device=torch_cpu())).astype(np.float32)


def torch_cpu():
    import torch
    return torch.device("cpu")


def write_inputs(folder: Path, masks: np.ndarray, frames: int = 150, seed: int = 0, dtype=np.int16,
                 movie: np.ndarray | None = None, seg_attrs: dict | None = None) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if movie is None:
        movie, _ = make_movie(masks, frames, seed, dtype)
    movie_path = folder / "movie.h5"
    with h5py.File(movie_path, "w") as handle:
        handle.create_dataset("data", data=movie)
    mean = movie.mean(axis=0)
    p1, p99 = np.percentile(mean, [1, 99])
    weights = (0.1 + np.clip((mean - p1) / (p99 - p1), 0, 1)).astype(np.float32)
    seg_path = folder / "segmentation.h5"
    with h5py.File(seg_path, "w") as handle:
        handle.create_dataset("cellpose/masks", data=masks.astype(np.int32))
        handle.create_dataset("weights", data=weights)
        # What the bundled classifier's features come from, as SEGMENT writes them: a cell probability high inside
        # the masks, the flows of the masks (Cellpose's network output is 5x masks_to_flows), the segmented image.
        handle.create_dataset("cellpose/cellprob", data=np.where(masks > 0, 3.0, -3.0).astype(np.float32))
        handle.create_dataset("cellpose/flows", data=mask_flows(masks))
        handle.create_dataset("image", data=mean.astype(np.float32))
        for key, value in (seg_attrs or {"diameter_used": 9.0}).items():
            handle.attrs[key] = value
    return movie_path, seg_path


def run_extract(movie: Path, seg: Path, out: Path, *extra: str) -> Path:
    assert extract_main(["--movie", str(movie), "--segmentation", str(seg), "--output", str(out), *extra]) == 0
    return out


def read_all(path: Path) -> dict:
    out = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                          else None)
        out["attrs"] = dict(handle.attrs)
    return out


def plane_masks(masks: np.ndarray, weights: np.ndarray, diameter: float = 9.0):
    stats = rois.roi_stats(masks, weights, diameter)
    cell_masks, neuropil_masks = rois.build_masks(stats, *masks.shape)
    return stats, cell_masks, neuropil_masks


def reference_r(F: np.ndarray, Fneu: np.ndarray) -> np.ndarray:
    """The original capsule's per-ROI loop (get_r_from_min_mi): skimage NMI for every r, first minimum."""
    from skimage.metrics import normalized_mutual_information
    out = []
    for raw, neu in zip(F, Fneu):
        raw, neu = raw.copy(), neu.copy()
        raw[np.isnan(raw)] = 0
        neu[np.isnan(neu)] = 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mi = [normalized_mutual_information(raw - r * neu, neu, bins=100) for r in np.arange(0, 2.01, 0.01)]
        out.append(np.arange(0, 2.01, 0.01)[np.argmin(mi)])
    return np.array(out)


# ------------------------------------------------------------------------------------------------ traces

@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_traces_equal_suite2p_extract_traces(tmp_path, s2p, dtype):
    import torch
    from suite2p.extraction.extract import extract_traces as s2p_extract

    masks = disc_masks()
    movie_path, seg_path = write_inputs(tmp_path, masks, frames=130, dtype=dtype)
    with h5py.File(seg_path) as handle:
        weights = handle["weights"][()]
    stats, cell_masks, neuropil_masks = plane_masks(masks, weights)
    assert len(stats) == len(LABELS)
    trace_masks = traces.TraceMasks.from_suite2p(cell_masks, neuropil_masks, HEIGHT * WIDTH)
    with h5py.File(movie_path) as handle:
        F, Fneu = traces.extract_traces(handle["data"], trace_masks, 32)
        F_ref, Fneu_ref = s2p_extract(handle["data"], cell_masks, neuropil_masks, batch_size=50,
                                      device=torch.device("cpu"))
    assert F.dtype == Fneu.dtype == np.float32 and F.shape == F_ref.shape == (len(LABELS), 130)
    np.testing.assert_allclose(F, F_ref, rtol=2e-6, atol=1e-4)
    np.testing.assert_allclose(Fneu, Fneu_ref, rtol=2e-6, atol=1e-4)


def test_traces_independent_of_chunk_size_and_threading(tmp_path, s2p):
    masks = disc_masks()
    movie_path, seg_path = write_inputs(tmp_path, masks, frames=101)
    with h5py.File(seg_path) as handle:
        weights = handle["weights"][()]
    _, cell_masks, neuropil_masks = plane_masks(masks, weights)
    trace_masks = traces.TraceMasks.from_suite2p(cell_masks, neuropil_masks, HEIGHT * WIDTH)
    with h5py.File(movie_path) as handle:
        F0, Fneu0 = traces.extract_traces(handle["data"], trace_masks, 101)
        for chunk, threaded in ((1, True), (7, False), (8, True), (33, True), (500, False)):
            F, Fneu = traces.extract_traces(handle["data"], trace_masks, chunk, threaded=threaded)
            assert np.array_equal(F, F0) and np.array_equal(Fneu, Fneu0), (chunk, threaded)
        import numba
        threads = numba.get_num_threads()
        numba.set_num_threads(1)                                      # kernel threads do not change results
        try:
            F, Fneu = traces.extract_traces(handle["data"], trace_masks, 64)
        finally:
            numba.set_num_threads(threads)
        assert np.array_equal(F, F0) and np.array_equal(Fneu, Fneu0)


@pytest.mark.parametrize("dtype", [np.int16, np.float64])
def test_iter_chunks_reused_buffers_equal_fresh_arrays(tmp_path, dtype):
    from ophys_extraction.movie import iter_chunks
    data = np.random.default_rng(3).normal(0, 100, (23, 5, 7)).astype(dtype)
    with h5py.File(tmp_path / "m.h5", "w") as handle:
        handle["data"] = data
    with h5py.File(tmp_path / "m.h5") as handle:
        for out in (dtype, np.float32):
            fresh = [(s, b.copy()) for s, b in iter_chunks(handle["data"], 5, dtype=out)]
            reused = [(s, b.copy()) for s, b in iter_chunks(handle["data"], 5, dtype=out, buffers=2)]
            assert [s for s, _ in fresh] == [s for s, _ in reused] == [0, 5, 10, 15, 20]
            for (_, a), (_, b) in zip(fresh, reused):
                assert a.dtype == b.dtype == np.dtype(out) and np.array_equal(a, b)


def test_neuropil_masks_exclude_every_cell_pixel(tmp_path, s2p):
    from suite2p.extraction.masks import create_masks

    masks = disc_masks()
    rng = np.random.default_rng(1)
    weights = (0.1 + rng.random(masks.shape)).astype(np.float32)
    stats, cell_masks, neuropil_masks = plane_masks(masks, weights)
    ref_cells, ref_neuropil = create_masks(stats, HEIGHT, WIDTH, lam_percentile=0)
    for (idx, lam), (ref_idx, ref_lam) in zip(cell_masks, ref_cells):
        assert np.array_equal(idx, ref_idx) and np.array_equal(lam, ref_lam)
        assert np.isclose(lam.sum(), 1)
    assert all(np.array_equal(a, b) for a, b in zip(neuropil_masks, ref_neuropil))
    cell_pixels = np.flatnonzero(masks.ravel() > 0)
    for mask in neuropil_masks:
        assert mask.size >= 350 - 1 and not np.intersect1d(mask, cell_pixels).size


# ------------------------------------------------------------------------------------------------ ROI stats

def test_roi_stats_keys_labels_and_flattening(s2p):
    masks = disc_masks()
    weights = (0.1 + np.random.default_rng(2).random(masks.shape)).astype(np.float32)
    stats = rois.roi_stats(masks, weights, 9.0, max_overlap=1.0)     # roi_stats itself would not set overlap
    assert [s["label"] for s in stats] == LABELS
    for stat in stats:
        assert set(rois.STAT_KEYS) <= set(stat)
        assert not stat["overlap"].any()                              # Cellpose labels never overlap
        np.testing.assert_array_equal(stat["lam"], weights[stat["ypix"], stat["xpix"]])
    flat = rois.flatten_stats(stats, HEIGHT, WIDTH)
    n, npix = len(LABELS), int((masks > 0).sum())
    assert flat["data"].dtype == np.float32 and flat["data"].shape == (npix,)
    assert flat["coords"].shape == (3, npix) and np.issubdtype(flat["coords"].dtype, np.integer)
    roi, y, x = flat["coords"]
    np.testing.assert_array_equal(np.array(LABELS)[roi], masks[y, x])
    np.testing.assert_array_equal(flat["data"], weights[y, x])
    assert flat["shape"].tolist() == [n, HEIGHT, WIDTH]
    assert flat["med"].shape == (n, 2)
    for key in rois.PER_ROI_STATS:
        assert flat[key].shape == (n,), key
    for key in rois.PER_PIXEL_STATS:
        assert flat[key].shape == (npix,) and flat[key].dtype == bool
    np.testing.assert_array_equal(flat["npix"], np.bincount(roi))
    assert (flat["compact"] >= 1).all()                                # suite2p 1.x clips compact at 1


def test_solidity_as_suite2p_014():
    yy, xx = np.mgrid[:5, :5]
    crop = np.ones(25, bool)
    assert rois.solidity_014(yy.ravel(), xx.ravel(), crop) == pytest.approx(25 / 16)   # hull of a 5x5 grid: 4x4
    crop[:20] = False                                                 # 5 pixels: 0.14 uses an area of 10
    assert rois.solidity_014(yy.ravel(), xx.ravel(), crop) == pytest.approx(0.5)
    line = np.arange(12)                                              # collinear: Qhull fails, area 10
    assert rois.solidity_014(line, np.zeros(12, int), np.ones(12, bool)) == pytest.approx(1.2)


def test_overlap_set_when_rois_overlap(s2p):
    """Label images cannot overlap, but stats from elsewhere can: overlap = pixel in more than one ROI."""
    from suite2p.detection.stats import assign_overlaps
    masks = disc_masks()
    weights = np.ones(masks.shape, np.float32)
    stats = rois.roi_stats(masks, weights, 9.0, max_overlap=1.0)
    stats[1]["ypix"] = np.concatenate([stats[1]["ypix"], stats[0]["ypix"][:3]])
    stats[1]["xpix"] = np.concatenate([stats[1]["xpix"], stats[0]["xpix"][:3]])
    stats = assign_overlaps(stats, HEIGHT, WIDTH)
    assert stats[0]["overlap"].sum() == 3 and stats[1]["overlap"].sum() == 3


# ------------------------------------------------------------------------------------------------ neuropil r

def _edge_case_traces(T: int = 300):
    rng = np.random.default_rng(5)
    rows = []
    for scale in (0.3, 0.7, 1.0, 1.4):                                 # ordinary: contamination + activity
        neu = (100 + np.cumsum(rng.normal(0, 1, T))).astype(np.float32)
        rows.append(((scale * neu + rng.gamma(0.5, 8, T)).astype(np.float32), neu))
    neu = rng.normal(50, 3, T).astype(np.float32)
    rows.append((np.full(T, 7, np.float32), neu))                      # constant F
    rows.append((rng.normal(50, 3, T).astype(np.float32), np.full(T, 4, np.float32)))   # constant Fneu: ties
    rows.append((np.full(T, 3, np.float32), np.full(T, 4, np.float32)))                 # both constant: NaN
    rows.append(((0.5 * neu).astype(np.float32), neu))                 # F - 0.5 Fneu constant
    f = rng.normal(10, 2, T).astype(np.float32)
    f[::17] = np.nan                                                   # NaNs become 0
    n2 = rng.normal(5, 1, T).astype(np.float32)
    n2[3] = np.nan
    rows.append((f, n2))
    rows.append((rng.integers(0, 4, T).astype(np.float32), rng.integers(0, 3, T).astype(np.float32)))  # ties
    rows.append(((-1e4 + rng.normal(0, 1e-3, T)).astype(np.float32), rng.normal(1e4, 1, T).astype(np.float32)))
    F = np.stack([r[0] for r in rows])
    Fneu = np.stack([r[1] for r in rows])
    return F, Fneu


def test_mutual_info_r_identical_to_skimage_loop():
    F, Fneu = _edge_case_traces()
    r = npl.mutual_info_r(F, Fneu)
    np.testing.assert_array_equal(r, reference_r(F, Fneu))
    assert r.dtype == np.float64 and r.shape == (F.shape[0],)


@pytest.mark.parametrize("frames", [1, 2, 3, 11])
def test_mutual_info_r_short_traces(frames):
    rng = np.random.default_rng(frames)
    F = rng.normal(10, 3, (4, frames)).astype(np.float32)
    Fneu = rng.normal(5, 1, (4, frames)).astype(np.float32)
    np.testing.assert_array_equal(npl.mutual_info_r(F, Fneu), reference_r(F, Fneu))


def test_mutual_info_r_realistic_traces_no_loop_needed():
    """On ordinary traces the minimum is unique: no exact re-scoring."""
    F, Fneu = _edge_case_traces(T=800)
    r, info = npl.mutual_info_r(F[:4], Fneu[:4], return_stats=True)
    np.testing.assert_array_equal(r, reference_r(F[:4], Fneu[:4]))
    assert info["exact_rescored_rois"] == 0


def test_mutual_info_r_zero_rois():
    assert npl.mutual_info_r(np.zeros((0, 50), np.float32), np.zeros((0, 50), np.float32)).shape == (0,)


def test_replacement_rule():
    raw = np.array([0.2, 0.4, 1.0, 1.7, 0.6, 2.0])                    # 3 below 1: fewer than 5 -> 0.8
    np.testing.assert_array_equal(npl.replace_high_r(raw), [0.2, 0.4, 0.8, 0.8, 0.6, 0.8])
    raw = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 1.5, 1.0])                # 5 below 1 -> their mean
    np.testing.assert_allclose(npl.replace_high_r(raw), [0.1, 0.2, 0.3, 0.4, 0.5, 0.3, 0.3])
    assert npl.replace_high_r(np.zeros(0)).shape == (0,)
    r, raw_r = npl.coefficients(np.ones((2, 5), np.float32), np.ones((2, 5), np.float32))
    assert r.shape == raw_r.shape == (2,)


def test_corrected_blocks_equal_the_whole_computation():
    rng = np.random.default_rng(0)
    F, Fneu = rng.normal(100, 5, (10, 50)).astype(np.float32), rng.normal(50, 5, (10, 50)).astype(np.float32)
    r = rng.uniform(0, 1, 10)
    blocks = list(npl.iter_corrected(F, Fneu, r, block_rows=3))
    assert [b[0] for b in blocks] == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
    whole = (F - r[:, None] * Fneu.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks]), whole)


def test_suite2p_neuropil_coefficient_from_settings(s2p):
    from suite2p.parameters import default_settings
    assert npl.suite2p_neuropil_coefficient() == default_settings()["extraction"]["neuropil_coefficient"] == 0.7


def test_baseline_flag_is_the_median_at_or_below_zero():
    """Rows at rest below, at and above zero with large transients: only the resting level (the median) counts."""
    rest = np.array([[-1.0], [0.0], [0.5]]) * np.ones((3, 99))
    transients = np.full((3, 40), 500.0)
    corrected = np.concatenate([rest, transients], axis=1).astype(np.float32)   # means all far above zero
    assert classify.baseline_at_or_below_zero(corrected).tolist() == [True, True, False]
    assert classify.baseline_at_or_below_zero(np.zeros((0, 10), np.float32)).shape == (0,)


# ------------------------------------------------------------------------------------------------ CLI

def test_cli_output_datasets_and_values(tmp_path, s2p):
    masks = disc_masks()
    movie, seg = write_inputs(tmp_path, masks, frames=160)
    out = run_extract(movie, seg, tmp_path / "traces.h5", "--chunk_frames", "40")
    d = read_all(out)
    n, T = len(LABELS), 160
    expected = ({f"traces/{k}" for k in ("corrected", "roi", "neuropil", "skew", "std", "baseline_at_or_below_zero")}
                | {f"rois/{k}" for k in ("data", "coords", "shape", *rois.STAT_KEYS)}
                | {"iscell", "iscell_suite2p", "neuropil_coords", "neuropil_rcoef", "raw_neuropil_rcoef_mutualinfo",
                   "labels"})
    assert set(d) - {"attrs"} == expected
    for key in ("corrected", "roi", "neuropil"):
        assert d[f"traces/{key}"].dtype == np.float32 and d[f"traces/{key}"].shape == (n, T)
    for key in ("skew", "std"):
        assert d[f"traces/{key}"].dtype == np.float32 and d[f"traces/{key}"].shape == (n,)
    assert d["labels"].dtype == np.int32 and d["labels"].tolist() == LABELS
    assert d["rois/shape"].tolist() == [n, HEIGHT, WIDTH]
    assert np.issubdtype(d["rois/coords"].dtype, np.integer)
    assert np.issubdtype(d["neuropil_coords"].dtype, np.integer) and d["neuropil_coords"].shape[0] == 3

    r, raw = d["neuropil_rcoef"], d["raw_neuropil_rcoef_mutualinfo"]
    np.testing.assert_array_equal(raw, reference_r(d["traces/roi"], d["traces/neuropil"]))
    np.testing.assert_array_equal(r, npl.replace_high_r(raw))
    np.testing.assert_allclose(d["traces/corrected"], d["traces/roi"] - r[:, None] * d["traces/neuropil"],
                               rtol=1e-6, atol=1e-3)

    from scipy.stats import skew
    np.testing.assert_allclose(d["traces/skew"], skew(d["traces/corrected"], axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d["traces/std"], d["traces/corrected"].std(axis=1), rtol=1e-5)
    low = d["traces/baseline_at_or_below_zero"]
    assert low.dtype == np.bool_ and low.tolist() == (np.median(d["traces/corrected"], axis=1) <= 0).tolist()
    for name in ("iscell", "iscell_suite2p"):
        iscell = d[name]
        assert iscell.dtype == np.float32 and iscell.shape == (n, 2)
        assert np.isin(iscell[:, 0], (0, 1)).all() and ((iscell[:, 1] >= 0) & (iscell[:, 1] <= 1)).all()
        np.testing.assert_array_equal(iscell[:, 0], iscell[:, 1] > 0.5)

    params = json.loads(d["attrs"]["parameters"])
    assert params["use_suite2p_neuropil"] is False and params["diameter_used"] == 9.0
    assert params["max_overlap"] == 0.75 and params["min_neuropil_pixels"] == 350
    assert d["attrs"]["suite2p_version"] == s2p.version and json.loads(d["attrs"]["versions"])["suite2p"]

    # deterministic, and the trace pass independent of chunking
    again = read_all(run_extract(movie, seg, tmp_path / "again.h5", "--chunk_frames", "7", "--threads", "1"))
    for key in d:
        if key != "attrs":
            np.testing.assert_array_equal(d[key], again[key], err_msg=key)


def test_cli_suite2p_neuropil(tmp_path, s2p):
    masks = disc_masks()
    movie, seg = write_inputs(tmp_path, masks, frames=80)
    d = read_all(run_extract(movie, seg, tmp_path / "traces.h5", "--use_suite2p_neuropil"))
    assert "raw_neuropil_rcoef_mutualinfo" not in d
    np.testing.assert_array_equal(d["neuropil_rcoef"], np.full(len(LABELS), 0.7))
    np.testing.assert_allclose(d["traces/corrected"], d["traces/roi"] - 0.7 * d["traces/neuropil"], rtol=1e-6,
                               atol=1e-3)
    assert json.loads(d["attrs"]["parameters"])["use_suite2p_neuropil"] is True
    d = read_all(run_extract(movie, seg, tmp_path / "t2.h5", "--use_suite2p_neuropil",
                             "--neuropil_coefficient", "0.5"))
    np.testing.assert_array_equal(d["neuropil_rcoef"], np.full(len(LABELS), 0.5))


def test_cli_zero_rois(tmp_path, s2p):
    masks = np.zeros((HEIGHT, WIDTH), np.int32)
    movie, seg = write_inputs(tmp_path, masks, frames=30)
    d = read_all(run_extract(movie, seg, tmp_path / "traces.h5"))
    for key in ("corrected", "roi", "neuropil"):
        assert d[f"traces/{key}"].shape == (0, 30) and d[f"traces/{key}"].dtype == np.float32
    assert d["traces/skew"].shape == d["traces/std"].shape == (0,)
    assert d["iscell"].shape == (0, 2) and d["iscell"].dtype == np.float32
    assert d["rois/data"].shape == (0,) and d["rois/coords"].shape == (3, 0)
    assert d["rois/shape"].tolist() == [0, HEIGHT, WIDTH] and d["rois/med"].shape == (0, 2)
    assert all(d[f"rois/{k}"].shape == (0,) for k in rois.PER_ROI_STATS + rois.PER_PIXEL_STATS)
    assert d["neuropil_coords"].shape == (3, 0) and d["labels"].shape == (0,)
    assert d["neuropil_rcoef"].shape == d["raw_neuropil_rcoef_mutualinfo"].shape == (0,)
    assert d["attrs"]["n_rois"] == 0


def test_cli_dropped_rois_keep_their_labels(tmp_path, s2p):
    """A ROI far larger than the median is dropped by roi_stats' npix_norm_max: labels say which survived."""
    masks = disc_masks()
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    masks[(yy - 24) ** 2 + (xx - 36) ** 2 <= 8**2] = 10              # label 10 four times the others' area
    movie, seg = write_inputs(tmp_path, masks, frames=40)
    d = read_all(run_extract(movie, seg, tmp_path / "traces.h5", "--npix_norm_max", "2"))
    kept = [label for label in LABELS if label != 10]
    assert d["labels"].tolist() == kept
    assert d["traces/roi"].shape == (len(kept), 40) and d["iscell"].shape == (len(kept), 2)
    roi, y, x = d["rois/coords"]
    np.testing.assert_array_equal(np.array(kept)[roi], masks[y, x])
    assert d["attrs"]["n_dropped"] == 1


def test_cli_frame_size_mismatch(tmp_path, s2p, capsys):
    movie, _ = write_inputs(tmp_path / "a", disc_masks(), frames=10)
    _, seg = write_inputs(tmp_path / "b", disc_masks(height=HEIGHT + 2), frames=10)
    out = tmp_path / "traces.h5"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(extract_main, ["--movie", str(movie), "--segmentation", str(seg), "--output", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ERROR: {movie}: frame size 48x64")
    assert not out.exists() and not list(tmp_path.glob(".traces.h5*"))


@pytest.mark.parametrize("problem", ["no_masks", "no_weights", "missing_file", "not_hdf5", "weights_shape"])
def test_cli_bad_segmentation(tmp_path, capsys, problem):
    movie, seg = write_inputs(tmp_path, disc_masks(), frames=10)
    if problem == "missing_file":
        seg.unlink()
    elif problem == "not_hdf5":
        seg.write_text("not hdf5")
    else:
        with h5py.File(seg, "a") as handle:
            if problem == "no_masks":
                del handle["cellpose/masks"]
            elif problem == "no_weights":
                del handle["weights"]
            else:
                del handle["weights"]
                handle["weights"] = np.ones((3, 3), np.float32)
    out = tmp_path / "traces.h5"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(extract_main, ["--movie", str(movie), "--segmentation", str(seg), "--output", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ERROR: {seg}: ")
    if problem in ("no_masks", "no_weights"):
        assert "missing dataset" in err[0]
    assert not out.exists()


def test_cli_bad_movie_and_options(tmp_path, capsys):
    movie, seg = write_inputs(tmp_path, disc_masks(), frames=10)
    out = tmp_path / "traces.h5"
    cases = [(["--movie", str(tmp_path / "nope.h5")], str(tmp_path / "nope.h5")),
             (["--movie", str(movie), "--chunk_frames=-1"], "--chunk_frames -1"),
             (["--movie", str(movie), "--lam_percentile", "120"], "--lam_percentile 120.0")]
    for argv, subject in cases:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(extract_main, [*argv, "--segmentation", str(seg), "--output", str(out)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"ERROR: {subject}: "), err
        assert not out.exists()


def test_cli_classifier_choice(tmp_path, s2p):
    """--classifier suite2p: iscell is suite2p's builtin answer (the original capsule's) and equals iscell_suite2p;
    the default (the bundled classifier) keeps that answer beside its own; a lab's classfile on keys the ROIs have
    (here its own copy of the builtin one) gives the same as the builtin."""
    movie, seg = write_inputs(tmp_path, disc_masks(), frames=120)
    s2p_out = read_all(run_extract(movie, seg, tmp_path / "s2p.h5", "--classifier", "suite2p"))
    default = read_all(run_extract(movie, seg, tmp_path / "default.h5"))
    np.testing.assert_array_equal(s2p_out["iscell"], s2p_out["iscell_suite2p"])
    np.testing.assert_array_equal(default["iscell_suite2p"], s2p_out["iscell"])
    params = json.loads(default["attrs"]["parameters"])
    assert params["classifier"] == classify.BUNDLED_CLASSIFIER and "cellprob" in params["classifier_keys"]
    lab = tmp_path / "lab_classifier.npy"
    lab.write_bytes(classify.builtin_classifier_path().read_bytes())
    lab_out = read_all(run_extract(movie, seg, tmp_path / "lab.h5", "--classifier", str(lab)))
    np.testing.assert_array_equal(lab_out["iscell"], s2p_out["iscell"])


def test_cli_bad_classifier(tmp_path, s2p, capsys):
    """A classifier that cannot be used, or a segmentation without what its features come from: one line naming the
    file, exit 2, nothing written. suite2p's builtin classifier needs none of those datasets."""
    movie, seg = write_inputs(tmp_path, disc_masks(), frames=40)
    not_classfile = tmp_path / "not_a_classifier.npy"
    np.save(not_classfile, np.zeros(3))
    unknown_key = tmp_path / "unknown_key.npy"
    np.save(unknown_key, {"stats": np.zeros((4, 1)), "iscell": np.array([0, 1, 0, 1]), "keys": ["no_such_stat"]})
    out = tmp_path / "traces.h5"
    cases = [([str(tmp_path / "nope.npy")], f"--classifier {tmp_path / 'nope.npy'}"),
             ([str(not_classfile)], str(not_classfile)), ([str(unknown_key)], str(unknown_key))]
    for value, subject in cases:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(extract_main, ["--movie", str(movie), "--segmentation", str(seg), "--output", str(out),
                                   "--classifier", *value])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"ERROR: {subject}: "), err
        assert not out.exists()
    with h5py.File(seg, "a") as handle:
        del handle["cellpose/cellprob"]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(extract_main, ["--movie", str(movie), "--segmentation", str(seg), "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    assert err[0].startswith(f"ERROR: {seg}: missing dataset 'cellpose/cellprob'") and not out.exists()
    run_extract(movie, seg, out, "--classifier", "suite2p")


def test_bin_script_is_a_thin_wrapper():
    script = Path(__file__).resolve().parents[1] / "bin" / "extract.py"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env python3") and "run_cli(main)" in text
    assert script.stat().st_mode & 0o111


# ------------------------------------------------------------------------------------------------ ground truth

def test_ground_truth_traces_recovered(tmp_path, s2p):
    """Synthetic movie with known cells (ophys_extraction.synthetic at a quarter of its default noise, since most
    cells are dim rings): with the true masks, corrected traces follow the true cell fluorescence, better than the
    raw (neuropil-contaminated) traces."""
    from ophys_extraction import synthetic

    spec = synthetic.SyntheticSpec(height=128, width=128, n_frames=400, seed=11, shot_noise="gaussian",
                                   noise_level=0.25)
    movie = tmp_path / "movie.h5"
    sim = synthetic.write_movie(movie, spec)
    with h5py.File(movie) as handle:
        data = handle["data"][()]
    _, seg = write_inputs(tmp_path, sim.masks, movie=data,
                          seg_attrs={"diameter_used": float(spec.cell_diameter_mean)})
    d = read_all(run_extract(movie, seg, tmp_path / "traces.h5"))
    truth = sim.source_traces[: sim.n_cells]
    corr = [np.corrcoef(d["traces/corrected"][i], truth[label - 1])[0, 1] for i, label in enumerate(d["labels"])]
    raw = [np.corrcoef(d["traces/roi"][i], truth[label - 1])[0, 1] for i, label in enumerate(d["labels"])]
    assert len(corr) >= 0.9 * sim.n_cells
    assert np.median(corr) >= 0.9, np.median(corr)
    assert np.median(corr) > np.median(raw)
