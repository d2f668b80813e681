"""Benchmarks: ``python -m benchmarks.run`` writes reports/bench.md, bench.json and bench.png.

Modules: ``timing`` (median timer, machine description, matmul peak), ``forward`` (execution paths),
``seed_resunet`` (the seed architecture, the baseline), ``prepost`` (image I/O stages), ``serve_load``
(end-to-end TorchServe load), ``report`` (Markdown, JSON, chart and the PASS/FAIL bars), ``run`` (CLI).
"""
