"""Warm hand-over: worker processes kept alive from one executor to the next.

A bundled study runs its search in one executor and its final report's fits in another. Both
start worker processes that import the same framework (TensorFlow: 4-8 s each). Inside
:func:`warm_workers`, a closing executor *parks* its idle workers here instead of stopping
them, keyed by the environment they were started with, and the next executor built with an
equal environment *takes* them and hands them its own objective
(:class:`~tpetune.executors.processes.ProcessExecutor` does both). This module only keeps the
lot: it knows nothing of what a worker is beyond the function that stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Parked workers as (environment, worker, how to stop it); ``None`` outside warm_workers.
_lot: list[tuple[dict[str, str], Any, Callable[[Any], None]]] | None = None


@contextmanager
def warm_workers() -> Iterator[None]:
    """Keep worker processes warm from one executor to the next within this block.

    An executor closed inside it parks its idle workers instead of stopping them; the next
    executor built with the same environment (the same thread settings and log level: the
    workers' count may differ) adopts them with its own objective, so a bundled study's final
    report trains in the search's workers. Whatever is still parked is stopped when the block
    ends, however it ends. Outside such a block every executor starts and stops its own
    workers. Not re-entrant: an inner block leaves the outer one's workers to it.
    """
    global _lot
    if _lot is not None:
        yield
        return
    _lot = []
    try:
        yield
    finally:
        parked, _lot = _lot, None
        for _, worker, stop in parked:
            stop(worker)


def active() -> bool:
    """Whether a :func:`warm_workers` block is open (a closing executor's workers may park)."""
    return _lot is not None


def park(env: dict[str, str], worker: Any, stop: Callable[[Any], None]) -> bool:
    """Keep ``worker`` (started with ``env``) for the next executor; ``False`` outside
    :func:`warm_workers`, where the caller stops it itself. ``stop`` is called on it when the
    block ends if nobody took it."""
    if _lot is None:
        return False
    _lot.append((env, worker, stop))
    return True


def take(env: dict[str, str]) -> Any | None:
    """A parked worker started with exactly ``env`` (it may have died since: the caller
    checks), removed from the lot; ``None`` if there is none."""
    if not _lot:
        return None
    for entry in _lot:
        if entry[0] == env:
            _lot.remove(entry)
            return entry[1]
    return None
