"""Rendering a simulation: movie frames with shot and read noise (block by block, memory flat in frames), the movie
file, and the summary images of a plane without rendering its movie (for training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophys_extraction.synthetic.activity import simulate
from ophys_extraction.synthetic.spec import BLOCK, NOISE_STREAM, Simulation, SyntheticSpec, stream_rng

_INT16 = np.iinfo(np.int16)


def _signal(sim: Simulation, np_temporal: np.ndarray, source_traces: np.ndarray) -> np.ndarray:
    """Noise-free frames (n, H*W) float32 for the given temporal factors."""
    frames = np_temporal.T @ sim.np_spatial
    frames += (sim.footprints.T @ source_traces).T
    return frames


def _noise_params(spec: SyntheticSpec) -> tuple[float, float]:
    """(counts per photon, read noise sd) at the spec's noise level: both noise sds scale with noise_level."""
    return spec.gain * spec.noise_level**2, spec.read_noise * spec.noise_level


def _add_noise(spec: SyntheticSpec, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot noise on photon counts plus Gaussian read noise plus offset, rounded and clipped to int16."""
    gain, read = _noise_params(spec)
    np.maximum(frames, 0, out=frames)
    if spec.noise_level > 0:
        if spec.shot_noise == "poisson":
            frames = (gain * rng.poisson(frames / gain)).astype(np.float32)
            frames += read * rng.standard_normal(frames.shape, np.float32)
        else:
            sd = np.sqrt(frames * gain + read**2)
            frames += sd * rng.standard_normal(frames.shape, np.float32)
    frames += spec.offset
    return np.clip(np.rint(frames), _INT16.min, _INT16.max).astype(np.int16)


def render(sim: Simulation, start: int, stop: int) -> np.ndarray:
    """Movie frames [start, stop) as int16 (n, H, W). Noise is drawn per fixed BLOCK of frames, so any split of the
    movie into ranges gives the same pixels."""
    spec = sim.spec
    blocks = []
    for block in range(start // BLOCK, -(-stop // BLOCK)):
        b0, b1 = block * BLOCK, min((block + 1) * BLOCK, spec.n_frames)
        frames = _signal(sim, sim.np_temporal[:, b0:b1], sim.source_traces[:, b0:b1])
        frames = _add_noise(spec, frames, stream_rng(spec.seed, NOISE_STREAM, block))
        blocks.append(frames[max(start - b0, 0): stop - b0])
    return np.concatenate(blocks).reshape(-1, spec.height, spec.width)


def write_movie(path: str | Path, spec: SyntheticSpec, chunk_frames: int = 256,
                sim: Simulation | None = None) -> Simulation:
    """Write the movie as HDF5 dataset `data` (frames, H, W) int16, chunked by up to 64 frames, uncompressed,
    streaming `chunk_frames` frames at a time (memory independent of the number of frames). Written to a temporary
    name and renamed, so a file at `path` is always complete. Returns the simulation (for the ground truth)."""
    sim = sim if sim is not None else simulate(spec)
    path = Path(path)
    step = max(BLOCK, chunk_frames // BLOCK * BLOCK)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        dset = f.create_dataset("data", (spec.n_frames, spec.height, spec.width), np.int16,
                                chunks=(min(BLOCK, spec.n_frames), spec.height, spec.width))
        for start in range(0, spec.n_frames, step):
            stop = min(start + step, spec.n_frames)
            dset[start:stop] = render(sim, start, stop)
    tmp.replace(path)
    return sim


def make_training_image(seed: int, height: int = 256, width: int = 256, noise_level: float = 1.0,
                        n_frames: int = 600, frame_rate: float = 10.0, bin_duration: float = 3.7,
                        high_pass: int = 100, **spec_fields: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean image, max projection, masks) as the pipeline would compute them from the movie of this spec, without
    rendering the movie: the binned movie is rendered directly (binning is linear), with the noise of a mean of
    `bin_duration * frame_rate` frames. The max projection is that of the temporally high-passed binned movie
    (suite2p's rolling-mean high pass over windows of `high_pass` bins), so it shows activity, not baseline."""
    spec = SyntheticSpec(height=height, width=width, n_frames=n_frames, frame_rate=frame_rate, seed=seed,
                         noise_level=noise_level, **spec_fields)
    sim = simulate(spec)
    bin_frames = min(max(1, int(round(bin_duration * frame_rate))), n_frames)
    n_bins = n_frames // bin_frames

    def binned(x: np.ndarray) -> np.ndarray:
        return x[:, : n_bins * bin_frames].reshape(len(x), n_bins, bin_frames).mean(axis=2)

    frames = _signal(sim, binned(sim.np_temporal), binned(sim.source_traces))
    gain, read = _noise_params(spec)
    sd = np.sqrt(np.maximum(frames, 0) * gain + read**2) / np.sqrt(bin_frames)
    frames += sd * stream_rng(seed, NOISE_STREAM, 2**32 - 1).standard_normal(frames.shape, np.float32) + spec.offset
    mean = frames.mean(axis=0)
    for start in range(0, n_bins, high_pass):
        frames[start:start + high_pass] -= frames[start:start + high_pass].mean(axis=0)
    shape = (height, width)
    return mean.reshape(shape).astype(np.float32), frames.max(axis=0).reshape(shape).astype(np.float32), sim.masks

