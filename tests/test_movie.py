"""Movie access: validation errors (one per problem) and chunked reading without loading the movie whole."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import write_h5
from ophys_extraction.errors import InputError
from ophys_extraction.movie import MovieInfo, chunk_frames, iter_chunks, open_movie, prefetch, recording_warnings


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


# ---------------------------------------------------------------------------- values stored outside the movie file

MOVIE = np.random.default_rng(2).integers(0, 4000, size=(30, 16, 12)).astype(np.int16)


def _read_all(path: Path, chunk: int = 7) -> np.ndarray:
    """Every frame through the streaming reader the steps use (ring buffers, read-ahead thread)."""
    with open_movie(path) as (dset, _):
        blocks = [block.copy() for _, block in prefetch(iter_chunks(dset, chunk, path, dtype=dset.dtype, buffers=3))]
    return np.concatenate(blocks)


def _split_virtual(folder: Path) -> Path:
    """A virtual movie whose frames come from two files beside it, named relative to it (as acquisition software
    writes them), plus an external link to it and a movie stored in an external raw file."""
    write_h5(folder / "part_a.hdf5", MOVIE[:18])
    write_h5(folder / "part_b.hdf5", MOVIE[18:])
    layout = h5py.VirtualLayout(shape=MOVIE.shape, dtype=MOVIE.dtype)
    layout[:18] = h5py.VirtualSource("part_a.hdf5", "data", shape=(18, 16, 12))
    layout[18:] = h5py.VirtualSource("part_b.hdf5", "data", shape=(12, 16, 12))
    with h5py.File(folder / "virtual.h5", "w") as handle:
        handle.create_virtual_dataset("data", layout, fillvalue=0)
    with h5py.File(folder / "linked.h5", "w") as handle:
        handle["data"] = h5py.ExternalLink("part_a.hdf5", "/data")
    (folder / "frames.raw").write_bytes(MOVIE.tobytes())
    with h5py.File(folder / "external.h5", "w") as handle:
        handle.create_dataset("data", shape=MOVIE.shape, dtype=MOVIE.dtype,
                              external=[("frames.raw", 0, MOVIE.nbytes)])
    return folder


@pytest.mark.parametrize("name, expected", [("virtual.h5", MOVIE), ("linked.h5", MOVIE[:18]),
                                            ("external.h5", MOVIE)])
def test_sources_beside_the_movie_are_read_through_a_link_from_another_folder(
        tmp_path: Path, monkeypatch, name: str, expected: np.ndarray) -> None:
    """As under Nextflow: the movie is a symlink in a work folder, which is also the current folder."""
    data = _split_virtual(tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    (work / name).symlink_to(data / name)
    monkeypatch.chdir(work)
    np.testing.assert_array_equal(_read_all(work / name), expected)


def test_missing_virtual_source_names_the_source_and_the_real_movie(tmp_path: Path) -> None:
    data = _split_virtual(tmp_path / "data")
    (data / "part_b.hdf5").unlink()
    link = tmp_path / "movie.h5"
    link.symlink_to(data / "virtual.h5")
    message = _problem(data / "virtual.h5")
    assert "maps frames from data in part_b.hdf5, which does not exist" in message
    with pytest.raises(InputError, match="part_b.hdf5, which does not exist") as err:
        with open_movie(link):
            pass
    assert str(err.value).startswith(f"{data / 'virtual.h5'}: ")


def test_virtual_source_without_the_dataset(tmp_path: Path) -> None:
    data = _split_virtual(tmp_path / "data")
    write_h5(data / "part_b.hdf5", other=MOVIE[18:])
    assert "part_b.hdf5, which has no dataset data" in _problem(data / "virtual.h5")


def test_virtual_source_that_is_not_hdf5(tmp_path: Path) -> None:
    data = _split_virtual(tmp_path / "data")
    (data / "part_a.hdf5").write_text("gone bad")
    assert "part_a.hdf5, which cannot be read as HDF5" in _problem(data / "virtual.h5")


@pytest.mark.parametrize("compression", ["blosc", "bitshuffle"])
def test_plugin_compressed_movie_streams_identically(tmp_path: Path, compression: str) -> None:
    """Labs write blosc/bitshuffle movies (hdf5plugin); the environment carries hdf5plugin and reads them."""
    import hdf5plugin
    options = hdf5plugin.Blosc(cname="zstd") if compression == "blosc" else hdf5plugin.Bitshuffle()
    path = tmp_path / f"{compression}.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=MOVIE, chunks=(4, 16, 12), **options)
    with h5py.File(path) as handle:
        assert handle["data"].id.get_create_plist().get_filter(0)[0] == options.filter_id
    np.testing.assert_array_equal(_read_all(path), MOVIE)


# ------------------------------------------------------------------------------- warned about, never refused

def _info(n_frames: int) -> MovieInfo:
    return MovieInfo(Path("m.h5"), n_frames, 8, 8, np.dtype(np.int16))


@pytest.mark.parametrize("n_frames, rate, n_bins, expected", [
    (600, 10.0, 16, []),                                   # the demo planes: 60 s at 10 Hz
    (1, 10.0, 1, ["make 1 bin(s) of 3.7 s, fewer than 10", "1 frames, fewer than 100"]),
    (2, 30.0, 1, ["make 1 bin(s) of 3.7 s, fewer than 10", "2 frames, fewer than 100"]),
    (370, 10.0, 10, []),                                   # exactly the minimum: 10 bins, 370 frames
    (5000, 1e9, 1, ["make 1 bin(s)", "frame rate 1e+09 Hz is outside 0.5-1000 Hz"]),
    (5000, 0.001, 5000, ["frame rate 0.001 Hz is outside 0.5-1000 Hz"]),
])
def test_recording_warnings(n_frames: int, rate: float, n_bins: int, expected: list[str]) -> None:
    warnings = recording_warnings(_info(n_frames), rate, n_bins, 3.7)
    assert len(warnings) == len(expected), warnings
    for warning, fragment in zip(warnings, expected):
        assert fragment in warning and "\n" not in warning


@pytest.mark.parametrize("shape, refused", [
    ((64, 64, 600), True),     # (height, width, frames)
    ((64, 64, 129), True),     # just beyond FRAMES_LAST_ASPECT
    ((64, 64, 128), False),    # 64 frames of 64 x 128: a 2:1 frame can be a real scan
    ((600, 64, 64), False),    # frames-first
    ((64, 48, 600), False),    # first two axes differ: no sign of frames-last
])
def test_a_movie_that_looks_frames_last_is_refused(tmp_path: Path, shape: tuple[int, int, int], refused: bool) -> None:
    path = write_h5(tmp_path / "movie.h5", np.zeros(shape, np.int16))
    if refused:
        with pytest.raises(InputError, match=r"looks frames-last \(height, width, frames\)"):
            with open_movie(path):
                pass
    else:
        with open_movie(path) as (_, info):
            assert (info.n_frames, info.height, info.width) == shape
