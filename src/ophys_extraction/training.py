"""Train the bundled Cellpose 3 model from scratch on synthetic planes mixed with annotated real images
(`init_model`: or continue from weights this script wrote, keeping their training log in the new one).

Data
  * Synthetic: `synthetic.make_training_image` planes (mean image, max projection, ground-truth masks) with varied
    noise, brightness, cell size and density, from seeds `SYNTH_TRAIN_SEED0 + i` (disjoint from the held-out seeds
    `SYNTH_EVAL_SEED0 + i` used here, in `bench/detection.py` and in the tests).
  * Annotated images (optional): a folder like `neurofinder-00xx-left/` (`mean.npy`, `max.npy`, `gt_labels.npy`),
    and/or pairs of `--images` / `--masks` files (.npy or .tif; masks are label images, 0 = background). Each
    annotated image is split SPATIALLY along its longer axis: the first part trains, the last `val_fraction`
    validates, and a gap band between them (moved to rows no ROI crosses) belongs to neither, so no ROI and no
    pixel is both trained and validated on.

Augmentation
  Cellpose's own `random_rotate_and_resize` (inside `train_seg`) already flips, rotates by any angle, rescales
  (+-25 %) and crops `bsize` patches at random positions. What it lacks for two-photon summary images is done here,
  on `copies` pre-rendered versions of every annotated training image (`train_seg` takes a fixed list): a smooth
  multiplicative illumination field (vignetting), gamma, contrast/offset, and Gaussian noise at a random level.
  The synthetic planes need none of that: each is a fresh scene with its own noise.

Everything is seeded: the synthetic seeds, the augmentation RNG, torch, and `train_seg` (which seeds numpy with the
epoch number).
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from ophys_extraction.errors import InputError
from ophys_extraction.metrics import DetectionScores, match_rois, pooled

SYNTH_TRAIN_SEED0 = 10_000          # training planes: seeds 10_000, 10_001, ...
SYNTH_EVAL_SEED0 = 900_000          # held-out planes (evaluation, bench, tests): 900_000, ...
DEMO_NOISE_LEVEL = 1.0              # synthetic.SyntheticSpec.noise_level of the demo data
HIGH_NOISE_LEVEL = 2.0              # the "higher" noise level reported beside it
MODE_NAMES = {1: "max_mean_ratio", 2: "meanImg", 3: "meanImgE", 4: "maxImg"}

log = logging.getLogger("ophys_extraction.training")


# ---------------------------------------------------------------------------------------------- images of a mode

def mode_image(mean_img: np.ndarray, max_img: np.ndarray, mode: int) -> np.ndarray:
    """The image `--anatomical_only mode` segments, computed from a mean image and a max projection as the
    summary step does (the ratio uses the mean image as its denominator)."""
    from ophys_extraction import summary
    if mode == 1:
        return summary.max_mean_ratio(max_img, mean_img).astype(np.float32)
    if mode == 2:
        return np.asarray(mean_img, np.float32)
    if mode == 3:
        return summary.enhanced_mean_image(np.asarray(mean_img, np.float32))
    if mode == 4:
        return np.asarray(max_img, np.float32)
    raise ValueError(f"unknown mode {mode}")


# ---------------------------------------------------------------------------------------------- synthetic data

@dataclass(frozen=True)
class SyntheticPlane:
    seed: int
    mean: np.ndarray
    max: np.ndarray
    masks: np.ndarray
    params: dict[str, float]


def synthetic_plane(seed: int, size: int, noise_level: float | None = None, vary: bool = True) -> SyntheticPlane:
    """One synthetic plane. `vary`: draw noise, brightness, cell size and density from the seed (training);
    otherwise the generator's defaults at `noise_level` (evaluation at the demo noise level)."""
    from ophys_extraction.synthetic import make_training_image
    params: dict[str, Any] = {}
    if vary:
        rng = np.random.default_rng([seed, 7])
        params = {
            "noise_level": float(rng.uniform(0.4, 2.6)) if noise_level is None else noise_level,
            "brightness": float(rng.uniform(0.6, 1.5)),
            "cell_diameter_mean": float(rng.uniform(8.5, 13.0)),
            "cell_density": float(rng.uniform(8.0, 22.0)),
            "n_frames": int(rng.choice([300, 600, 1200, 2400])),
        }
    else:
        params = {"noise_level": DEMO_NOISE_LEVEL if noise_level is None else noise_level}
    mean, mx, masks = make_training_image(seed, height=size, width=size, **params)
    return SyntheticPlane(seed, mean, mx, masks.astype(np.int32), params)


def heldout_planes(n: int, size: int, noise_level: float) -> list[SyntheticPlane]:
    """Held-out synthetic planes at the generator's defaults (seeds SYNTH_EVAL_SEED0 + i)."""
    return [synthetic_plane(SYNTH_EVAL_SEED0 + i, size, noise_level, vary=False) for i in range(n)]


# ---------------------------------------------------------------------------------------------- annotated data

@dataclass
class AnnotatedImage:
    """An annotated image (all modes it has) and its spatial train / validation split."""
    name: str
    images: dict[int, np.ndarray]       # mode -> image (H, W)
    labels: np.ndarray                  # int32 (H, W)
    axis: int = 0                       # split axis
    train_stop: int = 0                 # train = [0, train_stop) along axis
    val_start: int = 0                  # validation = [val_start, end)

    def crop(self, arr: np.ndarray, start: int, stop: int) -> np.ndarray:
        index = [slice(None), slice(None)]
        index[self.axis] = slice(start, stop)
        return arr[tuple(index)]

    def part(self, which: str, mode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, labels, ignore) of the 'train' or 'val' part. Training keeps ROIs cut by the part's edge (as
        Cellpose does for any crop); validation drops them from the ground truth and returns their pixels as
        `ignore` (a prediction lying mostly there is neither a hit nor a false positive)."""
        from ophys_extraction.segmentation import relabel_sequential
        start, stop = (0, self.train_stop) if which == "train" else (self.val_start, self.labels.shape[self.axis])
        labels = self.crop(self.labels, start, stop).copy()
        ignore = np.zeros(labels.shape, bool)
        if which == "val":
            rest = np.concatenate([self.crop(self.labels, 0, start).ravel(),
                                   self.crop(self.labels, stop, self.labels.shape[self.axis]).ravel()])
            ignore = np.isin(labels, np.unique(rest[rest > 0])) & (labels > 0)
            labels[ignore] = 0
        image = self.crop(self.images[mode], start, stop)
        return np.ascontiguousarray(image), relabel_sequential(labels), ignore

    def describe(self) -> dict[str, Any]:
        axis_name = "rows" if self.axis == 0 else "columns"
        n = self.labels.shape[self.axis]
        return {"name": self.name, "shape": list(self.labels.shape), "n_rois": int(len(np.unique(self.labels)) - 1),
                "split_axis": axis_name, "train": f"{axis_name} [0, {self.train_stop})",
                "gap": f"{axis_name} [{self.train_stop}, {self.val_start})",
                "validation": f"{axis_name} [{self.val_start}, {n})",
                "n_train_rois": int(len(np.unique(self.part("train", min(self.images))[1])) - 1),
                "n_val_rois": int(self.part("val", min(self.images))[1].max())}


def split_spatially(image: AnnotatedImage, val_fraction: float = 0.25, gap: int = 24) -> AnnotatedImage:
    """Set the train / gap / validation bands along the longer axis: train = the first (1 - val_fraction) minus
    half the gap, validation = the last val_fraction minus half the gap. A gap wider than an ROI means no ROI has
    pixels in both parts."""
    h, w = image.labels.shape
    axis = 0 if h >= w else 1
    n = image.labels.shape[axis]
    image.axis = axis
    if val_fraction <= 0:
        image.train_stop = image.val_start = n
        return image
    boundary = int(round(n * (1 - val_fraction)))
    image.train_stop = max(1, boundary - gap // 2)
    image.val_start = min(n - 1, boundary + (gap - gap // 2))
    return image


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        from cellpose import io
        arr = io.imread(str(path))
        if arr is None:
            raise ValueError("unreadable")
        return np.asarray(arr)
    except Exception as err:  # noqa: BLE001
        raise InputError(path, f"cannot be read as an image ({type(err).__name__})") from None


def _check_pair(img: np.ndarray, labels: np.ndarray, img_path: Path, lab_path: Path) -> None:
    if img.ndim != 2:
        raise InputError(img_path, f"image has shape {img.shape}; expected a 2-D (height, width) summary image")
    if labels.shape != img.shape:
        raise InputError(lab_path, f"label image has shape {labels.shape}, its image {img.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise InputError(lab_path, "must be a non-negative integer label image (0 = background)")


def load_real_dir(folder: Path, val_fraction: float, gap: int) -> AnnotatedImage:
    """A folder with mean.npy and gt_labels.npy (and max.npy for the max modes)."""
    folder = Path(folder)
    mean = _read_array(folder / "mean.npy").astype(np.float32)
    labels = _read_array(folder / "gt_labels.npy")
    _check_pair(mean, labels, folder / "mean.npy", folder / "gt_labels.npy")
    mx = _read_array(folder / "max.npy").astype(np.float32) if (folder / "max.npy").exists() else None
    images = {2: mean, 3: mode_image(mean, mean, 3)}
    if mx is not None:
        images.update({1: mode_image(mean, mx, 1), 4: mx})
    return split_spatially(AnnotatedImage(folder.name, images, labels.astype(np.int32)), val_fraction, gap)


def load_image_pairs(images: list[Path], masks: list[Path], mode: int, val_fraction: float,
                     gap: int) -> list[AnnotatedImage]:
    """User images (already the image of `mode`, e.g. mean images) with their label images."""
    if len(images) != len(masks):
        raise InputError("--masks", f"{len(masks)} mask files for {len(images)} images; give one per image")
    out = []
    for img_path, lab_path in zip(images, masks):
        img, lab = _read_array(Path(img_path)), _read_array(Path(lab_path))
        _check_pair(img, lab, Path(img_path), Path(lab_path))
        out.append(split_spatially(AnnotatedImage(Path(img_path).stem, {mode: img.astype(np.float32)},
                                                  lab.astype(np.int32)), val_fraction, gap))
    return out


# ---------------------------------------------------------------------------------------------- augmentation

def normalize01(img: np.ndarray) -> np.ndarray:
    p1, p99 = np.percentile(img, 1), np.percentile(img, 99)
    return ((img - p1) / max(p99 - p1, 1e-6)).astype(np.float32)


def augment_intensity(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photometric augmentation Cellpose lacks: vignetting, gamma, contrast/offset, noise (geometry is left to
    Cellpose's random_rotate_and_resize)."""
    x = np.clip(normalize01(img), -0.2, 3.0) + 0.2
    h, w = x.shape
    field = gaussian_filter(rng.standard_normal((h, w)), max(h, w) / 4)
    field = field / max(field.std(), 1e-6)
    x = x * np.exp(rng.uniform(0.0, 0.5) * field)
    x = np.maximum(x, 0) ** rng.uniform(0.7, 1.4)
    x = x * rng.uniform(0.5, 2.0) + rng.uniform(-0.2, 0.2)
    x = x + rng.uniform(0.0, 0.15) * float(np.percentile(x, 99)) * rng.standard_normal((h, w))
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------- evaluation

def predict(model: Any, image: np.ndarray, diameter: float = 0.0, cellprob_threshold: float = 0.0,
            flow_threshold: float = 1.5) -> np.ndarray:
    """Masks of a loaded model (segmentation.LoadedModel) on one image, as the SEGMENT step computes them."""
    from ophys_extraction.segmentation import SegmentationParams, segment_image
    params = SegmentationParams(diameter=diameter, cellprob_threshold=cellprob_threshold,
                                flow_threshold=flow_threshold)
    return segment_image(image, np.zeros_like(image), model, params).masks


def load_for_eval(path: Path | str) -> Any:
    from ophys_extraction import segmentation
    import torch
    return segmentation.load_model(segmentation.resolve_model(str(path)), torch.device("cpu"))


def score_images(model: Any, items: list[tuple[np.ndarray, ...]], **kwargs: Any) -> DetectionScores:
    """Pooled scores over (image, labels[, ignore]) items."""
    return pooled([match_rois(item[1], predict(model, item[0], **kwargs), ignore=item[2] if len(item) > 2 else None)
                   for item in items])


# ---------------------------------------------------------------------------------------------- training

@dataclass
class TrainConfig:
    output: Path
    modes: tuple[int, ...] = (2,)
    n_synthetic: int = 96
    synthetic_size: int = 192
    real_dirs: tuple[Path, ...] = ()
    images: tuple[Path, ...] = ()
    masks: tuple[Path, ...] = ()
    val_fraction: float = 0.25
    gap: int = 24
    copies: int = 24                 # augmented versions of each annotated training image
    real_share: float = 0.5          # share of each epoch's patches drawn from annotated images (if any)
    n_epochs: int = 150
    nimg_per_epoch: int = 24
    batch_size: int = 8
    bsize: int = 128
    learning_rate: float = 0.005
    weight_decay: float = 1e-5
    diam_mean: float = 12.0
    seed: int = 0
    n_eval_synthetic: int = 6
    eval_size: int = 256
    threads: int = 2
    half: bool = True
    calibrate: bool = True
    init_model: Path | None = None   # start from these weights (None: from scratch)
    command_line: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in ("cellpose.train", "ophys_extraction.training"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.INFO)
        if not lg.handlers:
            lg.addHandler(handler)
        lg.propagate = False


def _to_half(src: Path, dst: Path) -> None:
    """Float16 copy of a model file (diam_mean / diam_labels stay float32)."""
    import torch
    state = torch.load(src, map_location="cpu", weights_only=True)
    half = {k: (v.half() if v.is_floating_point() and k not in ("diam_mean", "diam_labels") else v)
            for k, v in state.items()}
    torch.save(half, dst)


# Negative offsets matter when continuing from a model whose bias was already shifted.
CALIBRATION_OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
N_CALIBRATION_SYNTHETIC = 6


def calibrate_cellprob(model_path: Path, cfg: TrainConfig, annotated: list[AnnotatedImage]
                       ) -> tuple[float, list[dict[str, Any]]]:
    """Choose, on TRAINING data only, the cell-probability offset that maximises detection F1 at the pipeline's
    default `--cellprob_threshold 0`.

    A network trained on incomplete annotations (many real cells are unannotated) comes out under-confident: at
    threshold 0 it misses cells it segments well at threshold -1 or -2. Rather than asking every user for a
    threshold, the offset is folded into the bias of the network's cell-probability output (output.2.bias[2]), so
    threshold 0 with this model means what threshold -offset means with the raw network. Scored: the mean of the F1
    on the annotated training parts and on the first synthetic training planes (validation data is never used)."""
    model = load_for_eval(model_path)
    synth = [synthetic_plane(SYNTH_TRAIN_SEED0 + i, cfg.synthetic_size)
             for i in range(min(N_CALIBRATION_SYNTHETIC, cfg.n_synthetic))]
    groups: dict[str, list[tuple[np.ndarray, ...]]] = {}
    for i, plane in enumerate(synth):
        mode = cfg.modes[i % len(cfg.modes)]
        groups.setdefault("synthetic training planes", []).append((mode_image(plane.mean, plane.max, mode),
                                                                   plane.masks))
    for item in annotated:
        for mode in cfg.modes:
            if mode in item.images:
                groups.setdefault("annotated training parts", []).append(item.part("train", mode)[:2])
    table = []
    for offset in CALIBRATION_OFFSETS:
        row: dict[str, Any] = {"offset": offset}
        for name, items in groups.items():
            row[name] = score_images(model, items, cellprob_threshold=-offset).as_dict()
        row["mean_f1"] = float(np.mean([row[name]["f1"] for name in groups]))
        table.append(row)
        log.info("calibration: offset %.1f -> mean training F1 %.3f (%s)", offset, row["mean_f1"],
                 ", ".join(f"{name}: P {row[name]['precision']:.2f} R {row[name]['recall']:.2f}" for name in groups))
    return best_offset(table), table


def best_offset(table: list[dict[str, Any]]) -> float:
    """The calibration row with the highest mean F1 (to 3 decimals); ties go to the smallest shift."""
    return float(max(table, key=lambda r: (round(r["mean_f1"], 3), -abs(r["offset"])))["offset"])


def _shift_cellprob_bias(src: Path, dst: Path, offset: float) -> None:
    import torch
    state = torch.load(src, map_location="cpu", weights_only=True)
    bias = state["output.2.bias"].clone()
    bias[2] += offset
    state["output.2.bias"] = bias
    torch.save(state, dst)


def evaluate(model_path: Path, cfg: TrainConfig, annotated: list[AnnotatedImage]) -> dict[str, Any]:
    """Held-out synthetic F1 (demo and high noise) and annotated validation P/R/F1, per mode."""
    model = load_for_eval(model_path)
    out: dict[str, Any] = {"synthetic": {}, "annotated_validation": {}}
    for noise in (DEMO_NOISE_LEVEL, HIGH_NOISE_LEVEL):
        planes = heldout_planes(cfg.n_eval_synthetic, cfg.eval_size, noise)
        for mode in cfg.modes:
            scores = score_images(model, [(mode_image(p.mean, p.max, mode), p.masks) for p in planes])
            out["synthetic"][f"noise {noise:g}, mode {mode}"] = scores.as_dict()
            log.info("held-out synthetic (%d planes %dx%d, seeds %d+, noise %g), mode %d: %s", len(planes),
                     cfg.eval_size, cfg.eval_size, SYNTH_EVAL_SEED0, noise, mode, scores)
    for item in annotated:
        if item.val_start >= item.labels.shape[item.axis]:
            continue
        for mode in sorted(item.images):
            scores = score_images(model, [item.part("val", mode)])
            out["annotated_validation"][f"{item.name}, mode {mode}"] = scores.as_dict()
            log.info("validation split of %s, mode %d: %s", item.name, mode, scores)
    return out


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate, save `cfg.output` (+ .training_log.json / .txt). Returns the log."""
    import torch
    from cellpose import models, train as cp_train

    _setup_logging()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    t_start = time.time()
    cfg.output.parent.mkdir(parents=True, exist_ok=True)

    # Annotated images first (cheap checks before the slow parts).
    annotated = [load_real_dir(Path(d), cfg.val_fraction, cfg.gap) for d in cfg.real_dirs]
    annotated += load_image_pairs([Path(p) for p in cfg.images], [Path(p) for p in cfg.masks], cfg.modes[0],
                                  cfg.val_fraction, cfg.gap)
    for item in annotated:
        missing = [m for m in cfg.modes if m not in item.images]
        if missing and not (len(cfg.images) and item.name in {Path(p).stem for p in cfg.images}):
            raise InputError(item.name, f"has no image for mode(s) {missing} (needs max.npy)")

    init_log = None
    if cfg.init_model:
        # Continue training (or fine-tune) a model this script wrote: its diam_mean comes with the weights, and its
        # own training log goes into this one, so the chain of runs stays reproducible. Loaded (and checked)
        # before the slow rendering below.
        net = models.CellposeModel(gpu=False, pretrained_model=str(cfg.init_model), nchan=2)
        if float(net.diam_mean) != cfg.diam_mean:
            raise InputError(cfg.init_model, f"has diam_mean {float(net.diam_mean):g}, not --diam_mean "
                                             f"{cfg.diam_mean:g}; pass --diam_mean {float(net.diam_mean):g}")
        init_log_path = Path(cfg.init_model).with_name(Path(cfg.init_model).name + ".training_log.json")
        init_log = json.loads(init_log_path.read_text()) if init_log_path.is_file() else None
    else:
        net = models.CellposeModel(gpu=False, pretrained_model=False, diam_mean=cfg.diam_mean, nchan=2)
    log.info("rendering %d synthetic training planes (%dx%d, seeds %d..%d)", cfg.n_synthetic, cfg.synthetic_size,
             cfg.synthetic_size, SYNTH_TRAIN_SEED0, SYNTH_TRAIN_SEED0 + cfg.n_synthetic - 1)
    data: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    source: list[str] = []
    synth_params = []
    for i in range(cfg.n_synthetic):
        plane = synthetic_plane(SYNTH_TRAIN_SEED0 + i, cfg.synthetic_size)
        synth_params.append(plane.params)
        mode = cfg.modes[i % len(cfg.modes)]
        data.append(mode_image(plane.mean, plane.max, mode))
        labels.append(plane.masks)
        source.append("synthetic")

    rng = np.random.default_rng([cfg.seed, 11])
    for item in annotated:
        modes = [m for m in cfg.modes if m in item.images]
        for c in range(cfg.copies):
            mode = modes[c % len(modes)]
            img, lab, _ = item.part("train", mode)
            data.append(augment_intensity(img, rng) if c else img.astype(np.float32))
            labels.append(lab)
            source.append("annotated")
        log.info("annotated %s: %d training copies of %s (%d ROIs); split %s", item.name, cfg.copies,
                 "x".join(map(str, img.shape)), int(lab.max()), item.describe())

    is_real = np.array([s == "annotated" for s in source])
    probs = np.ones(len(data))
    if is_real.any() and (~is_real).any():
        probs[is_real] = cfg.real_share / is_real.sum()
        probs[~is_real] = (1 - cfg.real_share) / (~is_real).sum()
    probs /= probs.sum()

    log.info("training from %s: %d images (%d synthetic, %d annotated copies), %d epochs x %d patches of "
             "%d px, batch %d, AdamW lr %g, diam_mean %g", cfg.init_model or "scratch", len(data), (~is_real).sum(),
             is_real.sum(), cfg.n_epochs, cfg.nimg_per_epoch, cfg.bsize, cfg.batch_size, cfg.learning_rate,
             cfg.diam_mean)
    work = cfg.output.parent / f".{cfg.output.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    t_train = time.time()
    model_file, train_losses, _ = cp_train.train_seg(
        net.net, train_data=data, train_labels=labels, train_probs=probs, channels=[0, 0], normalize=True,
        n_epochs=cfg.n_epochs, nimg_per_epoch=cfg.nimg_per_epoch, batch_size=cfg.batch_size, bsize=cfg.bsize,
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, save_path=str(work),
        save_every=10**9, model_name=cfg.output.name, min_train_masks=1)
    train_seconds = time.time() - t_train
    full = Path(model_file)
    diam_labels = float(net.net.diam_labels.item())
    log.info("trained in %.0f s; diam_labels %.2f; evaluating", train_seconds, diam_labels)

    offset, calibration = 0.0, []
    if cfg.calibrate:
        offset, calibration = calibrate_cellprob(full, cfg, annotated)
        log.info("cell probability offset chosen on training data: %+.1f", offset)
        if offset:
            _shift_cellprob_bias(full, full, offset)
    scores = evaluate(full, cfg, annotated)
    precision = "float32"
    final_scores = scores
    if cfg.half:
        half = full.with_name(full.name + ".half")
        _to_half(full, half)
        half_scores = evaluate(half, cfg, annotated)
        if _f1s(half_scores) == _f1s(scores):
            precision, final_scores = "float16", half_scores
            half.replace(cfg.output)
        else:
            log.info("float16 copy changes F1 (%s vs %s): keeping float32", _f1s(half_scores), _f1s(scores))
            full.replace(cfg.output)
    else:
        full.replace(cfg.output)
    for leftover in work.rglob("*"):
        if leftover.is_file():
            leftover.unlink()
    for folder in sorted(work.rglob("*"), reverse=True):
        folder.rmdir()
    work.rmdir()

    record = {
        "model": cfg.output.name,
        "model_bytes": cfg.output.stat().st_size,
        "precision": precision,
        "cellpose_version": _version("cellpose"),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "command_line": cfg.command_line,
        "code_version": code_version(),
        "config": {k: (list(map(str, v)) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
                   for k, v in asdict(cfg).items() if k not in ("command_line",)},
        "data": {
            "synthetic_training": {"n": cfg.n_synthetic, "size": cfg.synthetic_size,
                                   "seeds": [SYNTH_TRAIN_SEED0, SYNTH_TRAIN_SEED0 + cfg.n_synthetic - 1],
                                   "varied": "noise_level 0.4-2.6, brightness 0.6-1.5, cell_diameter_mean 8.5-13, "
                                             "cell_density 8-22, n_frames 300-2400 (per seed)"},
            "synthetic_heldout": {"n": cfg.n_eval_synthetic, "size": cfg.eval_size,
                                  "seeds": [SYNTH_EVAL_SEED0, SYNTH_EVAL_SEED0 + cfg.n_eval_synthetic - 1],
                                  "noise_levels": [DEMO_NOISE_LEVEL, HIGH_NOISE_LEVEL]},
            "annotated": [item.describe() for item in annotated],
            "n_training_images": len(data),
            "patches_seen": cfg.n_epochs * cfg.nimg_per_epoch,
        },
        "diam_mean": cfg.diam_mean,
        "diam_labels": diam_labels,
        "epochs": cfg.n_epochs,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t_start, 1),
        "final_train_loss": float(train_losses[-1]),
        "cellprob_offset": offset,
        "calibration": calibration,
        "train_loss_every_10_epochs": [round(float(x), 4) for x in train_losses[::10]],
        "init_model": str(cfg.init_model) if cfg.init_model else None,
        "init_model_log": init_log,
        "scores": final_scores,
        "scores_float32": scores,
    }
    log_path = cfg.output.with_name(cfg.output.name + ".training_log.json")
    log_path.write_text(json.dumps(record, indent=2) + "\n")
    cfg.output.with_name(cfg.output.name + ".training_log.txt").write_text(human_readable(record))
    print(human_readable(record))
    return record


def _f1s(scores: dict[str, Any]) -> list[float]:
    return [round(v["f1"], 3) for group in scores.values() for v in group.values()]


def code_version() -> str:
    """The repository commit the training code ran from ("+changes" if the work tree differed from it), so a model
    can be traced to the generator that made its synthetic data; "unknown" outside a git checkout."""
    import subprocess
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


def _origin(record: dict[str, Any]) -> str:
    """"scratch", or the chain of runs a continued model comes from (each run's command line)."""
    parts, entry = [], record
    while entry.get("init_model"):
        parent = entry.get("init_model_log") or {}
        parts.append(f"{entry['init_model']} ({parent.get('epochs', '?')} epochs: "
                     f"{parent.get('command_line', 'no training log beside it')})")
        entry = parent
    return " <- ".join(parts) + " <- scratch" if parts else "scratch"


def human_readable(record: dict[str, Any]) -> str:
    lines = [f"Model {record['model']} ({record['precision']}, {record['model_bytes'] / 1e6:.1f} MB), "
             f"Cellpose {record['cellpose_version']}, torch {record['torch_version']}",
             f"command: {record['command_line']} (code {record.get('code_version', 'unknown')})",
             f"trained from {_origin(record)} for {record['epochs']} epochs ({record['data']['patches_seen']} "
             f"patches) in {record['train_seconds']:.0f} s (total {record['total_seconds']:.0f} s); diam_mean "
             f"{record['diam_mean']:g}, diam_labels {record['diam_labels']:.2f}; cell-probability offset "
             f"{record['cellprob_offset']:+.1f} (chosen on training data, folded into the output bias)",
             f"synthetic training planes: {record['data']['synthetic_training']}"]
    for item in record["data"]["annotated"]:
        lines.append(f"annotated: {item}")
    lines.append("scores at IoU >= 0.5:")
    for group, entries in record["scores"].items():
        for key, s in entries.items():
            lines.append(f"  {group:22s} {key:36s} precision {s['precision']:.3f} recall {s['recall']:.3f} "
                         f"F1 {s['f1']:.3f} (TP {s['true_positives']}, true {s['n_true']}, pred {s['n_pred']})")
    return "\n".join(lines) + "\n"
