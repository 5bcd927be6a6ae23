"""The cell diameter a plane is segmented at when `--diameter` is 0 (README, "Cell size"): chosen from what the
model does on the plane's own image, for every model, never silently the model's training size.

The diameter that matters is the one at which the model segments this plane best, and that is not the cells' true
size: it depends on how the cells look (on the project's generator the best F1 lies at 0.7-1.0x the labelled
diameter, on an independent renderer and on the real image at 1.0-1.6x; bench/sizes.py). So the size is chosen by
a quality that needs no labels, measured at the candidate diameter itself, from the **flow error** of each mask the
model finds there (Cellpose's own consistency check behind `flow_threshold`: the mean squared difference between
the network's flows and the flows recomputed from the mask). Run at the wrong scale the network's flows stop
agreeing with its masks, it finds fewer consistent masks, or more masks of which fewer are consistent.

* **Quality** (`label_free_f1`): an F1 in which a mask counts as found in proportion to its consistency,
  1 - flow error / (2 x 0.4), clipped to [0, 1] (a mask at Cellpose's default flow threshold, 0.4, counts half).
  Precision ~ consistent / masks, recall ~ consistent / the most consistent masks at any diameter tried:
  F1 = 2 consistent / (masks + most consistent). Nothing in it is fitted. Measured on held-out sweeps
  (bench/size_sweep.py), the alternatives did not hold on every look: the mean flow error alone picks a few
  confident masks on dim planes (F1 0.27 below the best on the independent renderer), the number of masks
  over-segments, and a calibrated ratio between run diameter and median mask diameter is 0.86-1.11 by look.
* **Start:** Cellpose's size model where the model has one (`<model>_size.npy`: a regression from the network's
  style vector to log diameter, `cellpose.train.train_size`), else a scan of `SCAN_DIAMETERS` (two-photon somata at
  0.4-2 um/px). The start is only a prior: the search moves away from it.
* **Search** (`search`): steps of a factor `COARSE_STEP` from the best start, up while the quality stays within
  `PLATEAU` of the best seen, down while it rises by more, each step taken only where a `FINE_STEP` probe beyond
  the last one still gains (else the peak is bracketed); then one `FINE_STEP` either side of the best; then the
  largest diameter within `PLATEAU` of the best quality, refined, where it is alone on that plateau, to the peak
  of a parabola in log diameter through it and its two neighbours. 4-5 evaluations from a size model's start, each
  on one crop of the image (segmentation.py), so that its cost does not grow with the plane.

Diameters are Cellpose's measure (`utils.diameters`): the diameter of a disk of the mask's area, median over masks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ophys_extraction.errors import InputError

# Cellpose's name for the size model beside a model file (cellpose.train.train_size writes it).
SIZE_MODEL_SUFFIX = "_size.npy"
# Start of the search for a model without a size model (px): two-photon somata at 0.4-2 um/px are about 6-30 px.
# A factor COARSE_STEP apart, so that the search's steps from them land on them.
SCAN_DIAMETERS = tuple(6.0 * 2.0 ** (k / 2) for k in range(6))   # 6, 8.5, 12, 17, 24, 34
# Cellpose's floor for a predicted diameter (SizeModel._size_estimation); also the search's.
MIN_DIAMETER = 5.0
# The search's steps (factors): coarse while the quality rises, then fine either side of the best.
COARSE_STEP = 2.0 ** 0.5
FINE_STEP = 2.0 ** 0.25
# At most this many evaluations after the start (a quality that falls forever stops here).
MAX_STEPS = 8

# Within this share of the highest quality the larger diameter is chosen: the quality is often flat over a factor
# 1.3-1.5 in diameter while F1 still rises towards the plateau's larger end (on the held-out sweeps of
# bench/size_sweep.py, F1 more than 0.03 below its peak on 7 of 68 planes this way, 10 at the peak itself, 15 at
# the plateau's smaller end).
PLATEAU = 0.01
# Cellpose 3's default flow_threshold: a mask with this flow error counts half in the quality, twice it not at all.
CELLPOSE_FLOW_THRESHOLD = 0.4


@dataclass(frozen=True)
class Found:
    """What the model finds at one candidate diameter: its masks, and how many of them its flows agree with."""
    n_masks: int
    consistent: float

    @classmethod
    def from_flow_errors(cls, errors: np.ndarray) -> Found:
        weights = np.clip(1 - np.asarray(errors, np.float64) / (2 * CELLPOSE_FLOW_THRESHOLD), 0, 1)
        return cls(int(weights.size), float(weights.sum()))


# candidate diameters -> what the model finds at each (several at once, so that they can share network calls)
Evaluate = Callable[[tuple[float, ...]], tuple[Found, ...]]


def label_free_f1(found: Found, most_consistent: float) -> float:
    """2 consistent / (masks + the most consistent masks at any diameter tried); 0 where nothing is found."""
    total = found.n_masks + most_consistent
    return 2 * found.consistent / total if total > 0 else 0.0


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


def search(evaluate: Evaluate, starts: tuple[float, ...], lower: float = MIN_DIAMETER,
           upper: float = float("inf")) -> tuple[float, dict[float, float]]:
    """(chosen diameter, every diameter evaluated -> its `label_free_f1`), searching in log diameter from the best of
    `starts` (module docstring), within [lower, upper]. Where nothing is found at any candidate the first start is
    returned. `evaluate` gets the candidates the search needs together at once: all starts, then each coarse step,
    then both fine steps (a network runs them in one batch)."""
    lower, upper = float(lower), max(float(lower), float(upper))
    seen: dict[float, Found] = {}

    def clip(diameter: float) -> float:
        # Rounded, and snapped to a candidate already evaluated within 0.1%: a probe and a fine step reached by
        # another route (a coarse step and back) are the same candidate, not two network runs.
        diameter = round(float(np.clip(diameter, lower, upper)), 3)
        return next((d for d in seen if abs(d / diameter - 1) < 1e-3), diameter)

    def quality() -> dict[float, float]:
        most = max(f.consistent for f in seen.values())
        return {d: label_free_f1(f, most) for d, f in seen.items()}

    def found_any() -> bool:
        return max(f.consistent for f in seen.values()) > 0

    def chosen_after(*diameters: float) -> float:
        new = tuple(d for d in dict.fromkeys(diameters) if d not in seen)
        if new:
            seen.update(zip(new, evaluate(new)))
        return on_plateau(quality())

    best = chosen_after(*(clip(start) for start in starts))
    for step, fine in ((COARSE_STEP, FINE_STEP), (1 / COARSE_STEP, 1 / FINE_STEP)):
        while len(seen) < len(starts) + MAX_STEPS:
            nxt = clip(best * step)
            if nxt == best or chosen_after(nxt) != nxt or not found_any():
                break
            best = nxt
            # Probe a fine step beyond the new best before the next coarse one: where the probe is not better, the
            # peak is bracketed and the coarse step (downwards the costliest candidate: the network sees the crop
            # magnified) is not needed; where it is better, it is a fine step the search evaluates anyway.
            probe = clip(best * fine)
            if probe == best or chosen_after(probe) != probe:
                break
    if not found_any():
        return clip(starts[0]), quality()
    best = on_plateau(quality())
    chosen_after(clip(best * FINE_STEP), clip(best / FINE_STEP))
    q = quality()
    best = on_plateau(q)
    below = [d for d in q if d < best]
    if below and q[max(below)] < (1 - PLATEAU) * max(q.values()):
        return parabola_peak(q, best), q          # a peak alone on its plateau: refined between its neighbours
    return best, q


def one_at_a_time(evaluate: Callable[[float], Found]) -> Evaluate:
    """An `Evaluate` from a function of one diameter."""
    return lambda diameters: tuple(evaluate(d) for d in diameters)


def on_plateau(quality: dict[float, float]) -> float:
    """The largest diameter whose quality is within PLATEAU of the highest."""
    top = max(quality.values())
    return max(d for d, v in quality.items() if v >= (1 - PLATEAU) * top)


def parabola_peak(values: dict[float, float], centre: float) -> float:
    """The peak of a parabola in log diameter through `centre` and its two neighbours in `values` (diameter ->
    value), kept between those neighbours and rounded to 0.001 px; `centre` itself where it lies at an end or the
    three do not curve down. Closed-form arithmetic, not a least-squares fit: a BLAS fit differs in the last bits
    between builds and CPU kernels (the container test compares outputs bit for bit)."""
    ds = sorted(values)
    i = ds.index(centre)
    if i == 0 or i == len(ds) - 1:
        return centre
    (x1, x2, x3), (y1, y2, y3) = np.log(ds[i - 1:i + 2]).tolist(), [values[d] for d in ds[i - 1:i + 2]]
    denom = (x1 - x2) * (x1 - x3) * (x2 - x3)
    a = (x3 * (y2 - y1) + x2 * (y1 - y3) + x1 * (y3 - y2)) / denom
    b = (x3 * x3 * (y1 - y2) + x2 * x2 * (y3 - y1) + x1 * x1 * (y2 - y3)) / denom
    if not a < 0:
        return centre
    return round(float(np.exp(min(max(-b / (2 * a), x1), x3))), 3)
