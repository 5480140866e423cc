"""Where trials run: one seam, several executors.

The driver (:mod:`tpetune.engine.tuning`) proposes trials and owns the store; an executor only runs
objectives and hands back :class:`Outcome` values. Contract every executor meets:

- ``workers`` trials may be in flight at once; ``submit`` never blocks.
- ``wait()`` returns at least one finished ``(tid, Outcome)`` while anything is in flight.
- An exception in the objective never escapes: it becomes a ``fail`` outcome carrying the
  error text. ``KeyboardInterrupt`` escapes only when Ctrl-C or SIGTERM caused it, so that
  stops the study; one the objective raised itself fails its trial (:mod:`tpetune._signals`).

An objective may name, in a ``preload`` attribute, packages a worker process imports as
soon as it has loaded the objective, before its first trial (``KerasTrial``: ``("keras",)``).
Name only packages whose import depends on nothing a trial sets up first (environment
variables, ``sys.path``): they are imported before any trial code runs.
"""

from __future__ import annotations

import math
import sys
import sysconfig
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tpetune import _signals
from tpetune._io import jsonable
from tpetune.search.user_modules import is_space_module
from tpetune.study.artifacts import capture, report_non_json
from tpetune.study.attachments import storable
from tpetune.study.store import TrialState
from tpetune.trial.context import TrialContext, trial_scope
from tpetune.trial.report import TrialPruned, step_scope

Objective = Callable[[Any], Any]
_KNOWN_KEYS = {"loss", "status", "pruned", "curves", "metrics", "error", "attachments"}


@dataclass(frozen=True)
class Job:
    """One trial to evaluate: the objective's argument and the trial's context."""

    tid: int
    args: Any
    ctx: TrialContext


@dataclass(frozen=True)
class Outcome:
    """What came of a trial. ``contract_error`` marks a broken objective (stop the study)."""

    state: TrialState
    loss: float | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
    contract_error: bool = False
    steps: list[list[Any]] = field(default_factory=list)  # reported where no store was seen
    attachments: dict[str, bytes | str] = field(default_factory=dict)  # see study/attachments


def run_trial(objective: Objective, job: Job) -> Outcome:
    """Call the objective inside the trial's context and interpret what it returns.

    The objective returns a float loss, or a dict with ``loss`` and optional ``curves``
    (name -> per-epoch list), ``metrics`` (name -> value), ``pruned`` (bool), ``status``
    (``"ok"``/``"fail"``, as in hyperopt). Other JSON-able keys are kept as metrics. Raising
    :class:`tpetune.TrialPruned` ends it as ``pruned`` with the best value it reported.
    """

    started = time.time()
    with trial_scope(job.ctx), step_scope(job.ctx) as steps:
        try:
            raw = objective(job.args)
        except TrialPruned:
            raw = _pruned_result(steps.curve(), steps.pruner.monitor)
        except KeyboardInterrupt as exc:
            if _signals.signalled() is not None:
                raise  # Ctrl-C or SIGTERM: the study stops, this trial re-runs on resume
            return _failed(exc, started, steps.shipped, " (raised by the objective, not a Ctrl-C)")
        # The objective is user code: any failure fails this trial only. SystemExit too
        # (a sys.exit() in it), else a serial study would end, its trial left running.
        except (Exception, SystemExit) as exc:
            return _failed(exc, started, steps.shipped)

    outcome = interpret(capture(raw, job.ctx))  # Keras models -> STUDY/models/<tid>.keras
    state = outcome.state
    if state is TrialState.OK and "pruned_at_epoch" in job.ctx.notes:
        state = TrialState.PRUNED  # a pruning callback stopped the fit
        outcome.metrics.setdefault("pruned_at_epoch", job.ctx.notes["pruned_at_epoch"])
    if state is TrialState.PRUNED and steps.last.pause:
        state = TrialState.PAUSED  # stopped on a freeze-thaw pause: kept for a thaw
    curves = outcome.curves
    reported, monitor = steps.curve(), steps.pruner.monitor
    resumed = job.ctx.last_step is not None  # its own curve may hold this attempt's only
    if reported and (monitor not in curves or (resumed and len(curves[monitor]) < len(reported))):
        curves = {**curves, monitor: reported}  # what tpetune.report recorded
    return Outcome(
        **{
            **outcome.__dict__,
            "state": state,
            "curves": curves,
            "started": started,
            "finished": time.time(),
            "steps": steps.shipped,
        }
    )


def _failed(exc: BaseException, started: float, steps: list[list[Any]], note: str = "") -> Outcome:
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return Outcome(
        TrialState.FAIL,
        error=f"{type(exc).__name__}{note}: {exc}{where}",
        started=started,
        finished=time.time(),
        steps=steps,
    )


def _pruned_result(curve: list[float], monitor: str) -> dict[str, Any]:
    values = [v for v in curve if not math.isnan(v)]
    if not values:
        return {"status": "fail", "error": "TrialPruned raised before any value was reported"}
    return {"loss": min(values), "pruned": True, "curves": {monitor: curve}}


def interpret(raw: Any) -> Outcome:
    """Turn an objective's return value into an :class:`Outcome` (times left at 0); a
    dict's ``attachments`` (name -> bytes/str, as hyperopt's) travel with it to the store."""
    outcome = _interpret(raw)
    if isinstance(raw, Mapping) and raw.get("attachments") is not None:
        from dataclasses import replace

        outcome = replace(outcome, attachments=storable(raw["attachments"]))
    return outcome


def _interpret(raw: Any) -> Outcome:
    if isinstance(raw, Mapping):
        status = raw.get("status", "ok")
        curves = {str(k): [float(x) for x in v] for k, v in (raw.get("curves") or {}).items()}

        metrics = dict(jsonable(report_non_json(raw.get("metrics") or {})))
        extra = report_non_json({str(k): v for k, v in raw.items() if k not in _KNOWN_KEYS})
        metrics.update({k: jsonable(v) for k, v in extra.items()})
        if status == "fail":
            error = str(raw.get("error") or "the objective returned status 'fail'")
            return Outcome(TrialState.FAIL, curves=curves, metrics=metrics, error=error)
        if "loss" not in raw:
            return _contract(f"the objective returned a dict without 'loss' (keys: {sorted(raw)})")
        loss, state = raw["loss"], TrialState.PRUNED if raw.get("pruned") else TrialState.OK
    else:
        loss, state, curves, metrics = raw, TrialState.OK, {}, {}
    if isinstance(loss, bool) or not _is_number(loss):
        return _contract(
            f"the objective returned {type(loss).__name__} {loss!r} as loss; return a float "
            "or a dict with a float 'loss'"
        )
    loss = float(loss)
    if not math.isfinite(loss):
        return Outcome(TrialState.FAIL, curves=curves, metrics=metrics, error=f"loss is {loss}")
    return Outcome(state, loss=loss, curves=curves, metrics=metrics)


def _is_number(x: Any) -> bool:
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return not isinstance(x, str | bytes)


def _contract(message: str) -> Outcome:
    return Outcome(TrialState.FAIL, error=message, contract_error=True)


def ship(objective: Objective, *, space_files_there: bool = False) -> bytes:
    """Pickle an objective for another process or machine.

    A module that is not installed (the user's own script or test file) is pickled by value,
    so the receiving side needs only the installed packages, not the user's source tree.
    ``space_files_there``: the receiver loads this process's space files first
    (:mod:`tpetune.search.user_modules`; local worker processes do), so an objective from one goes
    by reference and its module's functions pickle by reference there too.
    """
    import cloudpickle

    name = getattr(objective, "__module__", None) or type(objective).__module__
    module = sys.modules.get(name)
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    path = getattr(module, "__file__", None) or ""
    by_value = (
        module is not None
        and not (space_files_there and is_space_module(objective))
        and name != "__main__"  # cloudpickle already ships __main__ by value
        and not name.startswith("tpetune")
        and not any(path.startswith(p) for p in installed)
    )
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return bytes(cloudpickle.dumps(objective))
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


class Executor(Protocol):
    """What the driver needs from an executor (see the module docstring)."""

    workers: int

    def submit(self, job: Job) -> None: ...

    def wait(self) -> list[tuple[int, Outcome]]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Runs each trial in the driver's own process, one at a time, when ``wait`` is called."""

    workers = 1

    def __init__(self, objective: Objective) -> None:
        self._objective = objective
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def wait(self) -> list[tuple[int, Outcome]]:
        job = self._queue.popleft()
        return [(job.tid, run_trial(self._objective, job))]

    def close(self) -> None:
        self._queue.clear()
