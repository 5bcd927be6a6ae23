"""A Cellpose 3 network run on several images, each at its own diameter, with the tiles of all of them in shared
batches: the size choice's candidate diameters (sizing.py) in one network call instead of one call each.

The outputs are those of `CellposeModel.eval(image, channels=[0, 0], diameter=d, compute_masks=False)` (Cellpose
3.1.1, 2-D, its defaults: normalised to the 1st-99th percentile, resized by diam_mean / d, padded, cut into 224-px
tiles overlapping by 10%, tiles averaged with Cellpose's taper, resized back): the same Cellpose functions in the
same order, only the network's forward pass sees tiles of several images together. A tile's output does not depend
on the other tiles in its batch (tests/test_segmentation.py checks the outputs are bit-identical to `eval`'s), so a
batch of candidates costs the same arithmetic as one call each; the gain is in fewer, fuller network calls (a GPU
is kept busy by large batches; on 2 CPU cores the arithmetic is the cost, bench/segment.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Cellpose's defaults for `eval` (tile side, overlap) and for the tiles run at once.
TILE = 224
TILE_OVERLAP = 0.1
BATCH_SIZE = 8


@dataclass(frozen=True)
class NetworkOutput:
    """What `CellposeModel.eval(..., compute_masks=False)` returns for one image, at the image's own size."""
    dP: np.ndarray          # float32 (2, H, W): the flows
    cellprob: np.ndarray    # float32 (H, W)
    styles: np.ndarray      # float32 (256,)


@dataclass
class _Tiled:
    """One image prepared for the network: its tiles and how to put their outputs back together."""
    tiles: np.ndarray       # float32 (n, nchan, ly, lx)
    ysub: list
    xsub: list
    tiled_shape: tuple[int, int]
    padded_shape: tuple[int, int]
    pads: tuple[int, int, int, int]
    out_shape: tuple[int, int]
    resized: bool


def _tile(cp_model: Any, image: np.ndarray, diameter: float) -> _Tiled:
    """`eval`'s steps up to the network for one image, grayscale (H, W) or two-channel (H, W, 2) (convert_image,
    normalize_img, run_net's resize, pad and make_tiles)."""
    from cellpose import models, transforms
    if image.ndim == 3:
        x = transforms.convert_image(image, [1, 2], channel_axis=-1, z_axis=None, do_3D=False, nchan=cp_model.nchan)
    else:
        x = transforms.convert_image(image, [0, 0], channel_axis=None, z_axis=None, do_3D=False,
                                     nchan=cp_model.nchan)
    x = np.asarray(x[np.newaxis, ...] if x.ndim < 4 else x)
    rescale = cp_model.diam_mean / diameter        # Cellpose's arithmetic: diam_mean is its float32 scalar
    params = {**models.normalize_default, "normalize": True, "invert": False}
    x = transforms.normalize_img(x, **params)
    rsz = rescale if rescale != 1.0 else None
    Ly0, Lx0 = x.shape[1:3]
    if rsz is not None:
        Lyr, Lxr = int(Ly0 * rsz), int(Lx0 * rsz)
    else:
        Lyr, Lxr = Ly0, Lx0
    ypad1, ypad2, xpad1, xpad2 = transforms.get_pad_yx(Lyr, Lxr)
    img = transforms.resize_image(x[0], rsz=rsz) if rsz is not None else x[0].copy()
    img = np.pad(img.transpose(2, 0, 1), np.array([[0, 0], [ypad1, ypad2], [xpad1, xpad2]]), mode="constant")
    tiles, ysub, xsub, Lyt, Lxt = transforms.make_tiles(img, bsize=TILE, augment=False, tile_overlap=TILE_OVERLAP)
    ny, nx, nchan, ly, lx = tiles.shape
    return _Tiled(np.reshape(tiles, (ny * nx, nchan, ly, lx)), ysub, xsub, (Lyt, Lxt), img.shape[-2:],
                  (ypad1, ypad2, xpad1, xpad2), (Ly0, Lx0), rsz is not None)


def _untile(tiled: _Tiled, y: np.ndarray, style: np.ndarray) -> NetworkOutput:
    """run_net's and eval's steps after the network: tiles averaged, padding cut, resized back, style normalised."""
    from cellpose import transforms
    yf = transforms.average_tiles(y, tiled.ysub, tiled.xsub, *tiled.tiled_shape)
    Ly, Lx = tiled.padded_shape
    ypad1, ypad2, xpad1, xpad2 = tiled.pads
    yf = yf[:, :Ly, :Lx][:, ypad1:Ly - ypad2, xpad1:Lx - xpad2].transpose(1, 2, 0)
    if tiled.resized:
        yf = transforms.resize_image(yf[np.newaxis], *tiled.out_shape)[0]
    style = style.sum(axis=0)
    style /= (style ** 2).sum() ** 0.5
    return NetworkOutput(yf[..., :2].transpose(2, 0, 1), yf[..., 2], style)


def run(cp_model: Any, requests: Sequence[tuple[np.ndarray, float]],
        batch_size: int = BATCH_SIZE) -> list[NetworkOutput]:
    """The network's outputs for each (image, diameter) of `requests`, in order: an image is (H, W), or (H, W, 2)
    for a model trained on two channels (`eval`'s channels [1, 2]). Tiles of one shape (every 224-px tile; an image
    smaller than a tile is one tile of its own size) share batches of `batch_size`."""
    from cellpose import core
    tiled = [_tile(cp_model, image, diameter) for image, diameter in requests]
    outputs: list[np.ndarray | None] = [None] * len(tiled)
    styles: list[np.ndarray | None] = [None] * len(tiled)
    for shape in dict.fromkeys(t.tiles.shape[1:] for t in tiled):
        members = [i for i, t in enumerate(tiled) if t.tiles.shape[1:] == shape]
        tiles = np.concatenate([tiled[i].tiles for i in members])
        y = np.zeros((len(tiles), cp_model.net.nout, *shape[1:]), np.float32)
        style = np.zeros((len(tiles), 256), np.float32)
        for start in range(0, len(tiles), batch_size):
            batch = slice(start, start + batch_size)
            y[batch], style[batch] = core._forward(cp_model.net, tiles[batch])
        offset = 0
        for i in members:
            n = len(tiled[i].tiles)
            outputs[i], styles[i] = y[offset:offset + n], style[offset:offset + n]
            offset += n
    return [_untile(t, y, s) for t, y, s in zip(tiled, outputs, styles)]
