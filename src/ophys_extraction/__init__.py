"""ophys-extraction: Cellpose cell detection and suite2p signal extraction for two-photon movies."""

from ophys_extraction import numba_cache

__version__ = "0.1.0"

# Before anything imports Cellpose: its numba kernels are then loaded from disk, not compiled in every process.
numba_cache.install()
