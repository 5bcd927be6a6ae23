"""Lazy, validated access to a movie: an HDF5 file with a 3-D `data` dataset (frames, height, width).

Nothing here loads a whole movie; `iter_chunks` yields blocks of frames whose size depends only on the frame size.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction.errors import InputError

DATASET = "data"
# Bytes of float32 frames per read (the movie is read in its own dtype, so an int16 chunk is half this).
# Measured on 512 x 512 int16 page-cache reads: 128-256 MiB reads spend most of their time page-faulting fresh
# buffers, ~3x slower than 4-16 MiB reads that malloc reuses and that stay in the CPU cache for the next step.
DEFAULT_CHUNK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class MovieInfo:
    path: Path
    n_frames: int
    height: int
    width: int
    dtype: np.dtype


def validate_dataset(path: Path, dset: object) -> MovieInfo:
    """Check that `dset` is a usable movie; raise InputError naming `path` and the first problem found."""
    if not isinstance(dset, h5py.Dataset):
        raise InputError(path, f"'{DATASET}' is not a dataset")
    if dset.ndim != 3:
        raise InputError(path, f"dataset '{DATASET}' has rank {dset.ndim} (shape {dset.shape}); "
                               "expected 3 (frames, height, width)")
    n_frames, height, width = dset.shape
    if n_frames < 1:
        raise InputError(path, f"dataset '{DATASET}' has zero frames")
    if height < 1 or width < 1:
        raise InputError(path, f"dataset '{DATASET}' has empty frames (shape {dset.shape})")
    if not (np.issubdtype(dset.dtype, np.integer) or np.issubdtype(dset.dtype, np.floating)):
        raise InputError(path, f"dataset '{DATASET}' has non-numeric dtype {dset.dtype}; expected integer or float")
    return MovieInfo(Path(path), int(n_frames), int(height), int(width), np.dtype(dset.dtype))


@contextlib.contextmanager
def open_movie(path: str | Path) -> Iterator[tuple[h5py.Dataset, MovieInfo]]:
    """Open a movie read-only and validate it; yields the lazy h5py dataset and its MovieInfo."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an HDF5 movie file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(path, f"cannot be read as HDF5 (unreadable, truncated or corrupt: {reason})") from None
    with handle:
        if DATASET not in handle:
            raise InputError(path, f"no '{DATASET}' dataset (found: {', '.join(sorted(handle.keys())) or 'nothing'})")
        dset = handle[DATASET]
        yield dset, validate_dataset(path, dset)


def chunk_frames(info: MovieInfo, dset: h5py.Dataset | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Frames per read: about `chunk_bytes` of float32, rounded to whole HDF5 chunks so no chunk is read twice."""
    frames = max(1, chunk_bytes // (info.height * info.width * 4))
    hdf5_chunk = dset.chunks[0] if dset is not None and dset.chunks else 1
    if hdf5_chunk > 1:
        frames = max(hdf5_chunk, frames // hdf5_chunk * hdf5_chunk)
    return int(min(frames, info.n_frames))


def iter_chunks(dset: h5py.Dataset, n_frames_per_chunk: int, path: str | Path = "movie",
                dtype: np.dtype | type = np.float32, *, buffers: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_frame, block) over the movie in order; each block is (n, height, width) of `dtype`.

    Blocks are read straight from the file. Non-finite values are bad input: a plane with NaN or inf pixels
    has no meaningful traces, so the read stops with an error naming the file and the first bad frame.

    `buffers` > 0: blocks are read (`read_direct`) into a ring of that many preallocated arrays instead of fresh
    ones, so a yielded block is only valid until `buffers` more blocks have been yielded. Fresh arrays of
    hundreds of MiB are page-faulted in on every chunk, which in a VM costs about as much as the read itself.
    """
    n_total = dset.shape[0]
    check_finite = np.issubdtype(dset.dtype, np.floating)
    dtype = np.dtype(dtype)
    shape = (min(n_frames_per_chunk, n_total), *dset.shape[1:])
    ring = [np.empty(shape, dset.dtype) for _ in range(buffers)]
    converted = [np.empty(shape, dtype) for _ in range(buffers)] if ring and dtype != dset.dtype else []
    for index, start in enumerate(range(0, n_total, n_frames_per_chunk)):
        stop = min(start + n_frames_per_chunk, n_total)
        try:
            if ring:
                raw = ring[index % buffers][: stop - start]
                dset.read_direct(raw, np.s_[start:stop], np.s_[0:stop - start])
            else:
                raw = dset[start:stop]
        except OSError as err:
            raise InputError(path, f"cannot read frames {start}-{stop - 1} (truncated or corrupt: "
                                   f"{str(err).splitlines()[0]})") from None
        if check_finite and not np.isfinite(raw).all():
            bad = start + int(np.flatnonzero(~np.isfinite(raw).reshape(raw.shape[0], -1).all(axis=1))[0])
            raise InputError(path, f"frame {bad} contains NaN or inf values")
        if converted:
            out = converted[index % buffers][: stop - start]
            np.copyto(out, raw, casting="unsafe")
            yield start, out
        else:
            yield start, raw.astype(dtype, copy=False)


def prefetch(chunks: Iterator, depth: int = 1) -> Iterator:
    """Iterate `chunks` in a background thread, `depth` items ahead; exceptions surface in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run():
        try:
            for item in chunks:
                if not put(item):
                    return
            put((done, None))
        except BaseException as err:  # handed to the consumer, re-raised there
            put((done, err))

    thread = threading.Thread(target=run, name="movie-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item[0] is done:
                if item[1] is not None:
                    raise item[1]
                return
            yield item
            del item
    finally:
        stop.set()
        thread.join()
