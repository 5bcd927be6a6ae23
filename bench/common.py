"""What every benchmark needs: a step run as a child process with its wall time and peak RSS, the read floor
(a plain sequential read of the movie), synthetic movies generated chunk by chunk, and a printed table."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "bin"

READ_FLOOR = """
import sys, h5py, numpy as np
from ophys_extraction.movie import chunk_frames, open_movie
with open_movie(sys.argv[1]) as (dset, info):
    step = chunk_frames(info, dset)
    buf = np.empty((step, info.height, info.width), dset.dtype)
    for start in range(0, info.n_frames, step):
        n = min(step, info.n_frames - start)
        dset.read_direct(buf, np.s_[start:start + n], np.s_[0:n])
"""


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mb: float
    stdout: str = ""
    cpu_seconds: float = 0.0
    stderr: str = ""


def measure(cmd: list[str | Path], env: dict[str, str] | None = None) -> Measurement:
    """Run `cmd` to completion (with `env` added to this environment); wall seconds, the peak RSS and CPU seconds
    (user + system) of that child (os.wait4, so per process), its stdout and stderr (steps print one summary line;
    both go to files, so a chatty child cannot block on a pipe)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, cwd=Path(__file__).parent,
                                env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[1] if len(cmd) > 1 else cmd[0]} failed: {stderr[-2000:]}")
        return Measurement(seconds, usage.ru_maxrss / 1024, out.read().decode(errors="replace"),
                           usage.ru_utime + usage.ru_stime, stderr)


def logged_phases(stdout: str) -> dict[str, float]:
    """The phase times a step prints at the end of its log line: "... in T s (name X s, other Y s, ...) -> out"."""
    found = re.findall(r"\(([a-z ,]+? [0-9.]+ s(?:, [a-z ,]+? [0-9.]+ s)*)\)", stdout)
    if not found:
        raise RuntimeError(f"no phase times in the step's output: {stdout!r}")
    return {name.strip(" ,"): float(seconds) for name, seconds in re.findall(r"([a-z ,]+?) ([0-9.]+) s", found[-1])}


def evict(path: Path, settle: float = 0.0) -> None:
    """Drop the file from the page cache (no root needed), so the next read comes from the disk; then wait `settle`
    seconds.

    Why wait: on a VM with free page reporting (virtio_balloon; this one logs "Free page reporting enabled") the
    evicted pages go back to the host within seconds, and the next read must fault fresh guest memory in for its
    page cache. Read at once, a 5.3 GB movie took 4.7-5.3 s here; 3 s later 6.8 s, 10 s later 10-11 s, 15-30 s
    later 11.5-13.4 s. A step that imports for 10 s before its first read meets the slow case, a floor read at
    once the fast one: floor and step are only comparable when both start after the same settle.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    time.sleep(settle)


def warm(path: Path) -> None:
    """Read the file once so it sits in the page cache (as far as memory allows)."""
    with open(path, "rb") as handle:
        while handle.read(64 * 2**20):
            pass


def read_floor(movie: Path) -> Measurement:
    """A plain sequential read of the whole movie, in the pipeline's chunking, raw dtype, no processing."""
    return measure([sys.executable, "-c", READ_FLOOR, movie])


def step(name: str, *args: str | Path) -> list[str | Path]:
    """Command line of a pipeline step's bin/ script."""
    return [sys.executable, BIN / name, *args]


def make_movie(path: Path, frames: int, height: int = 512, width: int = 512, seed: int = 1, **spec_fields) -> Path:
    """A synthetic int16 movie (with processing.json beside it), generated chunk by chunk; Gaussian shot noise
    (same variance as Poisson, ~3x faster to draw), since benchmarks need size, not photon statistics."""
    from ophys_extraction.synthetic import SyntheticSpec, write_movie

    spec = SyntheticSpec(height=height, width=width, n_frames=frames, seed=seed, shot_noise="gaussian", **spec_fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_movie(path, spec)
    (path.parent / "processing.json").write_text(
        '{"data_processes": [{"parameters": {"movie_frame_rate_hz": %s}}]}' % spec.frame_rate)
    return path


def movie_frame_rate(movie: Path) -> str:
    """The frame rate make_movie wrote beside `movie`, for summary_images.py --frame_rate (in the pipeline,
    lib/PlaneFinder.groovy finds each plane's)."""
    doc = json.loads((movie.parent / "processing.json").read_text())
    return str(doc["data_processes"][0]["parameters"]["movie_frame_rate_hz"])


def vm_hwm_mb() -> float:
    """This process's peak RSS so far (VmHWM), for benchmarks that time a step inside a child process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def time_quietly(main, argv: list[str]) -> float:
    """Wall seconds of a step's `main(argv)` in this process, its stdout silenced."""
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            main(argv)
        finally:
            sys.stdout = stdout
    return time.perf_counter() - start


def summary_images(movie: Path, frame_rate: float, workdir: Path) -> dict:
    """SUMMARY_IMAGES' images of a movie (dataset name -> array), run in this process; its summary.h5 is written
    into `workdir` (never beside a shared movie) and removed."""
    import h5py
    from ophys_extraction.cli.summary_images import main as summary_main
    from ophys_extraction.segmentation_input import SUMMARY_DATASETS
    summary = Path(workdir) / f"{movie.stem}_summary.h5"
    assert summary_main(["--movie", str(movie), "--output", str(summary), "--frame_rate", str(frame_rate)]) == 0
    with h5py.File(summary, "r") as f:
        images = {name: f[name][()] for name in SUMMARY_DATASETS}
    summary.unlink()
    return images


def print_table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))
    sys.stdout.flush()


# Bins of a ROI's mean-image contrast (metrics.mean_image_contrast), shared by detection.py and realism.py.
CONTRAST_BINS = [(-float("inf"), 0.0), (0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, float("inf"))]


def contrast_bin_labels() -> list[str]:
    return [f"[{lo:g}, {hi:g})".replace("-inf", "-").replace("inf", "") for lo, hi in CONTRAST_BINS]
