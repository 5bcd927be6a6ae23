"""QC figure of a plane: `detected_ROIs.png`, ROI contours and ROI ids over the summary images.

Row 1: contours over the mean image, the max projection and the image Cellpose segmented; row 2: the same images
with each ROI's index (the row of `traces/*`, label - 1 in `cellpose/masks`) at its median pixel. Cells and
non-cells (`iscell` column 0) are drawn in two colours. Contours are computed once per ROI on its bounding box and
drawn as one LineCollection per class, so 500 ROIs on 512x512 render in about a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CELL_COLOUR = "#00e5ff"      # cyan
NONCELL_COLOUR = "#ff8c00"   # orange: distinguishable from cyan with the common colour-vision deficiencies
PANEL_INCHES = 5.0   # longer side of each of the six panels
DPI = 150


def roi_contours(coords: np.ndarray, n_rois: int) -> list[list[np.ndarray]]:
    """Per ROI, its outline(s) as (n, 2) arrays of (x, y) in image pixel coordinates."""
    from skimage.measure import find_contours

    roi, ys, xs = (np.asarray(c, dtype=np.int64) for c in coords)
    order = np.argsort(roi, kind="stable")
    bounds = np.searchsorted(roi[order], np.arange(n_rois + 1))
    outlines: list[list[np.ndarray]] = []
    for i in range(n_rois):
        sel = order[bounds[i]:bounds[i + 1]]
        if sel.size == 0:
            outlines.append([])
            continue
        y, x = ys[sel], xs[sel]
        y0, x0 = y.min() - 1, x.min() - 1
        box = np.zeros((y.max() - y0 + 2, x.max() - x0 + 2), dtype=np.float32)
        box[y - y0, x - x0] = 1.0
        outlines.append([np.column_stack((c[:, 1] + x0, c[:, 0] + y0)) for c in find_contours(box, 0.5)])
    return outlines


def _id_font_size(coords: np.ndarray, n_rois: int, image_px_per_point: float) -> float:
    """Font size (points) of the ROI ids: about the width of a typical ROI for the longest id, within 4-10 pt."""
    if n_rois == 0:
        return 8.0
    diameter_px = 2.0 * np.sqrt(np.median(np.bincount(np.asarray(coords[0], np.int64), minlength=n_rois)) / np.pi)
    digits = max(2, len(str(n_rois - 1)))
    return float(np.clip(1.4 * diameter_px / image_px_per_point / (0.6 * digits), 4.0, 10.0))


def _id_paths(n_rois: int, size: float) -> list:
    """Each ROI id as a glyph outline (points, centred on 0, 0), for a PathCollection.

    The ten digit outlines are made once and placed side by side (DejaVu Sans digits share one advance width):
    one TextPath per ROI would cost about 2 ms each.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import TextPath

    prop = FontProperties(family="DejaVu Sans", weight="bold")
    digits = [TextPath((0, 0), str(d), size=size, prop=prop) for d in range(10)]
    advance = TextPath((0, 0), "00", size=size, prop=prop).vertices[:, 0].max() - digits[0].vertices[:, 0].max()
    height = digits[0].vertices[:, 1].max()
    paths = []
    for i in range(n_rois):
        text = str(i)
        shift = -advance * len(text) / 2
        vertices = np.concatenate([digits[int(c)].vertices + (shift + k * advance, -height / 2)
                                   for k, c in enumerate(text)])
        codes = np.concatenate([digits[int(c)].codes for c in text])
        paths.append(MplPath(vertices, codes))
    return paths


def _display_range(image: np.ndarray) -> tuple[float, float]:
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, (0.5, 99.7))
    return (float(low), float(high)) if high > low else (float(low), float(low) + 1.0)


def render_detected_rois(path: str | Path, *, images: list[tuple[str, np.ndarray]], coords: np.ndarray,
                         n_rois: int, iscell: np.ndarray, centres: np.ndarray, title: str) -> None:
    """Write the figure to `path` atomically (temporary name in the same folder, then rename).

    images: (panel title, (H, W) image) for each column; coords: (3, n_pixels) (roi, y, x); iscell: (n_rois, 2);
    centres: (n_rois, 2) (y, x) where each ROI's id is written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PathCollection
    from matplotlib.lines import Line2D
    from matplotlib.transforms import Affine2D

    path = Path(path)
    height, width = images[0][1].shape
    outlines = roi_contours(coords, n_rois)
    is_cell = np.asarray(iscell[:, 0] > 0.5) if n_rois else np.zeros(0, dtype=bool)
    segments = {
        True: [c for i in np.flatnonzero(is_cell) for c in outlines[i]],
        False: [c for i in np.flatnonzero(~is_cell) for c in outlines[i]],
    }
    n_cells = int(is_cell.sum())

    # The longer side of each panel is PANEL_INCHES (tall and wide fields of view stay the same overall size).
    scale = PANEL_INCHES / max(height, width)
    panel_w, panel_h = width * scale, height * scale
    top, bottom, left, right, gap = 0.75, 0.55, 0.15, 0.15, 0.45
    fig_w = left + right + 3 * panel_w + 2 * 0.15
    fig_h = top + bottom + 2 * panel_h + gap
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=DPI)
    longest_title = max(len(name) for name, _ in images) + len(": contours")
    title_size = float(np.clip(panel_w * 72 / (0.6 * longest_title), 6.0, 10.0))
    px_per_point = DPI / 72.0
    image_px_per_point = width / (panel_w * 72.0)
    id_size = _id_font_size(coords, n_rois, image_px_per_point)
    id_paths = _id_paths(n_rois, id_size)
    for row in range(2):
        for col, (name, image) in enumerate(images):
            ax = fig.add_axes((
                (left + col * (panel_w + 0.15)) / fig_w,
                (bottom + (1 - row) * (panel_h + gap)) / fig_h,
                panel_w / fig_w,
                panel_h / fig_h,
            ))
            low, high = _display_range(image)
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            width_lines = 0.9 if row == 0 else 0.4
            alpha = 1.0 if row == 0 else 0.35
            for cell, colour in ((False, NONCELL_COLOUR), (True, CELL_COLOUR)):
                if segments[cell]:
                    ax.add_collection(LineCollection(segments[cell], colors=colour, linewidths=width_lines,
                                                     alpha=alpha))
            if row == 1 and n_rois:
                # All ids of a panel as two PathCollections (a dark halo, then the class colour): one draw call
                # each instead of one Text per ROI, which would take seconds for hundreds of ROIs.
                offsets = np.column_stack((centres[:, 1], centres[:, 0])).astype(float)
                to_pixels = Affine2D().scale(px_per_point)
                ax.add_collection(PathCollection(id_paths, offsets=offsets, offset_transform=ax.transData,
                                                 transform=to_pixels, facecolors="none", edgecolors="black",
                                                 linewidths=1.2, alpha=0.85))
                ax.add_collection(PathCollection(id_paths, offsets=offsets, offset_transform=ax.transData,
                                                 transform=to_pixels, edgecolors="none",
                                                 facecolors=[CELL_COLOUR if c else NONCELL_COLOUR
                                                             for c in is_cell]))
            if n_rois == 0:
                ax.text(0.5, 0.5, "0 ROIs", transform=ax.transAxes, color="white", fontsize=20,
                        ha="center", va="center", bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"})
            ax.set_xlim(-0.5, width - 0.5)
            ax.set_ylim(height - 0.5, -0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: {'contours' if row == 0 else 'ROI ids'}", fontsize=title_size)
    fig.suptitle(f"{title}: {n_rois} ROIs ({n_cells} cells, {n_rois - n_cells} not cells)", fontsize=13,
                 y=1 - 0.22 / fig_h, va="top")
    handles = [Line2D([], [], color=CELL_COLOUR, lw=2, label=f"cell (iscell = 1): {n_cells}"),
               Line2D([], [], color=NONCELL_COLOUR, lw=2, label=f"not a cell (iscell = 0): {n_rois - n_cells}")]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=10,
               bbox_to_anchor=(0.5, 0.0))

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, dpi=DPI, format="png", facecolor="white", metadata={"Software": None},
                    pil_kwargs={"compress_level": 3})
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
