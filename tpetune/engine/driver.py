"""One run of a study: propose, dispatch, record, decide when to stop.

The driver owns the store (it holds the study lock) and hyperopt's ``Trials``; executors only
run objectives. Rules it keeps:

- every trial is stored ``running`` before it is dispatched and committed before hyperopt's
  ``Trials`` sees its result;
- each proposal is seeded from (study seed, trial id), or drawn from hyperopt.fmin's seed
  stream (:mod:`tpetune.search.seeding`), and the ``Trials`` documents are built from store
  records by :func:`tpetune.search.documents.hyperopt_doc`, the function a resume uses too;
- a trial left ``running`` by a crash is re-run first, with the same params (with a
  freeze-thaw pruner that had paused or pruned it at the last step it recorded, it ends so
  instead: the crash came between that decision and the objective's stop);
- with a ``lag`` (``Search(lag=...)``), trial ``n`` is proposed only once every trial up to
  ``n - lag`` has finished, from those trials' documents alone, and its pruner's board holds
  only those trials (``TrialContext.board_upto``): what it is proposed and how it is pruned
  then depend on no timing, so resume is exact with up to ``lag`` trials in flight;
- unless the study allows duplicates, a proposal repeating a trial's params is drawn again
  (:mod:`tpetune.search.distinct`);
- with a freeze-thaw pruner, before each proposal the pruner's plan may thaw a ``paused`` trial
  (same tid, params and seed; it continues from ``tpetune.last_step()``) or prune paused trials
  that became hopeless (their workdir is deleted); a thaw adds no trial to ``max_evals``, and
  once ``max_evals`` trials exist, or distinct proposals give only a repeat (a full finite
  space), paused trials are still thawed while the plan says so;
- failures are recorded and the search goes on, up to ``max_failures`` in a row.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tpetune import _signals
from tpetune._io import jsonable
from tpetune.engine.options import Callback, StopRules
from tpetune.engine.thawing import Thawing
from tpetune.errors import ObjectiveError, SearchFailedError
from tpetune.executors.base import Executor, Job, Outcome
from tpetune.pruners.policies import pruner_from_json
from tpetune.search import algos
from tpetune.search.distinct import propose_distinct
from tpetune.search.documents import hyperopt_doc, vals_key, vals_of
from tpetune.search.seeding import SeedStream
from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.trial.context import TrialContext, derive_seed

log = logging.getLogger("tpetune")

#: :meth:`Driver.next_trial`'s answer when distinct proposals gave only a repeat of a trial's
#: params (a full finite space, or too many repeated draws) while trials are paused:
#: continuing one of those beats training a repeat from scratch.
ONLY_REPEATS = "only repeats"


class Driver(Thawing):
    """The loop of one run over an open store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        space: Space,
        suggest: algos.Suggest,
        *,
        seed: int,
        rules: StopRules,
        pruner: dict[str, Any] | None,
        point_vals: list[dict[str, Any]],
        callbacks: Sequence[Callback] = (),
        stream: tuple[dict[str, Any], int] | None = None,
        lag: int | None = None,
        allow_duplicates: bool = True,
    ) -> None:
        from hyperopt import Trials

        self.store, self.space, self.suggest = store, space, suggest
        self.seed, self.rules, self.pruner = seed, rules, pruner
        self.point_vals, self.callbacks = point_vals, list(callbacks)
        self.lag = lag
        self.allow_duplicates = allow_duplicates
        self.labels = space.labels
        records = store.records()
        self.rerun = [r for r in records if r.state is TrialState.RUNNING]
        self.done = [r for r in records if r.state is not TrialState.RUNNING]
        self.next_tid = max((r.tid for r in records), default=-1) + 1
        self.taken = {vals_key(r.vals) for r in records}  # every trial's point: no repeats
        # hyperopt.fmin's seeding: (initial state, first tid it seeded); each later tid drew once
        self.stream = None
        if stream is not None:
            self.stream = SeedStream(stream[0], drawn=max(0, self.next_tid - stream[1]))
        self.trials = Trials()
        self._stale = False
        self.docs: dict[int, dict[str, Any]] = {}
        for r in records:
            self._set_doc(r)
        self.elapsed_before = float(store.meta().get("elapsed_s", 0.0))
        self.session_start = time.monotonic()
        self.failures_in_row = 0
        ok = [r.loss for r in self.done if r.finished_ok and r.loss is not None]
        self._best: float | None = min(ok) if ok else None
        self.last_error: str | None = None
        # freeze-thaw: the pruner plans thaws; paused trials by tid; thaws now in flight

        planner = pruner_from_json(pruner) if pruner else None
        self.planner = planner if hasattr(planner, "plan") else None
        self.paused = {r.tid: r for r in records if r.state is TrialState.PAUSED}
        self.thawing: set[int] = set()
        self.exhausted = False
        self.repeat_ok = False  # ONLY_REPEATS found nothing to thaw: train the repeat

    # -- bookkeeping ----------------------------------------------------------------------
    def _set_doc(self, record: TrialRecord) -> None:
        doc = hyperopt_doc(record, self.labels)
        if record.tid in self.docs:
            self.docs[record.tid].clear()
            self.docs[record.tid].update(doc)
        else:
            self.docs[record.tid] = doc
            self.trials.insert_trial_docs([doc])
        self._stale = True  # refreshed once, right before the next suggest

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    def best(self) -> float | None:
        return self._best

    def trials_since_best(self) -> int:
        best, since = float("inf"), 0
        for r in sorted(self.done, key=lambda r: r.tid):
            if r.finished_ok and r.loss is not None and r.loss < best:
                best, since = r.loss, 0
            else:
                since += 1
        return since

    def stop_reason(self) -> str | None:
        rules, best = self.rules, self.best()
        if rules.timeout is not None and self.elapsed() >= rules.timeout:
            return f"timeout of {rules.timeout:g}s reached"
        if rules.loss_threshold is not None and best is not None and best <= rules.loss_threshold:
            return f"best loss {best:.6g} reached the threshold {rules.loss_threshold:g}"
        if rules.no_progress is not None and self.trials_since_best() >= rules.no_progress:
            return f"no better trial in the last {rules.no_progress} trials"
        return None

    # -- proposing ------------------------------------------------------------------------
    def next_trial(self) -> tuple[TrialRecord, Any] | str | None:
        """The next trial and the objective's argument for it: a crashed trial again, a
        warm-start point, or a new proposal; ``None`` when the algorithm has nothing left;
        :data:`ONLY_REPEATS` (nothing stored, no trial id used) when distinct proposals are
        left with a repeat while trials are paused."""
        if self.rerun:
            return self._rerun_next()
        tid = self.next_tid
        if tid < len(self.point_vals):
            vals = self.point_vals[tid]
        else:
            if self._stale:
                self.trials.refresh()
                self._stale = False
            seed = self.stream.draw() if self.stream else derive_seed(self.seed, tid)
            seen = self._seen_by(tid)
            if self.allow_duplicates or not getattr(self.suggest, "reads_losses", True):
                docs = self.suggest([tid], self.space.domain, seen, seed)
            else:  # seeded from (seed, tid) alone: a resume redraws the same
                docs = propose_distinct(
                    self.suggest, tid, self.space.domain, seen, seed, taken=self.taken,
                    redraw_seed=lambda attempt: derive_seed(self.seed, tid, f"redraw {attempt}"),
                )  # fmt: skip
                # (never with hyperopt.fmin's seed stream: a draw cannot be taken back)
                thawable = self.paused and self.planner and self.stream is None
                if docs and thawable and not self.repeat_ok and self._repeats(docs[0]):
                    return ONLY_REPEATS  # nothing used up: no trial id, no seed drawn
            if not docs:
                return None  # the algorithm has nothing left (grid exhausted)
            vals = vals_of(docs[0])
        self.next_tid += 1
        self.taken.add(vals_key(vals))
        args = self.space.evaluate(vals)
        record = TrialRecord(
            tid=tid,
            state=TrialState.RUNNING,
            loss=None,
            params=self.space.params(vals),
            vals=vals,
            args=jsonable(args),
            started=time.time(),
        )
        return record, args

    def _rerun_next(self) -> tuple[TrialRecord, Any]:
        """The oldest crashed trial, to run again with its params (announced by run())."""
        old = self.rerun.pop(0)
        return replace(old, started=time.time(), error=None), self.space.evaluate(old.vals)

    def _repeats(self, doc: dict[str, Any]) -> bool:
        return vals_key(vals_of(doc)) in self.taken

    def _seen_by(self, tid: int) -> Any:
        """The ``Trials`` a proposal for ``tid`` is made from: all of them, or with a lag
        only those up to ``tid - lag`` (all finished: :meth:`_waits_for_older`). An algorithm
        that reads no loss (grid) sees every proposed trial: what it reads is known already."""
        if self.lag is None or not getattr(self.suggest, "reads_losses", True):
            return self.trials
        from hyperopt import Trials

        view = Trials()
        view.insert_trial_docs([self.docs[t] for t in sorted(self.docs) if t <= tid - self.lag])
        view.refresh()
        return view

    def _waits_for_older(self, inflight: dict[int, TrialRecord]) -> bool:
        """With a lag, whether the next new trial must wait for an older one still running
        (a re-run of a crashed trial never waits: its params are fixed, its board set)."""
        if self.lag is None or self.rerun:
            return False
        return any(t <= self.next_tid - self.lag for t in inflight)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, max_evals: int, executor: Executor, bar: bool) -> str:
        """Run trials until ``max_evals`` are done or a stop rule fires; the stop reason.

        Ctrl-C and SIGTERM stop it (``KeyboardInterrupt`` after recording what finished and
        marking the trials in flight interrupted); see :mod:`tpetune._signals`.
        """
        with _signals.watching():
            return self._run(max_evals, executor, bar)

    def _run(self, max_evals: int, executor: Executor, bar: bool) -> str:
        from tqdm.auto import tqdm

        inflight: dict[int, TrialRecord] = {}
        reason = None
        ended: dict[int, Outcome] = {}  # crashed trials a pause or prune had stopped
        for old in self.rerun:  # before the bar exists, so each message has its own line
            if (outcome := self._stopped_before_crash(old)) is not None:
                ended[old.tid] = outcome  # not re-run: it said so
                continue
            why = old.error if (old.error or "").startswith("interrupted by") else None
            log.info(
                "re-running trial %d, %s, with the same params",
                old.tid,
                why or "interrupted by a crash",
            )
        progress = tqdm(
            total=max_evals,
            initial=min(len(self.done), max_evals),
            unit="trial",
            disable=not bar,
            dynamic_ncols=True,
        )
        self._show_best(progress)
        try:
            while True:
                while reason is None and len(inflight) < executor.workers:
                    reason = self.stop_reason()
                    if reason:
                        break
                    if self.rerun and self.rerun[0].tid in ended:
                        old = self.rerun.pop(0)
                        reason = self._finish(old, ended.pop(old.tid)) or reason
                        progress.update(1)
                        continue
                    if self.rerun:  # whatever the budget: a crashed trial is counted already
                        self._dispatch(executor, inflight, *self._rerun_next())
                        continue
                    can_propose = not self.exhausted and len(self.done) + len(inflight) < max_evals
                    thaw = self._plan(can_propose)
                    if thaw is not None:
                        self._thaw(executor, inflight, thaw)
                        continue
                    if not can_propose or self._waits_for_older(inflight):
                        break
                    proposed = self.next_trial()
                    if proposed is None:
                        self.exhausted = True  # paused trials may still be thawed
                        continue
                    if proposed == ONLY_REPEATS:
                        thaw = self._plan(can_propose=False)  # or prunes them all
                        if thaw is not None:
                            self._thaw(executor, inflight, thaw)
                        self.repeat_ok = thaw is None  # a planner that does neither: repeat
                        continue
                    assert not isinstance(proposed, str)
                    self.repeat_ok = False
                    self._dispatch(executor, inflight, *proposed)
                if not inflight:
                    break
                for tid, outcome in executor.wait():
                    reason = self._finish(inflight.pop(tid), outcome) or reason
                    if tid not in self.thawing:  # a thaw continues a trial counted already
                        progress.update(1)
                    self.thawing.discard(tid)
                    self._show_best(progress)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the time spent counts on resume
            self.store.set_meta(elapsed_s=self.elapsed())
            # Not a crash: `show` and the resume say so (the trials still re-run on resume).
            self.store.mark_interrupted(list(inflight), f"interrupted by {_signals.how()}")
            raise
        finally:
            progress.close()
            executor.close()
        if reason is None and self.exhausted:
            reason = "the search space is exhausted"
        if reason is None and len(self.done) > max_evals:  # a budget lowered on resume
            reason = (
                f"the study holds {len(self.done)} trials, more than max_evals={max_evals}: "
                "raise max_evals to add more"
            )
        paused = f"; {len(self.paused)} trials paused" if self.paused else ""
        return (reason or f"{max_evals} trials done") + paused

    def _dispatch(
        self,
        executor: Executor,
        inflight: dict[int, TrialRecord],
        record: TrialRecord,
        args: Any,
        *,
        begin: bool = True,
    ) -> None:
        if begin:
            self.store.begin_trial(record)
        self._set_doc(record)
        inflight[record.tid] = record
        ctx = TrialContext(
            record.tid,
            derive_seed(self.seed, record.tid, "objective"),
            self.store.study_dir,
            self.pruner,
            vals=record.vals,
            last_step=self.store.last_step(record.tid),
            board_upto=None if self.lag is None else record.tid - self.lag,
        )
        executor.submit(Job(record.tid, args, ctx))

    def _show_best(self, progress: Any) -> None:
        best = self.best()
        if best is not None:
            progress.set_postfix_str(f"best loss: {best:.6g}", refresh=False)

    def _finish(self, record: TrialRecord, outcome: Outcome) -> str | None:
        """Commit a finished trial, then apply the failure policy and the callbacks."""
        if outcome.steps:
            self.store.write_steps(record.tid, outcome.steps)
        before = (record.duration_s or 0.0) if record.tid in self.thawing else 0.0
        final = replace(
            record,
            state=outcome.state,
            loss=outcome.loss,
            curves=outcome.curves,
            metrics={**outcome.metrics, **self._pause_marks(record.tid)},
            error=outcome.error,
            finished=outcome.finished,
            duration_s=round(before + outcome.finished - outcome.started, 6),
        )
        self.store.finish_trial(
            final, meta={"elapsed_s": self.elapsed()}, attachments=outcome.attachments
        )
        self._set_doc(final)
        self.done.append(final)
        if final.finished_ok and final.loss is not None:
            self._best = final.loss if self._best is None else min(self._best, final.loss)
        if final.state is TrialState.PAUSED:
            self.paused[final.tid] = final  # its workdir (checkpoint) waits for a thaw
        else:
            workdir = self.store.study_dir / "trials" / str(final.tid)
            shutil.rmtree(workdir, ignore_errors=True)  # its checkpoints are no longer needed
        if outcome.contract_error:
            raise ObjectiveError(f"trial {final.tid}: {outcome.error}")
        if final.state is TrialState.FAIL:
            self.failures_in_row += 1
            self.last_error = f"trial {final.tid} failed with: {final.error}"
            log.warning("trial %d failed with params %s: %s", final.tid, final.params, final.error)
            if self.failures_in_row >= self.rules.max_failures:
                raise SearchFailedError(
                    f"{self.failures_in_row} trials failed in a row; the last (trial {final.tid}) "
                    f"with: {final.error}. Fix the objective and run again to resume"
                )
        else:
            self.failures_in_row = 0
        return self._callbacks(final)

    def _callbacks(self, final: TrialRecord) -> str | None:
        if not self.callbacks:
            return None
        if self._stale:
            self.trials.refresh()
            self._stale = False
        reasons = [cb(self.trials, final) for cb in self.callbacks]
        return next((r for r in reasons if r), None)
