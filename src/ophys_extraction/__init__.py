"""ophys-extraction: Cellpose cell detection and suite2p signal extraction for two-photon movies."""

__version__ = "0.1.0"
