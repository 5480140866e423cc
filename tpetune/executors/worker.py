"""A worker process's entry point: ``python -m tpetune.executors.worker FD``.

A module of its own that nothing in tpetune imports: run with ``-m``, the module that holds the
worker loop (:mod:`tpetune.executors.processes`, which importing tpetune imports) would run a
second time as ``__main__``, and Python warns about that on every worker's start.
"""

from __future__ import annotations

import sys

from tpetune.executors.processes import _worker_main

if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
