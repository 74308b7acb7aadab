"""The `tving` command: the top layer, over the code location (tving_assets), the query app and the library."""
