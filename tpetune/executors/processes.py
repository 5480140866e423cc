"""Trials in worker processes on one machine (``--workers N``).

Each worker is a fresh ``python -m tpetune.executors.worker`` process (TensorFlow does not
survive ``fork``) talking to the driver over a socket pair. Unlike ``multiprocessing``'s
spawn, it never re-runs the driver's main script, so scripts need no ``if __name__ ==
"__main__"`` guard and objectives may come from stdin or a notebook: the objective travels
pickled by value, once.
Workers die with the driver (Linux: parent-death signal; elsewhere at the next message).
The driver alone writes the store.

- Isolation: an exception fails the trial inside the worker; a crash, an OOM kill or a
  segfault kills the worker, which fails only its trial, and a fresh worker takes its place.
  A worker found dead between trials (killed while idle) is replaced and its next job goes to
  the fresh one. A new worker answers ``ready`` once it has loaded the objective; workers that
  die before that, or cannot load it, stop the run with one :class:`ExecutorError`.
- Memory: a worker is replaced after ``recycle_after`` trials, so whatever a framework leaks
  per trial is returned to the OS. Its replacement starts as a *spare* when it begins its last
  trial (one spare at a time: one process more), and loads the objective and imports its
  ``preload`` packages (Keras: 4-8 s) while that trial runs. ``spare=False`` starts it when
  the next trial needs it instead: no more than ``workers`` processes at any time.
- Warm hand-over: inside :func:`~tpetune.executors.warm.warm_workers`, a closed executor
  parks its idle workers (and unused spares) and the next one built with the same
  environment adopts them with its own objective (a bundled study's final report trains
  where its trials did).
- ``trial_timeout``: a trial running longer is killed with its worker and recorded as failed.
- Process groups (:mod:`~tpetune.executors.process_groups`): each worker leads a process
  group of its own, and leaves as a group: on a
  trial timeout, when it dies, when it is recycled and when the executor closes (the study
  ends, stops on failures, or is stopped), whatever processes its trials started and left
  (data loaders, tools, a ``multiprocessing`` pool) are killed with it. Workers read stdin
  from ``/dev/null`` (a process group in the background stops when it reads the terminal).
- Threads: each worker gets ``cores // N`` intra-op threads (TensorFlow, OpenMP, BLAS), so N
  workers do not oversubscribe the machine.
- Ctrl-C and SIGTERM: workers ignore both (in their own process groups a terminal's Ctrl-C
  does not reach them anyway; the driver's handling is the one that counts); the driver stops
  them and leaves their trials ``running``, marked interrupted, to be re-run with the same
  params on resume. A ``KeyboardInterrupt`` a worker meets is the objective's own: it fails
  the trial (:mod:`tpetune._signals`).
- TensorFlow's start-up noise is silenced in each worker before the objective loads
  (:mod:`tpetune._quiet`; ``--verbose`` keeps it).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from tpetune.errors import ExecutorError
from tpetune.executors import process_groups, warm
from tpetune.executors.base import Job, Outcome, ship
from tpetune.search.user_modules import worker_env
from tpetune.study.store import TrialState

log = logging.getLogger("tpetune")
#: Workers dying before they loaded the objective, in a row, before the executor gives up.
_MAX_DEAD_AT_START = 3
_READY = b"ready"
#: Prefix of a message that hands a warm worker a new objective (a pickle starts with 0x80).
_RETARGET = b"\x00objective:"

_LOG_LEVEL_VAR = "TPETUNE_LOG_LEVEL"  # set when the driver prints tpetune's log (the CLI)
_THREAD_VARS = (
    "TF_NUM_INTRAOP_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    job: Job | None = None
    started: float = 0.0
    trials: int = 0
    ready: bool = False  # it has loaded the objective


class ProcessExecutor:
    """Runs trials in ``workers`` spawned processes; see the module docstring.

    Args:
        objective: any callable cloudpickle can ship (functions from ``tpetune run`` files,
            closures, objective objects holding their data).
        workers: processes, i.e. trials in flight at once.
        trial_timeout: seconds before a running trial is killed and failed.
        recycle_after: trials per worker before it is replaced (bounds leaked memory).
        threads: intra-op threads per worker (default: CPU cores // workers, at least 1).
        spare: start a worker's replacement during its last trial (see the module).
    """

    def __init__(
        self,
        objective: Callable[[Any], Any],
        *,
        workers: int,
        trial_timeout: float | None = None,
        recycle_after: int = 20,
        threads: int | None = None,
        spare: bool = True,
    ) -> None:
        self.workers = workers
        self.spare = spare
        self.trial_timeout = trial_timeout
        self.recycle_after = recycle_after
        self._blob = ship(objective, space_files_there=True)
        per_worker = threads or threads_per_worker(workers)
        self._env = {**os.environ, **{var: str(per_worker) for var in _THREAD_VARS}}
        self._env.update(worker_env(objective))  # workers load its space file (user_modules)
        self._env["TF_NUM_INTEROP_THREADS"] = "1"
        if log.handlers:  # the CLI prints tpetune's log: so do the workers (e.g. StopOnNaN's)
            self._env[_LOG_LEVEL_VAR] = str(log.getEffectiveLevel())
        self._workers: list[_Worker] = []
        self._spare: _Worker | None = None  # a recycled worker's replacement, started early
        self._queue: deque[Job] = deque()
        self._dead_at_start = 0

    def _spawn(self, *, spare: bool = False) -> _Worker | None:
        """A new worker, or ``None`` if it died at once; a ``spare`` waits in ``_spare`` (see
        the module docstring)."""
        ours, theirs = socket.socketpair()
        argv = [sys.executable, "-m", "tpetune.executors.worker", str(theirs.fileno())]
        proc = process_groups.start(argv, self._env, pass_fds=[theirs.fileno()])
        theirs.close()
        worker = _Worker(proc, Connection(ours.detach()))
        try:
            worker.conn.send_bytes(self._blob)
        except OSError:  # it died at once
            self._workers.append(worker)
            self._replace_dead(worker)
            return None
        if spare:
            self._spare = worker
        else:
            self._workers.append(worker)
        return worker

    def _take_spare(self) -> _Worker | None:
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        self._workers.append(spare)
        if spare.process.poll() is None:
            return spare
        spare.ready = _said_ready(spare, 0)  # it loaded the objective: not a failed start
        self._replace_dead(spare)
        return None

    def _retire(self, worker: _Worker, *, kill: bool) -> None:
        _stop(worker, kill=kill)
        self._workers.remove(worker)

    def _adopt(self) -> _Worker | None:
        """A live parked worker started with this executor's environment (see
        :mod:`~tpetune.executors.warm`), handed this executor's objective; ``None`` if none."""
        while (worker := warm.take(self._env)) is not None:
            try:
                if worker.process.poll() is not None:
                    raise OSError("it died while parked")
                worker.conn.send_bytes(_RETARGET + self._blob)
            except OSError:
                _stop(worker, kill=True)
                continue
            # It answers ``ready`` (or why not) as a fresh worker does; its trials count anew.
            worker.ready, worker.trials = False, 0
            self._workers.append(worker)
            return worker
        return None

    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        import cloudpickle

        while self._queue:
            worker = self._idle_worker()
            if worker is None:
                return
            job = self._queue[0]
            try:
                worker.conn.send_bytes(cloudpickle.dumps(job))
            except OSError:  # it died while idle (killed, OOM): a fresh worker takes the job
                self._replace_dead(worker)
                continue
            self._queue.popleft()
            worker.job, worker.started = job, time.monotonic()
            if self.spare and worker.trials + 1 >= self.recycle_after and self._spare is None:
                self._spawn(spare=True)  # its last trial: the replacement starts now

    def _idle_worker(self) -> _Worker | None:
        """An idle, live worker (spawning one if a slot is free), or ``None``."""
        for worker in [w for w in self._workers if w.job is None]:
            if worker.process.poll() is None:
                return worker
            self._replace_dead(worker)
        while len(self._workers) < self.workers:
            # None: it died at once (see _replace_dead)
            spawned = self._take_spare() or self._adopt() or self._spawn()
            if spawned is not None:
                return spawned
        return None

    def _replace_dead(self, worker: _Worker) -> None:
        """Drop a worker found dead; a job it held goes back to the front of the queue.

        Raises:
            ExecutorError: the last few workers all died before loading the objective.
        """
        code = worker.process.poll()
        if worker.job is not None:
            self._queue.appendleft(worker.job)
        self._retire(worker, kill=True)
        code = worker.process.returncode if code is None else code
        if worker.ready:
            log.warning(
                "a worker process died between trials (%s); starting a fresh one",
                process_groups.ended_how(code),
            )
            return
        self._dead_at_start += 1
        if self._dead_at_start >= _MAX_DEAD_AT_START:
            raise ExecutorError(
                f"{self._dead_at_start} worker processes in a row died before loading the "
                f"objective (last: {process_groups.ended_how(code)}); check that "
                f"`{sys.executable} -m tpetune.executors.worker` starts on this machine"
            )

    def _hello(self, worker: _Worker, message: bytes) -> None:
        """A new worker's first message: ``ready``, or why it cannot load the objective."""
        if message == _READY:
            worker.ready = True
            self._dead_at_start = 0
            return
        error = message[1:].decode(errors="replace")
        raise ExecutorError(
            f"a worker process cannot load the objective ({error}): install what it needs "
            f"into the environment of {sys.executable}, which runs the workers"
        )

    def wait(self) -> list[tuple[int, Outcome]]:
        """Block until at least one trial ends (finished, failed, died or timed out)."""
        import cloudpickle

        while True:
            busy = [w for w in self._workers if w.job is not None]
            if not busy:
                return []
            # A dying worker closes its socket, so its connection becomes readable (EOF).
            ready = set(wait([w.conn for w in busy], timeout=self._next_deadline(busy)))
            done: list[tuple[int, Outcome]] = []
            for worker in busy:
                assert worker.job is not None
                if worker.conn in ready:
                    try:
                        message = worker.conn.recv_bytes()
                    except (EOFError, OSError):
                        if worker.ready:
                            done.append(self._died(worker))
                        else:  # it never started: its job waits for a fresh worker
                            self._replace_dead(worker)
                        continue
                    if not worker.ready:
                        self._hello(worker, message)
                        continue
                    tid, outcome = cloudpickle.loads(message)
                    worker.job, worker.trials = None, worker.trials + 1
                    done.append((tid, outcome))
                    if worker.trials >= self.recycle_after:
                        self._retire(worker, kill=False)
                elif self._timed_out(worker):
                    done.append(
                        self._fail(
                            worker,
                            f"trial exceeded the trial timeout of "
                            f"{self.trial_timeout:g}s and was killed",
                        )
                    )
            self._dispatch()
            if done:
                return done

    def _next_deadline(self, busy: list[_Worker]) -> float | None:
        if self.trial_timeout is None:
            return None
        now = time.monotonic()
        return max(0.0, min(w.started + self.trial_timeout - now for w in busy))

    def _timed_out(self, worker: _Worker) -> bool:
        return (
            self.trial_timeout is not None
            and time.monotonic() - worker.started >= self.trial_timeout
        )

    def _died(self, worker: _Worker) -> tuple[int, Outcome]:
        try:
            code: int | None = worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        return self._fail(
            worker,
            f"the worker process died ({process_groups.ended_how(code)}) while running the trial",
        )

    def _fail(self, worker: _Worker, error: str) -> tuple[int, Outcome]:
        assert worker.job is not None
        job, started = worker.job, worker.started
        self._retire(worker, kill=True)
        elapsed = time.monotonic() - started
        now = time.time()
        return job.tid, Outcome(TrialState.FAIL, error=error, started=now - elapsed, finished=now)

    def close(self) -> None:
        """Stop every worker; trials still running stay ``running`` in the store. Inside
        :func:`~tpetune.executors.warm.warm_workers`, idle live workers are parked instead."""
        self._queue.clear()
        for worker in list(self._workers):
            self._workers.remove(worker)
            idle = worker.job is None and worker.ready and worker.process.poll() is None
            if not (idle and warm.park(self._env, worker, _stop)):
                _stop(worker, kill=worker.job is not None)
        # A spare is parked where it can be, else killed (it may be importing: asked to stop,
        # it would finish that first); one left parked is killed when the block ends.
        spare, self._spare = self._spare, None
        if spare is not None:
            kill = functools.partial(_stop, kill=True)
            if not (warm.active() and _said_ready(spare, 5) and warm.park(self._env, spare, kill)):
                kill(spare)


def threads_per_worker(workers: int) -> int:
    """A worker's intra-op threads when ``workers`` share the machine: its cores // workers."""
    return max(1, (os.cpu_count() or 1) // workers)


def _said_ready(worker: _Worker, timeout: float) -> bool:
    """Read a new worker's ``ready``, waiting up to ``timeout`` seconds."""
    try:
        worker.ready = worker.conn.poll(timeout) and worker.conn.recv_bytes() == _READY
    except (EOFError, OSError):
        worker.ready = False
    return worker.ready


def _stop(worker: _Worker, *, kill: bool = False) -> None:
    """Stop a worker and whatever its trials left behind: asked to (the stop message) unless
    ``kill``; killed with its process group if it does not leave within 10 s."""
    if not kill:
        try:
            worker.conn.send_bytes(b"")  # the stop message
        except OSError:
            kill = True
    if kill:
        process_groups.kill(worker.process)
    try:
        worker.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process_groups.kill(worker.process)
        worker.process.wait()
    # What its trials started and left behind (the group outlives its reaped leader, and
    # its id is not reused while any member lives).
    process_groups.kill(worker.process)
    worker.conn.close()
