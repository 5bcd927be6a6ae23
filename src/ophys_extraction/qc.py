"""QC figure of a plane: `detected_ROIs.png`, the ROIs over each distinct summary image and example traces.

Top: one panel per distinct image (the mean image, the max projection, and the image Cellpose segmented when it is
neither of those, e.g. the enhanced mean image or the max/mean ratio), with every ROI's contour in the colour of
its class (`iscell` column 0), a magenta cross on each ROI whose corrected trace has its baseline at or below zero
(`traces/baseline_at_or_below_zero`: no usable dF/F), and the index of each ROI shown below. Below: raw,
neuropil and corrected traces of the highest-skew cells, each with its neuropil coefficient r, then up to two of
the flagged ROIs. Contours are computed once per ROI on its bounding box and drawn as one LineCollection per class,
so 500 ROIs on 512x512 render in about a second; long traces are drawn as their min/max envelope.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction.schema import find_key

CELL_COLOUR = "#00e5ff"      # cyan
NONCELL_COLOUR = "#ff8c00"   # orange: distinguishable from cyan with the common colour-vision deficiencies
FLAG_COLOUR = "#ff00ff"      # magenta crosses (a shape, not only a colour) on ROIs with baseline <= 0
FLAG_TEXT_COLOUR = "#b0179b"  # the same hue, dark enough for text on white
RAW_COLOUR, NEUROPIL_COLOUR, CORRECTED_COLOUR = "#9a9a9a", "#0072b2", "#000000"
FIG_WIDTH = 12.0             # inches; at DPI a 512-px image in three panels is drawn at about 1:1
MAX_PANEL_HEIGHT = 5.0       # inches; tall fields of view get narrower panels instead of a taller figure
TRACE_ROW_HEIGHT = 1.1       # inches per example trace, its title included
N_TOP_SKEW = 4               # highest-skew cells shown
N_FLAGGED = 2                # flagged ROIs shown besides them
ENVELOPE_BINS = 1500         # traces longer than twice this are drawn as min/max per bin
DPI = 130


@dataclass(frozen=True)
class TraceExample:
    roi: int
    raw: np.ndarray
    neuropil: np.ndarray
    corrected: np.ndarray
    r: float
    skew: float
    is_cell: bool
    low_baseline: bool


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


def distinct_images(images: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """The images in order, without those equal to an earlier one (mode 2 segments the mean image itself)."""
    kept: list[tuple[str, np.ndarray]] = []
    for name, image in images:
        if not any(image.shape == other.shape and np.array_equal(image, other) for _, other in kept):
            kept.append((name, image))
    return kept


def example_rois(skew: np.ndarray, is_cell: np.ndarray, low_baseline: np.ndarray,
                 n_top: int = N_TOP_SKEW, n_flagged: int = N_FLAGGED) -> tuple[list[int], list[int]]:
    """ROIs whose traces the figure shows: (the `n_top` highest-skew cells, or ROIs of any class if there are no
    cells; up to `n_flagged` other ROIs with baseline <= 0, cells first), each by decreasing skew (NaN last)."""
    skew = np.nan_to_num(np.asarray(skew, np.float64), nan=-np.inf)
    by_skew = np.argsort(-skew, kind="stable")
    is_cell = np.asarray(is_cell, bool)
    top = [int(i) for i in by_skew if is_cell[i]][:n_top] or [int(i) for i in by_skew[:n_top]]
    flagged = sorted((int(i) for i in by_skew if low_baseline[i] and i not in top), key=lambda i: not is_cell[i])
    return top, flagged[:n_flagged]


def _display_range(image: np.ndarray) -> tuple[float, float]:
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, (0.5, 99.7))
    return (float(low), float(high)) if high > low else (float(low), float(low) + 1.0)


def envelope(values: np.ndarray, bins: int = ENVELOPE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(frame positions, values) to plot: the trace itself if short, else its min and max in `bins` bins (the
    shape a plot of every frame would show, at a fraction of the points)."""
    n = values.size
    if n <= 2 * bins:
        return np.arange(n, dtype=np.float64), values
    step = -(-n // bins)
    padded = np.concatenate([values, np.full(step * (-(-n // step)) - n, values[-1])]).reshape(-1, step)
    centres = np.arange(padded.shape[0]) * step + (step - 1) / 2
    return np.repeat(centres, 2), np.column_stack((padded.min(axis=1), padded.max(axis=1))).ravel()


def parameters_of(extraction: h5py.File) -> dict[str, Any]:
    """The `parameters` attribute of an extraction.h5 as a dict ({} if absent or not a JSON object)."""
    value = extraction.attrs.get("parameters", "{}")
    try:
        doc = json.loads(value.decode() if isinstance(value, bytes) else str(value))
    except json.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def segmented_title(segment_attrs: dict[str, Any]) -> str:
    """The figure's title of the image Cellpose segmented, from SEGMENT's attributes (`--anatomical_only`)."""
    from ophys_extraction.segmentation_input import IMAGE_MODES
    detection = find_key(segment_attrs, "detection")
    if detection in ("sparsery", "sourcery"):
        return f"{detection} input (max projection)"
    mode = find_key(segment_attrs, "anatomical_only")
    name = IMAGE_MODES[mode].description if isinstance(mode, int) and mode in IMAGE_MODES else None
    return f"Cellpose input ({name})" if name else "Cellpose input"


def recomputed_segmented(extraction: h5py.File) -> tuple[str, np.ndarray]:
    """(title, image) of what Cellpose segmented, taken or recomputed from the images of an extraction.h5 with
    SEGMENT's recorded `anatomical_only`, `spatial_hp_cp` and `diameter_used` (summary_images.mode_image),
    for a figure drawn without segmentation.h5 (after a curation; the suite2p folder's `Vcorr`). Mode 1's ratio
    takes the mean image as its denominator (SEGMENT used the binned movie's mean), so it can differ slightly."""
    from ophys_extraction.segmentation_input import IMAGE_MODES, spatial_highpass
    from ophys_extraction.summary_images import mode_image

    segment = parameters_of(extraction).get("segment") or {}
    mean_img, max_img = extraction["meanImg"][()], extraction["maxImg"][()]
    mode = find_key(segment, "anatomical_only")
    if mode not in IMAGE_MODES:
        return "mean image", mean_img
    stored = IMAGE_MODES[mode].image      # meanImg, maxImg and corrImg are in extraction.h5 as they were segmented
    image = extraction[stored][()] if stored in extraction else mode_image(mean_img, max_img, mode)
    highpass, diameter = find_key(segment, "spatial_hp_cp"), find_key(segment, "diameter_used")
    if isinstance(highpass, (int, float)) and highpass > 0 and isinstance(diameter, (int, float)):
        image = spatial_highpass(image, float(diameter), float(highpass))
    return segmented_title(segment), image


def render_plane(path: str | Path, extraction: h5py.File, segmented: tuple[str, np.ndarray], title: str) -> None:
    """detected_ROIs.png of an open extraction.h5 (validated), with `segmented` = (name, image Cellpose used)."""
    n_rois = int(extraction["traces/corrected"].shape[0])
    iscell = extraction["iscell"][()]
    is_cell = iscell[:, 0] > 0.5 if n_rois else np.zeros(0, bool)
    low_baseline = extraction["traces/baseline_at_or_below_zero"][()].astype(bool)
    top, flagged = example_rois(extraction["traces/skew"][()], is_cell, low_baseline)
    chosen = top + flagged
    rows = sorted(chosen)
    traces = {name: dict(zip(rows, extraction[f"traces/{name}"][rows])) if rows else {}
              for name in ("roi", "neuropil", "corrected")}
    r = extraction["neuropil_rcoef"][()]
    skew = extraction["traces/skew"][()]
    examples = [TraceExample(i, traces["roi"][i], traces["neuropil"][i], traces["corrected"][i], float(r[i]),
                             float(skew[i]), bool(is_cell[i]), bool(low_baseline[i])) for i in chosen]
    frame_rate = extraction.attrs.get("frame_rate")
    render_detected_rois(
        path, images=[("mean image", extraction["meanImg"][()]), ("max projection", extraction["maxImg"][()]),
                      *([("correlation image", extraction["corrImg"][()])] if "corrImg" in extraction else []),
                      segmented],
        coords=extraction["rois/coords"][()], n_rois=n_rois, iscell=iscell, centres=extraction["rois/med"][()],
        low_baseline=low_baseline, examples=examples, n_top=len(top),
        frame_rate=float(frame_rate) if frame_rate is not None else None, title=title)


def render_detected_rois(path: str | Path, *, images: list[tuple[str, np.ndarray]], coords: np.ndarray,
                         n_rois: int, iscell: np.ndarray, centres: np.ndarray, low_baseline: np.ndarray,
                         examples: list[TraceExample], n_top: int, frame_rate: float | None, title: str) -> None:
    """Write the figure to `path` atomically (temporary name in the same folder, then rename).

    images: (panel title, (H, W) image), repeats dropped (`distinct_images`); coords: (3, n_pixels) (roi, y, x);
    iscell: (n_rois, 2); centres: (n_rois, 2) (y, x) where marks and ids go; low_baseline: bool (n_rois,);
    examples: the traces shown, the first `n_top` of them the highest-skew ones (`example_rois`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    path = Path(path)
    images = distinct_images(images)
    height, width = images[0][1].shape
    outlines = roi_contours(coords, n_rois)
    is_cell = np.asarray(iscell[:, 0] > 0.5) if n_rois else np.zeros(0, dtype=bool)
    low_baseline = np.asarray(low_baseline, bool)
    segments = {cell: [c for i in np.flatnonzero(is_cell == cell) for c in outlines[i]] for cell in (True, False)}
    n_cells, n_low = int(is_cell.sum()), int(low_baseline.sum())
    n_low_cells = int((low_baseline & is_cell).sum())

    # Geometry in inches, top to bottom: title, image panels (with their titles), legend, traces, time axis.
    left, right, gap = 0.7, 0.2, 0.15
    panel_w = (FIG_WIDTH - left - right - gap * (len(images) - 1)) / len(images)
    panel_h = panel_w * height / width
    if panel_h > MAX_PANEL_HEIGHT:
        panel_w, panel_h = MAX_PANEL_HEIGHT * width / height, MAX_PANEL_HEIGHT
    title_h, panel_title_h, legend_h, traces_header_h, axis_h = 0.55, 0.3, 0.4, 0.35, 0.45
    traces_h = (traces_header_h + TRACE_ROW_HEIGHT * len(examples) + axis_h) if examples else 0.0
    fig_h = title_h + panel_title_h + panel_h + legend_h + traces_h + 0.05
    fig = plt.figure(figsize=(FIG_WIDTH, fig_h), dpi=DPI)
    row_w = len(images) * panel_w + gap * (len(images) - 1)
    x0 = left + (FIG_WIDTH - left - right - row_w) / 2
    panel_bottom = fig_h - title_h - panel_title_h - panel_h
    halo = [patheffects.withStroke(linewidth=2.2, foreground="black")]
    shown = np.array([e.roi for e in examples], dtype=np.int64)
    for col, (name, image) in enumerate(images):
        ax = fig.add_axes(((x0 + col * (panel_w + gap)) / FIG_WIDTH, panel_bottom / fig_h,
                           panel_w / FIG_WIDTH, panel_h / fig_h))
        low, high = _display_range(image)
        ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        for cell, colour in ((False, NONCELL_COLOUR), (True, CELL_COLOUR)):
            if segments[cell]:
                ax.add_collection(LineCollection(segments[cell], colors=colour, linewidths=0.8))
        if n_low:
            ax.plot(centres[low_baseline, 1], centres[low_baseline, 0], linestyle="none", marker="x",
                    markersize=6, markeredgewidth=1.6, color=FLAG_COLOUR)
        for i in shown:
            ax.text(centres[i, 1] + 0.015 * width, centres[i, 0] - 0.015 * height, str(i), color="white",
                    fontsize=8, fontweight="bold", ha="left", va="bottom", path_effects=halo)
        if n_rois == 0:
            ax.text(0.5, 0.5, "0 ROIs", transform=ax.transAxes, color="white", fontsize=18,
                    ha="center", va="center", bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"})
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=10)
    fig.suptitle(f"{title}: {n_rois} ROIs, {n_cells} cells; baseline \u2264 0 (no dF/F): {n_low} ROIs "
                 f"({n_low_cells} cells)", fontsize=12, y=1 - 0.18 / fig_h, va="top")
    image_handles = [
        Line2D([], [], color=CELL_COLOUR, lw=2, label=f"cell (iscell = 1): {n_cells}"),
        Line2D([], [], color=NONCELL_COLOUR, lw=2, label=f"not a cell: {n_rois - n_cells}"),
        Line2D([], [], color=FLAG_COLOUR, marker="x", linestyle="none", markersize=7, markeredgewidth=1.6,
               label=f"median of corrected trace \u2264 0: {n_low}"),
        Line2D([], [], color="white", marker="$7$", linestyle="none", markersize=7, markeredgecolor="black",
               markeredgewidth=0.4, label="ROI index of an example trace")]
    fig.legend(handles=image_handles, loc="center", ncol=4, frameon=False, fontsize=8.5,
               bbox_to_anchor=(0.5, (panel_bottom - legend_h / 2) / fig_h))

    top_cells = all(e.is_cell for e in examples[:n_top])
    traces_top = panel_bottom - legend_h - traces_header_h
    if examples:
        heading = (f"Example traces: the {n_top} highest-skew {'cells' if top_cells else 'ROIs (no cells)'}"
                   + (", then ROIs with baseline \u2264 0" if len(examples) > n_top else ""))
        fig.text(left / FIG_WIDTH, (traces_top + 0.12) / fig_h, heading, fontsize=9.5, fontweight="bold")
        fig.legend(handles=[Line2D([], [], color=RAW_COLOUR, lw=1.5, label="raw (ROI)"),
                            Line2D([], [], color=NEUROPIL_COLOUR, lw=1.5, label="neuropil"),
                            Line2D([], [], color=CORRECTED_COLOUR, lw=1.5, label="corrected = raw - r * neuropil")],
                   loc="lower right", ncol=3, frameon=False, fontsize=8.5,
                   bbox_to_anchor=(1 - right / FIG_WIDTH, (traces_top + 0.02) / fig_h))
    scale = 1.0 / frame_rate if frame_rate else 1.0
    for row, example in enumerate(examples):
        bottom = traces_top - TRACE_ROW_HEIGHT * (row + 1)
        ax = fig.add_axes((left / FIG_WIDTH, bottom / fig_h, (FIG_WIDTH - left - right) / FIG_WIDTH,
                           (TRACE_ROW_HEIGHT - 0.25) / fig_h))
        for values, colour in ((example.raw, RAW_COLOUR), (example.neuropil, NEUROPIL_COLOUR),
                               (example.corrected, CORRECTED_COLOUR)):
            frames, ys = envelope(np.asarray(values, np.float64))
            ax.plot(frames * scale, ys, color=colour, linewidth=0.6)
        low_y, high_y = ax.get_ylim()
        if example.low_baseline or low_y <= 0 <= high_y:
            ax.axhline(0.0, color=FLAG_COLOUR if example.low_baseline else "0.6", linewidth=0.9, linestyle="--")
        label = (f"ROI {example.roi} ({'cell' if example.is_cell else 'not a cell'}): skew {example.skew:.2f}, "
                 f"r = {example.r:.2f}")
        if example.low_baseline:
            label += f"; median of corrected {np.median(example.corrected):.3g} \u2264 0 (dashed: zero)"
        ax.set_title(label, fontsize=8, loc="left", pad=2,
                     color=FLAG_TEXT_COLOUR if example.low_baseline else "black")
        ax.tick_params(labelsize=7)
        ax.margins(x=0)
        if row < len(examples) - 1:
            ax.set_xticklabels([])
        else:
            ax.set_xlabel("time (s)" if frame_rate else "frame", fontsize=8)

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, dpi=DPI, format="png", facecolor="white", metadata={"Software": None},
                    pil_kwargs={"compress_level": 6})
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
