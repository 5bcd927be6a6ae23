"""suite2p's functional detection (`sparsery`, `sourcery`) as a choice of `--detection`, alone or adding its ROIs to
Cellpose's (README, "Images of activity"; docs/output.md `rois/origin`).

As suite2p 1.1's `detection_wrapper` runs it, without registration:
* the movie binned to `bin_size = max(1, n_frames // nbins, round(tau * frame_rate))` frames (`detect.py`), each bin
  the float32 mean of consecutive frames, read here in chunks (suite2p reads 500-frame batches); the binned movie is
  held in memory, at most `nbins` frames (suite2p's cap, 5000 by default), whatever the movie's length; with
  suite2p's working copies the peak is about 6x the binned movie (measured 6.4 GB for 1000 bins of 512 x 512);
* `utils.temporal_high_pass_filter(width=highpass_time)`, `utils.standard_deviation_over_time`, then
  `sparsedetect.sparsery` or `sourcery.sourcery` with suite2p's other settings at their defaults.
The ROIs become a label image (the form SEGMENT's output has): where functional ROIs overlap, a pixel goes to the
first ROI suite2p found; each pixel's weight is the ROI's `lam` there. Added to Cellpose's ROIs (`cellpose+...`),
a functional ROI is kept when at most UNION_MAX_SHARED of its pixels lie in Cellpose ROIs, on its free pixels only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import h5py
import numpy as np

from ophys_extraction.movie import MovieInfo, chunk_frames, iter_chunks
from ophys_extraction.options import FUNCTIONAL as _TABLE
from ophys_extraction.schema import ORIGIN_FUNCTIONAL

HIGHPASS_TIME = 100        # suite2p 1.1 settings["detection"]["highpass_time"] (bins)
UNION_MAX_SHARED = 0.25    # share of a functional ROI's pixels that may lie in Cellpose ROIs for it to be added


@dataclass(frozen=True)
class FunctionalOptions:
    """The functional step's options; their defaults, ranges and help are options.FUNCTIONAL."""
    detection: str = _TABLE.default("detection")
    tau: float = _TABLE.default("tau")
    threshold_scaling: float = _TABLE.default("threshold_scaling")
    spatial_scale: int = _TABLE.default("spatial_scale")
    diameter: float = _TABLE.default("diameter")
    nbins: int = _TABLE.default("nbins")

    def validate(self) -> None:
        _TABLE.check(asdict(self))

    @property
    def algorithm(self) -> str:
        """sparsery or sourcery."""
        return self.detection.split("+")[-1]

    @property
    def adds_to_cellpose(self) -> bool:
        return self.detection.startswith("cellpose+")


def binning(n_frames: int, frame_rate: float, tau: float, nbins: int) -> tuple[int, int]:
    """(frames per bin, bins) as suite2p's detection_wrapper chooses them."""
    bin_size = int(max(1, n_frames // nbins, np.round(tau * frame_rate)))
    return bin_size, n_frames // bin_size


def binned_movie(dset: h5py.Dataset, info: MovieInfo, bin_size: int, n_bins: int, chunk: int = 0) -> np.ndarray:
    """(n_bins, H, W) float32: each bin the mean of `bin_size` consecutive frames (the tail that fills no bin is
    dropped), read in chunks."""
    out = np.zeros((n_bins, info.height, info.width), np.float32)
    used = n_bins * bin_size
    for start, block in iter_chunks(dset, chunk or chunk_frames(info, dset), info.path, dtype=np.float32):
        stop = min(start + len(block), used)
        for frame in range(start, stop):
            out[frame // bin_size] += block[frame - start]
    out /= np.float32(bin_size)
    return out


def detect(binned: np.ndarray, options: FunctionalOptions) -> tuple[list[dict], np.ndarray]:
    """(suite2p's ROIs: dicts with ypix, xpix, lam, ...; the max projection of the high-passed binned movie, what
    suite2p's detection stores as max_proj) of a binned movie; `binned` is high-passed in place."""
    from suite2p.detection import sourcery, sparsedetect, utils
    from suite2p import default_settings

    settings = default_settings()["detection"]
    np.random.seed(0)   # sourcery and sparsery draw nothing at random today; the seed keeps it so if they do
    mov = utils.temporal_high_pass_filter(mov=binned, width=HIGHPASS_TIME)
    max_proj = mov.max(axis=0)
    sdmov = utils.standard_deviation_over_time(mov, batch_size=1000)
    if options.algorithm == "sparsery":
        sparse = {**settings["sparsery_settings"], "spatial_scale": options.spatial_scale}
        _, stats = sparsedetect.sparsery(mov=mov, sdmov=sdmov, threshold_scaling=options.threshold_scaling, **sparse)
    else:
        _, stats = sourcery.sourcery(mov=mov, sdmov=sdmov, diameter=np.array([options.diameter] * 2),
                                     threshold_scaling=options.threshold_scaling, **settings["sourcery_settings"])
    return list(stats), max_proj


def add_rois(labels: np.ndarray, weights: np.ndarray, origin: np.ndarray, stats: list[dict],
             max_shared: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, weights, origin per label) with `stats`' ROIs added as new labels on free pixels, in order.

    `max_shared`: a ROI with more than this share of its pixels already labelled is left out (None: no limit, for a
    functional detection alone, where only a ROI with no free pixel is left out). `origin[k - 1]` is where label k
    came from (schema.ORIGIN_*).
    """
    labels, weights = labels.astype(np.int32).copy(), weights.astype(np.float32).copy()
    added = []
    for stat in stats:
        ypix, xpix = np.asarray(stat["ypix"]), np.asarray(stat["xpix"])
        taken = labels[ypix, xpix] > 0
        if taken.all() or (max_shared is not None and taken.mean() > max_shared):
            continue
        label = int(labels.max()) + 1
        free = ~taken
        labels[ypix[free], xpix[free]] = label
        weights[ypix[free], xpix[free]] = np.asarray(stat["lam"], np.float32)[free]
        added.append(ORIGIN_FUNCTIONAL)
    return labels, weights, np.concatenate([np.asarray(origin, np.int8), np.asarray(added, np.int8)])
