"""``tune()``: drive hyperopt's search over a persisted study.

Why not ``hyperopt.fmin``: it counts loaded trials silently, reseeds on resume, pickles its
state non-atomically and lets one exception end the search. This driver uses hyperopt's own
pieces (the space's ``Domain``, ``Trials`` documents, the ``suggest`` algorithms) and adds:

- every trial is committed to the store before hyperopt sees its result;
- each proposal is seeded from (study seed, trial id), so a serial study killed and resumed
  any number of times proposes exactly what an uninterrupted one would;
- a trial left ``running`` by a crash is re-run first, with the same params;
- failures are recorded and the search goes on, up to ``max_failures`` in a row;
- budgets (``max_evals`` total, cumulative ``timeout``) and stop rules hold across resumes.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tpetune import __version__, algos
from tpetune.context import TrialContext, derive_seed
from tpetune.errors import ConfigError, ObjectiveError, SearchFailedError, SpaceMismatchError
from tpetune.executors import Executor, Job, Outcome, SerialExecutor
from tpetune.space import Space, jsonable
from tpetune.store import DB_NAME, Store, StudyLock, TrialRecord, TrialState
from tpetune.study import Study, hyperopt_doc

log = logging.getLogger("tpetune")


@dataclass(frozen=True)
class StopRules:
    """When a run stops before ``max_evals``; ``None`` disables a rule."""

    timeout: float | None = None  # seconds, cumulative over all runs of the study
    loss_threshold: float | None = None  # stop once the best loss is at or below it
    no_progress: int | None = None  # stop after this many finished trials without a new best
    max_failures: int = 5  # consecutive failed trials before the search fails


def tune(
    objective: Callable[[Any], Any],
    space: Any,
    *,
    study_dir: str | Path,
    max_evals: int,
    algo: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    fresh: bool = False,
    max_failures: int = 5,
    loss_threshold: float | None = None,
    no_progress: int | None = None,
    points: Sequence[Mapping[str, Any]] | None = None,
    algo_options: Mapping[str, Any] | None = None,
    pruning: Mapping[str, Any] | None = None,
    workers: int = 1,
    trial_timeout: float | None = None,
    spark: str | None = None,
    executor: Executor | None = None,
    objective_config: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Study:
    """Minimise ``objective`` over ``space``, persisting every trial in ``study_dir``.

    Re-running with the same arguments resumes the study up to ``max_evals`` trials in total.

    Args:
        objective: called with the point's values (the nested structure of ``space``, never
            choice indices); returns a float loss or a dict with ``loss`` and optional
            ``curves``, ``metrics``, ``pruned``, ``status`` (see :func:`executors.interpret`).
        space: a hyperopt ``hp.*`` tree or a :class:`tpetune.space.Space`.
        study_dir: the study folder (created if missing).
        max_evals: total number of trials in the study (finished ones from earlier runs count).
        algo: ``tpe`` (default for a new study), ``rand``, ``anneal``, ``atpe`` or ``grid``.
        seed: study seed (default 0 for a new study). On resume it must match the stored one.
        timeout: wall-clock budget in seconds across all runs of the study.
        fresh: discard an existing study in ``study_dir`` and start over.
        max_failures: consecutive failed trials after which :class:`SearchFailedError` is raised.
        loss_threshold: stop once the best loss is at or below this.
        no_progress: stop after this many finished trials without improving the best.
        points: param dicts (by value) evaluated first, as the study's first trials.
        algo_options: knobs of the algorithm (TPE: ``n_startup_jobs``, ``gamma``, ...).
        pruning: pruner options handed to objectives through the trial context.
        workers: trials run in this many worker processes (1: serially in this process).
        trial_timeout: seconds after which a running trial is killed and recorded failed
            (runs trials in a worker process even when ``workers`` is 1).
        spark: a Spark master URL (``local[2]``, ``spark://host:7077``): run trials as Spark
            jobs, ``workers`` at a time when ``workers`` > 1, else the cluster's parallelism.
        executor: where trials run, overriding ``workers`` and ``spark``.
        objective_config: JSON-able settings that change what the objective computes (e.g.
            epochs, data file). Stored with a new study; resuming with other values is refused
            because the old and new trials would not be comparable.
        progress: show a progress bar with the best loss so far (on stderr).

    Returns:
        The study after this run, with ``stop_reason`` set.

    Raises:
        ConfigError, SpaceError, StoreError: bad input; nothing stored is changed.
        StudyInUseError: another process drives the study.
        SearchFailedError: ``max_failures`` trials failed in a row.
        ObjectiveError: the objective returned something that is not a loss.
        KeyboardInterrupt: after recording everything that finished.
    """
    _check_positive_int("max_evals", max_evals)
    _check_positive_int("max_failures", max_failures)
    if no_progress is not None:
        _check_positive_int("no_progress", no_progress)
    _check_positive_int("workers", workers)
    for name, value in (("timeout", timeout), ("trial_timeout", trial_timeout)):
        if value is not None and not value > 0:
            raise ConfigError(f"{name} must be a positive number of seconds; got {value}")
    from tpetune.pruning import MedianRule

    MedianRule.from_options(pruning)  # validate the knobs before touching the study
    space = space if isinstance(space, Space) else Space(space)
    point_vals = [space.vals_from_params(p) for p in points or ()]
    study_dir = Path(study_dir)
    rules = StopRules(timeout, loss_threshold, no_progress, max_failures)

    lock = StudyLock(study_dir).acquire()
    try:
        if fresh:
            _discard(study_dir)
        config = jsonable(dict(objective_config or {}))
        store, meta = _open_store(study_dir, space, algo, seed, max_evals, timeout, config)
        suggest = algos.resolve(meta["algo"], algo_options, space=space)
        driver = _Driver(store, space, suggest, int(meta["seed"]), rules, pruning, point_vals)
        if executor is None and spark is not None:
            from tpetune.spark import SparkExecutor

            parallelism = workers if workers > 1 else None
            executor = SparkExecutor(
                objective, master=spark, parallelism=parallelism, trial_timeout=trial_timeout
            )
        elif executor is None and (workers > 1 or trial_timeout is not None):
            from tpetune.workers import ProcessExecutor

            executor = ProcessExecutor(objective, workers=workers, trial_timeout=trial_timeout)
        try:
            reason = driver.run(objective, max_evals, executor, progress)
            return Study(study_dir, store.meta(), store.records(), space=space, stop_reason=reason)
        finally:
            store.close()
    finally:
        lock.release()


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def _discard(study_dir: Path) -> None:
    """Remove a study's database and trial folders (``fresh``); the lock file stays, held."""
    for suffix in ("", "-wal", "-shm"):
        (study_dir / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(study_dir / "trials", ignore_errors=True)


def _open_store(
    study_dir: Path,
    space: Space,
    algo: str | None,
    seed: int | None,
    max_evals: int,
    timeout: float | None,
    config: dict[str, Any],
) -> tuple[Store, dict[str, Any]]:
    """Create the study, or reopen it after checking that it is the same search."""
    import hyperopt

    if not Store.exists(study_dir):
        algos.resolve(algo or "tpe", None, space=space)  # validate before creating anything
        meta = {
            "fingerprint": space.fingerprint,
            "space": space.describe(),
            "space_source": space.source,
            "algo": algo or "tpe",
            "seed": 0 if seed is None else int(seed),
            "max_evals": max_evals,
            "timeout": timeout,
            "objective_config": config,
            "elapsed_s": 0.0,
            "tpetune_version": __version__,
            "hyperopt_version": hyperopt.__version__,
        }
        store = Store.create(study_dir, meta)
        return store, store.meta()
    store = Store.open(study_dir, readonly=False)
    meta = store.meta()
    try:
        if meta.get("fingerprint") != space.fingerprint:
            raise SpaceMismatchError(
                f"study {study_dir} was made with another space "
                f"({space.diff(meta.get('space', {}))}); to start over use --fresh "
                "(fresh=True), or give another --study-dir"
            )
        for name, given in (("seed", seed), ("algo", algo)):
            if given is not None and given != meta.get(name):
                raise ConfigError(
                    f"study {study_dir} was made with {name} {meta.get(name)!r}, not {given!r}: "
                    f"drop --{name} to resume it, or use --fresh or another --study-dir"
                )
        stored = meta.get("objective_config") or {}
        for key, value in config.items():
            if key in stored and stored[key] != value:
                raise ConfigError(
                    f"study {study_dir} was made with {key}={stored[key]!r}, not {value!r}: "
                    f"resume with the same {key}, or use --fresh or another --study-dir"
                )
    except Exception:
        store.close()
        raise
    store.set_meta(max_evals=max_evals, timeout=timeout)
    return store, store.meta()


class _Driver:
    """One run of a study: propose, dispatch, record, decide when to stop."""

    def __init__(
        self,
        store: Store,
        space: Space,
        suggest: algos.Suggest,
        seed: int,
        rules: StopRules,
        pruning: Mapping[str, Any] | None,
        point_vals: list[dict[str, Any]],
    ) -> None:
        from hyperopt import Trials

        self.store, self.space, self.suggest, self.seed, self.rules = (
            store,
            space,
            suggest,
            seed,
            rules,
        )
        self.pruning = dict(pruning or {"rule": "none"})
        self.point_vals = point_vals
        self.labels = space.labels
        records = store.records()
        self.rerun = [r for r in records if r.state is TrialState.RUNNING]
        self.done = [r for r in records if r.state is not TrialState.RUNNING]
        self.next_tid = max((r.tid for r in records), default=-1) + 1
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
            old = self.rerun.pop(0)
            log.info("re-running trial %d, interrupted by a crash, with the same params", old.tid)
            return replace(old, started=time.time()), self.space.evaluate(old.vals)
        tid = self.next_tid
        if tid < len(self.point_vals):
            vals = self.point_vals[tid]
        else:
            if self._stale:
                self.trials.refresh()
                self._stale = False
            docs = self.suggest([tid], self.space.domain, self.trials, derive_seed(self.seed, tid))
            if not docs:
                return None  # the algorithm has nothing left (grid exhausted)
            vals = {k: _plain(v[0]) for k, v in docs[0]["misc"]["vals"].items() if v}
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
    def run(
        self, objective: Callable[[Any], Any], max_evals: int, executor: Executor | None, bar: bool
    ) -> str:
        from tqdm.auto import tqdm

        executor = executor or SerialExecutor(objective)
        inflight: dict[int, TrialRecord] = {}
        reason = None
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
                while len(inflight) < executor.slots and len(self.done) + len(inflight) < max_evals:
                    reason = self.stop_reason()
                    proposed = None if reason else self.next_trial()
                    if proposed is None:
                        reason = reason or "the search space is exhausted"
                        break
                    record, args = proposed
                    self.store.begin_trial(record)
                    self._set_doc(record)
                    inflight[record.tid] = record
                    ctx = TrialContext(
                        record.tid,
                        derive_seed(self.seed, record.tid, "objective"),
                        self.store.study_dir,
                        self.pruning,
                    )
                    executor.submit(Job(record.tid, args, ctx))
                if not inflight:
                    break
                for tid, outcome in executor.wait():
                    self._finish(inflight.pop(tid), outcome)
                    progress.update(1)
                    self._show_best(progress)
        finally:
            progress.close()
            executor.close()
        return reason or f"{max_evals} trials done"

    def _show_best(self, progress: Any) -> None:
        best = self.best()
        if best is not None:
            progress.set_postfix_str(f"best loss: {best:.6g}", refresh=False)

    def _finish(self, record: TrialRecord, outcome: Outcome) -> None:
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
        self.store.finish_trial(final, meta={"elapsed_s": self.elapsed()})
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
            log.warning("trial %d failed with params %s: %s", final.tid, final.params, final.error)
            if self.failures_in_row >= self.rules.max_failures:
                raise SearchFailedError(
                    f"{self.failures_in_row} trials failed in a row; the last (trial {final.tid}) "
                    f"with: {final.error}. Fix the objective and run again to resume"
                )
        else:
            self.failures_in_row = 0


def _plain(value: Any) -> int | float:
    """hyperopt hands back numpy scalars; the store and the Trials docs keep Python numbers
    so that a study rebuilt from JSON is bit-identical to the live one."""
    if isinstance(value, int) or (
        getattr(value, "dtype", None) is not None and value.dtype.kind in "iu"
    ):
        return int(value)
    return float(value)
