"""The paper's reproduction (Tables 1-4, Figure 4), run as ``python -m benchmarks.paper``.

Modules: :mod:`~benchmarks.paper.cells` (a training cell, its name and folder, the cache
under ``benchmarks/paper_results/``), :mod:`~benchmarks.paper.grids` (Tables 1, 2 and 4, and
training a cell), :mod:`~benchmarks.paper.parity`, :mod:`~benchmarks.paper.probes`,
:mod:`~benchmarks.paper.folds` and :mod:`~benchmarks.paper.floor` (the other grids),
:mod:`~benchmarks.paper.table3` and :mod:`~benchmarks.paper.fleet_runs` (what needs no
grid), :mod:`~benchmarks.paper.values` (the paper's numbers), the renderers
:mod:`~benchmarks.paper.tables`, :mod:`~benchmarks.paper.claims` and
:mod:`~benchmarks.paper.fleet_tables`, :mod:`~benchmarks.paper.render` (docs/results.md),
and :mod:`~benchmarks.paper.cli` (the commands).
"""
