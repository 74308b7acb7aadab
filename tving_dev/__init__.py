"""Development tools, outside the product: benchmarks, tiny random models for tests, a one-host cluster."""
