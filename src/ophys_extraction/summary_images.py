"""Summary images of a movie in one streaming pass (docs/output.md `meanImg` and `maxImg`, docs/architecture.md
`summary.h5`).

What suite2p 1.1.0 computes for anatomical (Cellpose) detection, and how it is reproduced here:

* Binning (`suite2p/detection/detect.py`, `detection_wrapper` + `bin_movie`): `bin_size` frames per bin, each bin
  the float32 mean of consecutive frames, `n_bins = n_frames // bin_size` (the partial tail bin is dropped). Like
  Allen's capsule, `bin_size = round(bin_duration * frame_rate)` (half to even, as suite2p's `np.round(tau * fs)`)
  and `nbins = n_frames // bin_size`, so suite2p's 5000-bin cap never applies. Deviation: suite2p's `bin_movie`
  bins inside 500-frame read batches, so when `bin_size` does not divide 500 it drops the last `500 % bin_size`
  frames of every batch, it may skip whole batches (`n_batches = nbins // (500 // bin_size)`), and it divides by
  zero for `bin_size > 500`; here bins are consecutive frames of the whole movie (identical for movies of up to 500
  frames, and whenever suite2p's batches line up).
* `mean_binned = mov.mean(axis=0)` of the binned movie (after PCA denoising if enabled): the "meanImg" that
  suite2p's anatomical detection divides the max projection by (`anatomical.select_rois`).
* Temporal high-pass (`detection/utils.py`, `temporal_high_pass_filter(mov, width=highpass_time)`): the default
  `highpass_time` is 100 bins, and widths >= 10 use `hp_rolling_mean_filter`, which subtracts from each
  non-overlapping window of 100 bins that window's mean (not a Gaussian). So the max projection is
  `max over windows of (max of the window - mean of the window)`: computed while streaming, with no temporary
  copy of the binned movie. float32 subtraction is monotonic, so this equals suite2p's `max(mov - mean)` bit for bit.
* `max_mean_ratio = log(max(1e-3, max_proj / max(1e-3, mean_binned)))` (`anatomical.select_rois`).
* `meanImg`: the mean of all frames of the movie (what suite2p's registration stores as `ops["meanImg"]`), float64
  accumulation, float32 output. (The binned mean above differs from it only by the dropped tail frames.)
* `meanImgE` (`registration/register.py` -> `registration/utils.py: highpass_mean_image(meanImg, aspect=1)`):
  Cellpose's `normalize_img(img, sharpen_radius=3)` (subtract a Gaussian surround of sigma 3 by FFT, with Cellpose's
  own kernel grid, then 1st-99th percentile normalisation) clipped to [0, 1]. Reimplemented with numpy (float64 FFT)
  so this step imports neither torch nor suite2p; it matches suite2p's float32 torch result to ~1e-6.
* `corrImg` (not suite2p's; docs/output.md): per pixel, the mean Pearson correlation with its 8 neighbours of the same
  binned movie, high-passed the same way (each window of `highpass_time` bins centred on its own mean), so cells that
  fire stand out whatever their brightness. It uses the summary bins (`bin_duration`), not shorter ones: on the
  shared real movie (600 frames at 7 Hz) as many labelled cells stand a background s.d. above their ring at 26-frame
  bins as at 7-frame bins (40 and 42 of 196; 20 in the mean image), and the step stays one pass at no extra per-frame
  work. Accumulated per window in float64 (sums of x, x^2 and x times each neighbour), centred when the window
  closes. With `--denoise` it is computed from the binned movie before denoising.
* `--denoise` (`detection/denoise.py: pca_denoise(mov, block_size=(64, 64), n_comps_frac=0.5)`): overlapping blocks
  from `registration/nonrigid.make_blocks`, per block a sklearn PCA (`random_state=0`) reconstruction of the
  mean-subtracted binned movie, blended with `spatial_taper(Lyb // 4, Lyb, Lxb)` weights. The binned movie goes to a
  temporary HDF5 file during the pass; then each block is fitted once (its low-rank factors are kept in the temp
  file) and the blended reconstruction, high-pass and max are computed per spatial tile. Same blocks, same PCA fits,
  same blending order as suite2p; only the final `scores @ components` product is evaluated per tile-sized piece, so
  the result is only guaranteed to match suite2p to float32 rounding (it was bit-identical on a 2000 x 512 x 512
  test movie). BLAS is limited to one thread there (see `_denoised_projections`).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction.errors import InputError
from ophys_extraction.movie import MovieInfo, chunk_frames, iter_chunks, prefetch
from ophys_extraction.options import SUMMARY_IMAGES as _TABLE
from ophys_extraction.segmentation_input import IMAGE_MODES

HIGHPASS_TIME = 100  # suite2p 1.1.0 settings["detection"]["highpass_time"] (bins; >= 10 means rolling-mean filter)
DENOISE_BLOCK_SIZE = (64, 64)  # suite2p 1.1.0 settings["detection"]["block_size"]
DENOISE_N_COMPS_FRAC = 0.5  # hard-coded by suite2p's detection_wrapper
SHARPEN_RADIUS = 3  # registration.utils.highpass_mean_image
# Spatial tiles of the binned movie processed at once with --denoise (n_bins x tile x tile float32).
DEFAULT_TILE_BYTES = 64 * 2**20
_SLAB_BYTES = 32 * 2**20  # bins buffered before each write to the temporary file
_TMP_CHUNK_EDGE = 32  # spatial chunk edge of the temporary binned movie


@dataclass(frozen=True)
class SummaryImages:
    mean_img: np.ndarray  # float32 (H, W): mean of all frames
    max_img: np.ndarray  # float32 (H, W): max projection of the high-pass-filtered binned movie
    max_mean_ratio: np.ndarray  # float32 (H, W)
    mean_img_e: np.ndarray  # float32 (H, W): enhanced mean image
    mean_binned: np.ndarray  # float32 (H, W): mean of the (denoised) binned movie, the ratio's denominator
    corr_img: np.ndarray  # float32 (H, W): mean correlation of each pixel with its 8 neighbours
    bin_size: int
    n_bins: int
    saturated: int = 0  # pixel-frames at the integer dtype's maximum (0 for a float movie)


def bin_size_for(bin_duration: float, frame_rate: float, n_frames: int) -> int:
    """Frames per bin: round(bin_duration * frame_rate), at least 1 and at most n_frames (a movie shorter than one
    bin becomes a single bin rather than an empty binned movie, which suite2p cannot process either)."""
    size = max(1, int(round(bin_duration * frame_rate)))
    return int(min(size, n_frames))


def max_mean_ratio(max_img: np.ndarray, mean_binned: np.ndarray) -> np.ndarray:
    """suite2p anatomical.select_rois, img='max_proj / meanImg'."""
    return np.log(np.maximum(1e-3, max_img / np.maximum(1e-3, mean_binned)))


# ---------------------------------------------------------------------------------------------------------------
# enhanced mean image
# ---------------------------------------------------------------------------------------------------------------

def _cellpose_gaussian_kernel(sigma: float, ly: int, lx: int) -> np.ndarray:
    """cellpose.transforms.gaussian_kernel, float64 (its grid spans -Ly/2..Ly/2+1 on both axes, as written)."""
    y = np.linspace(-ly / 2, ly / 2 + 1, ly)
    x = np.linspace(-ly / 2, ly / 2 + 1, lx)
    kernel = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _normalize99(img: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """cellpose.transforms.normalize99(copy=False, downsample=True) on a 2-D float32 image."""
    sample = img
    if img.size > 224**3:
        sample = img[::max(1, img.shape[0] // 224), ::max(1, img.shape[1] // 224)]
    x01 = np.percentile(sample, lower)
    x99 = np.percentile(sample, upper)
    if x99 - x01 > 1e-3:
        img -= x01
        img /= x99 - x01
    else:
        img[:] = 0
    return img


def enhanced_mean_image(mean_img: np.ndarray, sharpen_radius: float = SHARPEN_RADIUS) -> np.ndarray:
    """suite2p registration.utils.highpass_mean_image(mean_img, aspect=1.0): Cellpose's
    normalize_img(sharpen_radius=3) (surround subtraction by FFT, 1-99 percentile normalisation), clipped to [0, 1]."""
    ly, lx = mean_img.shape
    kernel = -_cellpose_gaussian_kernel(sharpen_radius, ly, lx)
    kernel[ly // 2, lx // 2] = 1
    spectrum = np.fft.rfft2(mean_img.astype(np.float64)) * np.conj(np.fft.rfft2(kernel))
    filtered = np.fft.irfft2(spectrum, s=(ly, lx))  # = real(ifft2(fft2(img) * conj(fft2(kernel))))
    img = np.fft.fftshift(filtered).astype(np.float32)
    if np.ptp(img) > 0:
        img = _normalize99(img)
    return np.clip(img, 0, 1)


# ---------------------------------------------------------------------------------------------------------------
# correlation image
# ---------------------------------------------------------------------------------------------------------------

# (dy, dx) of half the 8 neighbours: each neighbouring pair of pixels once; its mirror gives the other half.
NEIGHBOUR_SHIFTS = ((0, 1), (1, -1), (1, 0), (1, 1))


def _pair_slices(height: int, width: int, dy: int, dx: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(pixels, their neighbours at (dy, dx)) as slices of an (height, width) image, dy >= 0."""
    first_x, second_x = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width),
                                                                                  slice(0, width + dx))
    return (slice(0, height - dy), first_x), (slice(dy, height), second_x)


class _NeighbourCorrelation:
    """The correlation image, fed one binned frame at a time: per window of `highpass_time` bins the sums of x, x^2
    and x times each neighbour, turned into centred sums when the window closes (high-pass by the window's mean, as
    the max projection), then Pearson r per neighbouring pair, averaged over each pixel's neighbours.

    Within a window x is taken relative to the window's first bin (centred sums do not change under a constant
    shift), so the float32 sums hold deviations, not squares of raw counts (x^2 of a 16-bit count would lose the
    variance to rounding); the centred sums of the windows add up in float64.
    """

    def __init__(self, height: int, width: int, highpass_time: int):
        self.shape, self.highpass_time = (height, width), highpass_time
        self.pairs = [_pair_slices(height, width, dy, dx) for dy, dx in NEIGHBOUR_SHIFTS]
        self.reference = np.zeros(self.shape, np.float32)
        self.win_sum = np.zeros(self.shape, np.float32)
        self.win_sq = np.zeros(self.shape, np.float32)
        self.win_cross = [np.zeros(self.shape, np.float32) for _ in NEIGHBOUR_SHIFTS]   # at each pair's first pixel
        self.var = np.zeros(self.shape)
        self.cov = [np.zeros(self.shape) for _ in NEIGHBOUR_SHIFTS]
        self.count = 0
        self._x = np.empty(self.shape, np.float32)
        self._tmp = np.empty(self.shape, np.float32)
        self._mean, self._scaled, self._product = (np.empty(self.shape) for _ in range(3))

    def add(self, binned: np.ndarray) -> None:
        if self.count == 0:
            np.copyto(self.reference, binned)
        x = np.subtract(binned, self.reference, out=self._x)
        self.win_sum += x
        np.multiply(x, x, out=self._tmp)
        self.win_sq += self._tmp
        for (first, second), cross in zip(self.pairs, self.win_cross):
            tmp = self._tmp[first]
            np.multiply(x[first], x[second], out=tmp)
            cross[first] += tmp
        self.count += 1
        if self.count == self.highpass_time:
            self.close_window()

    def close_window(self) -> None:
        if self.count == 0:
            return
        n = self.count
        mean = np.divide(self.win_sum, n, out=self._mean, dtype=np.float64)
        # centred sum of squares: sum(x^2) - n mean^2; of products: sum(x y) - n mean_x mean_y
        scaled = np.multiply(mean, n, out=self._scaled)
        self.var += self.win_sq
        self.var -= np.multiply(scaled, mean, out=self._product)
        for (first, second), cross, cov in zip(self.pairs, self.win_cross, self.cov):
            cov[first] += cross[first]
            cov[first] -= np.multiply(scaled[first], mean[second], out=self._product[first])
            cross[:] = 0
        self.win_sum[:] = 0
        self.win_sq[:] = 0
        self.count = 0

    def finish(self) -> np.ndarray:
        self.close_window()
        sd = np.sqrt(np.maximum(self.var, 0, out=self.var), out=self.var)
        total = np.zeros(self.shape)
        neighbours = np.zeros(self.shape)
        for (first, second), cov in zip(self.pairs, self.cov):
            denominator = np.multiply(sd[first], sd[second], out=self._product[first])
            # a constant pixel (s.d. 0) correlates with nothing
            r = np.divide(cov[first], denominator, out=np.zeros_like(denominator), where=denominator > 0)
            total[first] += r
            total[second] += r
            neighbours[first] += 1
            neighbours[second] += 1
        return (total / neighbours).astype(np.float32)


class _BinnedStream:
    """Consumes frames in order; keeps the running sums behind every summary image (a few frame-sized arrays).

    Each bin is summed frame by frame in float32 (the order of numpy's `reshape(...).mean(axis=1)` in suite2p, so
    bins are bit-identical), divided by bin_size, then fed to: the float64 total of all frames, the float32 sum of
    bins (suite2p's `mov.mean(axis=0)`), and either the high-pass window statistics (max and sum of the current
    window of `highpass_time` bins) or, with denoising, a buffer flushed to the temporary binned-movie dataset.
    """

    def __init__(self, height: int, width: int, bin_size: int, n_bins: int, highpass_time: int,
                 binned_out: h5py.Dataset | None):
        shape = (height, width)
        self.bin_size, self.n_bins, self.highpass_time = bin_size, n_bins, highpass_time
        self.pending = np.zeros(shape, np.float32)
        self.n_pending = 0
        self.total = np.zeros(shape, np.float64)
        self.bin_sum = np.zeros(shape, np.float32)
        self.bins_done = 0
        self.binned_out = binned_out
        self.correlation = _NeighbourCorrelation(height, width, highpass_time)
        if binned_out is None:
            self.win_sum = np.zeros(shape, np.float32)
            self.win_max = np.zeros(shape, np.float32)
            self.win_count = 0
            self.max_img = np.full(shape, -np.inf, np.float32)
        else:
            self.slab = np.empty((binned_out.chunks[0],) + shape, np.float32)
            self.slab_count = 0

    def add(self, block: np.ndarray) -> None:
        for frame in block:
            if self.n_pending == 0:
                np.copyto(self.pending, frame, casting="unsafe")
            else:
                np.add(self.pending, frame, out=self.pending, dtype=np.float32)
            self.n_pending += 1
            if self.n_pending == self.bin_size and self.bins_done < self.n_bins:
                self._emit()

    def _emit(self) -> None:
        np.add(self.total, self.pending, out=self.total)
        binned = np.divide(self.pending, self.bin_size, out=self.pending)
        self.n_pending = 0
        first = self.bins_done == 0
        self.bins_done += 1
        if first:
            np.copyto(self.bin_sum, binned)
        else:
            np.add(self.bin_sum, binned, out=self.bin_sum)
        self.correlation.add(binned)
        if self.binned_out is None:
            if self.win_count == 0:
                np.copyto(self.win_sum, binned)
                np.copyto(self.win_max, binned)
            else:
                np.add(self.win_sum, binned, out=self.win_sum)
                np.maximum(self.win_max, binned, out=self.win_max)
            self.win_count += 1
            if self.win_count == self.highpass_time or self.bins_done == self.n_bins:
                self._close_window()
        else:
            self.slab[self.slab_count] = binned
            self.slab_count += 1
            if self.slab_count == len(self.slab) or self.bins_done == self.n_bins:
                stop = self.bins_done
                self.binned_out[stop - self.slab_count:stop] = self.slab[:self.slab_count]
                self.slab_count = 0

    def _close_window(self) -> None:
        # hp_rolling_mean_filter: window - window.mean(axis=0); its max is max(window) - mean (monotonic rounding).
        np.divide(self.win_sum, self.win_count, out=self.win_sum)
        np.subtract(self.win_max, self.win_sum, out=self.win_max)
        np.maximum(self.max_img, self.win_max, out=self.max_img)
        self.win_count = 0

    def finish(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean of all frames float32, mean of the binned movie float32)."""
        if self.bins_done != self.n_bins:
            raise RuntimeError(f"binned {self.bins_done} bins, expected {self.n_bins}")
        if self.n_pending:  # the tail frames that do not fill a bin still count in the mean image
            np.add(self.total, self.pending, out=self.total)
        mean_img = (self.total / n_frames).astype(np.float32)
        mean_binned = np.divide(self.bin_sum, self.n_bins, dtype=np.float32)
        return mean_img, mean_binned


# ---------------------------------------------------------------------------------------------------------------
# PCA denoising (suite2p detection/denoise.py: pca_denoise), block by block and tile by tile from the temp file
# ---------------------------------------------------------------------------------------------------------------

def _calculate_nblocks(length: int, block_size: int) -> tuple[int, int]:
    """suite2p registration.nonrigid.calculate_nblocks."""
    return (length, 1) if block_size >= length else (block_size, int(np.ceil(1.5 * length / block_size)))


def denoise_blocks(height: int, width: int, block_size: tuple[int, int] = DENOISE_BLOCK_SIZE
                   ) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Block origins (y0, x0), in suite2p's row-major order, and the block size (registration.nonrigid.make_blocks)."""
    lyb, ny = _calculate_nblocks(height, int(block_size[0]))
    lxb, nx = _calculate_nblocks(width, int(block_size[1]))
    ystart = np.linspace(0, height - lyb, ny).astype("int")
    xstart = np.linspace(0, width - lxb, nx).astype("int")
    return [(int(y), int(x)) for y in ystart for x in xstart], (lyb, lxb)


def spatial_taper(sig: float, ly: int, lx: int) -> np.ndarray:
    """suite2p registration.utils.spatial_taper, float64 (suite2p computes it in torch.double)."""
    y = np.abs(np.arange(ly, dtype=np.float64) - (ly - 1) / 2)
    x = np.abs(np.arange(lx, dtype=np.float64) - (lx - 1) / 2)
    m_y = ((ly - 1) / 2) - 2 * sig
    m_x = ((lx - 1) / 2) - 2 * sig
    mask_y = 1.0 / (1.0 + np.exp((y - m_y) / sig))
    mask_x = 1.0 / (1.0 + np.exp((x - m_x) / sig))
    return mask_y[:, None] * mask_x


def _tiles(height: int, width: int, edge: int) -> Iterator[tuple[int, int, int, int]]:
    for y0 in range(0, height, edge):
        for x0 in range(0, width, edge):
            yield y0, min(y0 + edge, height), x0, min(x0 + edge, width)


def _denoised_projections(binned: h5py.Dataset, work: h5py.File, mov_mean: np.ndarray, highpass_time: int,
                          tile_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, max projection after high-pass) of suite2p's pca_denoise(binned), without holding the binned movie.

    BLAS runs single-threaded here: the matrices are small (n_bins x 4096), and on a shared machine OpenBLAS's
    spinning threads made each PCA fit 10-100x slower (measured: 0.18 s vs 2.5 s for 1081 x 4096 on 2 busy cores).
    """
    from sklearn.decomposition import PCA  # only needed here; sklearn takes a second to import
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    with threadpool_limits(limits=1):
        return _denoised_projections_impl(PCA, binned, work, mov_mean, highpass_time, tile_bytes)


def _denoised_projections_impl(PCA, binned: h5py.Dataset, work: h5py.File, mov_mean: np.ndarray,  # noqa: N803
                               highpass_time: int, tile_bytes: int) -> tuple[np.ndarray, np.ndarray]:

    n_bins, height, width = binned.shape
    origins, (lyb, lxb) = denoise_blocks(height, width)
    n_comps = int(min(min(lyb * lxb, n_bins), min(lyb, lxb) * DENOISE_N_COMPS_FRAC))
    mask = spatial_taper(lyb // 4, lyb, lxb)
    norm = np.zeros((height, width), np.float32)
    scores = work.create_dataset("scores", (len(origins), n_bins, n_comps), np.float32)
    comps = work.create_dataset("components", (len(origins), n_comps, lyb * lxb), np.float32)
    # Pass 1: one PCA fit per block, on exactly the values suite2p fits (binned - mean, float32).
    for i, (y0, x0) in enumerate(origins):
        block = binned[:, y0:y0 + lyb, x0:x0 + lxb]
        block -= mov_mean[y0:y0 + lyb, x0:x0 + lxb]
        block = block.reshape(n_bins, lyb * lxb)
        model = PCA(n_components=n_comps, random_state=0).fit(block)
        scores[i] = block @ model.components_.T
        comps[i] = model.components_
        norm[y0:y0 + lyb, x0:x0 + lxb] += mask
        del block, model
    # Pass 2: per tile, blend the block reconstructions in suite2p's order, then mean, high-pass and max.
    mean_img = np.empty((height, width), np.float32)
    max_img = np.empty((height, width), np.float32)
    edge = max(_TMP_CHUNK_EDGE, int(math.isqrt(max(1, tile_bytes // (4 * n_bins)))) // _TMP_CHUNK_EDGE
               * _TMP_CHUNK_EDGE)
    for ty0, ty1, tx0, tx1 in _tiles(height, width, edge):
        recon = np.zeros((n_bins, ty1 - ty0, tx1 - tx0), np.float32)
        for i, (y0, x0) in enumerate(origins):
            iy0, iy1, ix0, ix1 = max(ty0, y0), min(ty1, y0 + lyb), max(tx0, x0), min(tx1, x0 + lxb)
            if iy0 >= iy1 or ix0 >= ix1:
                continue
            comp = comps[i].reshape(n_comps, lyb, lxb)[:, iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
            comp = comp.reshape(n_comps, -1)
            weights = mask[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0].ravel()
            score = scores[i]
            target = recon[:, iy0 - ty0:iy1 - ty0, ix0 - tx0:ix1 - tx0]
            step = max(1, (16 * 2**20) // (8 * comp.shape[1]))  # bound the float64 temporary to ~16 MB
            for t0 in range(0, n_bins, step):
                part = (score[t0:t0 + step] @ comp).astype(np.float64)
                part *= weights
                target[t0:t0 + step] += part.reshape(-1, iy1 - iy0, ix1 - ix0)
        recon /= norm[ty0:ty1, tx0:tx1]
        recon += mov_mean[ty0:ty1, tx0:tx1]
        mean_img[ty0:ty1, tx0:tx1] = recon.mean(axis=0)
        tile_max = np.full(recon.shape[1:], -np.inf, np.float32)
        for w0 in range(0, n_bins, highpass_time):
            window = recon[w0:w0 + highpass_time]
            window -= window.mean(axis=0)
            np.maximum(tile_max, window.max(axis=0), out=tile_max)
        max_img[ty0:ty1, tx0:tx1] = tile_max
        del recon
    return mean_img, max_img


# ---------------------------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SummaryImagesOptions:
    """SUMMARY_IMAGES' options; their defaults, ranges and help are options.SUMMARY_IMAGES."""
    bin_duration: float = _TABLE.default("bin_duration")   # seconds per bin
    denoise: bool = _TABLE.default("denoise")               # PCA-denoise the binned movie (suite2p's denoise)
    chunk_frames: int = _TABLE.default("chunk_frames")      # frames per read; 0 = about 16 MiB (movie.chunk_frames)

    def validate(self) -> None:
        """One InputError naming every value that cannot work."""
        _TABLE.check(asdict(self))


def compute_summary_images(dset: h5py.Dataset, info: MovieInfo, frame_rate: float,
                           options: SummaryImagesOptions = SummaryImagesOptions(),
                           tmp_dir: str | Path | None = None, highpass_time: int = HIGHPASS_TIME,
                           tile_bytes: int = DEFAULT_TILE_BYTES) -> SummaryImages:
    """All summary images of an opened movie, reading it once in chunks of `options.chunk_frames` frames.

    Memory: a few frame-sized arrays plus one chunk of the movie. With `options.denoise`, the binned movie is written
    to a temporary HDF5 file in `tmp_dir` (default: the system temp dir), deleted before returning.
    """
    if highpass_time < 10:
        raise ValueError("highpass_time < 10 selects suite2p's Gaussian high-pass, which is not implemented")
    bin_size = bin_size_for(options.bin_duration, frame_rate, info.n_frames)
    n_bins = info.n_frames // bin_size
    chunk = options.chunk_frames or chunk_frames(info, dset)
    tmp_path = None
    work = None
    try:
        binned = None
        if options.denoise:
            fd, name = tempfile.mkstemp(prefix=".summary-binned-", suffix=".h5", dir=tmp_dir)
            os.close(fd)
            tmp_path = Path(name)
            work = h5py.File(tmp_path, "w")
            n_chunk = int(np.clip(_SLAB_BYTES // (info.height * info.width * 4), 1, min(256, n_bins)))
            binned = work.create_dataset(
                "binned", (n_bins, info.height, info.width), np.float32,
                chunks=(n_chunk, min(_TMP_CHUNK_EDGE, info.height), min(_TMP_CHUNK_EDGE, info.width)))
        stream = _BinnedStream(info.height, info.width, bin_size, n_bins, highpass_time, binned)
        # Native dtype (no float copy), read into a ring of 3 reused buffers by a reader thread one chunk ahead,
        # so reading overlaps the sums (numpy and h5py release the GIL for most of their work).
        # Saturation is counted in the same pass: pixel-frames at the integer dtype's maximum.
        top = np.iinfo(dset.dtype).max if np.issubdtype(dset.dtype, np.integer) else None
        saturated = 0
        for _, block in prefetch(iter_chunks(dset, chunk, info.path, dtype=dset.dtype, buffers=3), depth=1):
            stream.add(block)
            if top is not None:
                saturated += int(np.count_nonzero(block == top))
            del block
        mean_img, mean_binned = stream.finish(info.n_frames)
        corr_img = stream.correlation.finish()
        if options.denoise:
            mean_binned, max_img = _denoised_projections(binned, work, mean_binned, highpass_time, tile_bytes)
        else:
            max_img = stream.max_img
        del stream
    finally:
        if work is not None:
            work.close()
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
    return SummaryImages(
        mean_img=mean_img,
        max_img=max_img,
        max_mean_ratio=max_mean_ratio(max_img, mean_binned),
        mean_img_e=enhanced_mean_image(mean_img),
        mean_binned=mean_binned,
        corr_img=corr_img,
        bin_size=bin_size,
        n_bins=n_bins,
        saturated=saturated,
    )


def mode_image(mean_img: np.ndarray, max_img: np.ndarray, mode: int) -> np.ndarray:
    """The image `--anatomical_only mode` segments, computed from a mean image and a max projection as the summary
    step does (the ratio uses the mean image as its denominator): for training and benchmarks without a movie."""
    derived = {"meanImg": lambda: np.asarray(mean_img, np.float32), "maxImg": lambda: np.asarray(max_img, np.float32),
               "max_mean_ratio": lambda: max_mean_ratio(max_img, mean_img).astype(np.float32),
               "meanImgE": lambda: enhanced_mean_image(np.asarray(mean_img, np.float32))}
    if mode not in IMAGE_MODES:
        raise ValueError(f"unknown mode {mode}")
    if IMAGE_MODES[mode].image not in derived:
        raise ValueError(f"mode {mode} ({IMAGE_MODES[mode].description}) needs the movie, not only its mean and max")
    return derived[IMAGE_MODES[mode].image]()
