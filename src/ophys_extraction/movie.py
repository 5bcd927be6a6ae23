"""Lazy, validated access to a movie: an HDF5 file with a 3-D `data` dataset (frames, height, width).

Nothing here loads a whole movie; `iter_chunks` yields blocks of frames whose size depends only on the frame size.
Where the values are not stored in the file itself (a virtual dataset, an external link, external raw storage),
every file they come from is checked before the first read: HDF5 reads a missing virtual source, or the missing end
of an external raw file, as fill-value zeros, which would pass for a plane without cells.
"""

from __future__ import annotations

import contextlib
import math
import os
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
# A movie with fewer temporal bins than this gets a warning: the max projection and the max/mean ratio are the
# maximum over the high-pass-filtered bins (all zero for one bin, noise for a few).
MIN_BINS = 10
# ... or fewer frames than this: the neuropil coefficient is fitted on 100-bin histograms of each trace.
MIN_FRAMES = 100
# Frame rates outside this range get a warning (not an error): slower than 0.5 Hz cannot follow calcium transients;
# the fastest two-photon systems image about 1 kHz (a value of several kHz is usually a line rate).
PLAUSIBLE_FRAME_RATE_HZ = (0.5, 1000.0)
# An integer movie with more than this share of its pixel-frames at the dtype's maximum gets a warning: those
# pixels were clipped (detector or digitiser saturation), so traces through them are flat-topped. 1e-4 is, in a
# 512 x 512 movie, 26 pixels saturated in every frame, or a 100-pixel cell in a quarter of the frames.
SATURATED_SHARE = 1e-4
# A movie whose first two axes are equal and whose last is more than this many times longer is refused as
# frames-last (height, width, frames): read frames-first it would be frames this many times wider than tall, which
# no two-photon scan makes, and a frame count equal to the frame height by chance besides.
FRAMES_LAST_ASPECT = 2
# Virtual sources that are themselves virtual: how deep the chain is followed before it is refused.
MAX_SOURCE_DEPTH = 8


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
    if n_frames == height and width > FRAMES_LAST_ASPECT * height:
        raise InputError(path, f"dataset '{DATASET}' has shape {dset.shape}, which looks frames-last (height, width, "
                               f"frames): read as (frames, height, width) it would be {n_frames} frames of "
                               f"{height} x {width} px; write the movie as (frames, height, width)")
    return MovieInfo(Path(path), int(n_frames), int(height), int(width), np.dtype(dset.dtype))


def recording_warnings(info: MovieInfo, frame_rate: float, n_bins: int, bin_duration: float,
                       saturated: int = 0) -> list[str]:
    """One line per way the recording is too short, its frame rate implausible or too many of its pixel-frames
    (`saturated`: how many are at the integer dtype's maximum) saturated (warned, never refused)."""
    found = []
    total = info.n_frames * info.height * info.width
    if saturated > SATURATED_SHARE * total:
        found.append(f"{saturated / total:.3%} of the pixel-frames ({saturated} of {total}) are at {info.dtype}'s "
                     f"maximum {np.iinfo(info.dtype).max}, more than {SATURATED_SHARE:.2%}: saturated pixels, so "
                     "traces through them are flat-topped (lower the laser power or detector gain)")
    if n_bins < MIN_BINS:
        found.append(f"{info.n_frames} frames at {frame_rate:g} Hz make {n_bins} bin(s) of {bin_duration:g} s, fewer "
                     f"than {MIN_BINS}: the max projection, max/mean ratio and correlation image (--anatomical_only 1, 4, "
                     "5) come from the high-pass-filtered bins, all zero for one bin and noise for a few")
    if info.n_frames < MIN_FRAMES:
        found.append(f"{info.n_frames} frames, fewer than {MIN_FRAMES}: the neuropil coefficient is fitted on "
                     f"{MIN_FRAMES}-bin histograms of each trace, so it is unreliable")
    low, high = PLAUSIBLE_FRAME_RATE_HZ
    if not low <= frame_rate <= high:
        found.append(f"frame rate {frame_rate:g} Hz is outside {low:g}-{high:g} Hz, the range of two-photon imaging; "
                     "check --frame_rate or the processing.json/session.json it came from")
    return found


@contextlib.contextmanager
def open_movie(path: str | Path) -> Iterator[tuple[h5py.Dataset, MovieInfo]]:
    """Open a movie read-only and validate it; yields the lazy h5py dataset and its MovieInfo.

    The file is opened by its real path, so that sources named relative to it (virtual datasets, external links,
    external raw files) are found beside it even when `path` is a symlink in a Nextflow work folder; errors and
    `MovieInfo.path` name that real file too (the user's, not the work folder's link).
    """
    path = Path(path)
    if path.is_symlink() and path.exists():
        path = path.resolve()
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an HDF5 movie file")
    handle = _open_h5(path, path.resolve(), "cannot be read as HDF5")
    with handle:
        dset = _open_data(path, handle)
        info = validate_dataset(path, dset)
        check_sources(path, dset)
        yield dset, info


def _open_h5(subject: Path, path: Path, problem: str) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(subject, f"{problem} (unreadable, truncated or corrupt: {reason})") from None


def _open_data(path: Path, handle: h5py.File, name: str = DATASET) -> h5py.Dataset:
    """`handle[name]` as a dataset, with external raw files found beside the file that holds it (HDF5 would look in
    the current folder, which under Nextflow is the task's work folder)."""
    link = handle.get(name, getlink=True)
    if link is None:
        raise InputError(path, f"no '{name}' dataset (found: {', '.join(sorted(handle.keys())) or 'nothing'})")
    try:
        kind = handle.get(name, getclass=True)  # opens and closes the object: a dataset reopens with its prefix
    except (KeyError, RuntimeError):  # h5py raises either for a link whose target cannot be opened
        if isinstance(link, h5py.ExternalLink):
            where = "cannot be opened or has no such object" if _find_file(
                link.filename, handle.filename, "HDF5_EXT_PREFIX") else "does not exist"
            raise InputError(path, f"'{name}' is an external link to {link.path} in {link.filename}, which "
                                   f"{where} (looked beside {handle.filename})") from None
        raise InputError(path, f"no '{name}' dataset ('{name}' is a link to a missing object)") from None
    if kind is not h5py.Dataset:
        raise InputError(path, f"'{name}' is not a dataset")
    access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    access.set_efile_prefix(b"${ORIGIN}")
    return h5py.Dataset(h5py.h5d.open(handle.id, name.encode(), dapl=access))


def _find_file(name: str, beside: str, prefix_variable: str) -> Path | None:
    """Where HDF5 finds the file of a virtual source or external link, or None: the name itself if absolute, then
    its base name under each folder of `prefix_variable`, beside the referring file `beside`, in the current
    folder."""
    named = Path(name)
    base = Path(named.name) if named.is_absolute() else named
    folders = [Path(p) for p in os.environ.get(prefix_variable, "").split(":") if p]
    candidates = [named] if named.is_absolute() else []
    candidates += [folder / base for folder in (*folders, Path(beside).parent, Path.cwd())]
    return next((c for c in candidates if c.is_file()), None)


def check_sources(path: Path, dset: h5py.Dataset, depth: int = 0) -> None:
    """Every file `dset`'s values come from exists, is readable, holds what is mapped from it, and needs no HDF5
    filter this installation lacks; else one InputError naming the movie and the missing source."""
    check_filters(path, dset)
    if dset.is_virtual:
        if depth >= MAX_SOURCE_DEPTH:
            raise InputError(path, f"virtual dataset sources nest more than {MAX_SOURCE_DEPTH} deep")
        for source in dset.virtual_sources():
            _check_virtual_source(path, dset, source, depth)
    if dset.external:
        _check_external_files(path, dset)


def _check_virtual_source(path: Path, dset: h5py.Dataset, source, depth: int) -> None:
    what = f"virtual dataset '{DATASET}' maps frames from {source.dset_name} in {source.file_name}"
    if "%" in source.file_name:
        raise InputError(path, f"{what}, a printf-style file-name pattern this pipeline does not expand: write the "
                               "movie as one dataset")
    src_file = Path(dset.file.filename) if source.file_name == "." else _find_file(
        source.file_name, dset.file.filename, "HDF5_VDS_PREFIX")
    if src_file is None:
        raise InputError(path, f"{what}, which does not exist (looked beside {dset.file.filename}); HDF5 would "
                               "read those frames as zeros")
    with _open_h5(path, src_file, f"{what}, which cannot be read as HDF5") as handle:
        if source.dset_name not in handle:
            raise InputError(path, f"{what}, which has no dataset {source.dset_name}; HDF5 would read those frames "
                                   "as zeros")
        src = _open_data(path, handle, source.dset_name)
        space = source.src_space
        if space.get_select_type() == h5py.h5s.SEL_ALL:
            short = math.prod(src.shape) < source.vspace.get_select_npoints()
        else:
            short = any(end >= size for end, size in zip(space.get_select_bounds()[1], src.shape))
        if short:
            raise InputError(path, f"{what}, whose dataset (shape {src.shape}) is smaller than the region mapped "
                                   "from it; HDF5 would read the rest as zeros")
        check_sources(path, src, depth + 1)


def _check_external_files(path: Path, dset: h5py.Dataset) -> None:
    """Each external raw file holds its whole segment: HDF5 reads a short one's missing end as zeros. Files are
    found as `_open_data` told HDF5 to: under HDF5_EXTFILE_PREFIX if set, else beside the HDF5 file."""
    prefix = os.environ.get("HDF5_EXTFILE_PREFIX") or "${ORIGIN}"
    folder = Path(prefix.replace("${ORIGIN}", str(Path(dset.file.filename).parent)))
    remaining = dset.size * dset.dtype.itemsize
    for name, offset, size in dset.external:
        raw = Path(name) if Path(name).is_absolute() else folder / name
        what = f"dataset '{DATASET}' stores its values in the external file {raw}"
        if not raw.is_file() or not os.access(raw, os.R_OK):
            raise InputError(path, f"{what}, which does not exist or is not readable")
        needed = min(size, remaining)
        if raw.stat().st_size < offset + needed:
            raise InputError(path, f"{what}, which has {raw.stat().st_size} bytes, fewer than the {offset + needed} "
                                   "needed; HDF5 would read the rest as zeros")
        remaining -= needed


def check_filters(path: Path, dset: h5py.Dataset) -> None:
    """Every compression filter of `dset` can be decoded here (hdf5plugin registers blosc, bitshuffle, zstd, lz4,
    ... when imported; it is imported only when a filter is missing)."""
    plist = dset.id.get_create_plist()
    filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
    missing = [(code, name) for code, _, _, name in filters if not h5py.h5z.filter_avail(code)]
    if missing:
        with contextlib.suppress(ImportError):
            import hdf5plugin  # noqa: F401 - registers its filters with HDF5
        missing = [(code, name) for code, name in missing if not h5py.h5z.filter_avail(code)]
    if missing:
        code, name = missing[0]
        label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        raise InputError(path, f"dataset '{DATASET}' is compressed with filter {label or 'unnamed'} (HDF5 filter id "
                               f"{code}), which this installation cannot read: install hdf5plugin (pip install "
                               "hdf5plugin) or point HDF5_PLUGIN_PATH at a folder with that filter")


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
