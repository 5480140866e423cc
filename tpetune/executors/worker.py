"""A worker process: ``python -m tpetune.executors.worker FD`` (started by
:class:`~tpetune.executors.processes.ProcessExecutor`).

Nothing in tpetune imports this module: run with ``-m``, a module that importing tpetune had
already imported would run a second time as ``__main__``, and Python warns about that on every
worker's start. The wire protocol's constants live with the driver's side for the same reason.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from multiprocessing.connection import Connection

from tpetune._quiet import VERBOSE_VAR, quiet_tensorflow
from tpetune.executors.base import Job, run_trial
from tpetune.executors.processes import _LOG_LEVEL_VAR, _PRELOAD, _READY, _RETARGET
from tpetune.search.user_modules import load_from_env

log = logging.getLogger("tpetune")


def _worker_main(fd: int) -> None:
    """Worker loop: the objective first (answered ``ready`` or ``!error``), then pickled jobs
    in, pickled ``(tid, outcome, imported)`` out; ``imported`` names the packages the first
    job after a load imported (the driver has a spare worker import them ahead: ``_PRELOAD``)."""
    # The driver decides when to stop: Ctrl-C and a SIGTERM sent to the whole process group
    # (Slurm, Kubernetes) reach it too, and it stops its workers (their trials stay running).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    quiet_tensorflow(os.environ.get(VERBOSE_VAR) == "1")  # before the objective imports TF
    if _LOG_LEVEL_VAR in os.environ:
        handler = logging.StreamHandler(sys.stderr)  # the driver's stderr, inherited
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(int(os.environ[_LOG_LEVEL_VAR]))
        log.propagate = False
    import cloudpickle

    conn = Connection(fd)
    objective = None
    loaded: list[str] | None = None  # packages present after a load, until its first job ends
    while True:
        try:
            blob = conn.recv_bytes()
        except EOFError:
            return
        if not blob:
            return
        # The first message is the objective; a later one prefixed _RETARGET hands this worker
        # another executor's objective (warm_workers), one prefixed _PRELOAD names packages to
        # import before the first job; every other message is a job.
        if blob.startswith(_PRELOAD):
            _preload(blob.removeprefix(_PRELOAD).decode().split(","))
            continue
        if objective is None or blob.startswith(_RETARGET):
            try:
                if objective is None:
                    load_from_env()  # the driver's space files, as modules: it may live in one
                objective = cloudpickle.loads(blob.removeprefix(_RETARGET))
            except Exception as exc:  # e.g. a module the objective needs is not installed here
                conn.send_bytes(b"!" + f"{type(exc).__name__}: {exc}".encode())
                return
            conn.send_bytes(_READY)
            loaded = _packages()
            continue
        job: Job = cloudpickle.loads(blob)
        outcome = run_trial(objective, job)
        imported = [] if loaded is None else [p for p in _packages() if p not in loaded]
        loaded = None
        conn.send_bytes(cloudpickle.dumps((job.tid, outcome, imported)))


def _packages() -> list[str]:
    """Top-level packages imported so far, in import order (``sys.modules`` keeps it)."""
    tops = dict.fromkeys(name.partition(".")[0] for name in list(sys.modules))
    return [name for name in tops if not name.startswith("_")]


def _preload(names: list[str]) -> None:
    """Import what the previous worker's first job imported (TensorFlow: 4-8 s), so a spare
    worker pays it while the worker it replaces still trains. Best effort: a package that
    does not import on its own is left to the job."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the job imports what it needs, and says why not
            log.debug("worker: preloading %s failed", name, exc_info=True)


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
