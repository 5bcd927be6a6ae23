"""Neuropil correction: the mutual-information coefficient per ROI (docs/output.md, `neuropil_rcoef`), or suite2p's
fixed one.

For each ROI the coefficient r in `R_GRID` (0, 0.01, ..., 2) minimises the normalised mutual information between
`F - r * Fneu` and `Fneu`, exactly as `skimage.metrics.normalized_mutual_information(F - r * Fneu, Fneu, bins=100)`
does it (joint histogram from `np.histogramdd` with 100 bins over each variable's own min..max range).

Vectorised: one numba kernel fills the joint histograms of all ROIs and all 201 r values (ROIs in parallel) and
gets the three entropies from a `c log c` table (no logarithm per bin), with no numpy temporaries. The
binning replicates numpy's bit for bit (the same float64 `F - r * Fneu`, the same `linspace` edges, `searchsorted`
side='right' with the last edge closing the last bin), so every histogram equals skimage's. Only the final
floating-point summation order differs from skimage's (below 1e-10): whenever another r comes within `TIE_TOL`
of the minimum, those candidates are re-scored with skimage itself and the first minimum wins, as `np.argmin` does.
The r values are therefore identical to the per-ROI skimage loop (tests/test_extraction.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterator

import numba
import numpy as np

from ophys_extraction.numba_cache import njit

# The r grid of the original capsule (np.arange(0, 2 + 0.01, 0.01) has the same 201 values).
R_GRID = np.arange(0, 2.01, 0.01)
NMI_BINS = 100
# r values whose approximate NMI is within this of the minimum are re-scored exactly (approximation error < 1e-10).
TIE_TOL = 1e-9
# Mean of the r < 1 values replaces r >= 1; with fewer than MIN_R_COUNT such ROIs, FALLBACK_R is used instead.
MIN_R_COUNT = 5
FALLBACK_R = 0.8


@njit(nogil=True, error_model="numpy")
def _edges(lo, hi, nbins, out):
    """np.histogramdd's edges for one variable: _get_outer_edges, then np.linspace(lo, hi, nbins + 1), bit for bit."""
    if lo == hi:
        lo = lo - 0.5
        hi = hi + 0.5
    delta = hi - lo
    step = delta / nbins
    if step == 0:  # linspace's denormal branch
        for k in range(nbins + 1):
            out[k] = (k / nbins) * delta + lo
    else:
        for k in range(nbins + 1):
            out[k] = k * step + lo
    out[nbins] = hi


@njit(nogil=True, error_model="numpy")
def _bin_index(x, edges, scale, nbins):
    """Bin of x as np.histogramdd finds it: searchsorted(edges, x, 'right') - 1, the last edge closing the last bin.

    A multiplication gives the bin to within one; comparisons against the real edges make it exact.
    """
    k = int((x - edges[0]) * scale)
    if k < 0:
        k = 0
    elif k > nbins - 1:
        k = nbins - 1
    while k > 0 and edges[k] > x:
        k -= 1
    while k < nbins - 1 and edges[k + 1] <= x:
        k += 1
    return k


@njit(nogil=True, error_model="numpy")
def _bins_of(values, edges, nbins, out):
    scale = nbins / (edges[nbins] - edges[0])
    for t in range(values.size):
        out[t] = _bin_index(values[t], edges, scale, nbins)


@njit(nogil=True, error_model="numpy", fastmath={"nnan", "ninf", "nsz"})
def _residual(f, fn, r, out):
    """out = f - r * fn (float64, exactly as numpy: no FMA contraction); returns (min, max) of out.

    The fastmath flags only promise finite values (NaNs were set to 0), which lets the min/max vectorise.
    """
    lo = np.inf
    hi = -np.inf
    for t in range(f.size):
        v = f[t] - r * fn[t]
        out[t] = v
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@njit(nogil=True, error_model="numpy")
def _min_max(values):
    lo = values[0]
    hi = values[0]
    for v in values:
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@njit(nogil=True, error_model="numpy")
def _nmi_row(f, fn, r_grid, nbins, clogc, joint, out):
    """out[j] = approximate NMI(f - r_grid[j] * fn, fn); NaN where skimage gives NaN.

    `clogc[c] = c log c`: the entropy of counts c over N samples is log N - sum(c log c) / N. The joint counts
    (`joint`: zeros, uint16 when frames < 65536 so all 100 x 100 stay in L1 cache, padded to a multiple of 4)
    are filled, summed through the table (the residual's marginal from their row sums, not counted per sample)
    and cleared. NaN (0/0 in skimage) when all samples
    fall in a single joint bin, i.e. both marginals have a single occupied bin.
    """
    n_t = f.size
    n_cells = nbins * nbins
    log_n = np.log(n_t)
    edges = np.empty(nbins + 1)
    lo, hi = _min_max(fn)
    _edges(lo, hi, nbins, edges)
    bn = np.empty(n_t, np.int64)
    _bins_of(fn, edges, nbins, bn)
    counts = np.zeros(nbins, np.int64)
    for t in range(n_t):
        counts[bn[t]] += 1
    s_n = 0.0
    occupied_n = 0
    for k in range(nbins):
        s_n += clogc[counts[k]]
        occupied_n += counts[k] > 0
    h_n = log_n - s_n / n_t

    fc = np.empty(n_t)
    for j in range(r_grid.size):
        lo, hi = _residual(f, fn, r_grid[j], fc)
        _edges(lo, hi, nbins, edges)
        scale = nbins / (edges[nbins] - edges[0])
        for t in range(n_t):
            joint[_bin_index(fc[t], edges, scale, nbins) * nbins + bn[t]] += 1
        # One pass over the joint counts gives the joint entropy sum and, from its row sums, the marginal's.
        s_c = 0.0
        occupied_c = 0
        s0 = 0.0; s1 = 0.0; s2 = 0.0; s3 = 0.0  # noqa: E702
        for k in range(nbins):
            row = 0
            for c in range(k * nbins, (k + 1) * nbins):
                row += joint[c]
            s_c += clogc[row]
            occupied_c += row > 0
        for c in range(0, n_cells, 4):
            s0 += clogc[joint[c]]; s1 += clogc[joint[c + 1]]  # noqa: E702
            s2 += clogc[joint[c + 2]]; s3 += clogc[joint[c + 3]]  # noqa: E702
        joint[:] = 0
        if occupied_c == 1 and occupied_n == 1:
            out[j] = np.nan
        else:
            out[j] = (h_n + log_n - s_c / n_t) / (log_n - (s0 + s1 + s2 + s3) / n_t)


@njit(nogil=True, error_model="numpy")
def _row_float64(row, out):
    """out = row as float64 with NaN set to 0 (exact: float32 -> float64 does not round)."""
    for t in range(row.size):
        v = np.float64(row[t])
        out[t] = 0.0 if np.isnan(v) else v


@njit(nogil=True, error_model="numpy", parallel=True)
def _nmi_table(F, Fneu, r_grid, nbins, clogc, count_type):
    """Approximate NMI(F - r * Fneu, Fneu) for every ROI (rows, in parallel) and r (columns); see _nmi_row.
    `count_type` (an empty array) gives the dtype of the joint counts. Rows are converted to float64 one at a time
    (per thread), so memory does not hold float64 copies of the whole F and Fneu."""
    n_rois, n_t = F.shape
    out = np.empty((n_rois, r_grid.size))
    for i in numba.prange(n_rois):
        joint = np.zeros(nbins * nbins + 4, count_type.dtype)
        f = np.empty(n_t)
        fn = np.empty(n_t)
        _row_float64(F[i], f)
        _row_float64(Fneu[i], fn)
        _nmi_row(f, fn, r_grid, nbins, clogc, joint, out[i])
    return out


def _clogc(n: int) -> np.ndarray:
    """c log c for c = 0..n (0 log 0 = 0)."""
    c = np.arange(n + 1, dtype=np.float64)
    out = np.zeros_like(c)
    out[1:] = c[1:] * np.log(c[1:])
    return out


def _clean(traces: np.ndarray) -> np.ndarray:
    """float64 copy with NaNs set to 0 (exact: float32 -> float64 does not round)."""
    out = np.array(traces, dtype=np.float64, copy=True)
    out[np.isnan(out)] = 0
    return out


def exact_nmi(f: np.ndarray, fneu: np.ndarray, r: float, bins: int = NMI_BINS) -> float:
    """The reference score: skimage's NMI of f - r * fneu and fneu (float64 inputs as _clean gives them)."""
    from skimage.metrics import normalized_mutual_information
    return float(normalized_mutual_information(f - r * fneu, fneu, bins=bins))


def mutual_info_r(F: np.ndarray, Fneu: np.ndarray, r_grid: np.ndarray = R_GRID, bins: int = NMI_BINS,
                  return_stats: bool = False):
    """Per ROI, the r of `r_grid` minimising NMI(F - r * Fneu, Fneu) (first one on ties, as np.argmin).

    F, Fneu: (n_rois, frames). Returns float64 (n_rois,); with return_stats also a dict with the number of ROIs
    whose minimum needed skimage's exact scores to break a near-tie.
    """
    F = np.atleast_2d(np.asarray(F))
    Fneu = np.atleast_2d(np.asarray(Fneu))
    if F.dtype != Fneu.dtype or F.dtype not in (np.float32, np.float64):
        F, Fneu = F.astype(np.float64), Fneu.astype(np.float64)
    F, Fneu = np.ascontiguousarray(F), np.ascontiguousarray(Fneu)
    if F.shape != Fneu.shape:
        raise ValueError(f"F {F.shape} and Fneu {Fneu.shape} differ in shape")
    n_rois, n_t = F.shape
    r_grid = np.ascontiguousarray(r_grid, dtype=np.float64)
    result = np.zeros(n_rois)
    stats = {"exact_rescored_rois": 0, "exact_scores": 0}
    if n_rois and n_t:
        count_type = np.zeros(0, np.uint16 if n_t < 2**16 else np.int64)
        table = _nmi_table(F, Fneu, r_grid, int(bins), _clogc(n_t), count_type)
        for i in range(n_rois):
            row = table[i]
            nan = np.flatnonzero(np.isnan(row))
            if nan.size:  # np.argmin returns the first NaN; NaN here is exactly skimage's 0/0 case
                result[i] = r_grid[nan[0]]
                continue
            cand = np.flatnonzero(row <= row.min() + TIE_TOL)
            if cand.size > 1:
                f, fn = _clean(F[i]), _clean(Fneu[i])
                exact = [exact_nmi(f, fn, r_grid[j], bins) for j in cand]
                stats["exact_rescored_rois"] += 1
                stats["exact_scores"] += len(cand)
                result[i] = r_grid[cand[int(np.argmin(exact))]]
            else:
                result[i] = r_grid[cand[0]]
    return (result, stats) if return_stats else result


def warm_up() -> None:
    """Load (or compile) the NMI kernel for EXTRACT's float32 traces, with the joint counts of movies below and
    from 2**16 frames on (uint16, int64)."""
    traces = np.zeros((1, 4), np.float32)
    for count_type in (np.uint16, np.int64):
        _nmi_table(traces, traces, R_GRID, NMI_BINS, _clogc(traces.shape[1]), np.zeros(0, count_type))


def replace_high_r(raw_r: np.ndarray, min_count: int = MIN_R_COUNT, fallback: float = FALLBACK_R) -> np.ndarray:
    """r >= 1 becomes the mean of the r < 1 values, or `fallback` if fewer than `min_count` ROIs have r < 1."""
    raw_r = np.asarray(raw_r, dtype=np.float64)
    low = raw_r < 1
    mean_r = float(np.mean(raw_r[low])) if low.sum() >= min_count else fallback
    r = raw_r.copy()
    r[~low] = mean_r
    return r


def suite2p_neuropil_coefficient() -> float:
    """suite2p's fixed neuropil coefficient (settings['extraction']['neuropil_coefficient'], 0.7 in suite2p 1.1)."""
    from suite2p.parameters import default_settings
    return float(default_settings()["extraction"]["neuropil_coefficient"])


def iter_corrected(F: np.ndarray, Fneu: np.ndarray, r: np.ndarray,
                   block_rows: int = 64) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, F[rows] - r[rows] * Fneu[rows]) in blocks of ROIs: computed in float64, returned as float32, so
    neither the float64 temporaries nor the corrected traces of all ROIs need to be in memory at once."""
    F = np.asarray(F)
    Fneu = np.asarray(Fneu)
    r = np.asarray(r, dtype=np.float64).reshape(-1, 1)
    for i in range(0, F.shape[0], block_rows):
        rows = slice(i, min(i + block_rows, F.shape[0]))
        yield rows, (F[rows] - r[rows] * Fneu[rows]).astype(np.float32)


def coefficients(F: np.ndarray, Fneu: np.ndarray, use_suite2p: bool = False,
                 neucoeff: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(r used per ROI, mutual-information r before the replacement rule, or None with suite2p's fixed one)."""
    n_rois = F.shape[0]
    if use_suite2p:
        coeff = suite2p_neuropil_coefficient() if neucoeff is None else float(neucoeff)
        return np.full(n_rois, coeff), None
    raw_r = mutual_info_r(F, Fneu)
    return replace_high_r(raw_r), raw_r
