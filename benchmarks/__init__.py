"""Benchmarks and the paper's reproduction, each run as a module: ``python -m benchmarks.X``."""
