"""Shared fixtures: small movie files and the repository paths tests need."""

from __future__ import annotations

import json
import os
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
        f["corrImg"] = (0.5 * (masks > 0) + 0.05 * rng.standard_normal((HEIGHT, WIDTH))).astype(np.float32)
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


# ---------------------------------------------- reading MERGE's outputs as other tools do (test_merge, test_nwb,
# ---------------------------------------------- test_suite2p_folder, test_curation, test_pipeline)

def read_like_allen_tools(alias: Path, extraction: Path) -> None:
    """Read `alias` (a <plane>_extraction.h5) as the original capsule's newer downstream tools read it: ROI masks as a
    sparse COO array from rois/coords, rois/data, rois/shape; traces as (frames, ROIs); the neuropil coefficients
    and pixels at their newer locations. Everything equals `extraction`, read the original way."""
    import sparse

    from ophys_extraction import schema

    with h5py.File(alias, "r") as f, h5py.File(extraction, "r") as ref:
        n_rois, height, width = (int(v) for v in f["rois/shape"][()])
        masks = sparse.COO(f["rois/coords"][()], f["rois/data"][()], shape=(n_rois, height, width)).todense()
        labels = ref["cellpose/masks"][()]
        for i in range(n_rois):
            np.testing.assert_array_equal(masks[i] > 0, labels == i + 1)
        roi, y, x = ref["rois/coords"][()]
        np.testing.assert_array_equal(masks[roi, y, x], ref["rois/data"][()])
        for name in ("corrected", "roi", "neuropil"):
            traces = f[f"traces/{name}"][()].T
            assert traces.shape == (ref["traces/corrected"].shape[1], n_rois)
            np.testing.assert_array_equal(traces, ref[f"traces/{name}"][()].T)
        np.testing.assert_array_equal(f["traces/neuropil_rcoef"][()], ref["neuropil_rcoef"][()])
        if schema.RAW_RCOEF in ref:
            np.testing.assert_array_equal(f[f"traces/{schema.RAW_RCOEF}"][()], ref[schema.RAW_RCOEF][()])
        np.testing.assert_array_equal(f["rois/neuropil_coords"][()], ref["neuropil_coords"][()])
        np.testing.assert_array_equal(f["iscell"][()], ref["iscell"][()])
        assert f.attrs["plane_id"] == ref.attrs["plane_id"] and f.attrs["frame_rate"] == ref.attrs["frame_rate"]


METADATA = {"session_start_time": "2025-03-01T10:15:00-08:00", "experimenter": ["Doe, Jane"],
            "institution": "Example Institute", "lab": "Imaging lab", "session_description": "A test session.",
            "experiment_description": "Fixture planes.", "excitation_lambda": 920, "emission_lambda": 510,
            "subject": {"subject_id": "mouse-1", "species": "Mus musculus", "sex": "F", "age": "P90D",
                        "genotype": "Slc17a7-IRES2-Cre", "weight": "25 g"}}


def read_nwb(path: Path) -> dict:
    """What a reader of the NWB file gets, through pynwb."""
    from pynwb import NWBHDF5IO

    from ophys_extraction import nwb

    with NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        ophys = f.processing[nwb.MODULE]
        seg = ophys[nwb.SEGMENTATION][nwb.PLANE_SEGMENTATION]
        plane = f.imaging_planes["ImagingPlane"]
        return {
            "identifier": f.identifier, "session_start_time": f.session_start_time, "subject": f.subject.fields,
            "experimenter": f.experimenter, "session_id": f.session_id,
            "columns": {name: np.asarray(seg[name].data[()]) for name in seg.colnames},
            "ids": np.asarray(seg.id.data[()]),
            "series": {name: (np.asarray(ophys[nwb.FLUORESCENCE][name].data[()]), ophys[nwb.FLUORESCENCE][name].rate,
                              np.asarray(ophys[nwb.FLUORESCENCE][name].rois.data[()]))
                       for name in nwb.SERIES},
            "images": {name: np.asarray(image.data[()]) for name, image in ophys[nwb.IMAGES].images.items()},
            "plane": {"rate": plane.imaging_rate, "indicator": plane.indicator, "location": plane.location,
                      "grid_spacing": None if plane.grid_spacing is None else list(plane.grid_spacing[()]),
                      "excitation_lambda": plane.excitation_lambda},
        }


def critical_findings(path: Path) -> list[str]:
    from nwbinspector import Importance, inspect_nwbfile

    return [f"{m.check_function_name}: {m.message}" for m in inspect_nwbfile(nwbfile_path=str(path))
            if m.importance == Importance.CRITICAL]


def dense_masks(handle: h5py.File) -> np.ndarray:
    n_rois, height, width = handle["rois/shape"][()]
    masks = np.zeros((n_rois, height, width), np.float32)
    roi, y, x = handle["rois/coords"][()]
    masks[roi, y, x] = handle["rois/data"][()]
    return masks


def assert_equal_to_extraction(nwb_path: Path, extraction_path: Path) -> dict:
    """Every array of the NWB file equals its dataset in extraction.h5 (masks and images transposed to (x, y),
    traces to (frames, ROIs))."""
    from ophys_extraction import nwb

    got = read_nwb(nwb_path)
    with h5py.File(extraction_path, "r") as f:
        n_rois = f["traces/corrected"].shape[0]
        np.testing.assert_array_equal(got["ids"], np.arange(n_rois))
        np.testing.assert_array_equal(got["columns"]["image_mask"], dense_masks(f).transpose(0, 2, 1))
        for column, (path, _) in nwb.COLUMNS.items():
            if path in f:
                np.testing.assert_array_equal(got["columns"][column], f[path][()], err_msg=column)
            else:
                assert column not in got["columns"]
        for name, (path, _) in nwb.SERIES.items():
            data, rate, rois = got["series"][name]
            np.testing.assert_array_equal(data, f[path][()].T, err_msg=name)
            assert rate == pytest.approx(f.attrs["frame_rate"])
            np.testing.assert_array_equal(rois, np.arange(n_rois))
        for name in ("meanImg", "maxImg", "corrImg"):
            np.testing.assert_array_equal(got["images"][name], f[name][()].T)
        assert got["plane"]["rate"] == pytest.approx(f.attrs["frame_rate"])
        assert got["session_id"] == f.attrs["plane_id"]
    return got


def merged_plane_output(root: Path, **kwargs) -> Path:
    """<root>/plane_7/extraction/extraction.h5 (the pipeline's layout) of a fixture plane."""
    paths = make_plane(root / "in", **kwargs)
    assert run_merge(paths, root / "plane_7" / "extraction", "--plane_id", "plane_7") == 0
    return root / "plane_7" / "extraction" / "extraction.h5"


QT_APP: list = []   # the one QApplication, kept alive for the session's GUI tests


def gui_io():
    """suite2p.gui.io (needs a Qt binding; skipped where Qt's own libraries cannot load), on Qt's offscreen platform
    unless QT_QPA_PLATFORM says otherwise (no display needed)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")   # read when the QApplication is made
    try:
        from qtpy.QtWidgets import QApplication
    except ImportError as err:       # PyQt6 is pinned; a system without its libraries (libEGL, ...) cannot load it
        pytest.skip(f"Qt cannot load here: {err}")
    if not QT_APP:
        QT_APP.append(QApplication.instance() or QApplication([]))
    from suite2p.gui import io
    return io
