"""SIGTERM takes Ctrl-C's path everywhere tpetune runs in the foreground (one handler).

Slurm, Kubernetes and spot preemption stop a job with SIGTERM. Inside
:func:`sigterm_as_interrupt` it raises :class:`Terminated`, a ``KeyboardInterrupt``, so
every place that already stops cleanly on Ctrl-C (the driver stops dispatching and stops its
workers or Spark jobs; the dashboard stops its server) does the same on SIGTERM, and the CLI
can tell the two apart for its exit code (130 vs 143).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Terminated", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM inside :func:`sigterm_as_interrupt`."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Route SIGTERM to :class:`Terminated` while inside; the previous handler comes back on
    exit. Outside the main thread (where Python allows no handlers) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
