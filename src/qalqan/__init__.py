"""Qalqan: threat-intelligence sharing, detection and cooperation for national CERTs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
