"""Segmentation step: Cellpose 3 on one summary image of a plane (README; its outputs: docs/output.md, `cellpose/`).

The image is chosen and prepared as suite2p's anatomical detection does (`--anatomical_only` 1-4, and the optional
spatial high-pass `--spatial_hp_cp`), but Cellpose itself is called directly (suite2p 1.x's own Cellpose path is
written for Cellpose 4). Every Cellpose output is kept: masks, the HSV flow rendering, the flows, the cell
probability, the final pixel locations of the flow dynamics and the style vector.

Models: a built-in Cellpose 3 name (`cyto3`, `cyto2`, `nuclei`, ...) whose weights must already be in Cellpose's
model folder (`cellpose.models.MODEL_DIR`, set with CELLPOSE_LOCAL_MODELS_PATH: nothing is downloaded), or the path
of a Cellpose 3 model file (such as the bundled `assets/models/ophys_cp3`). Cellpose itself silently falls back
to downloading `cyto3` for a path that does not exist, so every model is checked here before Cellpose sees it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ophys_extraction import network, sizing
from ophys_extraction.errors import InputError
from ophys_extraction.options import SEGMENT as _TABLE
from ophys_extraction.segmentation_input import IMAGE_MODES, prepare_image, spatial_highpass

# The project's own model (trained by bin/train_model.py), under assets/models/ in the repository.
BUNDLED_MODEL = "ophys_cp3"
# Names against paths, and the built-ins' weight and size-model files: written once for this module and the
# pipeline's start check (lib/ModelChecker.groovy reads the same file).
MODEL_NAMING = json.loads((Path(__file__).parent / "cellpose_models.json").read_text(encoding="utf-8"))
_FIRST_CONV = "downsample.down.res_down_0.conv.conv_0.2.weight"


@dataclass(frozen=True)
class SegmentationParams:
    """SEGMENT's options; their defaults, ranges and help are options.SEGMENT."""
    anatomical_only: int = _TABLE.default("anatomical_only")          # segmentation_input.IMAGE_MODES
    diameter: float = _TABLE.default("diameter")                      # 0: chosen for the plane's image (sizing.py)
    cellprob_threshold: float = _TABLE.default("cellprob_threshold")
    flow_threshold: float = _TABLE.default("flow_threshold")
    spatial_hp_cp: float = _TABLE.default("spatial_hp_cp")
    device: str = _TABLE.default("device")                            # auto: cuda if torch sees a GPU (resolve_device)

    def validate(self) -> None:
        """One InputError naming every value that cannot work."""
        _TABLE.check(asdict(self))


# ------------------------------------------------------------------------------------------------------- the model

def model_dir() -> Path:
    """Cellpose's model folder (CELLPOSE_LOCAL_MODELS_PATH, else ~/.cellpose/models), as Cellpose resolves it."""
    from cellpose import models
    return Path(models.MODEL_DIR)


def builtin_names() -> list[str]:
    """Built-in Cellpose 3 model names plus the user's models registered in Cellpose's model folder."""
    from cellpose import models
    return list(dict.fromkeys([*models.MODEL_NAMES, *models.get_user_models()]))


def builtin_weights_file(name: str) -> Path:
    return model_dir() / MODEL_NAMING["weights_file"].get(name, name)


@dataclass
class ModelSpec:
    """What `--pretrained_model` resolved to (checked to exist; nothing downloaded)."""
    given: str
    path: Path
    builtin: str | None            # the built-in name, or None for a model file
    nchan: int = 2
    size_model: Path | None = None


def _looks_like_path(spec: str) -> bool:
    return re.search(MODEL_NAMING["path_pattern"], spec) is not None


def resolve_model(spec: str) -> ModelSpec:
    """Resolve `--pretrained_model` to an existing, loadable Cellpose 3 model file, or raise one InputError."""
    spec = str(spec).strip()
    if not spec:
        raise InputError("--pretrained_model", "is empty; pass a Cellpose 3 model name (e.g. cyto3) or a model path")
    path = Path(spec).expanduser()
    names = builtin_names()
    if spec in names and not path.exists():
        weights = builtin_weights_file(spec)
        if not weights.is_file():
            raise InputError(spec, f"Cellpose model weights not found in {model_dir()} and cannot be downloaded "
                                   "offline; pass --pretrained_model /path/to/model (or bake the weights into the "
                                   "container's CELLPOSE_LOCAL_MODELS_PATH)")
        size = model_dir() / MODEL_NAMING["size_model"][spec] if spec in MODEL_NAMING["size_model"] else None
        return ModelSpec(spec, weights, spec, _check_state_dict(weights, strict=False),
                         size if size and size.is_file() else None)
    if not path.exists():
        if _looks_like_path(spec):
            raise InputError(spec, "model file not found")
        raise InputError(spec, "unknown Cellpose model name and no such file; valid names: "
                               + ", ".join(names) + " (or a model file path)")
    if not path.is_file():
        raise InputError(spec, "is not a file; cannot be loaded as a Cellpose model")
    nchan = _check_state_dict(path)
    if nchan != 2:
        raise InputError(spec, f"cannot be loaded as a Cellpose model for this step: it takes {nchan} input "
                               "channel(s), Cellpose 3 grayscale models take 2")
    size = sizing.size_model_file(path)
    return ModelSpec(spec, path, None, nchan, size if size.is_file() else None)


def _check_state_dict(path: Path, strict: bool = True) -> int:
    """Open a model file as Cellpose 3 does (torch, weights only), check that it holds every tensor of a Cellpose 3
    network with the right shape (Cellpose itself loads with strict=False and would run a half-loaded net), and
    return its number of input channels. `strict=False` (Cellpose's own built-in files, which older releases wrote
    with other key sets) only checks that the file opens."""
    import torch
    from cellpose.resnet_torch import CPnet
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle means "not a model"
        raise InputError(path, f"cannot be loaded as a Cellpose model ({type(err).__name__})") from None
    if not strict:
        first = state.get(_FIRST_CONV) if isinstance(state, dict) else None
        return int(first.shape[1]) if getattr(first, "ndim", 0) == 4 else 2
    if not isinstance(state, dict) or _FIRST_CONV not in state or getattr(state[_FIRST_CONV], "ndim", 0) != 4:
        raise InputError(path, "cannot be loaded as a Cellpose model (not a Cellpose 3 network state dict)")
    nchan = int(state[_FIRST_CONV].shape[1])
    reference = CPnet([nchan, 32, 64, 128, 256], 3, sz=3, mkldnn=False, max_pool=True).state_dict()
    bad = [key for key, value in reference.items() if key not in ("diam_mean", "diam_labels")
           and (key not in state or tuple(state[key].shape) != tuple(value.shape))]
    if bad:
        raise InputError(path, f"cannot be loaded as a Cellpose model ({len(bad)} of {len(reference)} network "
                               f"tensors missing or of the wrong shape, e.g. {bad[0]})")
    return nchan


def resolve_device(choice: str) -> Any:
    import torch
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise InputError("--device", "cuda was requested but torch sees no CUDA device")
    if choice not in ("cpu", "cuda"):
        raise InputError("--device", f"must be auto, cpu or cuda, got {choice!r}")
    return torch.device(choice)


@dataclass
class LoadedModel:
    spec: ModelSpec
    net: Any                        # cellpose.models.CellposeModel
    device: Any
    diam_mean: float
    diam_labels: float
    size_model: sizing.SizeModel | None = None


def load_model(spec: ModelSpec, device: Any) -> LoadedModel:
    """A CellposeModel for a resolved spec (never downloads: the file was checked to exist)."""
    from cellpose import models
    gpu = device.type == "cuda"
    try:
        if spec.builtin is not None:
            net = models.CellposeModel(gpu=gpu, device=device, model_type=spec.builtin, nchan=spec.nchan)
        else:
            net = models.CellposeModel(gpu=gpu, device=device, pretrained_model=str(spec.path), nchan=spec.nchan)
    except Exception as err:  # noqa: BLE001 - shape mismatches etc. all mean "not a usable model"
        raise InputError(spec.path, f"cannot be loaded as a Cellpose model ({type(err).__name__}: {err})"
                         .splitlines()[0]) from None
    size = sizing.SizeModel.load(spec.size_model) if spec.size_model is not None else None
    return LoadedModel(spec, net, device, float(net.diam_mean), float(net.diam_labels), size)


# ---------------------------------------------------------------------------------------------------- segmentation

@dataclass
class SegmentationResult:
    masks: np.ndarray              # int32 (H, W), 0 background, 1..n
    flows_in_hsv: np.ndarray       # uint8 (H, W, 3)
    flows: np.ndarray              # float32 (2, H, W): dP
    cellprob: np.ndarray           # float32 (H, W)
    final_locations: np.ndarray    # float32 (2, H, W)
    styles: np.ndarray             # float32 (256,)
    image: np.ndarray              # float32 (H, W): what Cellpose segmented
    weights: np.ndarray            # float32 (H, W)
    attrs: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)   # wall time per phase (not a result: not in attrs)

    @property
    def n_rois(self) -> int:
        return int(self.masks.max()) if self.masks.size else 0


def relabel_sequential(masks: np.ndarray) -> np.ndarray:
    """Labels 1..n without gaps, in order of the original labels; 0 stays background."""
    masks = np.asarray(masks)
    uniq = np.unique(masks)
    uniq = uniq[uniq != 0]
    lut = np.zeros(int(masks.max()) + 1 if masks.size else 1, np.int32)
    lut[uniq] = np.arange(1, len(uniq) + 1, dtype=np.int32)
    return lut[masks].astype(np.int32)


# CellposeModel.eval's defaults for what it does after the network (Cellpose 3.1): interpolated dynamics, masks
# smaller than MIN_SIZE pixels or larger than MAX_SIZE_FRACTION of the image dropped.
MIN_SIZE = 15
MAX_SIZE_FRACTION = 0.4


def dynamics_niter(net_diam_mean: Any, diameter: float) -> float:
    """Steps of the flow dynamics CellposeModel.eval takes at `diameter` (resample=True): `1 / rescale * 200`
    with `rescale = diam_mean / diameter`, in Cellpose's own arithmetic (its diam_mean is a float32 scalar, so the
    truncation to whole steps matches its own mask computation exactly)."""
    rescale = net_diam_mean / diameter
    return 1 / rescale * 200


def masks_and_final_locations(dP: np.ndarray, cellprob: np.ndarray, cellprob_threshold: float,
                              flow_threshold: float, niter: float, device: Any
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(masks, final_locations, flow errors) from one run of the flow dynamics, as CellposeModel.eval makes its
    masks (Cellpose 3.1 `dynamics.resize_and_compute_masks` at the image's own size): `follow_flows` on
    dP * (cellprob > threshold) / 5 for niter steps, interpolated; masks from where the pixels end
    (`get_masks_torch`), masks whose flow error exceeds `flow_threshold` dropped (`remove_bad_flow_masks`'s
    rule, > 0 only), holes filled and small masks dropped. Cellpose's own `compute_masks` keeps no final
    locations, so it would have to run the dynamics a second time to report them. Final locations: where each pixel
    ends, (2, H, W) float32; pixels at or below the threshold do not move and keep their own (y, x). Masks:
    Cellpose's uint16 labels. Flow errors: of the masks the flow check kept, before the small ones are dropped
    (`cellpose.metrics.flow_error`; the size search's quality, sizing.py)."""
    import torch
    from cellpose import dynamics, metrics, utils
    h, w = cellprob.shape
    locations = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).astype(np.float32)
    above = cellprob > cellprob_threshold
    if not above.any():
        return np.zeros((h, w), np.uint16), locations, np.zeros(0)
    inds = np.nonzero(above)
    p = dynamics.follow_flows(dP * above / 5.0, inds=inds, niter=niter, interp=True, device=device)
    p_final = p.int() if torch.is_tensor(p) else torch.from_numpy(p).to(device, dtype=torch.int)
    if device.type == "mps":
        p_final = p_final.to(torch.device("cpu"))
    masks = dynamics.get_masks_torch(p_final, inds, dP.shape[1:], max_size_fraction=MAX_SIZE_FRACTION)
    errors = np.zeros(0)
    if masks.max() > 0:
        errors = np.asarray(metrics.flow_error(masks, dP, device)[0], np.float64)
        if flow_threshold > 0:
            masks[np.isin(masks, 1 + (errors > flow_threshold).nonzero()[0])] = 0
            errors = errors[errors <= flow_threshold]
    if masks.max() < 2**16 and masks.dtype != "uint16":
        masks = masks.astype("uint16")
    masks = utils.fill_holes_and_remove_small_masks(masks, min_size=MIN_SIZE)
    p = np.asarray(p.cpu().numpy() if torch.is_tensor(p) else p, np.float32).reshape(2, -1)
    locations[0][inds] = p[0]
    locations[1][inds] = p[1]
    return masks, locations, errors


# The size search (sizing.py) scores every candidate diameter on one central crop of the image (the same cells for
# all), sized so that the network sees it at this many pixels a side at the search's start: about 30 cells a side
# whatever their size, so a candidate costs about the same on a 256 x 256 plane as on a 2048 x 2048 one. 372 px is
# the largest side Cellpose covers with 2 x 2 of its 224-px tiles at its 10% overlap (384 would take 3 x 3); a 256-px
# crop was measured too noisy (the 68 sweeps of bench/size_sweep.py, before the plateau rule: worst F1 loss 0.17
# against 0.10 at 384 px and 0.05 on whole planes).
SEARCH_NETWORK_SIDE = 372
# The size model's style is taken on a central crop of at most this side (Cellpose fits it on 224-px patches).
STYLE_SIDE = 256


def central_window(shape: tuple[int, ...], side: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the central side x side window of an image of `shape` (the whole image along
    an axis shorter than side)."""
    h, w = shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return top, left, min(h, side), min(w, side)


def central_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The central side x side window of an image (the whole image along an axis shorter than side)."""
    top, left, h, w = central_window(image.shape, side)
    return image[top:top + h, left:left + w]


# Tiles per network call on a CPU: 2 took 0.65x the time of Cellpose's 8 for the network on a 512 x 512 plane on 2
# cores (bench/segment.py --network; 1: 0.70x, 4: 0.78x, 16: 1.11x), with identical outputs (a tile's output does
# not depend on its batch). On a GPU, Cellpose's 8 (bench/gpu.py measures 8, 32 and 128).
CPU_BATCH_SIZE = 2


def batch_size(device: Any) -> int:
    """Tiles per network call on `device`."""
    return CPU_BATCH_SIZE if device.type == "cpu" else network.BATCH_SIZE


@dataclass
class Runs:
    """The network and its flow dynamics on central windows of one image, each (window, diameter) computed once,
    so that the size choice and the segmentation share them where they coincide: a plane no larger than the search's
    crop is segmented at a candidate's diameter without running the network again. Where several diameters are
    asked for at once, their tiles share network calls (network.py)."""
    model: LoadedModel
    image: np.ndarray
    params: SegmentationParams
    outputs: dict[tuple, network.NetworkOutput] = field(default_factory=dict)
    dynamics: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def network(self, side: int, diameters: tuple[float, ...]) -> list[network.NetworkOutput]:
        """The network's outputs on the central window of `side` at each diameter."""
        window = central_window(self.image.shape, side)
        todo = [d for d in dict.fromkeys(diameters) if (window, d) not in self.outputs]
        if todo:
            crop = central_crop(self.image, side)
            runs = network.run(self.model.net, [(crop, d) for d in todo], batch_size(self.model.device))
            self.outputs.update({(window, d): out for d, out in zip(todo, runs)})
        return [self.outputs[window, d] for d in diameters]

    def masks(self, side: int, diameter: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """masks_and_final_locations of the window of `side` at `diameter`, with SEGMENT's thresholds."""
        key = (central_window(self.image.shape, side), diameter)
        if key not in self.dynamics:
            out = self.network(side, (diameter,))[0]
            self.dynamics[key] = masks_and_final_locations(
                out.dP, out.cellprob, self.params.cellprob_threshold, self.params.flow_threshold,
                dynamics_niter(self.model.net.diam_mean, diameter), self.model.device)
        return self.dynamics[key]

    def found(self, side: int, diameters: tuple[float, ...]) -> tuple[sizing.Found, ...]:
        """What SEGMENT would find at each candidate diameter (its thresholds) on the window: its masks and their
        flow errors. The candidates' network runs are batched together."""
        self.network(side, diameters)
        return tuple(sizing.Found.from_flow_errors(self.masks(side, d)[2]) for d in diameters)


def choose_diameter(runs: Runs) -> tuple[float, str]:
    """(diameter Cellpose will use, how it was obtained). `--diameter 0` is chosen for this image for every model
    (sizing.py): the diameter of the highest label-free F1 (masks weighted by their flow error), searched from the
    model's size model where it has one, else from a scan of candidate diameters."""
    model, image = runs.model, runs.image
    if runs.params.diameter > 0:
        return float(runs.params.diameter), "given"
    if model.size_model is not None:
        # The style at the network's own scale (rescale 1), as cellpose.train.train_size fits the regression.
        style = runs.network(STYLE_SIDE, (model.net.diam_mean,))[0].styles
        starts: tuple[float, ...] = (model.size_model.predict(style),)
        start = f"size model {starts[0]:.1f} px"
    else:
        starts = sizing.SCAN_DIAMETERS
        start = "no size model: from the scan " + "/".join(f"{d:.0f}" for d in starts) + " px"
    side = int(np.ceil(SEARCH_NETWORK_SIDE * np.exp(np.mean(np.log(starts))) / model.diam_mean))
    diameter, quality = sizing.search(lambda ds: runs.found(side, ds), starts, upper=min(image.shape[:2]) / 4)
    tried = ", ".join(f"{d:.1f}: {q:.3f}" for d, q in sorted(quality.items()))
    return diameter, (f"estimated: {start}, best masks by their flow error at {diameter:.1f} px (diameter px: "
                      f"label-free F1 {tried})")


def segment_image(image: np.ndarray, weights: np.ndarray, model: LoadedModel,
                  params: SegmentationParams) -> SegmentationResult:
    """Run Cellpose on a prepared image, (H, W), or (H, W, 2) for a two-channel model (bench/two_channel.py), and
    collect every output; the flow dynamics run once, for the masks and the final locations together. `seconds`
    times the size choice, the network and the dynamics (a network run or dynamics the size choice already did on
    the whole image at the chosen diameter are reused)."""
    import torch
    from cellpose import plot
    torch.manual_seed(0)
    np.random.seed(0)
    image = np.asarray(image, np.float32)
    if image.ndim != 2 and not (image.ndim == 3 and image.shape[2] == 2):
        raise ValueError(f"image must be 2-D or (H, W, 2), got shape {image.shape}")
    if image.ndim == 3 and params.spatial_hp_cp > 0:
        raise ValueError("spatial_hp_cp high-passes a one-channel image; this image has two channels")
    t_size = time.perf_counter()
    runs = Runs(model, image, params)
    diameter, diameter_source = choose_diameter(runs)
    t0 = time.perf_counter()
    if params.spatial_hp_cp > 0:
        image = spatial_highpass(image, diameter, params.spatial_hp_cp)
        runs = Runs(model, image, params)
    whole = max(image.shape[:2])
    out = runs.network(whole, (diameter,))[0]
    t1 = time.perf_counter()
    masks, locations, _ = runs.masks(whole, diameter)
    masks = relabel_sequential(masks)
    niter = dynamics_niter(model.net.diam_mean, diameter)
    seconds = {"size choice": t0 - t_size, "network": t1 - t0, "dynamics": time.perf_counter() - t1}
    attrs = {
        "anatomical_only": params.anatomical_only,
        "image_name": IMAGE_MODES[params.anatomical_only].description,
        "diameter": params.diameter,
        "diameter_used": diameter,
        "diameter_source": diameter_source,
        "cellprob_threshold": params.cellprob_threshold,
        "flow_threshold": params.flow_threshold,
        "spatial_hp_cp": params.spatial_hp_cp,
        "niter": int(np.uint32(niter)),
        "pretrained_model": model.spec.given,
        "model_file": str(model.spec.path),
        "model_builtin": model.spec.builtin or "",
        "model_diam_mean": model.diam_mean,
        "model_diam_labels": model.diam_labels,
        "device": str(model.device),
        "n_rois": int(masks.max()),
    }
    return SegmentationResult(masks=masks, flows_in_hsv=np.asarray(plot.dx_to_circ(out.dP), np.uint8),
                              flows=out.dP, cellprob=out.cellprob, final_locations=locations,
                              styles=np.asarray(out.styles, np.float32).ravel(), image=image,
                              weights=np.asarray(weights, np.float32), attrs=attrs, seconds=seconds)


def segment_summary(images: dict[str, np.ndarray], model: LoadedModel,
                    params: SegmentationParams) -> SegmentationResult:
    """Prepare the image of `params.anatomical_only` from summary images and segment it."""
    params.validate()
    image, weights = prepare_image(images, params.anatomical_only)
    return segment_image(image, weights, model, params)


def versions() -> dict[str, str]:
    from ophys_extraction.provenance import package_version
    return {"cellpose_version": package_version("cellpose"), "torch_version": package_version("torch")}
