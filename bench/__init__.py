"""The benchmark suite of tpetune: ``python -m bench`` (see docs/benchmarks.md).

Each module is also a script (``python bench/pruning.py --quick``); ``bench/run_all.py`` runs
them all as subprocesses and writes their figures to docs/bench/ and docs/benchmarks.md.
"""
