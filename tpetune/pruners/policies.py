"""Pruners: stop hopeless trials early, from their curve so far and the study's record.

The seam (as Optuna's ``BasePruner.prune``): a pruner is a small frozen object with one
decision method and a JSON form. The JSON form is stored in the study's meta, so a resumed
study, a worker process and a Spark executor all apply exactly the same pruner.

``decide(tid, step, curve, board)`` is called each time the trial reports a value:

- ``step`` is the number of steps (epochs) done, 1-based: the number of values the trial
  reported so far, whatever labels it reported them under (:func:`tpetune.report` takes any
  non-negative step); ``curve`` holds those values in step order, ``curve[-1]`` the latest.
  Lower is better.
- ``board`` is what the pruner may know of the rest of the study (:class:`Board`): the
  finished trials' curves and the values recorded at each rung.
- It returns a :class:`Decision`. When ``Decision.rung`` is set the caller records the rung
  value and the decision in the store in the same transaction as the step, so that a resumed
  trial replays them (:meth:`Board.recorded`) instead of re-deciding against a rung that has
  grown meanwhile.

This module is pure Python (no Keras, no store): simulators and tests use :class:`MemoryBoard`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tpetune._io import check_int
from tpetune.errors import ConfigError
from tpetune.pruners.base import Board, Pruner
from tpetune.pruners.freeze_thaw import FreezeThawPruner
from tpetune.study.steps import Decision  # the record type the store keeps with each step


def _best_so_far(curve: Sequence[float]) -> float:
    """The best (lowest) value so far; NaN when the latest value is NaN or none is a number."""
    if not curve or math.isnan(curve[-1]):
        return math.nan
    return min(v for v in curve if not math.isnan(v))


def _check_monitor(monitor: Any) -> None:
    if not isinstance(monitor, str) or not monitor:
        raise ConfigError(f"pruner monitor must be a metric name; got {monitor!r}")


@dataclass(frozen=True)
class NoPruner:
    """Never prunes."""

    name: ClassVar[str] = "none"
    monitor: str = "val_loss"

    def decide(self, tid: int, step: int, curve: Sequence[float], board: Board) -> Decision:
        return Decision(False)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class MedianPruner:
    """Prune a trial whose best value so far is worse than the ``percentile`` of the finished
    trials' best-so-far at the same step (Optuna's MedianPruner, over epochs).

    Nothing is pruned before ``warmup_steps`` steps or while fewer than ``warmup_trials``
    finished trials have curves. A finished trial that stopped early (early stopping) counts
    with its best value: it stopped because it had stopped improving, and dropping it would
    bias the reference towards trials that trained longer. NaN is pruned after the warm-up.
    """

    name: ClassVar[str] = "median"
    warmup_trials: int = 5
    warmup_steps: int = 3
    percentile: float = 50.0
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        check_int("warmup_trials", self.warmup_trials, 1)
        check_int("warmup_steps", self.warmup_steps, 1)
        if not 0 < self.percentile < 100:
            raise ConfigError(f"percentile must lie in (0, 100); got {self.percentile}")
        _check_monitor(self.monitor)

    def reference(self, finished: Sequence[Sequence[float]], step: int) -> float | None:
        """The percentile of finished trials' best-so-far at ``step``, or ``None`` in warm-up."""
        import numpy as np

        bests = [_best_so_far(c[:step]) for c in finished if len(c) > 0]
        bests = [b for b in bests if not math.isnan(b)]
        if len(bests) < self.warmup_trials:
            return None
        return float(np.percentile(bests, self.percentile))

    def decide(self, tid: int, step: int, curve: Sequence[float], board: Board) -> Decision:
        if step < self.warmup_steps:
            return Decision(False)
        ref = self.reference(board.finished_curves(), step)
        if ref is None:
            return Decision(False)
        best = _best_so_far(curve)
        return Decision(math.isnan(best) or best > ref)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class ASHAPruner:
    """Asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
    Hyperparameter Tuning").

    Rungs sit at ``min_steps * reduction_factor**k`` steps. A trial reaching rung *k* records
    its best value so far there; with *n* values recorded at that rung (its own included) it
    continues only if its value ranks within the best ⌊n/η⌋, or is the best when ⌊n/η⌋ = 0.
    NaN is pruned. There are no barriers: a trial never waits for others, so the rule is the
    same with one trial in flight or many.
    """

    name: ClassVar[str] = "asha"
    min_steps: int = 1
    reduction_factor: int = 3
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        check_int("min_steps", self.min_steps, 1)
        check_int("reduction_factor", self.reduction_factor, 2)
        _check_monitor(self.monitor)

    def rung_of(self, step: int) -> int | None:
        """The rung at ``step``, or ``None`` when ``step`` is not a rung step."""
        rung, at = 0, self.min_steps
        while at < step:
            rung, at = rung + 1, at * self.reduction_factor
        return rung if at == step else None

    def decide(self, tid: int, step: int, curve: Sequence[float], board: Board) -> Decision:
        rung = self.rung_of(step)
        if rung is None:
            return Decision(False)
        earlier = board.recorded(tid, rung)
        if earlier is not None:
            return earlier
        value = _best_so_far(curve)
        if math.isnan(value):
            return Decision(True, rung, value)
        others = sorted(v for v in board.rung_values(rung) if not math.isnan(v))
        ranked = sorted([*others, value])
        n_values = len(board.rung_values(rung)) + 1
        keep = n_values // self.reduction_factor
        cutoff = ranked[max(keep, 1) - 1]
        return Decision(value > cutoff, rung, value)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


PRUNERS: dict[str, Any] = {
    cls.name: cls for cls in (NoPruner, MedianPruner, ASHAPruner, FreezeThawPruner)
}


def pruner_from_json(data: Mapping[str, Any] | None) -> Pruner:
    """The pruner a study's meta describes (``None``: :class:`NoPruner`).

    Also reads the first-wave form ``{"rule": "median", "warmup_epochs": ..}`` that studies
    made before the pruner seam stored.

    Raises:
        ConfigError: an unknown pruner or knob.
    """
    options = dict(data or {})
    name = options.pop("name", None) or options.pop("rule", "none")
    if "warmup_epochs" in options:
        options["warmup_steps"] = options.pop("warmup_epochs")
    cls = PRUNERS.get(name)
    if cls is None:
        raise ConfigError(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown {name} pruner option(s) {unknown}: known are {sorted(known)}")
    return cls(**options)


@dataclass
class MemoryBoard:
    """A :class:`Board` held in memory, for simulators, tests and executors that cannot see
    the study folder (filled from what the driver shipped with the trial)."""

    curves: list[list[float]] = field(default_factory=list)
    rungs: dict[int, dict[int, Decision]] = field(default_factory=dict)  # rung -> tid -> decision
    steps: dict[int, dict[int, str]] = field(default_factory=dict)  # tid -> step -> decision

    def add_finished(self, curve: Sequence[float]) -> None:
        self.curves.append([float(v) for v in curve])

    def record(self, tid: int, decision: Decision, step: int | None = None) -> None:
        if decision.rung is not None:
            self.rungs.setdefault(decision.rung, {})[tid] = decision
        if step is not None:
            self.steps.setdefault(tid, {})[step] = decision.kind

    def finished_curves(self) -> Sequence[Sequence[float]]:
        return self.curves

    def rung_values(self, rung: int) -> Sequence[float]:
        return [float(d.value) for d in self.rungs.get(rung, {}).values() if d.value is not None]

    def recorded(self, tid: int, rung: int) -> Decision | None:
        return self.rungs.get(rung, {}).get(tid)

    def decisions(self, tid: int) -> Mapping[int, str]:
        return self.steps.get(tid, {})

    def thaw(self, tid: int) -> None:
        """Mark trial ``tid``'s pauses ``thawed`` (what the store's thaw does)."""
        marks = self.steps.get(tid, {})
        for step, kind in marks.items():
            if kind == "pause":
                marks[step] = "thawed"


def default_pruner() -> Pruner:
    """The pruner of a new study when none is given (objectives that never report a value
    are never pruned, so a default costs them nothing). The choice rests on the
    recorded-curves benchmark (docs/benchmarks.md, "replay")."""
    return MedianPruner()
