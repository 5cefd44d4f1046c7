"""pseudostream: raw app events in, pseudonymous city-level consent-aware events out."""

__version__ = "0.1.0"
