"""The activity of a synthetic plane: spike trains through a calcium kernel per source, neuropil fluctuations,
photobleaching and drift; `simulate` puts scene and activity together."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from ophys_extraction.synthetic.scene import build_scene
from ophys_extraction.synthetic.spec import ACTIVITY_STREAM, Simulation, SyntheticSpec, stream_rng


def _slow(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """Smooth noise with unit variance whatever n (scaled by the filter's gain, not by the sample sd)."""
    return ndimage.gaussian_filter1d(rng.standard_normal(n), sigma_frames) * np.sqrt(2 * np.sqrt(np.pi) * sigma_frames)


def _calcium(spikes: np.ndarray, fs: float, tau_rise: float, tau_decay: float) -> np.ndarray:
    """Spikes convolved with a difference-of-exponentials kernel of peak 1 (an AR(2) filter, O(T))."""
    pd, pr = np.exp(-1 / (tau_decay * fs)), np.exp(-1 / (tau_rise * fs))
    k = np.arange(int(5 * tau_decay * fs) + 3)
    peak = np.max(pd ** (k + 1) - pr ** (k + 1))
    return signal.lfilter([(pd - pr) / peak], [1, -(pd + pr), pd * pr], spikes)


# Activity of each kind of source: (median rate Hz or None for the spec's, log-sd of rate, dF/F per spike range,
# decay tau range s or None for the spec's, baseline range relative to the neuropil level or None for the cell table).
_KINDS = {
    "cell": (None, 1.0, (0.2, 0.6), None, None),
    "out_of_focus": (None, 1.0, (0.1, 0.3), None, (0.15, 0.35)),
    "dendrite": (0.2, 0.8, (0.5, 2.0), (0.3, 0.8), (0.1, 0.3)),
    "punctum": (0.1, 0.8, (1.0, 3.0), (0.2, 0.5), (0.2, 0.7)),
}


def _activity(spec: SyntheticSpec, kinds: list[str], baseline_rel: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(source traces (n_sources, T) without drift, neuropil fluctuations (3, T), per-cell activity)."""
    rng = stream_rng(spec.seed, ACTIVITY_STREAM)
    fs, n = spec.frame_rate, spec.n_frames
    traces = np.empty((len(kinds), n), np.float32)
    n_cells = len(baseline_rel)
    cell = {"spikes": np.empty((n_cells, n), np.uint8), "dff": np.empty((n_cells, n), np.float32),
            "spike_rate_hz": np.empty(n_cells, np.float32), "decay_tau_s": np.empty(n_cells, np.float32),
            "baseline": np.empty(n_cells, np.float32)}
    for i, kind in enumerate(kinds):
        median_rate, rate_sd, amp_range, tau_range, base_range = _KINDS[kind]
        rate = np.clip(rng.lognormal(np.log(median_rate or spec.spike_rate_median), rate_sd), 0.003, 3.0)
        tau = rng.uniform(*(tau_range or spec.decay_tau_range))
        events = rng.poisson(rate / fs, n)
        spikes = events + rng.poisson(rng.uniform(0, 3) * events)  # some events are bursts
        dff = rng.uniform(*amp_range) * _calcium(spikes * rng.lognormal(0, 0.2, n), fs, rng.uniform(0.05, 0.1), tau)
        dff = dff / (1 + dff / 4)  # indicator saturation
        base = (baseline_rel[i] if base_range is None else rng.uniform(*base_range)) * spec.background * spec.brightness
        traces[i] = base * (1 + dff)
        if i < n_cells:
            cell["spikes"][i] = np.minimum(spikes, 255)
            cell["dff"][i], cell["spike_rate_hz"][i], cell["decay_tau_s"][i], cell["baseline"][i] = dff, rate, tau, base
    # Neuropil: slow wandering plus population events shared by its components, plus their own events.
    population = _calcium(rng.poisson(0.05 / fs, n) * rng.uniform(0.05, 0.12), fs, 0.2, 2.0)
    fluct = np.stack([0.05 * _slow(rng, n, 10 * fs) + rng.uniform(0.5, 1.0) * population
                      + _calcium(rng.poisson(0.05 / fs, n) * 0.1, fs, 0.2, 1.5) for _ in range(3)])
    return traces, (spec.neuropil_strength * fluct).astype(np.float32), cell


def _drift(spec: SyntheticSpec) -> np.ndarray:
    """Photobleaching (exponential towards 1 - bleach_fraction) and 1% slow drift of the whole field."""
    t = np.arange(spec.n_frames) / spec.frame_rate
    wander = 1 + 0.01 * _slow(stream_rng(spec.seed, ACTIVITY_STREAM, 1), spec.n_frames, 60 * spec.frame_rate)
    return ((1 - spec.bleach_fraction * (1 - np.exp(-t / spec.bleach_tau))) * wander).astype(np.float32)


def simulate(spec: SyntheticSpec) -> Simulation:
    """The scene and its activity for `spec` (everything but the noise)."""
    masks, footprints, np_spatial, cells, kinds, hole_masks = build_scene(spec)
    traces, fluct, activity = _activity(spec, kinds, cells.pop("baseline_rel"))
    drift = _drift(spec)
    cells.update(activity)
    np_temporal = np.vstack([drift, drift * fluct]).astype(np.float32)
    traces *= drift  # in place: for long movies this is the largest array
    return Simulation(spec, masks, footprints, np_spatial, np_temporal, traces, drift, cells, hole_masks)

