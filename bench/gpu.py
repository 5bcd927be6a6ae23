#!/usr/bin/env python3
"""SEGMENT on a GPU (issue 27): per 512 x 512 plane, the network, the flow dynamics on the GPU and the size choice,
and the whole pipeline with `-profile gpu`; prints one table. Needs a CUDA device (exits 1 without one).

Timed in this process after a warm-up (CUDA synchronised around every phase): model load; the network on the
whole image at `--diameter` with 8 (Cellpose's default), 32 and 128 tiles per call (network.run; a tile's output
does not depend on its batch on the CPU, checked by tests/test_segmentation.py; on the GPU cuDNN may pick other
kernels by batch size, so the largest flow change against 8 is printed); the dynamics (masks and final locations);
the size choice (`--diameter 0`: style pass, candidates batched); segment_image at 0 and at `--diameter`. Then
bin/segment.py as a process (`--device cuda`: start-up included) at both, and the pipeline on one plane of
`--frames` frames: through Nextflow (`-profile gpu`) where `java` and the Nextflow jars are there, else the four
steps in sequence as its tasks run them (said in the table).

The device machine has torch but not Cellpose: its wheels travel with the working tree. Here, once (PyPI needed):

    bench/gpu_wheels.sh     # cellpose, fastremap, fill_voids, natsort, roifile, suite2p (CPython 3.12) -> .whl/

then on the GPU machine, from the repository root (`.whl` carried, 3 MB):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:src python3 bench/gpu.py [--frames 2000] [--diameter 10]

The pipeline through Nextflow also needs Java 17 and the Nextflow jars (`.venv/nextflow/lib`, 40 MB: carry it and
set `NEXTFLOW_LIB`); without them the steps run directly and Nextflow's own overhead is not in the figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, logged_phases, make_movie, measure, movie_frame_rate, print_table, step

MODEL = REPO / "assets" / "models" / "ophys_cp3"


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    """(median seconds, last result) of fn() with CUDA synchronised before and after each call."""
    import torch
    seconds, result = [], None
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def in_process(summary: Path, diameter: float) -> list[list[object]]:
    import dataclasses

    import h5py
    import numpy as np
    import torch
    from ophys_extraction import network, segmentation
    from ophys_extraction.segmentation_input import prepare_image
    device = torch.device("cuda")
    load_s, model = timed(lambda: segmentation.load_model(segmentation.resolve_model(str(MODEL)), device), 1)
    with h5py.File(summary, "r") as handle:
        image, weights = prepare_image({"meanImg": np.asarray(handle["meanImg"][()], np.float32)}, 2)
    network.run(model.net, [(image, diameter)])                         # warm-up: cuDNN, kernels
    rows: list[list[object]] = [["model load (first, CPU -> GPU)", load_s, ""]]
    reference = None
    for batch in (8, 32, 128):
        s, out = timed(lambda: network.run(model.net, [(image, diameter)], batch)[0])
        reference = out if reference is None else reference
        rows.append([f"network, whole image at {diameter:g} px, batch {batch}", s,
                     f"max |flow - batch 8's| {float(np.abs(out.dP - reference.dP).max()):.2g}"])
    params = segmentation.SegmentationParams(diameter=diameter)
    s, _ = timed(lambda: segmentation.masks_and_final_locations(
        reference.dP, reference.cellprob, params.cellprob_threshold, params.flow_threshold,
        segmentation.dynamics_niter(model.net.diam_mean, diameter), device))
    rows.append(["dynamics (masks, final locations) on the GPU", s, ""])
    auto = dataclasses.replace(params, diameter=0.0)
    s, chosen = timed(lambda: segmentation.choose_diameter(segmentation.Runs(model, image, auto)))
    rows.append(["size choice (--diameter 0)", s, f"{chosen[0]:.1f} px, {chosen[1].count(':') - 1} candidates"])
    for p in (auto, params):
        s, result = timed(lambda: segmentation.segment_image(image, weights, model, p))
        rows.append([f"segment_image, --diameter {p.diameter:g}", s,
                     ", ".join(f"{k} {v:.3f} s" for k, v in result.seconds.items()) + f"; {result.n_rois} ROIs"])
    return rows


def as_process(summary: Path, workdir: Path, diameter: float) -> list[list[object]]:
    rows = []
    for d in (0.0, diameter):
        runs = [measure(step("segment.py", "--summary", summary, "--output", workdir / "seg.h5", "--pretrained_model",
                             MODEL, "--device", "cuda", "--diameter", str(d))) for _ in range(3)]
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in logged_phases(runs[-1].stdout).items())
        rows.append([f"bin/segment.py --device cuda --diameter {d:g} (process)",
                     statistics.median(r.seconds for r in runs), phases])
    return rows


def pipeline(movie: Path, workdir: Path) -> list[object]:
    """The whole pipeline on one plane: Nextflow with -profile gpu where it can run, else the steps in sequence."""
    nextflow_lib = Path(os.environ.get("NEXTFLOW_LIB", REPO / ".venv" / "nextflow" / "lib"))
    if shutil.which("java") and (nextflow_lib / ".installed").is_file():
        launch = workdir / "launch"
        launch.mkdir()
        start = time.perf_counter()
        subprocess.run([str(REPO / ".venv" / "bin" / "nextflow"), "run", str(REPO / "main.nf"), "-profile", "gpu",
                        "--input_dir", str(movie.parent.parent), "--outdir", str(launch / "results"),
                        "--pretrained_model", str(MODEL), "--max_cpus", str(os.cpu_count())],
                       cwd=launch, check=True, stdout=subprocess.DEVNULL)
        return ["whole pipeline, Nextflow -profile gpu", time.perf_counter() - start, ""]
    out = workdir / "steps"
    commands = [step("summary_images.py", "--movie", movie, "--output", out / "summary.h5", "--frame_rate",
                     movie_frame_rate(movie)),
                step("segment.py", "--summary", out / "summary.h5", "--output", out / "seg.h5", "--pretrained_model",
                     MODEL, "--device", "cuda"),
                step("extract.py", "--movie", movie, "--segmentation", out / "seg.h5", "--output", out / "traces.h5"),
                step("merge.py", "--summary", out / "summary.h5", "--segmentation", out / "seg.h5", "--traces",
                     out / "traces.h5", "--outdir", out / "extraction", "--plane_id", "plane")]
    out.mkdir()
    seconds = [measure(cmd).seconds for cmd in commands]
    return ["whole pipeline, its 4 steps in sequence (no Java/Nextflow here)", sum(seconds),
            "SUMMARY_IMAGES, SEGMENT, EXTRACT, MERGE: " + ", ".join(f"{s:.1f}" for s in seconds) + " s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000, help="frames of the 512 x 512 pipeline plane")
    parser.add_argument("--diameter", type=float, default=10.0)
    parser.add_argument("--tmpdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    import torch
    if not torch.cuda.is_available():
        print("gpu.py: torch sees no CUDA device: nothing measured")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="gpu_", dir=args.tmpdir))
    try:
        movie = make_movie(workdir / "session" / "plane_0" / "movie.h5", args.frames)
        summary = workdir / "summary.h5"
        measure(step("summary_images.py", "--movie", movie, "--output", summary, "--frame_rate",
                     movie_frame_rate(movie)))
        rows = in_process(summary, args.diameter) + as_process(summary, workdir, args.diameter)
        rows.append(pipeline(movie, workdir))
        print_table(f"SEGMENT on {torch.cuda.get_device_name(0)}, one 512 x 512 plane ({args.frames} frames for the "
                    f"pipeline); seconds, median of 3 after a warm-up", ["what", "seconds", "details"], rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
