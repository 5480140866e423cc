"""Freeze-thaw: pause unpromising trials instead of killing them, thaw the best bets later.

After Swersky, Snoek and Adams 2014 ("Freeze-thaw Bayesian optimization") with the
learning-curve model of Domhan et al. 2015 (:mod:`tpetune.pruners.curves`). The pruner does two
jobs on the pruner seam (:mod:`tpetune.pruners`):

- In the trial, at each reported step (:meth:`FreezeThawPruner.decide`): forecast where the
  trial's curve ends and the probability *p* that it ends better than the study's best so far.
  ``p < prune_below``: prune (negligible: the driver deletes its checkpoint). ``p <
  pause_below``: pause (stored ``paused``, its workdir and checkpoint kept; TPE sees its loss
  so far as it sees a pruned trial's). Otherwise continue. A trial is never paused before
  ``min_steps`` steps, nor before ``warmup_trials`` trials finished, and a thawed trial is not
  paused again before it has doubled the steps it had when it was last paused (no thrashing).
  A step judged before (a re-run, or a thawed trial re-reporting from the start) replays the
  recorded decision, ``thawed`` as *continue*.
- In the driver, before each proposal (:meth:`FreezeThawPruner.plan`): the paused trial with
  the highest expected improvement over the best per step of remaining cost is thawed when
  that rate beats a new trial's; a new trial's rate is estimated from the finished trials'
  results (the chance that a new draw is the best, 1/(n+1), times the gap between the two
  best results, over the mean steps a trial takes). Paused trials whose *p* fell below
  ``prune_below`` are pruned. When no new trial may be proposed (``max_evals`` reached, or
  distinct proposals give only a repeat of a trial: a full finite space), paused trials are
  thawed best first while their *p* is not negligible.

Budgets: ``max_evals`` counts trials (configurations); a thaw continues a trial and adds none.
Steps (epochs) are not budgeted by the pruner: a trial trains at most its objective's steps
over all its thaws; ``StopRules(timeout=...)`` bounds wall time, thaws included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, NamedTuple

from tpetune._io import check_int
from tpetune.errors import ConfigError
from tpetune.pruners.base import Board
from tpetune.pruners.curves import forecast
from tpetune.study.steps import Decision


class ThawPlan(NamedTuple):
    """What the driver should do with paused trials before proposing a new one."""

    thaw: int | None  # the paused trial to thaw now, or None (propose, or nothing to do)
    prune: tuple[int, ...] = ()  # paused trials whose chance became negligible


@dataclass(frozen=True)
class FreezeThawPruner:
    """Pause trials unlikely to beat the best, thaw the most promising (see the module)."""

    name: ClassVar[str] = "freeze-thaw"
    #: Steps judged before are replayed, values and decisions kept (see the module docstring).
    replays_steps: ClassVar[bool] = True
    pause_below: float = 0.1
    prune_below: float = 0.001
    #: The fewest points a curve fit takes: screening is cheap, and a pause that was wrong
    #: costs a later thaw, not the trial (replay: docs/benchmarks.md, Freeze-thaw).
    min_steps: int = 2
    warmup_trials: int = 3
    max_steps: int | None = None
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        for knob in ("pause_below", "prune_below"):
            value = getattr(self, knob)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise ConfigError(f"{knob} must be a probability in [0, 1); got {value!r}")
        if self.prune_below > self.pause_below:
            raise ConfigError(
                f"prune_below must be at most pause_below ({self.prune_below} > "
                f"{self.pause_below}): a trial is paused before it is pruned"
            )
        check_int("min_steps", self.min_steps, 2)
        check_int("warmup_trials", self.warmup_trials, 1)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, 2)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ConfigError(f"pruner monitor must be a metric name; got {self.monitor!r}")

    # -- in the trial ------------------------------------------------------------------------
    def decide(self, tid: int, step: int, curve: Sequence[float], board: Board) -> Decision:
        earlier = board.decisions(tid)
        if step in earlier:
            return Decision.of(earlier[step])
        if curve and math.isnan(curve[-1]) and step >= self.min_steps:
            return Decision(True)
        finished = board.finished_curves()
        p = self.chance(curve, finished)
        if p is None:
            return Decision(False)
        if p < self.prune_below:
            return Decision(True)
        paused = [s for s, kind in earlier.items() if kind in ("pause", "thawed")]
        if p < self.pause_below and step >= 2 * max(paused, default=0):
            return Decision(True, pause=True)
        return Decision(False)

    def chance(self, curve: Sequence[float], finished: Sequence[Sequence[float]]) -> float | None:
        """P(``curve`` ends better than the best finished value); ``None`` while warming up
        or when there is nothing left to forecast."""

        values = [v for v in curve if not math.isnan(v)]
        if len(values) < self.min_steps or len(finished) < self.warmup_trials:
            return None
        horizon = self.horizon(finished)
        if len(curve) >= horizon:
            return None
        return forecast(values, horizon, finished).p_below(_incumbent(finished))

    def horizon(self, finished: Sequence[Sequence[float]]) -> int:
        """The step a trial may train to: ``max_steps``, else the longest finished curve."""
        return self.max_steps or max((len(c) for c in finished), default=0)

    # -- in the driver ------------------------------------------------------------------------
    def plan(
        self,
        paused: Mapping[int, Sequence[float]],
        finished: Sequence[Sequence[float]],
        *,
        can_propose: bool,
    ) -> ThawPlan:
        """Which paused trial (tid -> its curve so far) to thaw, and which to prune, given
        the finished curves; ``can_propose``: a new trial is the alternative."""

        if not paused:
            return ThawPlan(None)
        if len(finished) < self.warmup_trials:  # no model yet: thaw only when nothing else
            if can_propose:
                return ThawPlan(None)
            return ThawPlan(min(paused, key=lambda t: (_best(paused[t]), t)))
        horizon, best = self.horizon(finished), _incumbent(finished)
        rates: dict[int, float] = {}
        prune = []
        for tid in sorted(paused):
            values = [v for v in paused[tid] if not math.isnan(v)]
            if not values:
                prune.append(tid)
                continue
            if len(paused[tid]) >= horizon:
                rates[tid] = 0.0  # nothing left to train: only worth thawing to finish
                continue
            f = forecast(values, horizon, finished)
            if f.p_below(best) < self.prune_below:
                prune.append(tid)
                continue
            rates[tid] = f.expected_improvement(best) / max(horizon - len(paused[tid]), 1)
        if not rates:
            return ThawPlan(None, tuple(prune))
        pick = max(rates, key=lambda t: (rates[t], -t))
        if can_propose and rates[pick] <= _new_trial_rate(finished, best):
            return ThawPlan(None, tuple(prune))
        return ThawPlan(pick, tuple(prune))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


def _best(curve: Sequence[float]) -> float:
    values = [v for v in curve if not math.isnan(v)]
    return min(values) if values else math.inf


def _incumbent(finished: Sequence[Sequence[float]]) -> float:
    return min((_best(c) for c in finished), default=math.inf)


def _new_trial_rate(finished: Sequence[Sequence[float]], best: float) -> float:
    """A new trial's expected improvement per step (see the module docstring)."""
    results = sorted(_best(c) for c in finished if c)
    results = [r for r in results if math.isfinite(r)]
    if len(results) < 2:
        return math.inf
    gap = results[1] - results[0]
    steps = sum(len(c) for c in finished) / len(finished)
    return gap / (len(results) + 1) / max(steps, 1.0)
