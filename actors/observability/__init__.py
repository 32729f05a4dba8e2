"""Prometheus metrics of a run, their exporter actor, and the Serve processes' memory probe."""
