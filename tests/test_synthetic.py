"""Synthetic movies: determinism, layout, ground truth consistency (small sizes, a few seconds in all)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from scipy import ndimage

from ophys_extraction import synthetic
from ophys_extraction.cli.synthetic import main as synthetic_main
from ophys_extraction.discovery import find_planes, resolve_frame_rate
from ophys_extraction.errors import InputError
from ophys_extraction.synthetic import SyntheticSpec

SMALL = {"height": 64, "width": 80, "n_frames": 150, "frame_rate": 7.5}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    out = tmp_path_factory.mktemp("session")
    movies = synthetic.write_session(out, n_planes=2, seed=3, **SMALL)
    return out, movies


def _read(path):
    with h5py.File(path, "r") as f:
        return f["data"][:]


def test_session_layout_is_discoverable(session):
    out, movies = session
    planes = find_planes(out)
    assert [p.plane_id for p in planes] == ["plane_0", "plane_1"]
    assert [p.movie for p in planes] == movies
    for plane in planes:
        assert plane.movie == out / plane.plane_id / "decrosstalk" / f"{plane.plane_id}_decrosstalk.h5"
        assert resolve_frame_rate(plane.movie) == SMALL["frame_rate"]
        assert (out / plane.plane_id / "ground_truth.h5").is_file()


def test_movie_shape_dtype_and_chunks(session):
    _, movies = session
    with h5py.File(movies[0], "r") as f:
        dset = f["data"]
        assert dset.shape == (SMALL["n_frames"], SMALL["height"], SMALL["width"])
        assert dset.dtype == np.int16
        assert dset.chunks == (64, SMALL["height"], SMALL["width"])
        assert dset.compression is None
        assert dset[:].std() > 0


def test_planes_differ(session):
    _, movies = session
    assert not np.array_equal(_read(movies[0]), _read(movies[1]))


def test_deterministic_and_independent_of_chunk_size(tmp_path):
    spec = SyntheticSpec(seed=11, **SMALL)
    synthetic.write_movie(tmp_path / "a.h5", spec, chunk_frames=64)
    synthetic.write_movie(tmp_path / "b.h5", spec, chunk_frames=1000)
    assert np.array_equal(_read(tmp_path / "a.h5"), _read(tmp_path / "b.h5"))
    sim = synthetic.simulate(spec)
    assert np.array_equal(synthetic.render(sim, 30, 100), _read(tmp_path / "a.h5")[30:100])
    other = synthetic.render(synthetic.simulate(SyntheticSpec(seed=12, **SMALL)), 0, 10)
    assert not np.array_equal(other, _read(tmp_path / "a.h5")[:10])


def test_ground_truth_contents(session):
    out, _ = session
    with h5py.File(out / "plane_0" / "ground_truth.h5", "r") as f:
        masks, traces = f["masks"][:], f["traces"][:]
        n = int(f.attrs["n_cells"])
        assert n > 3
        assert masks.dtype == np.int32 and masks.shape == (SMALL["height"], SMALL["width"])
        assert np.array_equal(np.unique(masks), np.arange(n + 1))  # labels 1..n, no gaps
        assert traces.shape == (n, SMALL["n_frames"]) and traces.dtype == np.float32
        for key in ("dff", "spikes", "neuropil"):
            assert f[key].shape == (n, SMALL["n_frames"])
        coords, shape = f["footprints/coords"][:], f["footprints/shape"][:]
        assert coords.shape == (3, len(f["footprints/data"])) and list(shape) == [n, *masks.shape]
        assert set(np.unique(coords[0])) == set(range(n))
        spec = json.loads(f.attrs["spec"])
        assert spec["seed"] == f.attrs["seed"] == synthetic.plane_seed(3, 0)


def test_ground_truth_explains_the_noise_free_movie(tmp_path):
    """mean over a mask of the noise-free movie = footprint mass x true trace + recorded contamination."""
    spec = SyntheticSpec(seed=5, noise_level=0.0, offset=0.0, **SMALL)
    sim = synthetic.write_movie(tmp_path / "m.h5", spec)
    synthetic.write_ground_truth(tmp_path / "gt.h5", sim)
    movie = _read(tmp_path / "m.h5").astype(np.float64)
    with h5py.File(tmp_path / "gt.h5", "r") as f:
        masks, traces, neuropil = f["masks"][:], f["traces"][:], f["neuropil"][:]
        coords, weights = f["footprints/coords"][:], f["footprints/data"][:]
    n = traces.shape[0]
    footprints = np.zeros((n, *masks.shape))
    np.add.at(footprints, tuple(coords), weights)
    mass = np.array([footprints[i][masks == i + 1].mean() for i in range(n)])
    roi = np.stack([ndimage.mean(frame, masks, np.arange(1, n + 1)) for frame in movie], axis=1)
    np.testing.assert_allclose(roi, mass[:, None] * traces + neuropil, atol=0.5)  # int16 rounding


def test_true_traces_match_the_movie_at_low_noise(tmp_path):
    spec = SyntheticSpec(seed=7, noise_level=0.2, height=128, width=128, n_frames=300)  # ~20 cells: a stable median
    sim = synthetic.simulate(spec)
    movie = synthetic.render(sim, 0, spec.n_frames).astype(np.float64)
    labels = np.arange(1, sim.n_cells + 1)
    roi = np.stack([ndimage.mean(frame, sim.masks, labels) for frame in movie], axis=1)
    # Most cells are dim rings whose raw ROI trace is mostly neuropil; without the known contamination, what is
    # left must be the cell's own trace (a nearly silent cell's is only noise, hence the median).
    own = roi - synthetic.contamination(sim)
    r = [np.corrcoef(own[i], sim.source_traces[i])[0, 1] for i in range(sim.n_cells)]
    assert np.median(r) > 0.8


def test_neuropil_is_a_large_fluctuating_part_of_each_roi():
    sim = synthetic.simulate(SyntheticSpec(seed=2, **SMALL))
    neuropil = synthetic.contamination(sim)
    flat = sim.masks.ravel()
    mass = np.array([sim.footprints[i].toarray().ravel()[flat == i + 1].mean() for i in range(sim.n_cells)])
    own = mass[:, None] * sim.source_traces[: sim.n_cells]
    share = neuropil.mean(axis=1) / (own.mean(axis=1) + neuropil.mean(axis=1))
    assert 0.2 < np.median(share) < 0.9
    assert np.all(neuropil.std(axis=1) > 0)


def test_training_image_is_consistent_with_the_movie(tmp_path):
    kwargs = {"height": 64, "width": 64, "n_frames": 370, "frame_rate": 10.0}
    mean, max_proj, masks = synthetic.make_training_image(4, noise_level=1.0, **kwargs)
    assert mean.dtype == max_proj.dtype == np.float32 and masks.dtype == np.int32
    assert mean.shape == max_proj.shape == masks.shape == (64, 64)
    sim = synthetic.simulate(SyntheticSpec(seed=4, **kwargs))
    assert np.array_equal(masks, sim.masks)
    movie_mean = synthetic.render(sim, 0, kwargs["n_frames"]).mean(axis=0)
    # Same scene and activity; only the noise differs (sd of a 370-frame mean is a few counts).
    assert np.corrcoef(mean.ravel(), movie_mean.ravel())[0, 1] > 0.95
    assert abs(mean.mean() - movie_mean.mean()) < 0.02 * movie_mean.mean()
    assert np.isfinite(max_proj).all() and max_proj.max() > 0


def test_bad_spec_is_an_input_error():
    with pytest.raises(InputError, match="--height"):
        SyntheticSpec(height=0)
    with pytest.raises(InputError, match="--shot_noise"):
        SyntheticSpec(shot_noise="uniform")


def test_cli_writes_a_session(tmp_path, capsys):
    code = synthetic_main(["--out", str(tmp_path), "--n_planes", "1", "--frames", "20", "--height", "48",
                           "--width", "48", "--frame_rate", "30", "--noise_level", "2"])
    assert code == 0
    movie = tmp_path / "plane_0" / "decrosstalk" / "plane_0_decrosstalk.h5"
    assert str(movie) in capsys.readouterr().out
    assert _read(movie).shape == (20, 48, 48)
    assert resolve_frame_rate(movie) == 30.0
