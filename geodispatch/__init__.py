"""geodispatch: geospatial dispatch and unit tracking for police emergency call centres."""

__version__ = "0.1.0"
