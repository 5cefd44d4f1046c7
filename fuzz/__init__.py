"""Fuzz targets of the decode -> validate -> canonicalize -> project path (docs/drills.md)."""
