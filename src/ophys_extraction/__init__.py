"""ophys-extraction: Cellpose cell detection and suite2p signal extraction for two-photon movies."""

import logging

from ophys_extraction import numba_cache

__version__ = "0.1.0"

# Before anything imports Cellpose: its numba kernels are then loaded from disk, not compiled in every process.
numba_cache.install()
# suite2p logs "pynwb not installed, ..." whenever it is imported; NWB is not used here, so only that notice is
# dropped from the task logs (every other suite2p message still shows).
logging.getLogger("suite2p.io.nwb").addFilter(lambda record: "pynwb not installed" not in record.getMessage())
