"""Movie access: validation errors (one per problem) and chunked reading without loading the movie whole."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import write_h5
from ophys_extraction.errors import InputError
from ophys_extraction.movie import chunk_frames, iter_chunks, open_movie


def test_open_movie_reports_shape_and_dtype(small_movie: Path) -> None:
    with open_movie(small_movie) as (dset, info):
        assert (info.n_frames, info.height, info.width) == (37, 12, 10)
        assert info.dtype == np.int16
        assert isinstance(dset, h5py.Dataset)  # lazy: nothing read yet


@pytest.mark.parametrize("chunk", [1, 5, 10, 37, 100])
def test_iter_chunks_covers_every_frame_once_in_order(small_movie: Path, chunk: int) -> None:
    with h5py.File(small_movie) as handle:
        expected = handle["data"][()].astype(np.float32)
    with open_movie(small_movie) as (dset, _):
        blocks = list(iter_chunks(dset, chunk))
    assert [start for start, _ in blocks] == list(range(0, 37, chunk))
    assert all(block.dtype == np.float32 and block.shape[0] <= chunk for _, block in blocks)
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), expected)


def test_chunk_frames_depends_on_frame_size_not_frame_count(tmp_path: Path) -> None:
    sizes = []
    for n_frames in (600, 1200):
        path = tmp_path / f"m{n_frames}.h5"
        with h5py.File(path, "w") as handle:
            handle.create_dataset("data", shape=(n_frames, 64, 64), dtype=np.int16, chunks=(7, 64, 64))
        with open_movie(path) as (dset, info):
            sizes.append(chunk_frames(info, dset, chunk_bytes=64 * 64 * 4 * 100))
    assert sizes[0] == sizes[1] == 98  # 100 frames of float32, rounded down to whole 7-frame HDF5 chunks


def _problem(path: Path) -> str:
    with pytest.raises(InputError) as err:
        with open_movie(path):
            pass
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "does not exist" in _problem(tmp_path / "nope.h5")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "is a directory" in _problem(tmp_path)


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "text.h5"
    path.write_text("not an hdf5 file\n")
    assert "cannot be read as HDF5" in _problem(path)


def test_truncated_file(tmp_path: Path, small_movie: Path) -> None:
    path = tmp_path / "truncated.h5"
    path.write_bytes(small_movie.read_bytes()[:1500])
    assert "cannot be read as HDF5" in _problem(path)


def test_no_data_dataset(tmp_path: Path) -> None:
    message = _problem(write_h5(tmp_path / "other.h5", mov=np.zeros((3, 4, 4))))
    assert "no 'data' dataset" in message and "mov" in message


def test_data_is_a_group(tmp_path: Path) -> None:
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as handle:
        handle.create_group("data")
    assert "not a dataset" in _problem(path)


@pytest.mark.parametrize("shape", [(10, 10), (2, 3, 4, 5), (5,)])
def test_wrong_rank(tmp_path: Path, shape: tuple[int, ...]) -> None:
    assert f"rank {len(shape)}" in _problem(write_h5(tmp_path / "rank.h5", np.zeros(shape, np.int16)))


def test_zero_frames(tmp_path: Path) -> None:
    assert "zero frames" in _problem(write_h5(tmp_path / "empty.h5", np.zeros((0, 8, 8), np.int16)))


def test_empty_frames(tmp_path: Path) -> None:
    assert "empty frames" in _problem(write_h5(tmp_path / "thin.h5", np.zeros((4, 0, 8), np.int16)))


@pytest.mark.parametrize("data", [np.array([[[b"a"]]]), np.zeros((2, 2, 2), dtype=bool),
                                  np.zeros((2, 2, 2), dtype=np.complex64)])
def test_non_numeric_dtype(tmp_path: Path, data: np.ndarray) -> None:
    assert "non-numeric dtype" in _problem(write_h5(tmp_path / "dtype.h5", data))


def test_non_finite_frame_is_reported_with_its_index(tmp_path: Path) -> None:
    data = np.ones((9, 4, 4), np.float32)
    data[6, 1, 2] = np.nan
    path = write_h5(tmp_path / "nan.h5", data)
    with open_movie(path) as (dset, _), pytest.raises(InputError, match="frame 6 contains NaN or inf"):
        list(iter_chunks(dset, 4, path))
