"""SEGMENT step: the real Cellpose 3 with the bundled model on small synthetic planes, the segmentation.h5 format,
model resolution errors, and the detection metrics.

Cellpose runs are few and small (CPU): one 192 x 192 plane segmented twice (scores, format, determinism), and one
96 x 96 plane per other --anatomical_only mode.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from ophys_extraction import segmentation
from ophys_extraction.cli.segment import main as segment_main
from ophys_extraction.errors import EXIT_BAD_INPUT, run_cli
from ophys_extraction.metrics import (core_ratio, dark_spot_density, false_positives_on, found_rois, iou_matrix,
                                     match_rois, mean_image_contrast, pooled, radial_profile)
from ophys_extraction.segmentation import SegmentationParams, relabel_sequential
from ophys_extraction.segmentation_input import (IMAGE_MODES, SUMMARY_DATASETS, mean_weights, prepare_image,
                                                 spatial_highpass)
from ophys_extraction.synthetic import make_training_image
from ophys_extraction.training.data import SYNTH_EVAL_SEED0

from conftest import MODEL, write_summary

# The committed model measured F1 0.647 (precision 0.65, recall 0.65) on this one plane, 0.69-0.71 pooled over the
# held-out planes of bench/detection.py: most somata are dim rings, most false positives non-expressing somata
# (issue 3 target 0.9: not met). A floor against regressions (a broken preparation or model scores ~0), a little
# below the measured value.
MIN_F1 = 0.6


def run(argv, capsys):
    """(exit code, stderr lines) of the CLI, run in-process through run_cli like bin/segment.py."""
    with pytest.raises(SystemExit) as exc:
        run_cli(segment_main, [str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return exc.value.code, err


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    assert MODEL.is_file(), f"bundled model missing: {MODEL}"
    tmp = tmp_path_factory.mktemp("segment")
    summary = tmp / "summary.h5"
    truth = write_summary(summary, SYNTH_EVAL_SEED0 + 40, 192)
    outputs = []
    for name in ("a.h5", "b.h5"):
        assert segment_main(["--summary", str(summary), "--output", str(tmp / name),
                             "--pretrained_model", str(MODEL), "--device", "cpu"]) == 0
        outputs.append(tmp / name)
    return summary, truth, outputs


def test_masks_match_ground_truth(plane):
    _, truth, (out, _) = plane
    with h5py.File(out, "r") as f:
        masks = f["cellpose/masks"][()]
    scores = match_rois(truth, masks)
    assert scores.f1 >= MIN_F1, scores


def test_segmentation_file_format(plane):
    summary, _, (out, _) = plane
    with h5py.File(summary, "r") as f:
        mean = f["meanImg"][()]
    h, w = mean.shape
    expected = {"cellpose/masks": ((h, w), np.int32), "cellpose/flows_in_hsv": ((h, w, 3), np.uint8),
                "cellpose/flows": ((2, h, w), np.float32), "cellpose/cellprob": ((h, w), np.float32),
                "cellpose/final_locations": ((2, h, w), np.float32), "cellpose/styles": ((256,), np.float32),
                "weights": ((h, w), np.float32), "image": ((h, w), np.float32)}
    with h5py.File(out, "r") as f:
        for name, (shape, dtype) in expected.items():
            assert f[name].shape == shape, name
            assert f[name].dtype == dtype, name
        masks = f["cellpose/masks"][()]
        n = masks.max()
        assert n > 0
        assert np.array_equal(np.unique(masks), np.arange(n + 1))          # 1..n without gaps
        np.testing.assert_allclose(f["weights"][()], mean_weights(mean))
        np.testing.assert_array_equal(f["image"][()], mean)                 # mode 2: the mean image itself
        attrs = dict(f.attrs)
        assert attrs["anatomical_only"] == 2 and attrs["n_rois"] == n
        assert attrs["diameter"] == 0 and attrs["diameter_used"] > 0       # estimated from the plane
        assert attrs["diameter_source"].startswith("estimated: size model")
        assert attrs["cellpose_version"].startswith("3.")
        assert attrs["device"] == "cpu"
        assert attrs["runtime_seconds"] > 0                                  # for the plane's summary row
        # Pixels at or below the threshold stay where they are; cell pixels move (towards their cell's centre).
        loc, prob = f["cellpose/final_locations"][()], f["cellpose/cellprob"][()]
        grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).astype(np.float32)
        still = prob <= attrs["cellprob_threshold"]
        np.testing.assert_array_equal(loc[:, still], grid[:, still])
        assert np.abs(loc - grid)[:, ~still].max() > 1


def test_deterministic(plane):
    _, _, (a, b) = plane
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in ("cellpose/masks", "cellpose/flows", "cellpose/cellprob", "cellpose/final_locations",
                     "cellpose/styles"):
            np.testing.assert_array_equal(fa[name][()], fb[name][()], err_msg=name)


@pytest.mark.parametrize("flow_threshold", [1.5, 0.4])
def test_one_dynamics_run_gives_cellposes_masks_and_final_locations(flow_threshold):
    """SEGMENT runs the flow dynamics once for both outputs; they equal Cellpose's own masks (CellposeModel.eval,
    which runs the dynamics inside) and a separate follow_flows run, bit for bit."""
    from cellpose import dynamics
    image, _, _ = make_training_image(SYNTH_EVAL_SEED0 + 42, height=96, width=96)
    model = segmentation.load_model(segmentation.resolve_model(str(MODEL)), torch.device("cpu"))
    params = SegmentationParams(flow_threshold=flow_threshold)
    result = segmentation.segment_image(image, np.zeros_like(image), model, params)
    diameter = result.attrs["diameter_used"]
    masks, flows, _ = model.net.eval(image, channels=[0, 0], diameter=diameter,
                                     cellprob_threshold=params.cellprob_threshold, flow_threshold=flow_threshold)
    assert result.n_rois > 3
    np.testing.assert_array_equal(result.masks, relabel_sequential(masks))
    np.testing.assert_array_equal(result.flows, flows[1])
    above = flows[2] > params.cellprob_threshold
    moved = dynamics.follow_flows(flows[1] * above / 5.0, inds=np.nonzero(above), niter=result.attrs["niter"],
                                  interp=True, device=torch.device("cpu"))
    np.testing.assert_array_equal(result.final_locations[:, above], moved)
    assert set(result.seconds) == {"size choice", "network", "dynamics"} and min(result.seconds.values()) > 0


@pytest.mark.parametrize("mode", [1, 3, 4, 5])
def test_other_image_modes_run(tmp_path, mode):
    summary = tmp_path / "summary.h5"
    masks = write_summary(summary, SYNTH_EVAL_SEED0 + 41, 96)
    with h5py.File(summary, "a") as s:   # a correlation image: cells correlate with their neighbours, noise does not
        noise = np.random.default_rng(5).normal(0, 0.05, masks.shape)
        s["corrImg"] = (0.6 * (masks > 0) + noise).astype(np.float32)
    out = tmp_path / "seg.h5"
    extra = ["--spatial_hp_cp", "0.5", "--diameter", "10"] if mode == 1 else []
    assert segment_main(["--summary", str(summary), "--output", str(out), "--pretrained_model", str(MODEL),
                         "--anatomical_only", str(mode), "--device", "cpu", *extra]) == 0
    with h5py.File(summary, "r") as s, h5py.File(out, "r") as f:
        masks = f["cellpose/masks"][()]
        assert masks.dtype == np.int32 and np.array_equal(np.unique(masks), np.arange(masks.max() + 1))
        expected_image = s[IMAGE_MODES[mode].image][()]
        expected_weights = mean_weights(s["meanImg"][()]) if IMAGE_MODES[mode].weights == "meanImg" else s["maxImg"][()]
        if mode == 1:
            expected_image = spatial_highpass(expected_image, 10.0, 0.5)
        np.testing.assert_allclose(f["image"][()], expected_image, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(f["weights"][()], expected_weights)
        assert f.attrs["anatomical_only"] == mode


# ------------------------------------------------------------------------------------------- cell size (--diameter 0)

# --diameter 0 on planes of looks the size choice was never fitted or tuned on (sizing.py): the held-out family of
# the project's generator (bright rings) and the independent renderer (synthetic/other_render.py), 192 x 192 px.
# Two checks per plane that the refine step of issue 14 failed (it shrank the size on looks unlike the training set):
# F1 at the chosen diameter is not beaten by more than NEIGHBOUR_MARGIN at a coarse step (sqrt 2) either side, and
# the planes' pooled F1 stays above a floor. Measured 2026-12-03 (bundled model and size model): F1 0.899 / 0.958 /
# 0.892 / 0.559 at 8.2 / 18.5 / 9.4 / 12.7 px, pooled 0.827; the best coarse neighbour was 0.865 / 0.920 / 0.876 /
# 0.602 (the dense plane's larger neighbour beats the choice by 0.043: issue 24's 0.03 is not met on every plane).
# Issue 14's estimate (size model refined to the median mask diameter) fell to F1 0.07-0.28 on planes of the other
# renderer's dim look (bench/sizes.py).
HELD_OUT_PLANES = [("family", "bright_ring", 7.0, 1), ("family", "bright_ring", 20.0, 2), ("other", "bright", 10.0, 3),
                   ("other", "dense", 14.0, 4)]
NEIGHBOUR_MARGIN = 0.05
HELD_OUT_F1_FLOOR = 0.80


def held_out_plane(source: str, look: str, diameter: float, seed: int, size: int = 192):
    """(mean image, ground truth) of a held-out plane of the generator's family or the other renderer's look."""
    from ophys_extraction.synthetic.other_render import render_other
    from ophys_extraction.training.data import plane_fields, synthetic_plane
    if source == "family":
        plane = synthetic_plane(SYNTH_EVAL_SEED0 + 80 + seed, size, vary=False, **plane_fields(diameter, 0.25, look))
    else:
        plane = render_other(SYNTH_EVAL_SEED0 + 80 + seed, diameter, look, size)
    return plane.mean, plane.masks


def segment_at_zero(tmp_path, model, image):
    """(masks, attributes) of the SEGMENT step run with --diameter 0 on a summary.h5 holding this mean image."""
    summary, out = tmp_path / "summary.h5", tmp_path / "segmentation.h5"
    with h5py.File(summary, "w") as f:
        f["meanImg"] = image
    assert segment_main(["--summary", str(summary), "--output", str(out), "--pretrained_model", str(model),
                         "--device", "cpu"]) == 0
    with h5py.File(out, "r") as f:
        return f["cellpose/masks"][()], dict(f.attrs)


def f1_either_side(model, image, truth, diameter: float) -> list[float]:
    return [match_rois(truth, segmentation.segment_image(image, np.zeros_like(image), model,
                                                         SegmentationParams(diameter=diameter * f)).masks).f1
            for f in (2 ** -0.5, 2 ** 0.5)]


@pytest.fixture(scope="module")
def loaded_model():
    return segmentation.load_model(segmentation.resolve_model(str(MODEL)), torch.device("cpu"))


@pytest.fixture(scope="module")
def held_out_f1():
    return {}


@pytest.mark.slow
@pytest.mark.parametrize("source,look,diameter,seed", HELD_OUT_PLANES)
def test_diameter_zero_on_held_out_looks_is_not_beaten_a_step_either_side(tmp_path, loaded_model, held_out_f1,
                                                                          source, look, diameter, seed):
    image, truth = held_out_plane(source, look, diameter, seed)
    masks, attrs = segment_at_zero(tmp_path, MODEL, image)
    assert attrs["diameter"] == 0 and attrs["diameter_source"].startswith("estimated: size model"), attrs
    f1 = match_rois(truth, masks).f1
    held_out_f1[source, look, diameter] = f1
    assert f1 >= max(f1_either_side(loaded_model, image, truth, attrs["diameter_used"])) - NEIGHBOUR_MARGIN, (
        f1, attrs["diameter_source"])


@pytest.mark.slow
def test_diameter_zero_pooled_f1_on_held_out_looks(held_out_f1):
    assert len(held_out_f1) == len(HELD_OUT_PLANES), "run with the per-plane tests above"
    assert np.mean(list(held_out_f1.values())) >= HELD_OUT_F1_FLOOR, held_out_f1


def test_network_run_batches_several_images_and_scales_with_evals_outputs(loaded_model):
    """network.run: tiles of several (image, diameter) requests in shared batches, each output bit-identical to
    CellposeModel.eval's: a tiled image, one smaller than a tile, the network's own scale (no resize), and batches of
    1 (a tile's output does not depend on its batch)."""
    from ophys_extraction import network
    image, _, _ = make_training_image(SYNTH_EVAL_SEED0 + 43, height=160, width=160)
    small = image[:64, :80]
    requests = [(image, 7.0), (small, 15.0), (image, float(loaded_model.diam_mean)), (small, 9.0)]
    for batch in (8, 1):
        for (img, d), out in zip(requests, network.run(loaded_model.net, requests, batch)):
            _, flows, styles = loaded_model.net.eval(img, channels=[0, 0], diameter=d, compute_masks=False)
            np.testing.assert_array_equal(out.dP, flows[1])
            np.testing.assert_array_equal(out.cellprob, flows[2])
            np.testing.assert_array_equal(out.styles, styles)


def test_network_run_takes_a_second_channel_as_evals_channels_1_2(loaded_model):
    """An (H, W, 2) image is Cellpose's two-channel input (channels [1, 2]): outputs bit-identical to eval's, and
    different from the first channel alone (the second one reaches the network). bench/two_channel.py measures
    models fine-tuned on the mean and correlation images through this path."""
    from ophys_extraction import network
    image, second, _ = make_training_image(SYNTH_EVAL_SEED0 + 45, height=160, width=160)
    both = np.dstack([image, second])
    out = network.run(loaded_model.net, [(both, 9.0)], 2)[0]
    _, flows, styles = loaded_model.net.eval(both, channels=[1, 2], channel_axis=-1, diameter=9.0,
                                             compute_masks=False)
    np.testing.assert_array_equal(out.dP, flows[1])
    np.testing.assert_array_equal(out.cellprob, flows[2])
    np.testing.assert_array_equal(out.styles, styles)
    alone = network.run(loaded_model.net, [(image, 9.0)], 2)[0]
    assert not np.array_equal(out.cellprob, alone.cellprob)
    result = segmentation.segment_image(both, np.zeros_like(image), loaded_model, SegmentationParams())
    assert result.masks.shape == image.shape and result.attrs["diameter_used"] > 0


def test_runs_compute_each_window_and_diameter_once(loaded_model, monkeypatch):
    """The size choice and the segmentation share a network run where the window and the diameter coincide."""
    from ophys_extraction import network
    calls = []
    real = network.run
    monkeypatch.setattr(network, "run", lambda net, requests, *a: calls.append(len(requests)) or real(net, requests, *a))
    image, _, _ = make_training_image(SYNTH_EVAL_SEED0 + 44, height=96, width=96)
    runs = segmentation.Runs(loaded_model, image, SegmentationParams())
    runs.found(200, (8.0, 11.0))                  # a search crop larger than the image: the whole image
    assert calls == [2]
    whole = runs.network(96, (11.0,))[0]          # the segmentation at a candidate's diameter: no second run
    assert calls == [2] and whole is runs.outputs[(0, 0, 96, 96), 11.0]
    runs.network(96, (10.0,))
    assert calls == [2, 1]


def sizing_range(diameter: float) -> bool:
    return segmentation.sizing.MIN_DIAMETER <= diameter <= max(segmentation.sizing.SCAN_DIAMETERS)


# Planes of three looks for the model without its size model (sized from the scan). Measured 2026-12-03: F1 0.462
# (realistic, 16 px: chosen 22.6 px; the label-free score is flat from 12 to 24 px there and the larger end is taken),
# 0.415 (the other renderer's dim look, 10 px: chosen 10.4 px) and 0.907 (bright rings, 12 px: 10.1 px); mean 0.595.
BARE_MODEL_PLANES = [("family", "realistic", 16.0, 5), ("other", "dim", 10.0, 6), ("family", "bright_ring", 12.0, 7)]
BARE_MODEL_F1_FLOOR = 0.55


@pytest.mark.slow
def test_a_model_without_size_model_is_sized_from_the_scan(tmp_path):
    import shutil
    bare = tmp_path / "bare_model"
    shutil.copyfile(MODEL, bare)                 # the same network without its <model>_size.npy
    assert not segmentation.sizing.size_model_file(bare).exists()
    f1 = {}
    for plane in BARE_MODEL_PLANES:
        image, truth = held_out_plane(*plane)
        (tmp_path / plane[1]).mkdir()
        masks, attrs = segment_at_zero(tmp_path / plane[1], bare, image)
        assert attrs["diameter_source"].startswith("estimated: no size model"), attrs["diameter_source"]
        assert sizing_range(attrs["diameter_used"])
        f1[plane] = match_rois(truth, masks).f1
    assert np.mean(list(f1.values())) >= BARE_MODEL_F1_FLOOR, f1


def test_size_estimate_is_cellposes_size_model():
    """The search's start is Cellpose's own size model (models.SizeModel) for a model segmented at its own scale."""
    from cellpose import models
    model = segmentation.load_model(segmentation.resolve_model(str(MODEL)), torch.device("cpu"))
    image, _ = held_out_plane("family", "realistic", 12.0, 6, size=128)
    model.net.diam_labels = model.diam_mean      # Cellpose's SizeModel takes its style at diam_mean / diam_labels
    reference = models.SizeModel(cp_model=model.net, pretrained_size=str(segmentation.sizing.size_model_file(MODEL)))
    _, from_style = reference.eval(image, channels=[0, 0])
    style = model.net.eval(image, channels=[0, 0], diameter=model.diam_mean, compute_masks=False)[-1]
    assert model.size_model.predict(style) == pytest.approx(float(np.asarray(from_style).ravel()[0]), rel=1e-5)


# ------------------------------------------------------------------------------------------- bad models / input

@pytest.fixture
def summary_file(tmp_path):
    path = tmp_path / "summary.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for name in SUMMARY_DATASETS:
            f[name] = rng.random((32, 32), dtype=np.float32)
    return path


def _bad_model_cases(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a model at all")
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    return {
        "cyto9": "unknown Cellpose model name",
        str(tmp_path / "missing" / "model"): "model file not found",
        str(garbage): "cannot be loaded as a Cellpose model",
        str(other): "cannot be loaded as a Cellpose model",
        str(tmp_path): "cannot be loaded as a Cellpose model",
    }


def test_bad_models_fail_with_one_line(tmp_path, summary_file, capsys):
    for model, message in _bad_model_cases(tmp_path).items():
        out = tmp_path / "seg.h5"
        code, err = run(["--summary", summary_file, "--output", out, "--pretrained_model", model], capsys)
        assert code == EXIT_BAD_INPUT, model
        assert len(err) == 1 and err[0].startswith("ERROR: ") and message in err[0], err
        assert not out.exists()
        assert not list(tmp_path.glob(".seg.h5*"))


def test_builtin_without_weights_is_not_downloaded(tmp_path, summary_file, capsys, monkeypatch):
    from cellpose import models
    monkeypatch.setattr(models, "MODEL_DIR", tmp_path / "empty_model_dir")
    monkeypatch.setattr(models, "MODEL_LIST_PATH", str(tmp_path / "empty_model_dir" / "gui_models.txt"))
    out = tmp_path / "seg.h5"
    code, err = run(["--summary", summary_file, "--output", out, "--pretrained_model", "cyto3"], capsys)
    assert code == EXIT_BAD_INPUT
    assert len(err) == 1 and "cannot be downloaded offline" in err[0] and "--pretrained_model" in err[0], err
    assert not out.exists()


def test_unknown_name_lists_valid_names(tmp_path, summary_file, capsys):
    code, err = run(["--summary", summary_file, "--output", tmp_path / "o.h5", "--pretrained_model", "cyto4"],
                    capsys)
    assert code == EXIT_BAD_INPUT and "cyto3" in err[0] and "nuclei" in err[0]


def test_bad_summary_and_parameters(tmp_path, summary_file, capsys):
    no_ratio = tmp_path / "partial.h5"
    with h5py.File(no_ratio, "w") as f:
        f["meanImg"] = np.ones((8, 8), np.float32)
        f["maxImg"] = np.ones((8, 8), np.float32)
    cases = [
        (["--summary", tmp_path / "nope.h5"], "file not found"),
        (["--summary", no_ratio, "--anatomical_only", "1"], "max_mean_ratio"),
        (["--summary", summary_file, "--diameter", "-3"], "--diameter"),
    ]
    for args, message in cases:
        out = tmp_path / "seg.h5"
        code, err = run([*args, "--output", out, "--pretrained_model", MODEL], capsys)
        assert code == EXIT_BAD_INPUT and len(err) == 1 and message in err[0], err
        assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_requested_without_gpu(tmp_path, summary_file, capsys):
    code, err = run(["--summary", summary_file, "--output", tmp_path / "o.h5", "--pretrained_model", MODEL,
                     "--device", "cuda"], capsys)
    assert code == EXIT_BAD_INPUT and "--device" in err[0]


# ------------------------------------------------------------------------------------------- pure functions

def test_prepare_image_modes():
    rng = np.random.default_rng(1)
    images = {name: rng.random((20, 30), dtype=np.float32) for name in SUMMARY_DATASETS}
    for mode, spec in IMAGE_MODES.items():
        name = spec.image
        image, weights = prepare_image(images, mode)
        np.testing.assert_array_equal(image, images[name])
        expected = mean_weights(images["meanImg"]) if spec.weights == "meanImg" else images["maxImg"]
        np.testing.assert_array_equal(weights, expected)
    w = mean_weights(images["meanImg"])
    assert 0.1 <= w.min() and w.max() <= 1.1


def test_spatial_highpass_removes_the_background():
    yy, xx = np.mgrid[0:64, 0:64]
    image = (xx * 10.0 + 100).astype(np.float32)                    # a ramp: all low frequency
    image[30:36, 30:36] += 400                                      # one cell
    out = spatial_highpass(image, 10.0, 1.0)
    assert out[33, 33] > 0.3 and abs(float(np.median(out))) < 0.05   # the cell stands out of a flat background
    assert np.ptp(out[5:20, 8:56]) < 0.1 < np.ptp(image[5:20, 8:56]) / np.ptp(image)
    assert SegmentationParams(spatial_hp_cp=1.0).spatial_hp_cp == 1.0


def test_relabel_sequential():
    masks = np.array([[0, 7, 7], [3, 0, 9], [3, 3, 0]])
    out = relabel_sequential(masks)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 2, 2], [1, 0, 3], [1, 1, 0]])
    assert relabel_sequential(np.zeros((4, 4), int)).max() == 0


def test_match_rois():
    truth = np.zeros((20, 20), int)
    truth[2:6, 2:6], truth[10:14, 10:14], truth[15:19, 2:6] = 1, 2, 3
    pred = np.zeros_like(truth)
    pred[2:6, 2:6] = 5                    # exact
    pred[10:14, 11:15] = 9                # IoU 12/20 = 0.6: a match
    pred[15:19, 4:8] = 2                  # IoU 8/24 < 0.5: a miss and a false positive
    pred[0:2, 15:17] = 4                  # false positive
    s = match_rois(truth, pred)
    assert (s.n_true, s.n_pred, s.true_positives) == (3, 4, 2)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 2 / 7)
    assert iou_matrix(truth, pred).shape == (3, 4)
    ignore = np.zeros(truth.shape, bool)
    ignore[0:3, 14:18] = True             # the stray prediction lies where the truth is unknown
    assert match_rois(truth, pred, ignore=ignore).n_pred == 3
    empty = match_rois(np.zeros((5, 5), int), np.zeros((5, 5), int))
    assert (empty.precision, empty.recall, empty.f1) == (1.0, 1.0, 1.0)
    both = pooled([s, empty])
    assert both.true_positives == 2 and both.n_pred == 4
    np.testing.assert_array_equal(found_rois(truth, pred), [True, True, False])


def test_mean_image_contrast():
    labels = np.zeros((30, 30), int)
    labels[5:10, 5:10], labels[20:25, 20:25], labels[5:10, 20:25] = 1, 2, 3
    img = np.full(labels.shape, 100.0)
    img[labels == 1] = 150                # 50 % brighter than its surroundings
    img[labels == 2] = 80                 # darker
    contrast = mean_image_contrast(img, labels)
    np.testing.assert_allclose(contrast, [0.5, -0.2, 0.0])


def test_radial_profile_tells_rings_from_blobs():
    yy, xx = np.mgrid[0:40, 0:40]
    r = np.hypot(yy - 20, xx - 20)
    labels = (r <= 6).astype(int)
    ring = np.where(r <= 3, 80.0, np.where(r <= 7, 120.0, 100.0))     # dark nucleus, bright rim
    blob = np.where(r <= 6, 150.0, 100.0)
    ring_profile = radial_profile(ring, labels, range(-4, 3))
    assert ring_profile[0] < 1 < ring_profile[4]                        # centre darker, rim brighter
    np.testing.assert_allclose(radial_profile(blob, labels, range(-4, 3)), [1.5] * 5 + [1.0] * 2)


def test_core_ratio_sees_a_dark_nucleus():
    yy, xx = np.mgrid[0:40, 0:40]
    r = np.hypot(yy - 20, xx - 20)
    labels = (r <= 6).astype(int)
    ring = np.where(r <= 4.5, 70.0, np.where(r <= 6, 130.0, 100.0))   # nucleus 30 % darker than the neuropil
    ratio = core_ratio(ring, labels)
    assert ratio.shape == (1,) and ratio[0] == pytest.approx(0.7, abs=0.05)
    assert np.isnan(core_ratio(ring, (r <= 1.5).astype(int))[0])      # too small to have a core


def test_dark_spot_density_counts_dark_spots_away_from_rois():
    img = np.full((100, 100), 100.0)
    yy, xx = np.mgrid[0:100, 0:100]
    for cy, cx in ((20, 20), (20, 70), (70, 20)):
        img[np.hypot(yy - cy, xx - cx) <= 4] = 40.0                     # three dark holes
    labels = np.zeros(img.shape, int)
    labels[np.hypot(yy - 70, xx - 20) <= 5] = 1                         # one of them is an ROI
    assert dark_spot_density(img, labels, below=0.8) == pytest.approx(2.0)
    assert dark_spot_density(img, labels, below=0.1) == 0.0


def test_false_positives_on_other_labels():
    truth = np.zeros((20, 40), int)
    truth[2:8, 2:8] = 1
    holes = np.zeros_like(truth)
    holes[2:8, 22:28] = 1
    pred = np.zeros_like(truth)
    pred[2:8, 2:8] = 5                     # a hit
    pred[2:8, 23:29] = 7                   # a false positive on a hole
    pred[12:18, 12:18] = 9                 # a false positive elsewhere
    assert false_positives_on(truth, pred, holes) == (2, 1)
    assert false_positives_on(truth, truth, holes) == (0, 0)
