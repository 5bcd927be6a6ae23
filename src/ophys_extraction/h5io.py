"""HDF5 helpers shared by every step: atomic writes, compressed datasets, and reading a 2-D dataset in row blocks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction.errors import InputError

# Arrays at least this large are gzip-compressed (docs/output.md).
COMPRESS_MIN_BYTES = 64 * 1024
# Rows of a (n_rois, frames) dataset are read this many bytes at a time, never the whole array.
ROW_BLOCK_BYTES = 64 * 2**20


@contextlib.contextmanager
def atomic_h5(path: str | Path) -> Iterator[h5py.File]:
    """Write an HDF5 file under a temporary name in the same folder, renamed into place only on success.

    A failure anywhere leaves no file at `path` (and removes the temporary one).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(path.parent, f"output folder cannot be created ({err.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise InputError(path.parent, "output folder is not writable")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_array(group: h5py.Group, name: str, data: np.ndarray, compress: bool = True) -> h5py.Dataset:
    """Create a dataset, gzip-compressed (level 4, shuffled) when it is large enough for that to pay off and
    `compress` is set."""
    data = np.asarray(data)
    if compress and data.nbytes >= COMPRESS_MIN_BYTES:
        return group.create_dataset(name, data=data, compression="gzip", compression_opts=4, shuffle=True)
    return group.create_dataset(name, data=data)


def iter_row_blocks(dset: h5py.Dataset, block_bytes: int = ROW_BLOCK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) blocks of a 2-D dataset, each at most about `block_bytes` bytes."""
    n_rows = dset.shape[0]
    row_bytes = max(1, int(np.prod(dset.shape[1:], dtype=np.int64)) * dset.dtype.itemsize)
    step = max(1, block_bytes // row_bytes)
    for start in range(0, n_rows, step):
        yield start, dset[start:start + step]


def attr_value(value: object) -> object:
    """HDF5-storable attribute: numpy scalars as Python numbers, strings (and paths) as UTF-8 str."""
    if isinstance(value, np.generic):
        value = value.item()
    return str(value) if isinstance(value, (str, Path)) else value
