"""The planes the cell classifier is trained and measured on: each goes the pipeline's way (SUMMARY_IMAGES, SEGMENT
with the bundled model at its defaults, EXTRACT), so the classifier sees the ROIs and features it will meet.

* real: the annotated Neurofinder movie (`../shared/data/neurofinder-00xx-left`), its published labels;
* synthetic: planes of every appearance family (`synthetic.FAMILIES`, seeds CLASSIFIER_SEED0 + 100 * family index
  + i: a range no other training or evaluation uses), their ground-truth cells (silent ones included) and the
  non-expressing somata (`hole_masks`), which are not cells.

`run_plane` leaves in its folder `summary.h5`, `segmentation.h5`, `traces.h5` and `truth.npz` (the labels), and
reuses them when they are there (the steps are deterministic), so the benchmark and the training share one run.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

CLASSIFIER_SEED0 = 700_000
PLANE_SIZE = 256
PLANE_FRAMES = 600
PLANE_FRAME_RATE = 10.0
REAL_NAME = "neurofinder-00xx-left"
REAL_FRAME_RATE = 7.0


@dataclass(frozen=True)
class PlaneSource:
    name: str              # folder name under the cache, e.g. "real" or "dim_ring_1"
    family: str            # "real" or a synthetic family
    seed: int | None       # synthetic seed; None for the real movie


def synthetic_sources(families: list[str], n_per_family: int) -> list[PlaneSource]:
    from ophys_extraction.synthetic import FAMILIES
    order = list(FAMILIES)
    return [PlaneSource(f"{family}_{i}", family, CLASSIFIER_SEED0 + 100 * order.index(family) + i)
            for i in range(n_per_family) for family in families]


def _quiet(function, argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        code = function(argv)
    if code != 0:
        raise RuntimeError(f"{function.__module__} {' '.join(argv)} exited {code}")


def run_steps(movie: Path, frame_rate: float, folder: Path, model: Path) -> None:
    """SUMMARY_IMAGES, SEGMENT (the pipeline's defaults) and EXTRACT of one movie into `folder`."""
    from ophys_extraction.cli.extract import main as extract_main
    from ophys_extraction.cli.segment import main as segment_main
    from ophys_extraction.cli.summary_images import main as summary_main
    summary, segmentation, traces = folder / "summary.h5", folder / "segmentation.h5", folder / "traces.h5"
    if not summary.is_file():
        _quiet(summary_main, ["--movie", str(movie), "--output", str(summary), "--frame_rate", str(frame_rate)])
    if not segmentation.is_file():
        _quiet(segment_main, ["--summary", str(summary), "--output", str(segmentation),
                              "--pretrained_model", str(model), "--device", "cpu"])
    if not traces.is_file():
        _quiet(extract_main, ["--movie", str(movie), "--segmentation", str(segmentation), "--output", str(traces)])


def run_plane(source: PlaneSource, cache: Path, model: Path, real_dir: Path) -> Path:
    """The plane's folder under `cache`, with its step outputs and `truth.npz` (`cells`: label image of the
    labelled cells; `not_cells`: label image of known non-cells, the non-expressing somata, empty for real data)."""
    folder = cache / source.name
    if (folder / "traces.h5").is_file() and (folder / "truth.npz").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if source.seed is None:
        cells = np.load(real_dir / "gt_labels.npy").astype(np.int32)
        np.savez_compressed(folder / "truth.npz", cells=cells, not_cells=np.zeros_like(cells))
        run_steps(real_dir / "movie.h5", REAL_FRAME_RATE, folder, model)
        return folder
    from ophys_extraction import synthetic
    spec = synthetic.SyntheticSpec(height=PLANE_SIZE, width=PLANE_SIZE, n_frames=PLANE_FRAMES,
                                   frame_rate=PLANE_FRAME_RATE, seed=source.seed,
                                   **synthetic.family_fields(source.family))
    movie = folder / "movie.h5"
    sim = synthetic.write_movie(movie, spec) if not movie.is_file() else synthetic.simulate(spec)
    np.savez_compressed(folder / "truth.npz", cells=sim.masks.astype(np.int32),
                        not_cells=sim.hole_masks.astype(np.int32))
    run_steps(movie, PLANE_FRAME_RATE, folder, model)
    return folder


def clear(cache: Path) -> None:
    shutil.rmtree(cache, ignore_errors=True)


def read_h5(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in names}
