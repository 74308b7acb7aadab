"""The library: video decoding, scene detection, model wrappers, the LanceDB store, and the
Dagster resources that wrap them (only ``resources.py`` imports Dagster)."""
