"""One run of a study: propose, dispatch, record, decide when to stop.

The driver owns the store (it holds the study lock) and hyperopt's ``Trials``; executors only
run objectives. Rules it keeps:

- every trial is stored ``running`` before it is dispatched and committed before hyperopt's
  ``Trials`` sees its result;
- each proposal is seeded from (study seed, trial id), or drawn from hyperopt.fmin's seed
  stream (:mod:`tpetune.search.seeding`), and the ``Trials`` documents are built from store
  records by :func:`tpetune.search.documents.hyperopt_doc`, the function a resume uses too;
- a trial left ``running`` by a crash is re-run first, with the same params;
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
from tpetune._io import jsonable, plain_number
from tpetune.engine.options import Callback, StopRules
from tpetune.errors import ObjectiveError, SearchFailedError
from tpetune.executors.base import Executor, Job, Outcome
from tpetune.search import algos
from tpetune.search.documents import hyperopt_doc
from tpetune.search.seeding import SeedStream
from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.trial.context import TrialContext, derive_seed

log = logging.getLogger("tpetune")


class Driver:
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
    ) -> None:
        from hyperopt import Trials

        self.store, self.space, self.suggest = store, space, suggest
        self.seed, self.rules, self.pruner = seed, rules, pruner
        self.point_vals, self.callbacks = point_vals, list(callbacks)
        self.labels = space.labels
        records = store.records()
        self.rerun = [r for r in records if r.state is TrialState.RUNNING]
        self.done = [r for r in records if r.state is not TrialState.RUNNING]
        self.next_tid = max((r.tid for r in records), default=-1) + 1
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
    def next_trial(self) -> tuple[TrialRecord, Any] | None:
        """The next trial and the objective's argument for it: a crashed trial again, a
        warm-start point, or a new proposal; ``None`` when the algorithm has nothing left."""
        if self.rerun:
            old = self.rerun.pop(0)  # announced by run(), before the progress bar
            return replace(old, started=time.time(), error=None), self.space.evaluate(old.vals)
        tid = self.next_tid
        if tid < len(self.point_vals):
            vals = self.point_vals[tid]
        else:
            if self._stale:
                self.trials.refresh()
                self._stale = False
            seed = self.stream.draw() if self.stream else derive_seed(self.seed, tid)
            docs = self.suggest([tid], self.space.domain, self.trials, seed)
            if not docs:
                return None  # the algorithm has nothing left (grid exhausted)
            vals = {k: plain_number(v[0]) for k, v in docs[0]["misc"]["vals"].items() if v}
        self.next_tid += 1
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
        for old in self.rerun:  # before the bar exists, so each message has its own line
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
                while (
                    reason is None
                    and len(inflight) < executor.workers
                    and len(self.done) + len(inflight) < max_evals
                ):
                    reason = self.stop_reason()
                    proposed = None if reason else self.next_trial()
                    if proposed is None:
                        reason = reason or "the search space is exhausted"
                        break
                    self._dispatch(executor, inflight, *proposed)
                if not inflight:
                    break
                for tid, outcome in executor.wait():
                    reason = self._finish(inflight.pop(tid), outcome) or reason
                    progress.update(1)
                    self._show_best(progress)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the time spent counts on resume
            self.store.set_meta(elapsed_s=self.elapsed())
            # Not a crash: `show` and the resume say so (the trials still re-run on resume).
            self.store.mark_interrupted(list(inflight), f"interrupted by {_signals.how()}")
            raise
        finally:
            progress.close()
            executor.close()
        return reason or f"{max_evals} trials done"

    def _dispatch(
        self,
        executor: Executor,
        inflight: dict[int, TrialRecord],
        record: TrialRecord,
        args: Any,
    ) -> None:
        self.store.begin_trial(record)
        self._set_doc(record)
        inflight[record.tid] = record
        ctx = TrialContext(
            record.tid,
            derive_seed(self.seed, record.tid, "objective"),
            self.store.study_dir,
            self.pruner,
            vals=record.vals,
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
        final = replace(
            record,
            state=outcome.state,
            loss=outcome.loss,
            curves=outcome.curves,
            metrics=outcome.metrics,
            error=outcome.error,
            finished=outcome.finished,
            duration_s=round(outcome.finished - outcome.started, 6),
        )
        self.store.finish_trial(
            final, meta={"elapsed_s": self.elapsed()}, attachments=outcome.attachments
        )
        self._set_doc(final)
        self.done.append(final)
        if final.finished_ok and final.loss is not None:
            self._best = final.loss if self._best is None else min(self._best, final.loss)
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
