"""A final report's fits run where the study's trials ran: the executor, not the driver.

A bundled study's final report trains and evaluates a few models after the search (the stock
study's rolling-origin blocks, a best trial whose model was not kept, ...). Run in the driver
they would go one after another, with TensorFlow's default thread settings (about 1.36x slower
per epoch than a worker's on the stock LSTM, see docs/benchmarks.md) and a TensorFlow import
in the driver. :func:`run_calls` runs them as jobs of the study's own executor option instead:

- ``Workers(n)`` (the bundled studies' default): ``min(n, calls)`` worker processes with the
  trials' thread settings (:mod:`tpetune.executors.processes`), so with two workers two fits
  train at once. Inside :func:`~tpetune.executors.warm.warm_workers` (as
  :func:`tpetune.bundled.run_bundled` runs a study and its report) these are the search's
  own workers, TensorFlow already imported; else fresh ones. Calls are dispatched in the
  order given: put the longest first.
- ``Serial()``: in this process, one after another (as a library user's serial study runs).
- ``Spark(...)``: in this process too. A report reads the study folder (kept models) and
  writes into it, which a Spark executor on another machine may not see.

A call names a method of the target object and its keyword arguments; both travel pickled to
the worker (the target once per worker). The method's value comes back through the executor's
:class:`~tpetune.executors.base.Outcome`, so it must be plain data; a ``pandas.DataFrame`` is
carried in its ``split`` form and rebuilt. No trial context of a study is set: a call's seed
is an argument, and nothing is written to the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tpetune.engine.options import ExecutorOption, Serial, Workers
from tpetune.errors import DataError, ExecutorError
from tpetune.executors.base import Executor, Job
from tpetune.executors.processes import ProcessExecutor, threads_per_worker
from tpetune.study.store import TrialState
from tpetune.trial.context import TrialContext

__all__ = ["Call", "MethodRunner", "report_executor", "run_calls"]

_FRAME = "__frame__"
_WHERE = re.compile(r" \([^()]*:\d+\)$")  # run_trial's " (file.py:123)" suffix


@dataclass(frozen=True)
class Call:
    """``target.method(**kwargs)``, run by :func:`run_calls`."""

    method: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


class MethodRunner:
    """The executor's objective: runs a :class:`Call` on ``target``; returns its value as
    plain data under ``"value"`` (with a zero ``loss``, as the executor contract wants)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        # executors.base.ship pickles by value the module an objective names when it is not
        # installed (a user's script): name the target's, which the worker may not import.
        self.__module__ = type(target).__module__

    def __call__(self, call: Call) -> dict[str, Any]:
        value = getattr(self.target, call.method)(**dict(call.kwargs))
        return {"loss": 0.0, "value": _encode(value)}


def report_executor(executor: ExecutorOption | None, calls: int) -> ExecutorOption:
    """Where ``calls`` report fits run for a study whose trials ran on ``executor`` (see the
    module docstring); ``None`` means in this process."""
    if isinstance(executor, Workers) and calls > 0:
        # Never recycled within the calls (nor a replacement started for a last one).
        return Workers(min(executor.workers or 1, calls), recycle_after=calls + 1)
    return Serial()


def run_calls(
    target: Any, calls: Sequence[Call], *, executor: ExecutorOption | None = None
) -> list[Any]:
    """Run ``calls`` on ``target`` where :func:`report_executor` says; their values in order.

    Raises:
        DataError: a call raised one (its message, without the source location).
        ExecutorError: a call failed otherwise, or its worker died.
    """
    if not calls:
        return []
    option = report_executor(executor, len(calls))
    runner: Executor
    if isinstance(option, Workers) and isinstance(executor, Workers):
        # The trials' thread settings, also for fewer calls than workers: the same fits run
        # as fast as in a trial, and the search's warm workers (warm_workers) can take them.
        runner = ProcessExecutor(
            MethodRunner(target),
            workers=option.workers or 1,
            recycle_after=option.recycle_after,
            threads=threads_per_worker(executor.workers or 1),
        )
    else:
        runner = option.build(MethodRunner(target))
    values: dict[int, Any] = {}
    try:
        for i, call in enumerate(calls):
            runner.submit(Job(i, call, TrialContext(tid=i, seed=0)))
        while len(values) < len(calls):
            for i, outcome in runner.wait():
                if outcome.state is not TrialState.OK:
                    raise _failure(calls[i], outcome.error or "no result")
                values[i] = _decode(outcome.metrics.get("value"))
    finally:
        runner.close()
    return [values[i] for i in range(len(calls))]


def _failure(call: Call, error: str) -> Exception:
    error = _WHERE.sub("", error)
    if error.startswith("DataError: "):
        return DataError(error.removeprefix("DataError: "))
    return ExecutorError(f"the report's {call.method} failed: {error}")


def _encode(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return {_FRAME: value.to_dict(orient="split"), "index_name": value.index.name}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping) and _FRAME in value:
        import pandas as pd

        split = value[_FRAME]
        frame = pd.DataFrame(split["data"], index=split["index"], columns=split["columns"])
        frame.index.name = value.get("index_name")
        return frame
    return value
