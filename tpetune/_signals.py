"""SIGTERM takes Ctrl-C's path everywhere tpetune runs in the foreground (one handler).

Slurm, Kubernetes and spot preemption stop a job with SIGTERM. Inside
:func:`sigterm_as_interrupt` it raises :class:`Terminated`, a ``KeyboardInterrupt``, so
every place that already stops cleanly on Ctrl-C (the driver stops dispatching and stops its
workers or Spark jobs; the dashboard stops its server) does the same on SIGTERM, and the CLI
can tell the two apart for its exit code (130 vs 143).

Telling a stop from a ``KeyboardInterrupt`` the objective raises itself:

A person's Ctrl-C (SIGINT) or a scheduler's SIGTERM stops the study: finished trials are kept,
the trials in flight are recorded as interrupted and re-run with the same params on resume.
An objective that raises ``KeyboardInterrupt`` with no such signal (a library translating
its own condition, a stray ``raise``) is user code failing: its trial is recorded as failed,
and the search goes on under the failure policy, as for any other exception. (Optuna
records such a trial as failed and re-raises; tpetune already records and goes on for every
other exception, and stops after ``max_failures`` in a row.)

The driver tells the two apart by watching the signals (:func:`watching`, main thread only);
the SIGTERM handler above notes its signal too. A ``KeyboardInterrupt`` in a worker process
never comes from a signal: workers ignore SIGINT and SIGTERM. Limitation: an objective that
installs its own SIGINT handler hides Ctrl-C from tpetune; its ``KeyboardInterrupt`` then
fails the trial, and a second Ctrl-C (between trials) stops the study.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["Terminated", "how", "mark", "signalled", "sigterm_as_interrupt", "watching"]


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM inside :func:`sigterm_as_interrupt`."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    mark(signum)  # a stop, not the objective's own KeyboardInterrupt
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


_signalled: int | None = None


def mark(signum: int) -> None:
    """Note that ``signum`` (SIGINT or SIGTERM) asked this process to stop."""
    global _signalled
    _signalled = signum


def signalled() -> int | None:
    """The stop signal received while :func:`watching`, or ``None``."""
    return _signalled


def how() -> str:
    """How the stop came, in words: ``Ctrl-C``, ``SIGTERM`` or ``a KeyboardInterrupt``."""
    if _signalled == signal.SIGINT:
        return "Ctrl-C"
    if _signalled == signal.SIGTERM:
        return "SIGTERM"
    return "a KeyboardInterrupt"


@contextlib.contextmanager
def watching() -> Iterator[None]:
    """Note SIGINT while the block runs, then let the handler in place act (Python's raises
    ``KeyboardInterrupt``). Outside the main thread signals are not ours to watch."""
    global _signalled
    _signalled = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # ignored (nohup, a background job) or default: leave it
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        mark(signum)
        previous(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
