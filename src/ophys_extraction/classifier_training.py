"""Training and measuring the cell classifier (the bundled classfile `classify.BUNDLED_CLASSIFIER`).

Data: the pipeline's own ROIs on the planes of `classifier_planes` (the annotated real movie; synthetic planes of
every appearance family). A ROI's label is 1 when it matches a labelled cell one-to-one at IoU >= 0.5
(`metrics.found_rois`), else 0. On the real movie that makes the labels' gaps (visible somata nobody annotated)
count as "not a cell", in training and in the precision measured: the precision there is a lower bound.

Measurement, never on data the classifier was trained on:
* real: spatial k-fold, bands of rows of the real movie by ROI centre; each band is scored by a classifier trained
  on the other bands and on every synthetic plane;
* synthetic: leave one family out; each family's planes are scored by a classifier trained on the other families
  and the whole real movie (so its seeds and its look are both held out).
The suite2p builtin classifier is scored on the same ROIs as it is (nothing to train).

The classifier is suite2p's own (`suite2p.classification.Classifier`: percentile-binned features, naive-Bayes log
odds, logistic regression refitted at load), so the trained result is a plain suite2p classfile.
"""

from __future__ import annotations

import argparse

import datetime
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ophys_extraction import classify
from ophys_extraction.roi_features import FEATURE_KEYS, roi_features

SHAPE_KEYS = ("npix_norm", "compact", "aspect_ratio", "solidity")
ALL_KEYS = (*FEATURE_KEYS, "skew", *SHAPE_KEYS)
REAL_FOLDS = 4
# An unmatched ROI with at least this IoU with a labelled cell lies on that cell (its mask is off, not its answer to
# "is this a cell"): the tables also give the precision that counts these as cells.
NEAR_MISS_IOU = 0.3
N_PER_FAMILY = 4

# Candidates: a key set and the weight of the cell rows (each cell row is written `weight` times on average, spread
# evenly: the classfile format has no threshold, so this is how the operating point is set; suite2p's classifier
# calls a ROI a cell at probability > 0.5). Scored by `evaluate`; the bundled classfile uses the one `choose` picks.
KEY_SETS: dict[str, tuple[str, ...]] = {
    "suite2p keys": classify.SUITE2P_KEYS,
    "anatomical": FEATURE_KEYS,
    "anatomical + skew": (*FEATURE_KEYS, "skew"),
    "anatomical + skew + shape": (*FEATURE_KEYS, "skew", *SHAPE_KEYS),
}
WEIGHTS = (1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Candidate:
    keys: tuple[str, ...]
    weight: float = 1.0


CANDIDATES: dict[str, Candidate] = {f"{name}, w {weight:g}": Candidate(keys, weight)
                                    for name, keys in KEY_SETS.items() for weight in WEIGHTS}
CHOSEN = "anatomical, w 1.5"


@dataclass
class RoiTable:
    """One row per ROI of some planes."""
    features: dict[str, np.ndarray]   # key -> float64 (n,)
    matched: np.ndarray               # bool (n,): matches a labelled cell at IoU >= 0.5
    on_not_cell: np.ndarray           # bool (n,): >= 30% of its pixels on a known non-cell (synthetic holes)
    near_miss: np.ndarray             # bool (n,): unmatched, but IoU >= NEAR_MISS_IOU with a labelled cell
    family: np.ndarray                # str (n,): "real" or the synthetic family
    plane: np.ndarray                 # str (n,)
    centre_y: np.ndarray              # float (n,): the ROI's median row
    height: np.ndarray                # int (n,): the plane's height
    builtin: np.ndarray               # float (n,): suite2p builtin classifier's probability (EXTRACT's traces.h5)

    def __len__(self) -> int:
        return int(self.matched.size)

    def subset(self, keep: np.ndarray) -> RoiTable:
        return RoiTable({k: v[keep] for k, v in self.features.items()}, self.matched[keep], self.on_not_cell[keep],
                        self.near_miss[keep], self.family[keep], self.plane[keep], self.centre_y[keep],
                        self.height[keep], self.builtin[keep])

    def matrix(self, keys: tuple[str, ...]) -> np.ndarray:
        return np.stack([self.features[k] for k in keys], axis=1) if len(self) else np.zeros((0, len(keys)))

    @staticmethod
    def concat(tables: list[RoiTable]) -> RoiTable:
        return RoiTable({k: np.concatenate([t.features[k] for t in tables]) for k in tables[0].features},
                        *(np.concatenate([getattr(t, name) for t in tables])
                          for name in ("matched", "on_not_cell", "near_miss", "family", "plane", "centre_y", "height",
                                       "builtin")))


def plane_table(folder: Path, family: str) -> RoiTable:
    """The ROI table of one plane run by `classifier_planes.run_plane` (its segmentation.h5, traces.h5, truth)."""
    from ophys_extraction.metrics import found_rois, iou_matrix
    with h5py.File(folder / "segmentation.h5", "r") as f:
        masks, cellprob = f["cellpose/masks"][()], f["cellpose/cellprob"][()]
        flows, image = f["cellpose/flows"][()], f["image"][()]
    with h5py.File(folder / "traces.h5", "r") as f:
        labels = f["labels"][()]
        f_mean, fneu_mean = f["traces/roi"][()].mean(axis=1), f["traces/neuropil"][()].mean(axis=1)
        stats = {"skew": f["traces/skew"][()], **{k: f[f"rois/{k}"][()] for k in SHAPE_KEYS}}
        centre_y = f["rois/med"][()][:, 0] if labels.size else np.zeros(0)
        # suite2p's builtin answer: iscell_suite2p (iscell in traces.h5 written before it was added)
        builtin = f["iscell_suite2p" if "iscell_suite2p" in f else "iscell"][()][:, 1] if labels.size else np.zeros(0)
    truth = np.load(folder / "truth.npz")
    kept = np.where(np.isin(masks, labels), masks, 0)
    features = roi_features(kept, labels, cellprob, flows, image, f_mean, fneu_mean)
    features.update({k: np.asarray(v, np.float64) for k, v in stats.items()})
    # found_rois returns one flag per label of its first argument in increasing label order; labels are increasing.
    order = np.argsort(labels)
    matched = np.zeros(labels.size, bool)
    if labels.size:
        matched[order] = found_rois(kept, truth["cells"])
    size = np.bincount(kept.ravel(), minlength=int(kept.max()) + 1)
    on = np.bincount(kept.ravel(), weights=(truth["not_cells"] > 0).ravel(), minlength=size.size)
    on_not_cell = (on[labels] >= 0.3 * np.maximum(size[labels], 1)) & ~matched
    near_miss = np.zeros(labels.size, bool)
    if labels.size and truth["cells"].any():
        # iou_matrix's columns are the labels of `kept` in increasing order, as found_rois' rows above
        near_miss[order] = iou_matrix(truth["cells"], kept).max(axis=0) >= NEAR_MISS_IOU
        near_miss &= ~matched
    n = labels.size
    return RoiTable(features, matched, on_not_cell, near_miss, np.full(n, family), np.full(n, folder.name),
                    np.asarray(centre_y, float), np.full(n, masks.shape[0]), np.asarray(builtin, float))


def real_fold(table: RoiTable, folds: int = REAL_FOLDS) -> np.ndarray:
    """int (n,): the spatial fold (band of rows) of each real ROI; -1 for synthetic ROIs."""
    band = np.floor(table.centre_y / table.height * folds).clip(0, folds - 1).astype(int)
    return np.where(table.family == "real", band, -1)


def row_repeats(matched: np.ndarray, weight: float) -> np.ndarray:
    """How many times each row is written: 1 for a non-cell; for the i-th cell row floor((i+1) w) - floor(i w), so
    the cell rows are written `weight` times on average, spread evenly and deterministically."""
    repeats = np.ones(matched.size, np.int64)
    i = np.arange(int(matched.sum()))
    repeats[matched] = np.floor((i + 1) * weight + 1e-9).astype(np.int64) - np.floor(i * weight + 1e-9).astype(np.int64)
    return repeats


def classfile_dict(table: RoiTable, candidate: Candidate) -> dict:
    """suite2p's classfile content (np.save of this dict): 'stats' (n, n_keys), 'iscell' (n,), 'keys'."""
    repeats = row_repeats(table.matched, candidate.weight)
    return {"stats": np.repeat(table.matrix(candidate.keys).astype(np.float32), repeats, axis=0),
            "iscell": np.repeat(table.matched.astype(np.float32), repeats), "keys": list(candidate.keys)}


def fit_predict(train: RoiTable, test: RoiTable, candidate: Candidate) -> np.ndarray:
    """Probability of each test ROI from a classfile of `train` (the candidate's keys and cell weight), through
    suite2p's classifier, as EXTRACT applies it."""
    if len(test) == 0:
        return np.zeros(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.npy"
        np.save(path, classfile_dict(train, candidate), allow_pickle=True)
        stats = np.array([{k: float(test.features[k][i]) for k in candidate.keys} for i in range(len(test))],
                         dtype=object)
        return classify.classify(stats, path)[:, 1].astype(float)


@dataclass(frozen=True)
class Score:
    kept: int        # ROIs called cells
    matched: int     # ROIs matching a labelled cell
    kept_matched: int
    rois: int
    kept_near_miss: int = 0   # kept ROIs that do not match a labelled cell but lie on one (NEAR_MISS_IOU)

    @property
    def recall(self) -> float:      # share of matched ROIs kept
        return self.kept_matched / self.matched if self.matched else float("nan")

    @property
    def precision(self) -> float:   # share of kept ROIs that match a labelled cell
        return self.kept_matched / self.kept if self.kept else float("nan")

    @property
    def precision_on_cells(self) -> float:   # share of kept ROIs that match or lie on a labelled cell
        return (self.kept_matched + self.kept_near_miss) / self.kept if self.kept else float("nan")


def score(prob: np.ndarray, matched: np.ndarray, near_miss: np.ndarray) -> Score:
    kept = prob > 0.5
    return Score(int(kept.sum()), int(matched.sum()), int((kept & matched).sum()), int(matched.size),
                 int((kept & near_miss).sum()))


def cross_validated(table: RoiTable, candidate: Candidate) -> np.ndarray:
    """Probability of every ROI from a classifier that never saw it: real ROIs by spatial fold (trained on the other
    folds and every synthetic plane), synthetic ones by family (trained on the other families and all real ROIs)."""
    prob = np.full(len(table), np.nan)
    fold = real_fold(table)
    for k in range(REAL_FOLDS):
        test = fold == k
        prob[test] = fit_predict(table.subset(~test & ((fold >= 0) | (table.family != "real"))),
                                 table.subset(test), candidate)
    for family in sorted(set(table.family) - {"real"}):
        test = table.family == family
        prob[test] = fit_predict(table.subset(~test), table.subset(test), candidate)
    return prob


def groups(table: RoiTable) -> dict[str, np.ndarray]:
    """The rows of each reported group: real (pooled), each real fold, each synthetic family, synthetic pooled."""
    out = {"real (CV pooled)": table.family == "real"}
    fold = real_fold(table)
    for k in range(REAL_FOLDS):
        out[f"real fold {k}"] = fold == k
    for family in sorted(set(table.family) - {"real"}):
        out[f"synthetic {family}"] = table.family == family
    out["synthetic (pooled)"] = table.family != "real"
    return out


def evaluate(table: RoiTable, candidates: dict[str, Candidate] | None = None
             ) -> dict[str, dict[str, Score]]:
    """{classifier: {group: Score}}: suite2p's builtin (as EXTRACT ran it) and each candidate, cross-validated."""
    candidates = CANDIDATES if candidates is None else candidates
    probs = {"suite2p builtin": table.builtin}
    for name, candidate in candidates.items():
        probs[name] = cross_validated(table, candidate)
    return {name: {g: score(p[rows], table.matched[rows], table.near_miss[rows]) for g, rows in groups(table).items()}
            for name, p in probs.items()}


def worst(scores: dict[str, Score]) -> tuple[float, float]:
    """(worst recall, worst precision) over real CV pooled and every synthetic family."""
    rows = [s for g, s in scores.items() if g == "real (CV pooled)" or (g.startswith("synthetic ")
                                                                         and g != "synthetic (pooled)")]
    return (min(s.recall for s in rows), min(s.precision for s in rows))


def choose(results: dict[str, dict[str, Score]]) -> str:
    """The candidate whose worst case (the smaller of worst recall and worst precision) is highest."""
    candidates = [name for name in results if name in CANDIDATES]
    return max(candidates, key=lambda name: min(worst(results[name])))


def format_table(results: dict[str, dict[str, Score]]) -> str:
    """One line per classifier and group; "P on cells" counts a kept near miss (an unmatched ROI lying on a labelled
    cell, NEAR_MISS_IOU) as a cell."""
    lines = [f"{'classifier':33s} {'data':28s} {'ROIs':>5s} {'matched':>7s} {'kept':>5s} {'recall':>6s} "
             f"{'precision':>9s} {'P on cells':>10s}"]
    lines.append("-" * len(lines[0]))
    for name, scores in results.items():
        for group, s in scores.items():
            lines.append(f"{name:33s} {group:28s} {s.rois:5d} {s.matched:7d} {s.kept:5d} {s.recall:6.2f} "
                         f"{s.precision:9.2f} {s.precision_on_cells:10.2f}")
        r, p = worst(scores)
        lines.append(f"{name:33s} {'WORST (real CV, families)':28s} {'':5s} {'':7s} {'':5s} {r:6.2f} {p:9.2f}")
    return "\n".join(lines)


def train(table: RoiTable, candidate: Candidate, output: Path, record: dict) -> None:
    """Write the classfile (np.save'd dict, suite2p's format) trained on every ROI of `table`, and beside it
    `<name>.json`, the record of how it was trained."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as handle:
        content = classfile_dict(table, candidate)
        np.save(handle, content, allow_pickle=True)
    record = {**record, "keys": list(candidate.keys), "cell_weight": candidate.weight, "rois": len(table),
              "cells": int(table.matched.sum()), "rows": int(content["iscell"].size),
              "cell_rows": int(content["iscell"].sum()),
              "date": datetime.date.today().isoformat()}
    output.with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def add_table_arguments(parser: argparse.ArgumentParser, repo: Path) -> None:
    """--n_per_family, --cache and --real_dir: where tools/train_classifier.py and bench/classifier.py get their ROI
    table (the planes cached under the repository's bench/out, the real movie beside the repository)."""
    parser.add_argument("--n_per_family", type=int, default=N_PER_FAMILY)
    parser.add_argument("--cache", type=Path, default=repo / "bench" / "out" / "classifier_planes")
    parser.add_argument("--real_dir", type=Path, default=repo.parent / "shared" / "data" / "neurofinder-00xx-left")


def segmentation_model(repo: Path) -> Path:
    """The model the classifier's planes are segmented with: the bundled one."""
    return repo / "assets" / "models" / "ophys_cp3"


def build_table(cache: Path, n_per_family: int, real_dir: Path | None, model: Path,
                families: list[str] | None = None) -> RoiTable:
    """Run (or reuse, from `cache`) the classifier's planes and return their ROI table: the real movie when
    `real_dir` is given, and `n_per_family` synthetic planes of each family."""
    from ophys_extraction import classifier_planes as planes
    from ophys_extraction.synthetic import FAMILIES
    sources = [planes.PlaneSource("real", "real", None)] if real_dir is not None else []
    sources += planes.synthetic_sources(list(FAMILIES) if families is None else families, n_per_family)
    tables = []
    for source in sources:
        folder = planes.run_plane(source, cache, model, real_dir or Path())
        tables.append(plane_table(folder, source.family))
    return RoiTable.concat(tables)


def versions() -> dict[str, str]:
    """The versions of what made the training data (segmentation and statistics) and the classifier."""
    from importlib.metadata import version
    return {name: version(name) for name in ("cellpose", "suite2p", "scikit-learn", "numpy", "torch")}


def describe(table: RoiTable) -> dict:
    """What the table holds, for the training record."""
    from ophys_extraction import classifier_planes as planes
    per = {}
    for family in sorted(set(table.family)):
        rows = table.family == family
        per[family] = {"planes": sorted(set(table.plane[rows])), "rois": int(rows.sum()),
                       "matched": int(table.matched[rows].sum())}
    return {"families": per, "synthetic_planes": {"size": planes.PLANE_SIZE, "frames": planes.PLANE_FRAMES,
                                                  "frame_rate": planes.PLANE_FRAME_RATE,
                                                  "seeds": f"{planes.CLASSIFIER_SEED0} + 100 * family index + i"},
            "label": "1 = the ROI matches a labelled cell one-to-one at IoU >= 0.5, else 0 (unlabelled real ROIs "
                     "count as not cells)"}
