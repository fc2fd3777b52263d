"""dcrcoadd's validation and benchmark suite (issue 8).

``python -m benchmarks`` (or ``python benchmarks/run.py``) runs it and writes
``benchmarks/results/*.json`` and figures; see `benchmarks.run`.
"""
