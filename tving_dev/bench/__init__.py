"""The benchmarks `tving bench` runs: indexing, search, serving, ANN indexes, the deployments, status."""
