"""Replay pause and thaw on a recorded table: freeze-thaw and the one-epoch top-K baseline.

The rules of :class:`bench.replay_sim.Sim` hold (early stopping with its patience, NaN ends a
trial, the epoch budget cuts the trial in progress, the incumbent is the best finished trial),
and a trial may now stop *paused*: its curve so far and its early-stopping state are kept, and
a later *thaw* continues it from the next epoch, paying only the epochs it trains then (table
lookups; a checkpoint kept in memory). :attr:`Sim.trials` counts trials once, thaws included.

- :func:`run_freeze_thaw`: tpetune's driver loop in miniature with a
  :class:`tpetune.FreezeThawPruner`: before each proposal the pruner's plan may thaw a paused
  trial or prune paused ones; TPE sees a paused trial's best value so far as a pruned one's,
  and a thawed trial's document is updated when it ends again.
- :func:`run_one_epoch_top_k`: Egele et al. 2023 ("Is one epoch all you need for multi-
  fidelity hyperparameter optimization?"): random configurations trained one epoch each with
  a quarter of the budget (at most every configuration once), then the best by that epoch
  trained on (from their second epoch) in that order until the budget is spent.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.replay_sim import (
    BudgetSpent,
    Sim,
    _params,
    _posterior_cached,
    distinct_suggest,
    hyperopt_space,
)


@dataclass
class Run:
    """One trial's progress through its recorded curve (the in-memory checkpoint)."""

    params: dict[str, Any]
    full: list[float]
    curve: list[float] = field(default_factory=list)
    best: float = math.inf
    wait: int = 0
    state: str = "running"  # then ok, pruned, paused or fail


def advance(sim: Sim, run: Run, decide: Callable[[int, list[float]], Any] | None) -> str:
    """Train ``run`` from its next epoch until it ends (ok, fail), is pruned or paused.

    ``decide(step, curve)`` returns a :class:`tpetune.pruners.Decision` (or a bool: prune).

    Raises:
        BudgetSpent: the budget ran out first (the trial is cut; it does not count).
    """
    thawed = bool(run.curve)
    run.state = "ok"
    for step in range(len(run.curve) + 1, len(run.full) + 1):
        if sim.exhausted:
            raise BudgetSpent
        sim.spent += 1
        value = run.full[step - 1]
        run.curve.append(value)
        if math.isnan(value):
            run.state = "fail" if math.isinf(run.best) else "ok"
            break
        if value < run.best:
            run.best, run.wait = value, 0
        else:
            run.wait += 1
        verdict = decide(step, run.curve) if decide is not None else False
        stop = verdict.prune if isinstance(verdict, tuple) else bool(verdict)
        if stop:
            run.state = "paused" if getattr(verdict, "pause", False) else "pruned"
            break
        if run.wait >= sim.patience:
            break
    if not thawed:
        sim.trials += 1
    if run.state == "pruned":
        sim.pruned += 1
    elif run.state == "ok":
        sim.best = min(sim.best, run.best)
    sim.trace.append((sim.spent, sim.best))
    return run.state


def run_freeze_thaw(
    sim: Sim, seed: int, *, pruner: Any, n_startup: int = 20, allow_duplicates: bool = True
) -> Sim:
    """TPE with a freeze-thaw pruner over the table (see the module docstring);
    ``allow_duplicates=False``: proposals are drawn again while they repeat a trial's params,
    as a new tpetune study does (:func:`bench.replay_sim.distinct_suggest`)."""
    import functools

    from hyperopt import Domain, Trials, tpe
    from hyperopt.base import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK

    from tpetune.pruners.policies import MemoryBoard
    from tpetune.search.documents import vals_key, vals_of
    from tpetune.trial.context import derive_seed

    suggest = functools.partial(tpe.suggest, n_startup_jobs=n_startup, verbose=False)
    domain = Domain(lambda _: 0.0, hyperopt_space(sim.table))
    trials, board = Trials(), MemoryBoard()
    if not allow_duplicates:
        suggest = distinct_suggest(suggest, trials, seed)
    docs: dict[int, dict[str, Any]] = {}
    taken: set[str] = set()  # every proposed point's key (tpetune.search.documents)
    paused: dict[int, Run] = {}
    shown: set[int] = set()  # tids whose doc TPE's history holds
    sim.paused = 0  # type: ignore[attr-defined]
    sim.thaws = 0  # type: ignore[attr-defined]

    def show(tid: int, run: Run) -> None:
        ok = run.state in ("ok", "pruned", "paused") and math.isfinite(run.best)
        docs[tid]["result"] = (
            {"status": STATUS_OK, "loss": run.best} if ok else {"status": STATUS_FAIL}
        )
        trials.refresh()

    tid = 0
    with _posterior_cached():
        while not sim.exhausted:
            thaw = _plan(pruner, paused, board, sim, can_propose=True)
            doc = None
            if thaw is None:
                doc = suggest([tid], domain, trials, derive_seed(seed, tid))[0]
                if paused and not allow_duplicates and vals_key(vals_of(doc)) in taken:
                    # no untrained point is left: continue a paused trial instead (as the
                    # driver does; a repeat stands only when none is paused)
                    thaw = _plan(pruner, paused, board, sim, can_propose=False)
            if thaw is not None:
                current, run = thaw, paused.pop(thaw)
                board.thaw(current)
                sim.thaws += 1  # type: ignore[attr-defined]
            else:
                assert doc is not None
                current = tid
                doc["state"] = JOB_STATE_DONE
                run = Run(
                    _params(sim.table, doc["misc"]["vals"]),
                    sim.table.curve(_params(sim.table, doc["misc"]["vals"])),
                )
                docs[tid] = doc
                taken.add(vals_key(vals_of(doc)))
                tid += 1

            def decide(step: int, curve: list[float], at: int = current) -> Any:
                decision = pruner.decide(at, step, curve, board)
                board.record(at, decision, step)
                return decision

            try:
                state = advance(sim, run, decide)
            except BudgetSpent:
                break
            if state == "ok":
                board.add_finished(run.curve)
            elif state == "paused":
                paused[current] = run
                sim.paused += 1  # type: ignore[attr-defined]
            if current in docs and current not in shown:
                # A proposal's doc arrives with a placeholder result ("new"): checking for a
                # result here kept every doc out of TPE's history (it proposed at random).
                shown.add(current)
                trials.insert_trial_docs([docs[current]])
            show(current, run)
    return sim


def _plan(
    pruner: Any, paused: dict[int, Run], board: Any, sim: Sim, *, can_propose: bool
) -> int | None:
    """The pruner's plan: prunes the paused trials it names; the one to thaw, or None."""
    plan = pruner.plan(
        {t: r.curve for t, r in paused.items()}, board.curves, can_propose=can_propose
    )
    for gone in plan.prune:
        paused.pop(gone)
        sim.pruned += 1
    return plan.thaw


def run_one_epoch_top_k(sim: Sim, seed: int, *, share: float = 0.25) -> Sim:
    """Egele et al.'s one-epoch baseline (see the module docstring)."""
    keys = list(sim.table.val_loss)
    random.Random(seed).shuffle(keys)
    screened: list[Run] = []
    for key in keys[: max(1, min(len(keys), int(share * sim.budget)))]:
        params = json.loads(key)
        run = Run(params, sim.table.curve(params))
        run.full, rest = run.full[:1], run.full
        try:
            advance(sim, run, None)
        except BudgetSpent:
            return sim
        run.full = rest
        sim.best = math.inf  # one epoch is a screen, not a finished trial
        sim.trace[-1] = (sim.spent, math.inf)
        if run.state != "fail":
            screened.append(run)
    screened.sort(key=lambda r: r.curve[0])
    for run in screened:
        try:
            advance(sim, run, None)
        except BudgetSpent:
            break
    return sim


METHODS: Mapping[str, Callable[..., Sim]] = {
    "freeze-thaw": run_freeze_thaw,
    "one-epoch-top-k": run_one_epoch_top_k,
}
