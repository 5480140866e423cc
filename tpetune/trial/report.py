"""The trial side of pruning, for any framework: report, should_prune, TrialPruned.

Inside a trial (Optuna's ``trial.report`` / ``trial.should_prune`` being the model)::

    for epoch in range(epochs):              # steps: any non-negative integers, rising
        loss = train_one_epoch()
        tpetune.report(epoch, loss)          # stored as the trial's curve, step by step
        if tpetune.should_prune():           # the study's pruner decided at that step
            raise tpetune.TrialPruned()      # recorded "pruned", loss = best value reported
    return loss

Contract:
- ``report(step, value)`` stores ``value`` at ``step`` (any non-negative integer: an epoch
  counted from 0 as Keras and Optuna do, or epochs done counted from 1) of the current trial
  and asks the study's pruner, in one store transaction when the trial can see
  the study folder (serially, in workers, on Spark on this machine); where it cannot (a Spark
  executor elsewhere) the pruner decides from the snapshot shipped with the trial and the
  steps travel back with the outcome. Reporting a step again replaces its value.
- The pruner judges the trial's values in step order and counts the steps done as the values
  reported so far (the first report is one step done), so 0-based and 1-based reporting
  decide alike; ASHA rungs and the median rule's warm-up count reports, not step labels.
- ``should_prune()`` is the decision taken at the latest reported step.
- Outside a study both are harmless: ``report`` does nothing and ``should_prune`` is False.
- Both work from a thread the objective started (a training loop in a ``threading.Thread``):
  they reach the one trial running in the process. Where several trials share the process
  and the thread belongs to none, they raise a :class:`ConfigError` saying how to pass the
  trial's context to the thread (never a silent no-op).
- A re-run of a trial left ``running`` by a crash starts from the steps stored before it
  died and replays the rung decisions recorded then.
- ``last_step()`` is the last step the current trial recorded before this attempt (a paused
  trial being thawed, or one re-run after a crash); ``None`` when it reported nothing yet. An
  objective with its own checkpoint continues from ``last_step() + 1``; one that starts over
  re-reports the steps already recorded, which (with a freeze-thaw pruner) keep their stored
  values and decisions: nothing is recorded twice. ``reported()`` is the trial's values so
  far, those of earlier attempts included: a thawed objective's loss over its whole training.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from tpetune.errors import ConfigError
from tpetune.pruners.policies import (
    Board,
    Decision,
    MemoryBoard,
    NoPruner,
    Pruner,
)
from tpetune.study.store import DB_NAME, Store
from tpetune.trial.context import TrialContext, ambiguous_thread_error, current_trial


class TrialPruned(Exception):
    """Raise from an objective to end the trial as ``pruned`` (see the module docstring)."""


@dataclass
class StepLog:
    """The steps one trial reported, and where they go (the store, or a memory board)."""

    ctx: TrialContext
    pruner: Pruner
    values: dict[int, float] = field(default_factory=dict)
    last: Decision = field(default_factory=lambda: Decision(False))
    shipped: list[list[Any]] = field(default_factory=list)  # rows for the driver to store
    latest: int | None = None  # the last step reported in this attempt
    stored: dict[int, float] = field(default_factory=dict)  # recorded before this attempt
    _store: Any = None
    _board: MemoryBoard | None = None
    _finished: list[list[float]] | None = None
    # report() may come from the objective's own threads: one at a time on the store.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, ctx: TrialContext) -> StepLog:
        pruner = ctx.active_pruner
        log = cls(ctx, pruner)
        if ctx.reference is not None:
            log._board = _board_from(ctx.reference, ctx.tid)
            log.stored = {int(s): _number(v) for s, v in ctx.reference.get("steps", [])}
            log.values = dict(log.stored)
        return log

    def _connect(self) -> None:
        """Open the study's store on the first report (objectives that never report pay
        nothing), starting from the steps a crashed earlier run of this trial stored."""
        ctx = self.ctx
        if (
            self._store is None
            and self._board is None
            and ctx.study_dir is not None
            and (ctx.study_dir / DB_NAME).is_file()
        ):
            self._store = Store.open(ctx.study_dir, readonly=False)
            self.stored = dict(self._store.steps(ctx.tid))
            self.values = {**self.stored, **self.values}

    def curve(self) -> list[float]:
        """The values up to the latest step reported in this attempt: a re-run that started
        over (no checkpoint) makes later steps stored by the crashed attempt obsolete."""
        latest = self.latest
        return [self.values[s] for s in sorted(self.values) if latest is None or s <= latest]

    def report(self, step: int, value: float) -> Decision:
        with self._lock:
            return self._report(step, value)

    def _report(self, step: int, value: float) -> Decision:
        self._connect()
        if getattr(self.pruner, "replays_steps", False) and step in self.stored:
            value = self.stored[step]  # recorded before this attempt: kept, not duplicated
        self.values[step] = value
        self.latest = step
        curve = [self.values[s] for s in sorted(self.values) if s <= step]
        pruner = None if isinstance(self.pruner, NoPruner) else self.pruner
        if self._store is not None:
            decide = None
            if pruner is not None:
                tid, rule = self.ctx.tid, pruner

                def decide(board: Board) -> Decision:
                    # steps done = values reported, so 0- and 1-based reporting decide alike
                    return rule.decide(tid, len(curve), curve, board)

            decision = self._store.record_step(
                self.ctx.tid,
                step,
                value,
                decide=decide,
                finished=self.finished(),
                keep_judged=getattr(pruner, "replays_steps", False),
                upto=self.ctx.board_upto,
            )
        else:
            decision = Decision(False)
            kind = None
            if pruner is not None:
                board = self._board or MemoryBoard()
                replay = getattr(pruner, "replays_steps", False) and step in board.decisions(
                    self.ctx.tid
                )
                decision = pruner.decide(self.ctx.tid, len(curve), curve, board)
                if replay:  # judged before this attempt: stored already
                    self.last = decision
                    return decision
                board.record(self.ctx.tid, decision, step)
                kind = decision.kind
            self.shipped.append([step, value, decision.rung, decision.value, decision.prune, kind])
        self.last = decision or Decision(False)
        return self.last

    def finished(self) -> list[list[float]]:
        """The finished trials' monitored curves, read once per trial."""
        if self._finished is None:
            store, upto = self._store, self.ctx.board_upto
            curves = store.curves(upto=upto).values() if store is not None else ()
            self._finished = [c[self.pruner.monitor] for c in curves if c.get(self.pruner.monitor)]
        return self._finished

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._store is not None:
            if self.latest is not None:
                self._store.drop_steps_after(self.ctx.tid, self.latest)
            self._store.close()
            self._store = None


def _board_from(reference: dict[str, Any], tid: int) -> MemoryBoard:
    board = MemoryBoard([list(c) for c in reference.get("curves", [])])
    for rung, by_tid in (reference.get("rungs") or {}).items():
        for other, (pruned, value) in by_tid.items():
            value = math.nan if value is None else float(value)
            board.record(int(other), Decision(bool(pruned), int(rung), value))
    decisions = reference.get("decisions") or {}
    board.steps[tid] = {int(step): str(kind) for step, kind in decisions.items()}
    return board


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


_LOG: contextvars.ContextVar[StepLog | None] = contextvars.ContextVar("tpetune_steps", default=None)
# Every step log in scope in this process, for threads the ContextVar does not reach.
_OPEN: list[StepLog] = []
_OPEN_LOCK = threading.Lock()


@contextlib.contextmanager
def step_scope(ctx: TrialContext) -> Iterator[StepLog]:
    """Collect the steps of the trial ``ctx`` for the duration of the block (executors)."""
    log = StepLog.open(ctx)
    token = _LOG.set(log)
    with _OPEN_LOCK:
        _OPEN.append(log)
    try:
        yield log
    finally:
        with _OPEN_LOCK:
            _OPEN.remove(log)
        _LOG.reset(token)
        log.close()


def _current_log(call: str) -> StepLog | None:
    """This thread's step log, else the only one open in the process (see the docstring).

    Raises:
        ConfigError: called from a thread of no trial while several trials run here.
    """
    log = _LOG.get()
    if log is not None:
        return log
    with _OPEN_LOCK:
        open_logs = list(_OPEN)
    if len(open_logs) > 1:
        raise ConfigError(ambiguous_thread_error(call))
    return open_logs[0] if open_logs else None


def report(step: int, value: float) -> None:
    """Record ``value`` at ``step`` of the current trial (see the module docstring).

    Raises:
        ConfigError: ``step`` is not a non-negative integer or ``value`` not a number.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ConfigError(
            f"tpetune.report(step=...) must be a non-negative integer (0, 1, 2, ...); got {step!r}"
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"tpetune.report(value=...) must be a number; got {value!r}") from None
    log = _current_log("tpetune.report()")
    if log is not None and current_trial() is log.ctx:
        log.report(step, number)


def should_prune() -> bool:
    """True when the study's pruner decided, at the latest reported step, to stop the trial
    (to prune it, or to pause it: a freeze-thaw pruner's trial stops either way).

    Raises:
        ConfigError: called from a thread of no trial while several trials run here.
    """
    log = _current_log("tpetune.should_prune()")
    return log is not None and log.last.prune


def paused_now() -> bool:
    """True when the pruner paused the current trial at its latest step (a freeze-thaw
    pause): its checkpoint must then be kept for a thaw (see :mod:`tpetune.keras.callbacks`)."""
    log = _LOG.get()
    return log is not None and log.last.pause


def last_step() -> int | None:
    """The last step the current trial recorded before this attempt: before it was paused
    (a thaw) or interrupted (a re-run after a crash); ``None`` for a trial that has not
    reported, and outside a trial. Continue from ``last_step() + 1`` with your own
    checkpoint in ``current_trial().workdir``, or ignore it and start over (slower, correct).
    """
    ctx = current_trial()
    return None if ctx is None else ctx.last_step


def reported() -> dict[int, float]:
    """The current trial's values so far, step -> value in step order: those recorded before
    this attempt (before a pause, or a crash) and this attempt's reports; empty outside a
    trial. A thawed objective that returns its own loss takes it from here, so that the loss
    covers the whole training and not only the epochs since the thaw
    (``min(tpetune.reported().values())``).
    """
    log = _current_log("tpetune.reported()")
    if log is None or current_trial() is not log.ctx:
        return {}
    with log._lock:
        log._connect()
        latest = log.latest  # as StepLog.curve: steps past this attempt's latest are obsolete
        return {s: log.values[s] for s in sorted(log.values) if latest is None or s <= latest}


def with_reference(ctx: TrialContext) -> TrialContext:
    """``ctx`` carrying a snapshot of the study's finished curves and rung values, for
    executors that may not see the study folder. Unchanged when the study prunes nothing."""
    if isinstance(ctx.active_pruner, NoPruner):
        return ctx
    if ctx.study_dir is None or not (ctx.study_dir / "study.db").is_file():
        return ctx

    monitor = ctx.active_pruner.monitor
    store = Store.open(ctx.study_dir, readonly=True)
    try:
        upto = ctx.board_upto  # a lagged study: the trials the pruner may look at
        curves = [c[monitor] for c in store.curves(upto=upto).values() if c.get(monitor)]
        rungs = {  # the trial's own rungs stay: a re-run replays them
            rung: {t: v for t, v in row.items() if upto is None or t <= upto or t == ctx.tid}
            for rung, row in store.rung_table().items()
        }
        steps = [[s, None if math.isnan(v) else v] for s, v in store.steps(ctx.tid)]
        decisions = store.decisions(ctx.tid)  # a thawed or re-run trial replays them
    finally:
        store.close()
    reference = {"curves": curves, "rungs": rungs, "steps": steps, "decisions": decisions}
    return replace(ctx, reference=reference)
