"""What Cellpose segments (README; its outputs: docs/output.md, `cellpose/`): the image of each `--anatomical_only`
mode, the image the ROI weights (`lam`) come from, and the optional spatial high-pass. Chosen and prepared as
suite2p's anatomical detection does; this is the one table of the modes, for the SEGMENT step, training, the
benchmarks and the QC figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class ImageMode:
    image: str          # the summary.h5 dataset segmented
    description: str
    weights: str        # the summary.h5 dataset the ROI weights come from


# --anatomical_only -> what it segments. Modes 1-4 are suite2p's; 5 is this pipeline's (an image of activity).
IMAGE_MODES: dict[int, ImageMode] = {
    1: ImageMode("max_mean_ratio", "max projection / mean image ratio (log)", "maxImg"),
    2: ImageMode("meanImg", "mean image", "meanImg"),
    3: ImageMode("meanImgE", "enhanced mean image", "meanImg"),
    4: ImageMode("maxImg", "max projection", "maxImg"),
    5: ImageMode("corrImg", "correlation image", "meanImg"),
}
# The summary images SUMMARY_IMAGES writes (summary.h5).
SUMMARY_DATASETS = ("meanImg", "maxImg", "max_mean_ratio", "meanImgE", "corrImg")


def describe_modes() -> str:
    """"1 max projection / mean image ratio (log); 2 mean image; ..." for help texts."""
    return "; ".join(f"{number} {mode.description}" for number, mode in IMAGE_MODES.items())


def required_datasets(mode: int) -> tuple[str, ...]:
    """summary.h5 datasets a mode needs: the image it segments and the image its weights come from."""
    return tuple(dict.fromkeys((IMAGE_MODES[mode].image, IMAGE_MODES[mode].weights)))


def mean_weights(mean_img: np.ndarray) -> np.ndarray:
    """`0.1 + clip((img - p1) / (p99 - p1), 0, 1)` of the mean image (suite2p's weights for the mean modes)."""
    p1, p99 = np.percentile(mean_img, 1), np.percentile(mean_img, 99)
    return (0.1 + np.clip((mean_img - p1) / max(p99 - p1, 1e-12), 0, 1)).astype(np.float32)


def prepare_image(images: dict[str, np.ndarray], mode: int) -> tuple[np.ndarray, np.ndarray]:
    """(image to segment, ROI weights image) for `--anatomical_only mode`, as suite2p 0.14 / 1.1 prepare them.

    `images` maps summary.h5 dataset names to 2-D arrays (at least `required_datasets(mode)`).
    """
    spec = IMAGE_MODES[mode]
    image = np.asarray(images[spec.image], np.float32)
    if spec.weights == "meanImg":
        weights = mean_weights(np.asarray(images["meanImg"], np.float32))
    else:
        weights = np.asarray(images["maxImg"], np.float32).copy()
    return image.copy(), weights


def spatial_highpass(image: np.ndarray, diameter: float, spatial_hp_cp: float) -> np.ndarray:
    """Normalise to [0, 1] (1st-99th percentile, clipped) and subtract a Gaussian blur of sigma diameter * N.

    (suite2p 0.14's `spatial_hp_cp`; suite2p 1.1.0 subtracts the blur twice, which looks like a slip: the parameter
    is defined with one subtraction, nextflow_schema.json.)
    """
    p1, p99 = np.percentile(image, 1), np.percentile(image, 99)
    img = np.clip((image - p1) / max(p99 - p1, 1e-12), 0, 1).astype(np.float32)
    return (img - gaussian_filter(img, diameter * spatial_hp_cp)).astype(np.float32)
