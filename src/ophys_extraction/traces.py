"""Raw ROI traces F and neuropil traces Fneu in one streaming pass over the movie.

The same arithmetic as suite2p's `extraction.extract_traces`: F = frames @ (cell weights, lam / sum(lam) as
`create_masks` gives them), Fneu = frames @ (neuropil indicator) / neuropil pixel count. Here the masks are CSR
(rows = ROIs) and a numba kernel, 8 frames at a time, interleaves the frames pixel-major (one streaming pass) and
gathers only the mask pixels, straight from the movie's own dtype (no float32 copy of whole frames), summing in
float64 (int64 for the neuropil of integer movies: exact) and storing float32. Every value is the sequential sum
over one frame's mask pixels, so the result is bitwise independent of the chunk size and the thread count, and
agrees with suite2p's float32 torch products to float32 precision (tests/test_extraction.py).

Memory: three reused chunk buffers (one being read, one queued, one being reduced; `iter_chunks` blocks of about
16 MiB of float32 in whole HDF5 chunks, half that for int16; reusing them avoids page-faulting fresh arrays on every
chunk, which in a VM costs as much as the read), an 8-frame scratch copy, plus the (n_rois, frames) float32
outputs; nothing else grows with the number of frames.
With `threaded=True` a reader thread keeps the next chunk coming while the kernel (which releases the GIL) reduces
the current one, so reading and arithmetic overlap; the kernel itself spreads 8-frame groups over numba's threads
(numba.set_num_threads / NUMBA_NUM_THREADS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ophys_extraction.movie import iter_chunks, prefetch
from ophys_extraction.numba_cache import njit

# dtypes the kernel reads directly; others (float16, big-endian...) are read as float32 by iter_chunks.
KERNEL_DTYPES = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                         np.int64, np.uint64, np.float32, np.float64)}


@dataclass(frozen=True)
class TraceMasks:
    """Cell and neuropil masks as CSR arrays over flattened pixels (row k = ROI k)."""
    n_pixels: int
    cell_indptr: np.ndarray     # int64 (n_rois + 1,)
    cell_indices: np.ndarray    # int32 flat pixel index
    cell_weights: np.ndarray    # float64 holding suite2p's float32 lam / sum(lam)
    neu_indptr: np.ndarray      # int64 (n_rois + 1,)
    neu_indices: np.ndarray     # int32 flat pixel index
    order: np.ndarray           # int64 (n_rois,): ROIs in row-major order of their first pixel (cache locality)

    @property
    def n_rois(self) -> int:
        return self.cell_indptr.size - 1

    @classmethod
    def from_suite2p(cls, cell_masks: list, neuropil_masks: list, n_pixels: int) -> TraceMasks:
        """From suite2p's `create_masks` output: [(flat index, lam / sum(lam))] and [flat index]."""
        if len(cell_masks) != len(neuropil_masks):
            raise ValueError("one neuropil mask per cell mask expected")
        index_dtype = np.int32 if n_pixels < 2**31 else np.int64

        def csr(parts, dtype):
            sizes = np.array([len(p) for p in parts], np.int64)
            indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            values = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
            return indptr, values

        cell_indptr, cell_indices = csr([np.asarray(c[0]) for c in cell_masks], index_dtype)
        # suite2p multiplies by these weights in float32 (torch.Tensor): keep exactly those values
        _, cell_weights = csr([np.asarray(c[1]).astype(np.float32) for c in cell_masks], np.float64)
        neu_indptr, neu_indices = csr([np.asarray(n) for n in neuropil_masks], index_dtype)
        first = [int(np.min(c[0])) if len(c[0]) else (int(np.min(n)) if len(n) else n_pixels)
                 for c, n in zip(cell_masks, neuropil_masks)]
        order = np.argsort(np.asarray(first, np.int64), kind="stable").astype(np.int64)
        return cls(int(n_pixels), cell_indptr, cell_indices, cell_weights, neu_indptr, neu_indices, order)


GROUP = 8  # frames reduced together: 8 independent sums per mask pixel hide the gather latency


@njit(nogil=True)
def _reduce_group(frames, t, scratch, order, cell_indptr, cell_indices, cell_weights, neu_indptr, neu_indices, F,
                  Fneu, c, zero):
    """F[:, c:c + GROUP] and Fneu[:, c:c + GROUP] from frames[t:t + GROUP].

    The GROUP frames are first interleaved pixel-major into `scratch` (GROUP * n_pixels, one streaming pass), so
    the GROUP values of a mask pixel share one cache line (the frames themselves are a power-of-two stride apart
    and would fight for the same cache sets); then each ROI's GROUP sums are accumulated together. Each value is
    the sequential sum over the ROI's pixels (in mask order) of one frame, as `_reduce_frame` computes it.
    """
    n_pixels = frames.shape[1]
    f0 = frames[t]; f1 = frames[t + 1]; f2 = frames[t + 2]; f3 = frames[t + 3]  # noqa: E702
    f4 = frames[t + 4]; f5 = frames[t + 5]; f6 = frames[t + 6]; f7 = frames[t + 7]  # noqa: E702
    for p in range(n_pixels):
        o = GROUP * p
        scratch[o] = f0[p]; scratch[o + 1] = f1[p]; scratch[o + 2] = f2[p]  # noqa: E702
        scratch[o + 3] = f3[p]; scratch[o + 4] = f4[p]; scratch[o + 5] = f5[p]  # noqa: E702
        scratch[o + 6] = f6[p]; scratch[o + 7] = f7[p]  # noqa: E702
    for k in order:
        s0 = 0.0; s1 = 0.0; s2 = 0.0; s3 = 0.0; s4 = 0.0; s5 = 0.0; s6 = 0.0; s7 = 0.0  # noqa: E702
        for j in range(cell_indptr[k], cell_indptr[k + 1]):
            o = GROUP * cell_indices[j]
            w = cell_weights[j]
            s0 += w * scratch[o]; s1 += w * scratch[o + 1]; s2 += w * scratch[o + 2]  # noqa: E702
            s3 += w * scratch[o + 3]; s4 += w * scratch[o + 4]; s5 += w * scratch[o + 5]  # noqa: E702
            s6 += w * scratch[o + 6]; s7 += w * scratch[o + 7]  # noqa: E702
        F[k, c] = s0; F[k, c + 1] = s1; F[k, c + 2] = s2; F[k, c + 3] = s3  # noqa: E702
        F[k, c + 4] = s4; F[k, c + 5] = s5; F[k, c + 6] = s6; F[k, c + 7] = s7  # noqa: E702
        n = neu_indptr[k + 1] - neu_indptr[k]
        if n == 0:  # suite2p would give 0/0; an empty neuropil mask contributes nothing
            for g in range(GROUP):
                Fneu[k, c + g] = 0.0
            continue
        a0 = zero; a1 = zero; a2 = zero; a3 = zero; a4 = zero; a5 = zero; a6 = zero; a7 = zero  # noqa: E702
        for j in range(neu_indptr[k], neu_indptr[k + 1]):
            o = GROUP * neu_indices[j]
            a0 += scratch[o]; a1 += scratch[o + 1]; a2 += scratch[o + 2]; a3 += scratch[o + 3]  # noqa: E702
            a4 += scratch[o + 4]; a5 += scratch[o + 5]; a6 += scratch[o + 6]; a7 += scratch[o + 7]  # noqa: E702
        Fneu[k, c] = a0 / n; Fneu[k, c + 1] = a1 / n; Fneu[k, c + 2] = a2 / n  # noqa: E702
        Fneu[k, c + 3] = a3 / n; Fneu[k, c + 4] = a4 / n; Fneu[k, c + 5] = a5 / n  # noqa: E702
        Fneu[k, c + 6] = a6 / n; Fneu[k, c + 7] = a7 / n  # noqa: E702


@njit(nogil=True)
def _reduce_frame(fr, order, cell_indptr, cell_indices, cell_weights, neu_indptr, neu_indices, F, Fneu, c, zero):
    """F[:, c] and Fneu[:, c] from one frame: the same sums as _reduce_group."""
    for k in order:
        s0 = 0.0
        for j in range(cell_indptr[k], cell_indptr[k + 1]):
            s0 += cell_weights[j] * fr[cell_indices[j]]
        F[k, c] = s0
        n = neu_indptr[k + 1] - neu_indptr[k]
        if n == 0:
            Fneu[k, c] = 0.0
            continue
        a0 = zero
        for j in range(neu_indptr[k], neu_indptr[k + 1]):
            a0 += fr[neu_indices[j]]
        Fneu[k, c] = a0 / n


@njit(nogil=True, parallel=True)
def _reduce_block(frames, scratch, order, cell_indptr, cell_indices, cell_weights, neu_indptr, neu_indices, F,
                  Fneu, t0, zero):
    """F[:, t0 + t] and Fneu[:, t0 + t] for every frame t of `frames` (n, n_pixels); releases the GIL.

    Groups of GROUP frames are spread over numba's threads, each with its own row of `scratch`
    (n_threads, GROUP * n_pixels); leftover frames go one at a time. Every value is computed the same way
    whatever the thread or the grouping, so results do not depend on chunk boundaries or thread count.
    `zero` sets the neuropil accumulator type: int64 for integer movies (exact), float64 otherwise. ROIs are
    visited in `order` (spatial) so neighbouring masks share cached lines.
    """
    n_frames = frames.shape[0]
    n_groups = n_frames // GROUP
    for gi in numba.prange(n_groups):
        _reduce_group(frames, gi * GROUP, scratch[numba.get_thread_id()], order, cell_indptr, cell_indices,
                      cell_weights, neu_indptr, neu_indices, F, Fneu, t0 + gi * GROUP, zero)
    for t in range(n_groups * GROUP, n_frames):
        _reduce_frame(frames[t], order, cell_indptr, cell_indices, cell_weights, neu_indptr, neu_indices, F, Fneu,
                      t0 + t, zero)


def read_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype chunks are handed to the kernel in: the movie's own when numba reads it, else float32."""
    dtype = np.dtype(dtype)
    return dtype if dtype in KERNEL_DTYPES and dtype.isnative else np.dtype(np.float32)


def _accumulator_zero(dtype: np.dtype):
    """int64 sums for integer movies (exact; uint64 could overflow them), float64 otherwise."""
    exact_int = np.issubdtype(dtype, np.integer) and dtype != np.uint64
    return np.int64(0) if exact_int else np.float64(0)


def warm_up(dtype: np.dtype | type = np.int16) -> None:
    """Load (or compile) the kernel for movies of `dtype` now: the first call in a process costs ~0.5 s of numba
    start-up, independent of the movie."""
    dtype = read_dtype(dtype)
    masks = TraceMasks.from_suite2p([(np.array([0]), np.array([1.0], np.float32))], [np.array([1])], 2)
    out = np.zeros((1, GROUP + 1), np.float32)
    scratch = np.zeros((numba.get_num_threads(), GROUP * 2), dtype)
    _reduce_block(np.zeros((GROUP + 1, 2), dtype), scratch, masks.order, masks.cell_indptr, masks.cell_indices,
                  masks.cell_weights, masks.neu_indptr, masks.neu_indices, out, out.copy(), 0, _accumulator_zero(dtype))


def extract_traces(dset, masks: TraceMasks, n_frames_per_chunk: int, path: str = "movie",
                   threaded: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(F, Fneu), float32 (n_rois, n_frames), from a (frames, height, width) dataset read once in chunks."""
    n_frames, height, width = dset.shape
    if height * width != masks.n_pixels:
        raise ValueError(f"masks are for {masks.n_pixels} pixels, frames have {height * width}")
    F = np.zeros((masks.n_rois, n_frames), np.float32)
    Fneu = np.zeros((masks.n_rois, n_frames), np.float32)
    if masks.n_rois == 0:
        return F, Fneu
    dtype = read_dtype(dset.dtype)
    zero = _accumulator_zero(dtype)
    # Reused read buffers: one being reduced, one queued (depth 1), one being read by the reader thread.
    chunks = iter_chunks(dset, int(n_frames_per_chunk), path, dtype=dtype, buffers=3 if threaded else 1)
    threads = numba.get_num_threads()
    if threaded:
        chunks = prefetch(chunks, depth=1)
        # The reader thread keeps a core busy copying from the page cache: the reduction gets the others. On 2
        # cores, 1 reducing thread beside the reader was 1.3-1.8x faster than 2 (warm 10,000-frame movie).
        numba.set_num_threads(max(1, threads - 1))
    try:
        scratch = np.empty((numba.get_num_threads(), GROUP * height * width), dtype)
        for start, block in chunks:
            frames = block.reshape(block.shape[0], height * width)
            _reduce_block(frames, scratch, masks.order, masks.cell_indptr, masks.cell_indices, masks.cell_weights,
                          masks.neu_indptr, masks.neu_indices, F, Fneu, start, zero)
            del block, frames
    finally:
        numba.set_num_threads(threads)
    return F, Fneu
