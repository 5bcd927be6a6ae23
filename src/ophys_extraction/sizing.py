"""The cell diameter a plane is segmented at when `--diameter` is 0 (README, "Cell size"): estimated from the
plane's own image for every model, never silently the model's training size.

Two estimators, both working through the model itself:

* **Size model** (a model that has one: Cellpose's built-ins, the bundled model, models trained by
  `bin/train_model.py`): Cellpose's own recipe (`models.SizeModel`). A linear regression from the network's style
  vector of the image, taken at the network's own scale, to the log of the cell diameter (`cellpose.train.
  train_size` fits it; Cellpose's file format `<model>_size.npy`), then refined: segment at that diameter and take
  the median diameter of the masks found.
* **Scan** (a model without a size model): segment at candidate diameters a factor sqrt(2) apart over the range of
  two-photon somata, keep the candidate at which the model finds the most cells, and refine it the same way. A
  network run at the wrong scale finds few cells: too small a diameter breaks cells into fragments it rejects, too
  large a diameter shrinks them below what it can segment (measured in `bench/detection.py --sizes`).

Diameters are Cellpose's measure (`utils.diameters`): the median over masks of the diameter of a disk of the same
area (`rois.median_mask_diameter`, suite2p's too), so an estimate, a model's `diam_labels` and a ground truth compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ophys_extraction.errors import InputError
from ophys_extraction.rois import median_mask_diameter

# Cellpose's name for the size model beside a model file (cellpose.train.train_size writes it).
SIZE_MODEL_SUFFIX = "_size.npy"
# Candidate diameters of the scan (px): two-photon somata at 0.4-2 um/px are about 6-30 px.
SCAN_DIAMETERS = (6.0, 8.5, 12.0, 17.0, 24.0, 34.0)
# Cellpose's floor for a predicted diameter (SizeModel._size_estimation).
MIN_DIAMETER = 5.0

Segmenter = Callable[[float], np.ndarray]   # diameter -> label image (0 = background)


@dataclass(frozen=True)
class SizeModel:
    """Cellpose's size model: log(diameter) = A . (style - smean) + log(diam_mean) + ymean."""
    A: np.ndarray
    smean: np.ndarray
    diam_mean: float
    ymean: float

    @classmethod
    def load(cls, path: Path) -> SizeModel:
        """A size model file as Cellpose writes it (a pickled dict in .npy), checked."""
        try:
            params = np.load(path, allow_pickle=True).item()
            model = cls(np.asarray(params["A"], np.float64).ravel(), np.asarray(params["smean"], np.float64).ravel(),
                        float(params["diam_mean"]), float(params["ymean"]))
        except Exception as err:  # noqa: BLE001 - any failure means "not a Cellpose size model"
            raise InputError(path, f"cannot be read as a Cellpose size model ({type(err).__name__})") from None
        if model.A.shape != model.smean.shape or not model.diam_mean > 0:
            raise InputError(path, f"is not a Cellpose size model (A {model.A.shape}, smean {model.smean.shape}, "
                                   f"diam_mean {model.diam_mean})")
        return model

    def save(self, path: Path) -> None:
        np.save(path, {"A": self.A, "smean": self.smean, "diam_mean": self.diam_mean, "ymean": self.ymean})

    def predict(self, style: np.ndarray) -> float:
        """Diameter (px) from a style vector (at least MIN_DIAMETER, as Cellpose)."""
        style = np.asarray(style, np.float64).ravel()
        log_d = float(self.A @ (style - self.smean)) + np.log(self.diam_mean) + self.ymean
        return float(max(MIN_DIAMETER, np.exp(log_d)))


def size_model_file(model_file: Path) -> Path:
    """Where Cellpose keeps the size model of a model file."""
    return Path(str(model_file) + SIZE_MODEL_SUFFIX)


def refine(segment: Segmenter, diameter: float) -> float:
    """The median mask diameter of a segmentation at `diameter` (itself when nothing is found)."""
    found = median_mask_diameter(segment(diameter))
    return float(max(MIN_DIAMETER, found)) if found > 0 else float(diameter)


def scan(segment: Segmenter, candidates: tuple[float, ...] = SCAN_DIAMETERS) -> tuple[float, dict[float, int]]:
    """(refined diameter, number of cells found at each candidate): the candidate where the most cells are found
    (ties: the smaller), refined to its median mask diameter."""
    counts: dict[float, int] = {}
    medians: dict[float, float] = {}
    for candidate in candidates:
        masks = segment(candidate)
        counts[candidate] = int(np.unique(masks[masks > 0]).size)
        medians[candidate] = median_mask_diameter(masks)
    best = max(candidates, key=lambda c: (counts[c], -c))
    diameter = medians[best] if counts[best] else float(best)
    return float(max(MIN_DIAMETER, diameter)), counts
