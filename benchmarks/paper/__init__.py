"""The paper's reproduction (Tables 1-4, Figure 4): ``python -m benchmarks.paper --help``."""
