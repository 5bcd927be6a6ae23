"""Summary images (docs/output.md, `meanImg` and `maxImg`): compared with suite2p 1.1.0's own functions on the same
data.

suite2p reference: detect.bin_movie (binning), binned.mean(axis=0), utils.temporal_high_pass_filter(width=100) then
max (max projection), anatomical.select_rois' ratio formula, denoise.pca_denoise(block_size=(64, 64),
n_comps_frac=0.5) (--denoise), registration.utils.highpass_mean_image (meanImgE).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import REPO, write_h5
from ophys_extraction.cli.summary_images import main
from ophys_extraction.errors import run_cli
from ophys_extraction.movie import open_movie
from ophys_extraction.segmentation_input import SUMMARY_DATASETS
from ophys_extraction.summary_images import SummaryImages, SummaryImagesOptions, compute_summary_images

DATASETS = SUMMARY_DATASETS
ATTRS = ("movie", "n_frames", "height", "width", "frame_rate", "bin_duration", "bin_size", "n_bins", "denoise")


@pytest.fixture(scope="module")
def s2p():
    """suite2p's functions (importing suite2p takes 5-20 s, so once per module)."""
    from suite2p.detection import utils
    from suite2p.detection.denoise import pca_denoise
    from suite2p.detection.detect import bin_movie
    from suite2p.registration.utils import highpass_mean_image

    class S2P:
        pass

    ns = S2P()
    ns.bin_movie, ns.hp, ns.pca_denoise, ns.highpass_mean_image = (
        bin_movie, utils.temporal_high_pass_filter, pca_denoise, highpass_mean_image)
    return ns


def synthetic_movie(n_frames: int, height: int, width: int, seed: int = 0, dtype=np.int16) -> np.ndarray:
    """Baseline + a few blobs with random transients + noise (no dependency on ophys_extraction.synthetic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    movie = rng.normal(200.0, 20.0, (n_frames, height, width))
    for _ in range(6):
        cy, cx = rng.uniform(0.2 * height, 0.8 * height), rng.uniform(0.2 * width, 0.8 * width)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
        activity = np.convolve(rng.random(n_frames) < 0.03, np.exp(-np.arange(30) / 8.0))[:n_frames]
        movie += (300.0 + 600.0 * activity)[:, None, None] * blob
    if np.issubdtype(dtype, np.integer):
        return np.round(movie).astype(dtype)
    return movie.astype(dtype)


def run_summary(path: Path, frame_rate: float, bin_duration: float, chunk: int = 0, denoise: bool = False,
                **kwargs) -> SummaryImages:
    options = SummaryImagesOptions(bin_duration=bin_duration, denoise=denoise, chunk_frames=chunk)
    with open_movie(path) as (dset, info):
        return compute_summary_images(dset, info, frame_rate, options, **kwargs)


def reference(s2p, movie: np.ndarray, bin_size: int, denoise: bool = False, binned: np.ndarray | None = None
              ) -> dict[str, np.ndarray]:
    """What suite2p computes from the same movie (binned by suite2p's bin_movie unless `binned` is given)."""
    n_frames, height, width = movie.shape
    if binned is None:
        binned = s2p.bin_movie(movie, bin_size, yrange=[0, height], xrange=[0, width],
                               nbins=n_frames // bin_size)
    if denoise:
        from threadpoolctl import threadpool_limits  # as ours: multithreaded BLAS crawls on a busy machine

        with threadpool_limits(limits=1):
            binned = s2p.pca_denoise(binned.copy(), block_size=(64, 64), n_comps_frac=0.5)
    mean_binned = binned.mean(axis=0)
    max_proj = s2p.hp(mov=binned, width=100).max(axis=0)
    mean_img = movie.astype(np.float64).mean(axis=0)
    return {
        "n_bins": len(binned),
        "mean_binned": mean_binned,
        "maxImg": max_proj,
        "max_mean_ratio": np.log(np.maximum(1e-3, max_proj / np.maximum(1e-3, mean_binned))),
        "meanImg": mean_img,
        "meanImgE": s2p.highpass_mean_image(mean_img.astype("float32")),
    }


def assert_matches(result: SummaryImages, ref: dict[str, np.ndarray], exact: bool) -> None:
    assert result.n_bins == ref["n_bins"]
    for image in (result.mean_img, result.max_img, result.max_mean_ratio, result.mean_img_e, result.mean_binned):
        assert image.dtype == np.float32 and image.shape == ref["meanImg"].shape
    if exact:  # binned mean and max projection are bit-identical without denoising
        np.testing.assert_array_equal(result.mean_binned, ref["mean_binned"])
        np.testing.assert_array_equal(result.max_img, ref["maxImg"])
        np.testing.assert_array_equal(result.max_mean_ratio, ref["max_mean_ratio"])
    scale = float(np.abs(ref["meanImg"]).max())
    np.testing.assert_allclose(result.mean_binned, ref["mean_binned"], rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(result.max_img, ref["maxImg"], rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(result.max_mean_ratio, ref["max_mean_ratio"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.mean_img, ref["meanImg"], rtol=1e-6, atol=1e-7 * scale)
    np.testing.assert_allclose(result.mean_img_e, ref["meanImgE"], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def movie_300(tmp_path_factory) -> tuple[Path, np.ndarray]:
    movie = synthetic_movie(300, 64, 80, seed=1)
    return write_h5(tmp_path_factory.mktemp("m300") / "movie.h5", movie), movie


# bin_duration 3.7 s at 10 Hz: 37 frames per bin, 8 bins, a 4-frame tail; 0.2 s: 2 frames, 150 bins, two high-pass
# windows (100 + 50 bins). Chunks that do not divide the frame count or the bin size, and single frames.
@pytest.mark.parametrize("bin_duration,bin_size", [(3.7, 37), (0.2, 2)])
@pytest.mark.parametrize("chunk", [1, 7, 64, 300])
def test_matches_suite2p(s2p, movie_300, bin_duration: float, bin_size: int, chunk: int) -> None:
    path, movie = movie_300
    result = run_summary(path, 10.0, bin_duration, chunk)
    assert result.bin_size == bin_size and result.n_bins == 300 // bin_size
    assert_matches(result, reference(s2p, movie, bin_size), exact=True)


def test_result_independent_of_chunk_size(movie_300) -> None:
    path, _ = movie_300
    results = [run_summary(path, 30.0, 1.0, chunk) for chunk in (1, 11, 30, 299, 300, 0)]
    for other in results[1:]:
        for name in ("mean_img", "max_img", "max_mean_ratio", "mean_img_e", "mean_binned"):
            np.testing.assert_array_equal(getattr(other, name), getattr(results[0], name))


def test_float_movie_with_negative_values(s2p, tmp_path: Path) -> None:
    movie = synthetic_movie(210, 39, 47, seed=2, dtype=np.float32) - 400.0  # odd frame size
    path = write_h5(tmp_path / "float.h5", movie)
    assert_matches(run_summary(path, 7.5, 0.8, 13), reference(s2p, movie, 6), exact=True)


def test_long_movie_bins_consecutive_frames(s2p, tmp_path: Path) -> None:
    # Beyond 500 frames suite2p's bin_movie bins inside 500-frame batches (dropping 500 % bin_size frames per batch);
    # we bin consecutive frames of the whole movie: the reference is a plain reshape-mean, high-passed by suite2p.
    movie = synthetic_movie(1303, 24, 20, seed=3)
    path = write_h5(tmp_path / "long.h5", movie)
    result = run_summary(path, 10.0, 0.3, 97)
    assert (result.bin_size, result.n_bins) == (3, 434)  # 4 high-pass windows: 100, 100, 100, 100, 34
    binned = movie[:434 * 3].reshape(434, 3, 24, 20).astype(np.float32).mean(axis=1)
    assert_matches(result, reference(s2p, movie, 3, binned=binned), exact=True)


def test_long_movie_equals_suite2p_bin_movie_when_its_batches_line_up(s2p, tmp_path: Path) -> None:
    movie = synthetic_movie(1000, 16, 20, seed=4)
    path = write_h5(tmp_path / "aligned.h5", movie)
    result = run_summary(path, 10.0, 0.5, 33)  # 5 frames per bin divides suite2p's 500-frame batches
    assert_matches(result, reference(s2p, movie, 5), exact=True)


@pytest.mark.parametrize("shape,tile_bytes", [((64, 80), 1), ((96, 112), 1), ((96, 112), 2**30)])
def test_denoise_matches_suite2p_pca_denoise(s2p, tmp_path: Path, shape, tile_bytes: int) -> None:
    # 64 x 80: two overlapping 64 x 64 blocks; 96 x 112: 3 x 3 blocks. tile_bytes=1 forces 32 x 32 tiles that cut
    # through blocks and their overlaps; 2**30 processes the whole frame as one tile.
    movie = synthetic_movie(180, *shape, seed=5)
    path = write_h5(tmp_path / "movie.h5", movie)
    result = run_summary(path, 10.0, 0.3, 17, denoise=True, tmp_dir=tmp_path, tile_bytes=tile_bytes)
    assert result.n_bins == 60
    assert_matches(result, reference(s2p, movie, 3, denoise=True), exact=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.h5"]  # temporary binned movie removed


def test_movie_shorter_than_one_bin_is_one_bin(tmp_path: Path) -> None:
    movie = synthetic_movie(20, 16, 16, seed=6)
    result = run_summary(write_h5(tmp_path / "short.h5", movie), 10.0, 3.7)
    assert (result.bin_size, result.n_bins) == (20, 1)
    np.testing.assert_allclose(result.mean_binned, movie.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(result.max_img, 0)  # one bin minus its own mean


def reference_correlation_image(binned: np.ndarray, window: int) -> np.ndarray:
    """Each window of bins minus its mean, then per pixel the mean Pearson r with its (up to 8) neighbours."""
    centred = np.concatenate([part - part.mean(axis=0) for part in np.split(binned, range(window, len(binned),
                                                                                           window))]).astype(np.float64)
    z = centred / np.sqrt((centred ** 2).sum(axis=0))
    height, width = z.shape[1:]
    out = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            near = [(y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                    if (dy or dx) and 0 <= y + dy < height and 0 <= x + dx < width]
            out[y, x] = np.mean([np.dot(z[:, y, x], z[:, v, u]) for v, u in near])
    return out


def test_correlation_image_is_the_mean_neighbour_correlation_of_the_high_passed_bins(tmp_path: Path) -> None:
    # 230 bins of 2 frames: the high-pass windows (100 bins) are 100, 100 and a partial 30.
    movie = synthetic_movie(460, 12, 14, seed=7)
    result = run_summary(write_h5(tmp_path / "m.h5", movie), 10.0, 0.2)
    assert (result.bin_size, result.n_bins) == (2, 230)
    binned = movie.astype(np.float32).reshape(230, 2, 12, 14).sum(axis=1, dtype=np.float32) / np.float32(2)
    # float32 sums within each window: agreement to ~1e-6 (measured 1.3e-6 on 2026-12-03)
    np.testing.assert_allclose(result.corr_img, reference_correlation_image(binned, 100), atol=1e-5)
    assert result.corr_img.dtype == np.float32


def test_correlation_image_shows_a_cell_that_fires_however_dim(tmp_path: Path) -> None:
    """A disk that fires (5% of frames, 6% of the baseline) is 1% brighter than its surround in the mean image,
    and stands in the correlation image at more than twice any background pixel (measured 0.30 vs 0.10)."""
    rng = np.random.default_rng(8)
    frames, height, width = 400, 32, 32
    yy, xx = np.mgrid[:height, :width]
    distance2 = (yy - 16) ** 2 + (xx - 16) ** 2
    disk, background = distance2 <= 16, distance2 > 36
    events = np.convolve(rng.random(frames) < 0.05, np.exp(-np.arange(20) / 5))[:frames]
    movie = 1000 + rng.normal(0, 30, (frames, height, width))
    movie[:, disk] += 60 * events[:, None]
    result = run_summary(write_h5(tmp_path / "dim.h5", movie.astype(np.uint16)), 10.0, 0.2)
    assert result.mean_img[disk].mean() / result.mean_img[background].mean() < 1.02
    assert result.corr_img[disk].mean() > 2 * np.abs(result.corr_img[background]).max()


# ---------------------------------------------------------------------------------------------------------------- CLI

def test_cli_writes_documented_summary_h5(movie_300, tmp_path: Path) -> None:
    path, movie = movie_300
    output = tmp_path / "out" / "summary.h5"
    assert main(["--movie", str(path), "--output", str(output), "--frame_rate", "10", "--chunk_frames", "50"]) == 0
    with h5py.File(output) as handle:
        assert sorted(handle.keys()) == sorted(DATASETS)
        for name in DATASETS:
            assert handle[name].dtype == np.float32 and handle[name].shape == (64, 80)
        assert set(ATTRS) <= set(handle.attrs)
        attrs = {key: handle.attrs[key] for key in ATTRS}
        result = run_summary(path, 10.0, 3.7)
        np.testing.assert_array_equal(handle["meanImg"][()], result.mean_img)
        np.testing.assert_array_equal(handle["maxImg"][()], result.max_img)
        np.testing.assert_array_equal(handle["max_mean_ratio"][()], result.max_mean_ratio)
        np.testing.assert_array_equal(handle["meanImgE"][()], result.mean_img_e)
        np.testing.assert_array_equal(handle["corrImg"][()], result.corr_img)
    assert attrs == {"movie": str(path), "n_frames": 300, "height": 64, "width": 80, "frame_rate": 10.0,
                     "bin_duration": 3.7, "bin_size": 37, "n_bins": 8, "denoise": False}
    assert sorted(p.name for p in output.parent.iterdir()) == ["summary.h5"]


def test_cli_denoise_leaves_only_the_output(movie_300, tmp_path: Path) -> None:
    path, _ = movie_300
    output = tmp_path / "summary.h5"
    assert main(["--movie", str(path), "--output", str(output), "--frame_rate", "10", "--bin_duration", "0.5",
                 "--denoise"]) == 0
    with h5py.File(output) as handle:
        assert bool(handle.attrs["denoise"]) and handle.attrs["n_bins"] == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.h5"]


def _cli_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ERROR: ") and "\n" not in err
    return err


def test_cli_bad_movie_leaves_no_output(tmp_path: Path, capsys) -> None:
    path = write_h5(tmp_path / "flat.h5", np.zeros((10, 10), np.int16))
    output = tmp_path / "out" / "summary.h5"
    err = _cli_error(["--movie", str(path), "--output", str(output), "--frame_rate", "10"], capsys)
    assert "flat.h5" in err and "rank 2" in err
    assert not output.exists() and not output.parent.exists()


def test_cli_error_mid_stream_with_denoise_cleans_up(tmp_path: Path, capsys) -> None:
    movie = synthetic_movie(60, 8, 8, dtype=np.float32)
    movie[45, 3, 3] = np.nan  # found while streaming, after the temporary binned movie was created
    path = write_h5(tmp_path / "in" / "nan.h5", movie)
    output = tmp_path / "out" / "summary.h5"
    output.parent.mkdir()
    err = _cli_error(["--movie", str(path), "--output", str(output), "--frame_rate", "10", "--denoise",
                      "--bin_duration", "0.2", "--chunk_frames", "10"], capsys)
    assert "nan.h5" in err and "frame 45" in err
    assert list(output.parent.iterdir()) == []


@pytest.mark.parametrize("argv,subject", [(["--bin_duration", "0"], "--bin_duration"),
                                          (["--chunk_frames", "-1"], "--chunk_frames")])
def test_cli_bad_parameters(movie_300, tmp_path: Path, capsys, argv: list[str], subject: str) -> None:
    path, _ = movie_300
    err = _cli_error(["--movie", str(path), "--output", str(tmp_path / "s.h5"), "--frame_rate", "10", *argv],
                     capsys)
    assert subject in err


def test_bin_script_help() -> None:
    script = REPO / "bin" / "summary_images.py"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for option in ("--movie", "--output", "--frame_rate", "--bin_duration", "--denoise", "--chunk_frames"):
        assert option in proc.stdout
