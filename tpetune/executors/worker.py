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
from collections.abc import Sequence
from multiprocessing.connection import Connection

from tpetune._quiet import VERBOSE_VAR, quiet_tensorflow
from tpetune.executors.base import Job, run_trial
from tpetune.executors.processes import _LOG_LEVEL_VAR, _READY, _RETARGET
from tpetune.search.user_modules import load_from_env

log = logging.getLogger("tpetune")


def _worker_main(fd: int) -> None:
    """Worker loop: the objective first (answered ``ready`` or ``!error``, then its
    ``preload`` packages imported), then pickled jobs in, pickled outcomes out."""
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
    while True:
        try:
            blob = conn.recv_bytes()
        except EOFError:
            return
        if not blob:
            return
        # The first message is the objective; a later one prefixed _RETARGET hands this worker
        # another executor's objective (warm_workers); every other message is a job.
        if objective is None or blob.startswith(_RETARGET):
            try:
                if objective is None:
                    load_from_env()  # the driver's space files, as modules: it may live in one
                objective = cloudpickle.loads(blob.removeprefix(_RETARGET))
            except Exception as exc:  # e.g. a module the objective needs is not installed here
                conn.send_bytes(b"!" + f"{type(exc).__name__}: {exc}".encode())
                return
            conn.send_bytes(_READY)
            _preload(getattr(objective, "preload", ()))
            continue
        job: Job = cloudpickle.loads(blob)
        conn.send_bytes(cloudpickle.dumps((job.tid, run_trial(objective, job))))


def _preload(names: Sequence[str]) -> None:
    """Import the packages the objective names (:mod:`tpetune.executors.base`), so that a
    spare worker pays for TensorFlow's import while the worker it replaces still trains.
    Best effort: whatever fails here, the trial imports and fails or succeeds on its own."""
    for name in (names,) if isinstance(names, str) else names:  # "keras" means ("keras",)
        try:
            importlib.import_module(name)
        except BaseException:  # a SystemExit too: this worker must live to run the trial
            log.debug("worker: preloading %s failed", name, exc_info=True)


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
