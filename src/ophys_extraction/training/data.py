"""Training and evaluation data: synthetic planes (across cell sizes and appearance families), annotated images
split spatially into training and validation parts, and the augmentations Cellpose lacks for two-photon images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from ophys_extraction.errors import InputError
from ophys_extraction.summary_images import mode_image

SYNTH_TRAIN_SEED0 = 10_000          # training planes: seeds 10_000, 10_001, ...
SYNTH_EVAL_SEED0 = 900_000          # held-out planes (evaluation, bench, tests): 900_000, ...
DEMO_NOISE_LEVEL = 1.0              # synthetic.SyntheticSpec.noise_level of the demo data
HIGH_NOISE_LEVEL = 2.0              # the "higher" noise level reported beside it


@dataclass(frozen=True)
class SyntheticPlane:
    seed: int
    mean: np.ndarray
    max: np.ndarray
    masks: np.ndarray
    params: dict[str, float]


# Training planes span the sizes of two-photon somata in pixels (6-24 px: rigs, zooms and mesoscopes differ ~2x
# either way) and every appearance family but one: "bright_ring" is held out, so scores on it measure generalisation.
TRAIN_DIAMETERS = (6.0, 24.0)
TRAIN_FAMILIES = ("realistic", "bright_filled", "dim_ring", "blob_distractors")
HELDOUT_FAMILY = "bright_ring"
# Densest plane: ~300 cells per 256 x 256 px.
MAX_CELL_DENSITY = 46.0


def plane_fields(diameter: float, coverage: float, family: str = "realistic") -> dict[str, Any]:
    """synthetic.SyntheticSpec fields of a plane whose somata have this mean diameter (sd 15%) and cover about this
    fraction of the field (density capped at MAX_CELL_DENSITY), in this appearance family."""
    from ophys_extraction.synthetic import family_fields
    density = min(MAX_CELL_DENSITY, coverage * 1e4 / (np.pi / 4 * diameter**2))
    return {"cell_diameter_mean": float(diameter), "cell_diameter_sd": 0.15 * float(diameter),
            "cell_density": float(density), **family_fields(family)}


def synthetic_plane(seed: int, size: int, noise_level: float | None = None, vary: bool = True,
                    **fields: Any) -> SyntheticPlane:
    """One synthetic plane. `vary`: draw noise, brightness, cell size (log-uniform over TRAIN_DIAMETERS), coverage,
    appearance family (TRAIN_FAMILIES) and movie length from the seed (training); otherwise the generator's defaults
    at `noise_level` (evaluation at the demo noise level), with `fields` (SyntheticSpec fields) on top."""
    from ophys_extraction.synthetic import make_training_image
    params: dict[str, Any] = {}
    if vary:
        params = varied_fields(seed)
        if noise_level is not None:
            params["noise_level"] = noise_level
    else:
        params = {"noise_level": DEMO_NOISE_LEVEL if noise_level is None else noise_level}
    params.update(fields)
    mean, mx, masks = make_training_image(seed, height=size, width=size, **params)
    return SyntheticPlane(seed, mean, mx, masks.astype(np.int32), params)


def varied_fields(seed: int) -> dict[str, Any]:
    """SyntheticSpec fields of a training plane, drawn from its seed (`describe_variation`)."""
    rng = np.random.default_rng([seed, 7])
    return {
        "noise_level": float(rng.uniform(0.4, 2.6)),
        "brightness": float(rng.uniform(0.6, 1.5)),
        "n_frames": int(rng.choice([300, 600, 1200, 2400])),
        **plane_fields(float(np.exp(rng.uniform(*np.log(TRAIN_DIAMETERS)))), float(rng.uniform(0.1, 0.35)),
                       str(rng.choice(TRAIN_FAMILIES))),
    }


def describe_variation() -> str:
    """What `synthetic_plane(vary=True)` draws per seed, for the training log."""
    return (f"noise_level 0.4-2.6, brightness 0.6-1.5, cell_diameter_mean {TRAIN_DIAMETERS[0]:g}-"
            f"{TRAIN_DIAMETERS[1]:g} px (log-uniform, sd 15%), coverage 0.1-0.35 (density <= {MAX_CELL_DENSITY:g} "
            f"per 10^4 px), family one of {', '.join(TRAIN_FAMILIES)} ({HELDOUT_FAMILY} held out), "
            "n_frames 300-2400 (per seed)")


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

# Annotated images are also seen zoomed (copy c at REAL_SCALES[c % 4]): their somata (~9 px in the Neurofinder image)
# then span 6-19 px, as on other rigs and zooms.
REAL_SCALES = (1.0, 0.7, 1.4, 2.0)


def rescale_pair(image: np.ndarray, labels: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """An image (linear interpolation) and its label image (nearest, labels kept 1..n) zoomed by `factor`."""
    if factor == 1.0:
        return image, labels
    from scipy.ndimage import zoom
    from ophys_extraction.segmentation import relabel_sequential
    return (zoom(image, factor, order=1).astype(np.float32),
            relabel_sequential(zoom(labels, factor, order=0, mode="nearest")))


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


