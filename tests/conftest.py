"""Shared fixtures: small movie files and the repository paths tests need."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MODULES_CONFIG = (REPO / "conf" / "modules.config").read_text()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that launches Nextflow is also `slow`, so that `pytest -m "not slow"` is the quick loop."""
    for item in items:
        if item.get_closest_marker("nextflow") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


def config_block(process: str) -> str:
    """The text of `withName: '<process>' { ... }` in conf/modules.config (up to the next withName); empty for a
    process without one (MERGE: no options, and its results are published by main.nf)."""
    match = re.search(rf"^\s*withName: '{process}' \{{(.*?)(?=^\s*withName:|\Z)", MODULES_CONFIG, re.S | re.M)
    return match.group(1) if match else ""


def write_h5(path: Path, data: np.ndarray | None = None, **datasets: np.ndarray) -> Path:
    """An HDF5 file with `data` (if given) and any other datasets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        if data is not None:
            handle.create_dataset("data", data=data)
        for name, value in datasets.items():
            handle.create_dataset(name, data=value)
    return path


def write_processing_json(folder: Path, rate: object, nested: bool = True) -> Path:
    processes = {"data_processes": [{"name": "Other", "parameters": {}},
                                    {"name": "Motion correction", "parameters": {"movie_frame_rate_hz": rate}}]}
    doc = {"processing_pipeline": processes} if nested else processes
    path = folder / "processing.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def small_movie(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_h5(tmp_path / "movie.h5", rng.integers(0, 1000, size=(37, 12, 10), dtype=np.int16))


@pytest.fixture(scope="session")
def demo_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo (make demo-data); generated here if the checkout has not made it yet."""
    bundled = REPO / "demo_data"
    if (bundled / ".complete").exists():
        return bundled
    from ophys_extraction.cli.synthetic import main as synthetic_main
    out = tmp_path_factory.mktemp("demo") / "demo_data"
    assert synthetic_main(["--out", str(out), "--n_planes", "2", "--seed", "20261124"]) == 0
    return out


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_input: Path):
    """One uninterrupted local run of the demo, shared by the tests that compare other runs with it."""
    from pipeline_runner import run_pipeline  # imports this module: not at the top
    return run_pipeline(tmp_path_factory.mktemp("demo_run"), "-profile", "test", "--input_dir", str(demo_input))


# ---------------------------------------------------------------------------------- SEGMENT's input and model

# The project's model (trained by bin/train_model.py), as the test profile gives it.
MODEL = REPO / "assets" / "models" / "ophys_cp3"   # segmentation.BUNDLED_MODEL


def write_summary(path: Path, seed: int, size: int) -> np.ndarray:
    """summary.h5 as the SUMMARY_IMAGES step writes it, from a synthetic plane's mean image and max projection;
    returns the plane's ground-truth masks."""
    from ophys_extraction.summary_images import enhanced_mean_image, max_mean_ratio
    from ophys_extraction.synthetic import make_training_image
    mean, mx, masks = make_training_image(seed, height=size, width=size)
    with h5py.File(path, "w") as f:
        f["meanImg"] = mean
        f["maxImg"] = mx
        f["max_mean_ratio"] = max_mean_ratio(mx, mean).astype(np.float32)
        f["meanImgE"] = enhanced_mean_image(mean)
    return masks


# ------------------------------------------------------------------------ MERGE's inputs (the three step files)

HEIGHT, WIDTH = 48, 64          # not square: catches transposed axes
FRAMES = 4000                   # 5 ROIs x 4000 frames x 4 B > 64 KiB: the compressed, row-block copy path
CENTRES = [(10, 12), (12, 40), (30, 20), (34, 50), (24, 32), (40, 8)]   # Cellpose labels 1..6
RADIUS = 4


def _disc_masks(height: int, width: int, centres: list[tuple[int, int]]) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    masks = np.zeros((height, width), np.int32)
    for label, (cy, cx) in enumerate(centres, start=1):
        masks[(yy - cy) ** 2 + (xx - cx) ** 2 <= RADIUS**2] = label
    return masks


def make_plane(folder: Path, drop: tuple[int, ...] = (3,), n_labels: int = 6, frames: int = FRAMES,
               mutual_info: bool = True, omit: tuple[str, ...] = ()) -> dict[str, Path]:
    """summary.h5, segmentation.h5 and traces.h5 of one plane; Cellpose labels in `drop` were dropped by suite2p."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    masks = _disc_masks(HEIGHT, WIDTH, CENTRES[:n_labels])
    mean_img = (100 + 5 * rng.standard_normal((HEIGHT, WIDTH)) + 80 * (masks > 0)).astype(np.float32)
    max_img = (mean_img * 1.5 + 10 * rng.standard_normal((HEIGHT, WIDTH))).astype(np.float32)

    paths = {"summary": folder / "summary.h5", "segmentation": folder / "segmentation.h5",
             "traces": folder / "traces.h5"}
    with h5py.File(paths["summary"], "w") as f:
        f["meanImg"] = mean_img
        f["maxImg"] = max_img
        f["max_mean_ratio"] = np.log(np.maximum(1e-3, max_img / np.maximum(1e-3, mean_img))).astype(np.float32)
        f["meanImgE"] = mean_img / mean_img.max()
        f.attrs.update({"movie": "/data/session/plane_7/motion_correction/plane_7_registered.h5",
                        "n_frames": frames, "height": HEIGHT, "width": WIDTH, "frame_rate": 10.71,
                        "bin_duration": 3.7, "bin_size": 39, "n_bins": frames // 39, "denoise": False})

    p1, p99 = np.percentile(mean_img, (1, 99))
    weights = (0.1 + np.clip((mean_img - p1) / (p99 - p1), 0, 1)).astype(np.float32)
    with h5py.File(paths["segmentation"], "w") as f:
        cp = f.create_group("cellpose")
        cp["masks"] = masks
        cp["flows_in_hsv"] = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        cp["flows"] = rng.standard_normal((2, HEIGHT, WIDTH)).astype(np.float32)
        cp["cellprob"] = rng.standard_normal((HEIGHT, WIDTH)).astype(np.float32)
        cp["final_locations"] = np.stack([yy, xx]).astype(np.float32)
        cp["styles"] = rng.standard_normal(256).astype(np.float32)
        f["weights"] = weights
        f["image"] = mean_img
        f.attrs.update({"anatomical_only": 2, "diameter": 0.0, "diameter_used": 9.0, "cellprob_threshold": 0.0,
                        "flow_threshold": 1.5, "device": "cpu", "cellpose_version": "3.1.1.2",
                        "torch_version": "2.5.1"})

    labels = np.array([lab for lab in range(1, n_labels + 1) if lab not in drop], np.int32)
    n_rois = labels.size
    coords, neuropil, lam, med = [], [], [], []
    for i, lab in enumerate(labels):
        ys, xs = np.nonzero(masks == lab)
        coords.append(np.stack([np.full(ys.size, i), ys, xs]))
        lam.append(weights[ys, xs])
        k = np.argmin((ys - np.median(ys)) ** 2 + (xs - np.median(xs)) ** 2)
        med.append((ys[k], xs[k]))
        ring = ((yy - ys.mean()) ** 2 + (xx - xs.mean()) ** 2 <= (3 * RADIUS) ** 2) & (masks == 0)
        ny, nx = np.nonzero(ring)
        neuropil.append(np.stack([np.full(ny.size, i), ny, nx]))
    coords_arr = np.concatenate(coords, axis=1).astype(np.int32) if coords else np.zeros((3, 0), np.int32)
    neuropil_arr = np.concatenate(neuropil, axis=1).astype(np.int32) if neuropil else np.zeros((3, 0), np.int32)
    n_pixels = coords_arr.shape[1]
    F = (200 + 20 * rng.standard_normal((n_rois, frames))).astype(np.float32)
    Fneu = (100 + 10 * rng.standard_normal((n_rois, frames))).astype(np.float32)
    Fneu[1:2] += 200   # ROI 1's corrected trace sits below zero (its baseline flag is set)
    r = np.full(n_rois, 0.7, np.float32)
    corrected = (F - r[:, None] * Fneu).astype(np.float32)
    npix = np.bincount(coords_arr[0], minlength=n_rois)
    with h5py.File(paths["traces"], "w") as f:
        f["traces/corrected"] = corrected
        f["traces/roi"] = F
        f["traces/neuropil"] = Fneu
        f["traces/skew"] = np.zeros(n_rois, np.float32)
        f["traces/std"] = corrected.std(axis=1).astype(np.float32)
        f["traces/baseline_at_or_below_zero"] = np.median(corrected, axis=1) <= 0
        f["rois/data"] = np.concatenate(lam).astype(np.float32) if lam else np.zeros(0, np.float32)
        f["rois/coords"] = coords_arr
        f["rois/shape"] = np.array([n_rois, HEIGHT, WIDTH], np.int64)
        f["rois/med"] = np.array(med, np.int64).reshape(n_rois, 2)
        f["rois/npix"] = npix.astype(np.int64)
        f["rois/npix_soma"] = npix.astype(np.int64)
        f["rois/footprint"] = np.ones(n_rois, np.int64)
        for name in ("aspect_ratio", "compact", "mrs", "mrs0", "npix_norm", "npix_norm_no_crop", "radius",
                     "solidity"):
            f[f"rois/{name}"] = rng.uniform(0.5, 1.5, n_rois)
        f["rois/soma_crop"] = np.ones(n_pixels, bool)
        f["rois/overlap"] = np.zeros(n_pixels, bool)
        f["iscell"] = np.stack([np.arange(n_rois) % 2 == 0, rng.uniform(0, 1, n_rois)], axis=1).astype(np.float32)
        suite2p_prob = np.linspace(0.1, 0.9, n_rois)   # suite2p's builtin classifier's answer, as EXTRACT keeps it
        f["iscell_suite2p"] = np.stack([suite2p_prob > 0.5, suite2p_prob], axis=1).astype(np.float32)
        f["neuropil_coords"] = neuropil_arr
        f["neuropil_rcoef"] = r
        if mutual_info:
            from ophys_extraction import schema
            f[schema.RAW_RCOEF] = np.full(n_rois, 1.3, np.float32)
        f["labels"] = labels
        for name in omit:
            del f[name]
        f.attrs.update({"use_suite2p_neuropil": not mutual_info, "neucoeff": 0.7, "suite2p_version": "1.1.0",
                        "parameters": json.dumps({"inner_neuropil_radius": 2, "min_neuropil_pixels": 350})})
    return paths


def run_merge(paths: dict[str, Path], outdir: Path, *extra: str) -> int:
    """merge.py on the plane's files; --plane_id plane_7 unless `extra` gives one (the pipeline always does)."""
    plane_id = () if "--plane_id" in extra else ("--plane_id", "plane_7")
    from ophys_extraction.cli.merge import main as merge_main
    return merge_main(["--summary", str(paths["summary"]), "--segmentation", str(paths["segmentation"]),
                       "--traces", str(paths["traces"]), "--outdir", str(outdir), *plane_id, *extra])
