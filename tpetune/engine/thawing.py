"""The driver's freeze-thaw role: which paused trial to thaw, which to prune, how a thaw and
a crash after a pause end (see :mod:`tpetune.engine.driver` and
:mod:`tpetune.pruners.freeze_thaw`).

:class:`Thawing` is mixed into :class:`tpetune.engine.driver.Driver`, which owns the state it
reads: the store, the pruner's planner (``None`` unless the study's pruner plans thaws), the
paused trials by id, the ids being thawed and the trials done.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tpetune.executors.base import Executor, Outcome
from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord, TrialState

log = logging.getLogger("tpetune")


class Thawing:
    """Freeze-thaw bookkeeping of the driver (the state is the driver's, see the module)."""

    store: Store
    space: Space
    planner: Any
    paused: dict[int, TrialRecord]
    thawing: set[int]
    done: list[TrialRecord]

    _set_doc: Callable[[TrialRecord], None]
    _dispatch: Callable[..., None]  # (executor, inflight, record, args, *, begin)

    def _stopped_before_crash(self, record: TrialRecord) -> Outcome | None:
        """How a crashed trial ends without a re-run: a freeze-thaw pruner had paused or
        pruned it at the last step it recorded, and the crash came before the objective
        stopped; a re-run continuing from ``last_step() + 1`` would train past that step.
        ``None``: re-run it. Steps an executor ships back with the outcome (Spark, where the
        study folder is not seen) reach the store only when the trial ends, so such a crash
        re-runs the trial from the steps stored before, as any crash of it does."""
        if self.planner is None:
            return None
        steps = self.store.steps(record.tid)
        kind = self.store.decisions(record.tid).get(steps[-1][0]) if steps else None
        if kind not in ("pause", "prune"):
            return None
        values = [v for _, v in steps if not math.isnan(v)]
        # its time before this attempt (the attempt's own is lost with the crash)
        now, before = time.time(), record.duration_s or 0.0
        log.info("trial %d, %s at step %d before a crash, is not re-run", record.tid,
                 "paused" if kind == "pause" else "pruned", steps[-1][0])  # fmt: skip
        if not values:  # as TrialPruned raised with no finite value ends (executors.base)
            error = "TrialPruned raised before any value was reported"
            return Outcome(TrialState.FAIL, error=error, started=now - before, finished=now)
        state = TrialState.PAUSED if kind == "pause" else TrialState.PRUNED
        curves = {self.planner.monitor: [v for _, v in steps]}
        return Outcome(state, loss=min(values), curves=curves, started=now - before, finished=now)

    def _plan(self, can_propose: bool) -> int | None:
        """The paused trial the pruner would thaw now (pruning the hopeless ones), or None."""
        if self.planner is None or not self.paused:
            return None
        monitor = self.planner.monitor
        paused = {tid: [v for _, v in self.store.steps(tid)] for tid in self.paused}
        finished = [c[monitor] for c in self.store.curves().values() if c.get(monitor)]
        plan = self.planner.plan(paused, finished, can_propose=can_propose)
        for tid in plan.prune:
            self._replace_done(replace(self.paused.pop(tid), state=TrialState.PRUNED))
            shutil.rmtree(self.store.study_dir / "trials" / str(tid), ignore_errors=True)
            log.info("trial %d, paused, is pruned: it has no chance left to beat the best", tid)
        return plan.thaw

    def _thaw(self, executor: Executor, inflight: dict[int, TrialRecord], tid: int) -> None:
        """Continue paused trial ``tid`` (same tid, params and seed) from its checkpoint."""
        record = self.paused.pop(tid)
        self.store.thaw_trial(tid)
        self.done = [r for r in self.done if r.tid != tid]
        self.thawing.add(tid)
        log.info("thawing trial %d, paused at step %s", tid, self.store.last_step(tid))
        running = replace(record, state=TrialState.RUNNING)
        self._dispatch(executor, inflight, running, self.space.evaluate(record.vals), begin=False)

    def _replace_done(self, final: TrialRecord) -> None:
        self.store.finish_trial(final)
        self.done = [final if r.tid == final.tid else r for r in self.done]
        self._set_doc(final)

    def _pause_marks(self, tid: int) -> dict[str, Any]:
        """``paused_at`` (steps) and ``thaws`` of a trial a freeze-thaw pruner paused."""
        if self.planner is None:
            return {}
        marks = self.store.decisions(tid)
        paused_at = sorted(s for s, kind in marks.items() if kind in ("pause", "thawed"))
        if not paused_at:
            return {}
        return {"paused_at": paused_at, "thaws": sum(k == "thawed" for k in marks.values())}
