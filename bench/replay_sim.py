"""Replay search methods on a recorded table: every trial is a lookup, its cost is epochs.

One :class:`Sim` is one search under an epoch budget. A trial "trains" by reading its
configuration's recorded validation curve one epoch at a time; every method applies the same
rules there (:meth:`Sim.train`):

- early stopping with ``patience`` (Keras' ``EarlyStopping``, ``min_delta`` 0): stop after
  ``patience`` epochs without a new best; the trial's loss is its best value (restored weights);
- a NaN value ends the trial as failed (``TerminateOnNaN``), unless an earlier epoch was finite;
- the method's pruner is asked after every epoch; a pruned trial ends there;
- the budget: when it is spent, the trial in progress is cut and the search ends.

The incumbent is the best loss of the trials that finished (not pruned, not cut), as a
study's ``best`` reports it; :attr:`Sim.trace` records it after every trial with the epochs
spent so far. The methods (:data:`METHODS`) differ only in who proposes and who prunes:

- ``tpetune`` variants: hyperopt's ``tpe.suggest`` (or ``rand.suggest``) seeded per trial
  with :func:`tpetune.trial.context.derive_seed` as tpetune's driver does, and a pruner from
  :mod:`tpetune.pruners.policies` deciding on a
  :class:`~tpetune.pruners.policies.MemoryBoard`; a pruned trial
  is shown to TPE with its best partial loss (``partial``) or as a missing loss (``inf``,
  hyperopt's treatment of a failed trial: TPE counts it as +inf);
- ``fmin``: bare ``hyperopt.fmin`` with ``rstate=default_rng(seed)``, no pruning;
- ``optuna-*``: Optuna's ``TPESampler(seed=seed)`` (its defaults) with its pruners.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bench.tabular import Table

#: Early-stopping patience of every replayed trial (the stock study's, a common default).
PATIENCE = 3

Decide = Callable[[int, list[float]], bool]  # (step, curve so far) -> prune?


class Outcome(NamedTuple):
    """How one replayed trial ended."""

    state: str  # "ok", "pruned" or "fail"
    loss: float  # best value reached (inf when none was finite)
    curve: list[float]  # the values of the epochs it ran


class BudgetSpent(Exception):
    """Raised inside a trial when the epoch budget runs out."""


@dataclass
class Sim:
    """One replayed search: the table, the budget and what has happened so far."""

    table: Table
    budget: int
    patience: int = PATIENCE
    max_trials: int | None = None  # also stop after this many trials (a max_evals budget)
    spent: int = 0
    best: float = math.inf
    trials: int = 0
    pruned: int = 0
    trace: list[tuple[int, float]] = field(default_factory=list)  # (epochs spent, incumbent)
    history: list[tuple[dict[str, Any], Outcome]] = field(default_factory=list)

    @property
    def exhausted(self) -> bool:
        trials_done = self.max_trials is not None and self.trials >= self.max_trials
        return self.spent >= self.budget or trials_done

    def train(self, params: Mapping[str, Any], decide: Decide | None = None) -> Outcome:
        """Replay one trial: its state (ok, pruned or fail), loss and the curve it ran.

        Raises:
            BudgetSpent: the budget ran out before the trial ended (it is not counted).
        """
        full = self.table.curve(params)
        curve: list[float] = []
        best, wait, state = math.inf, 0, "ok"
        for step, value in enumerate(full, start=1):
            if self.exhausted:
                raise BudgetSpent
            self.spent += 1
            curve.append(value)
            if math.isnan(value):
                state = "fail" if math.isinf(best) else "ok"
                break
            if value < best:
                best, wait = value, 0
            else:
                wait += 1
            if decide is not None and decide(step, curve):
                state = "pruned"
                break
            if wait >= self.patience:
                break
        self.trials += 1
        if state == "pruned":
            self.pruned += 1
        elif state == "ok":
            self.best = min(self.best, best)
        self.trace.append((self.spent, self.best))
        outcome = Outcome(state, best, curve)
        self.history.append((dict(params), outcome))
        return outcome

    def epochs_to(self, target: float) -> float:
        """Epochs spent when the incumbent first was at or below ``target`` (inf: never)."""
        return next((float(e) for e, b in self.trace if b <= target), math.inf)

    def best_at(self, epochs: float) -> float:
        """The incumbent after ``epochs`` epochs (inf before any trial finished)."""
        best = math.inf
        for e, b in self.trace:
            if e > epochs:
                break
            best = b
        return best


def grid(table: Table, patience: int = PATIENCE) -> tuple[float, int]:
    """Grid search under the replay's rules: the best loss any configuration reaches with
    early stopping (the target's base: the table's own best may lie after an epoch early
    stopping never gets to), and the epochs the grid spends to find it."""
    sim = Sim(table, budget=10**12, patience=patience)
    for key in table.val_loss:
        sim.train(json.loads(key))
    return sim.best, sim.spent


def top_loss(table: Table, share: float = 0.05, patience: int = PATIENCE) -> float:
    """The early-stopped loss of the configuration at the top ``share`` of the table: the
    secondary, "good enough" target's base."""
    losses = sorted(Sim(table, 10**12, patience).train(json.loads(k)).loss for k in table.val_loss)
    return losses[max(0, math.ceil(share * len(losses)) - 1)]


# -- hyperopt (tpetune's driver and bare fmin) ---------------------------------------------------
def hyperopt_space(table: Table) -> dict[str, Any]:
    """One ``hp.choice`` per factor over the table's values: every proposal is a table row."""
    from hyperopt import hp

    return {name: hp.choice(name, values) for name, values in table.factors.items()}


def _params(table: Table, vals: Mapping[str, list[int]]) -> dict[str, Any]:
    return {name: table.factors[name][int(vals[name][0])] for name in table.factors}


def run_tpetune(
    sim: Sim,
    seed: int,
    *,
    pruner: Any = None,
    algo: str = "tpe",
    n_startup: int = 20,
    pruned_as: str = "partial",
    gamma: str = "hyperopt",
    cache_posterior: bool = True,
    lag: int = 1,
    allow_duplicates: bool = True,
) -> Sim:
    """tpetune's serial driver loop in miniature: propose, replay, record, repeat.

    Proposals come from ``tpe.suggest(n_startup_jobs=n_startup)`` (or ``rand.suggest``) with
    the seed ``derive_seed(seed, tid)``; ``pruner`` is a :mod:`tpetune.pruners.policies` object
    or None.
    ``gamma="optuna"`` gives TPE Optuna's split of good and bad trials, ``min(ceil(0.1 n),
    25)`` of ``n``, instead of hyperopt's ``min(ceil(0.25 sqrt(n)), 25)``: hyperopt takes
    ``ceil(gamma * sqrt(n))``, so ``gamma = 0.1 sqrt(n)`` per proposal expresses it (25 is
    hyperopt's cap too). ``cache_posterior`` only makes it faster (see
    :func:`_posterior_cached`). ``lag`` (``Search(lag=...)``): trial ``n`` is proposed from
    trials up to ``n - lag`` and pruned against those alone, as two lagged workers run it
    (the replay counts epochs, not wall time, so it shows what the lag costs in quality).
    ``allow_duplicates=False`` (``Search(allow_duplicates=False)``, a new study's default since
    proposals were made distinct): a proposal repeating a trial's params is drawn again
    (:func:`distinct_suggest`).
    """
    import functools

    from hyperopt import Domain, Trials, rand, tpe

    from tpetune.pruners.policies import MemoryBoard

    suggest = (
        rand.suggest
        if algo == "rand"
        else functools.partial(tpe.suggest, n_startup_jobs=n_startup, verbose=False)
    )
    if gamma == "optuna" and algo != "rand":
        hyperopt_suggest = suggest

        def suggest(new_ids: list[int], domain: Any, trials: Any, seed: int) -> Any:
            n = sum(t["result"].get("status") == "ok" for t in trials.trials)
            return hyperopt_suggest(new_ids, domain, trials, seed, gamma=0.1 * math.sqrt(n))

    domain = Domain(lambda _: 0.0, hyperopt_space(sim.table))
    trials, board = Trials(), MemoryBoard()
    if not allow_duplicates:
        suggest = distinct_suggest(suggest, trials, seed)
    with _posterior_cached() if cache_posterior else contextlib.nullcontext():
        _drive(sim, seed, suggest, domain, trials, board, pruner, pruned_as, lag)
    return sim


def distinct_suggest(suggest: Any, history: Any, seed: int) -> Any:
    """``suggest`` redrawn as tpetune's driver redraws a repeat (:mod:`tpetune.search.distinct`):
    compared with every trial proposed so far (``history``, the full ``Trials``, whatever
    view the proposal is made from), redraws seeded from (``seed``, tid, attempt)."""
    from tpetune.search.distinct import propose_distinct
    from tpetune.search.documents import vals_key, vals_of
    from tpetune.trial.context import derive_seed

    def distinct(new_ids: list[int], domain: Any, trials: Any, tid_seed: int) -> Any:
        tid = new_ids[0]
        taken = {vals_key(vals_of(doc)) for doc in history.trials}
        return propose_distinct(
            suggest, tid, domain, trials, tid_seed, taken=taken,
            redraw_seed=lambda attempt: derive_seed(seed, tid, f"redraw {attempt}"),
        )  # fmt: skip

    return distinct


def _drive(
    sim: Sim,
    seed: int,
    suggest: Any,
    domain: Any,
    trials: Any,
    board: Any,
    pruner: Any,
    pruned_as: str,
    lag: int = 1,
) -> None:
    from hyperopt import Trials
    from hyperopt.base import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK

    from tpetune.trial.context import derive_seed

    tid = 0
    finished: list[Any] = []  # by tid: the curve of an ok trial, else None
    while not sim.exhausted:
        # Trial tid sees trials up to tid - lag only: on the board and in the proposal.
        if tid >= lag and finished[tid - lag] is not None:
            board.add_finished(finished[tid - lag])
        seen = trials
        if lag > 1:
            seen = Trials()
            seen.insert_trial_docs(trials.trials[: max(0, tid - lag + 1)])
            seen.refresh()
        doc = suggest([tid], domain, seen, derive_seed(seed, tid))[0]
        params = _params(sim.table, doc["misc"]["vals"])

        def decide(step: int, curve: list[float], tid: int = tid) -> bool:
            decision = pruner.decide(tid, step, curve, board)
            board.record(tid, decision)
            return bool(decision.prune)

        try:
            state, loss, curve = sim.train(params, decide if pruner is not None else None)
        except BudgetSpent:
            break
        shown = state == "ok" or (state == "pruned" and pruned_as == "partial")
        doc["state"] = JOB_STATE_DONE
        doc["result"] = {"status": STATUS_OK, "loss": loss} if shown else {"status": STATUS_FAIL}
        finished.append(curve if state == "ok" else None)
        trials.insert_trial_docs([doc])
        trials.refresh()
        tid += 1


@contextlib.contextmanager
def _posterior_cached() -> Iterator[None]:
    """Build TPE's posterior graph once per domain instead of on every ``suggest``.

    ``tpe.suggest`` rebuilds the same pyll graph (a third of its time here) and evaluates it
    with a fresh memo; the graph is never mutated, so reusing it proposes exactly the same
    points (checked by tests/test_bench.py) at a replay trial's cost of milliseconds.
    """
    from hyperopt import tpe

    original = tpe.build_posterior_wrapper
    cache: dict[tuple[int, float, float], Any] = {}

    def cached(domain: Any, prior_weight: float, gamma: float) -> Any:
        key = (id(domain), prior_weight, gamma)
        if key not in cache:
            cache[key] = original(domain, prior_weight, gamma)
        return cache[key]

    tpe.build_posterior_wrapper = cached
    try:
        yield
    finally:
        tpe.build_posterior_wrapper = original


def run_fmin(sim: Sim, seed: int) -> Sim:
    """Bare ``hyperopt.fmin`` with TPE (its defaults), early stopping only."""
    import numpy as np
    from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, tpe

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        try:
            state, loss, _ = sim.train(params)
        except BudgetSpent:
            return {"status": STATUS_FAIL}
        return {"status": STATUS_OK, "loss": loss} if state == "ok" else {"status": STATUS_FAIL}

    fmin(
        objective,
        hyperopt_space(sim.table),
        algo=tpe.suggest,
        max_evals=10**6,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
        early_stop_fn=lambda *_: (sim.exhausted, []),
    )
    return sim


# -- Optuna ----------------------------------------------------------------------------------------
def optuna_pruner(name: str, epochs: int) -> Any:
    """Optuna's pruner ``name`` with its defaults (Hyperband told the table's epochs)."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.NopPruner()


def run_optuna(sim: Sim, seed: int, *, pruner: str) -> Sim:
    """Optuna 5: ``TPESampler(seed=seed)`` with its defaults and the named pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    factors = sim.table.factors

    def objective(trial: Any) -> float:
        params = {name: trial.suggest_categorical(name, values) for name, values in factors.items()}

        def decide(step: int, curve: list[float]) -> bool:
            trial.report(curve[-1], step)
            return bool(trial.should_prune())

        try:
            state, loss, _ = sim.train(params, decide)
        except BudgetSpent:
            trial.study.stop()
            raise optuna.TrialPruned() from None
        if state == "pruned":
            raise optuna.TrialPruned()
        return loss if state == "ok" else math.nan  # NaN: Optuna records the trial as failed

    study = optuna.create_study(
        # HyperbandPruner assigns a trial's bracket by a hash of the study name and the trial
        # number: a drawn name (create_study's default) would make its replays unrepeatable.
        study_name=f"replay-{seed}",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna_pruner(pruner, sim.table.epochs),
    )
    study.optimize(objective, n_trials=10**6, catch=(), callbacks=[_stop_when(sim)])
    return sim


def _stop_when(sim: Sim) -> Callable[[Any, Any], None]:
    def callback(study: Any, _trial: Any) -> None:
        if sim.exhausted:
            study.stop()

    return callback
