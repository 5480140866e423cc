"""What the plots of a study show, computed from the store alone (no matplotlib here).

Each plot is two steps (the Optuna split): a ``*_data`` function here computes a small frozen
record from a :class:`~tpetune.study.study.Study`, which the tests check exactly, and a ``plot_*``
function in :mod:`tpetune.views.plots` draws it. numpy and pandas are imported inside the functions,
so importing this module stays light.

Every function accepts a study that is still running or was killed: ``running`` trials have no
loss and are left out, ``fail`` trials have no loss and are listed apart, ``pruned`` trials
count at the loss they reached when stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tpetune._io import finite_float
from tpetune.exporters._params import parse
from tpetune.study.store import TrialRecord, TrialState
from tpetune.study.study import Study

NO_TRIALS = "no finished trials yet"
# states whose loss means something (a paused trial's is its best so far, as a pruned one's)
_SCORED = (TrialState.OK, TrialState.PRUNED, TrialState.PAUSED)
_STOPPED = (TrialState.PRUNED, TrialState.PAUSED)


# -- data records ----------------------------------------------------------------------------
class Point(NamedTuple):
    """One trial on the loss-per-trial plot; ``branch`` is its branch value as text."""

    tid: int
    loss: float
    branch: str | None


@dataclass(frozen=True)
class LossHistoryData:
    """What :func:`plot_loss_history` draws.

    Attributes:
        ok: finished trials with a loss, in id order.
        pruned: pruned and paused trials with the loss they reached, in id order.
        failed: ids of trials that ended without a (finite) loss.
        running: ids of trials still running (or left running by a killed process).
        best_so_far: ``(tid, best loss up to that trial)`` for each ok trial, in id order.
        branch_label: the top-level choice that colours the points (see :func:`branch_label`).
        branches: its values as text, in option order; one colour each.
        log_y: ok losses are all positive and span more than two decades.
    """

    ok: tuple[Point, ...]
    pruned: tuple[Point, ...]
    failed: tuple[int, ...]
    running: tuple[int, ...]
    best_so_far: tuple[tuple[int, float], ...]
    branch_label: str | None
    branches: tuple[str, ...]
    log_y: bool


class Curve(NamedTuple):
    """Per-epoch losses of one trial; ``name`` is its legend text (``trial 12 (best)``).

    ``paused_at``: the epochs a freeze-thaw pruner paused it at; a thawed trial's curve is
    still one line, marked at each pause."""

    tid: int
    name: str
    loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    pruned: bool = False
    paused_at: tuple[int, ...] = ()


@dataclass(frozen=True)
class LearningCurvesData:
    """The trials :func:`plot_learning_curves` draws, best first, then at most one pruned.

    Training and validation losses are drawn in panels of their own (a training loss of 0.85
    and validation losses near 0.40 on one axis squash the validation curves into one line):
    ``log_y`` decides for both, from each one's own range (``log_y_val`` for validation).
    """

    curves: tuple[Curve, ...]
    log_y: bool
    finished: int  # trials with a final state, to tell "nothing yet" from "no curves stored"
    log_y_val: bool = False

    @property
    def title(self) -> str:
        """``learning curves of the 4 best trials and the best pruned one``: what is drawn."""
        ok = sum(not c.pruned for c in self.curves)
        best = "the best trial" if ok == 1 else f"the {ok} best trials"
        if not any(c.pruned for c in self.curves):
            return f"learning curves of {best}"
        return (
            f"learning curves of {best} and the best pruned one"
            if ok
            else ("learning curves of the best pruned trial")
        )


class ParamPanel(NamedTuple):
    """One hyperparameter: the trials where it was active and had a loss (ok or pruned).

    ``values`` are numbers for numeric params and text for categorical ones; ``categories``
    lists the categorical values in option order (empty for numeric params).
    """

    label: str
    description: str
    categorical: bool
    log_x: bool
    tids: tuple[int, ...]
    values: tuple[Any, ...]
    losses: tuple[float, ...]
    categories: tuple[str, ...]


@dataclass(frozen=True)
class ParamsData:
    """What :func:`plot_params` draws: one panel per label, in space order.

    ``y_limits`` is the loss range every panel shows: all losses, except that losses far
    above the rest (beyond Q3 + 3 IQR, Tukey's "far out") are left out, so one diverged or
    pruned trial does not flatten every other point into a line. Those are drawn at the top
    edge, and ``clipped`` counts them. ``None``: no loss to show.
    """

    panels: tuple[ParamPanel, ...]
    best_tid: int | None
    pruned_tids: frozenset[int]
    log_y: bool
    y_limits: tuple[float, float] | None = None
    clipped: int = 0


# -- small helpers ---------------------------------------------------------------------------
def _text(value: Any) -> str:
    """How a param value reads on an axis; also the grouping key (dict values are unhashable).

    Strings read as themselves, dicts (a branch's constant part) as ``k=v, ...`` in key order,
    anything else as JSON (``1``, ``0.5``, ``true``, ``[1, 2]``).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in sorted(value.items()))
    return json.dumps(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _log_scale(values: Sequence[float]) -> bool:
    """Log axis when every value is positive and they span more than two decades."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100


def _labels(study: Study) -> list[str]:
    """Space labels in space order, then any label only the records know."""
    return list(dict.fromkeys([*(study.meta.get("space") or {}), *study.param_labels]))


def _description(study: Study, label: str) -> str:
    return str((study.meta.get("space") or {}).get(label, ""))


def _is_categorical(study: Study, label: str) -> bool:
    desc = _description(study, label)
    values = [r.params[label] for r in study.records if label in r.params]
    return desc.startswith("choice") or any(not _is_number(v) for v in values)


def _ordered(study: Study, label: str, seen: Iterable[str]) -> tuple[str, ...]:
    """Observed categorical values, in the option order of the stored description."""
    observed = list(dict.fromkeys(seen))
    desc = _description(study, label)
    try:
        options = [_text(o) for o in json.loads(desc[len("choice") :])]
    except ValueError:  # no description (study without meta) or an unparsable one
        options = []
    first = [o for o in options if o in observed]
    return (*first, *(v for v in observed if v not in first))


def branch_label(study: Study) -> str | None:
    """The top-level conditional choice, inferred from the records alone.

    A loaded study has no space graph, so the branch label is found from activity: among the
    categorical labels active in every trial, the one whose value decides whether the most
    other labels are active (``lstm2_nodes`` active exactly when ``lstm_layers == 2``). Ties go
    to the earlier label. Without such a label, the first categorical label active in every
    trial; without that, ``None``.
    """
    records = study.records
    labels = _labels(study)
    everywhere = [lab for lab in labels if records and all(lab in r.params for r in records)]
    candidates = [lab for lab in everywhere if _is_categorical(study, lab)]
    best, best_count = None, 0
    for cand in candidates:
        groups: dict[str, list[TrialRecord]] = {}
        for r in records:
            groups.setdefault(_text(r.params[cand]), []).append(r)
        count = sum(_decided_by(lab, groups.values()) for lab in labels if lab != cand)
        if count > best_count:
            best, best_count = cand, count
    return best if best is not None else (candidates[0] if candidates else None)


def _decided_by(label: str, groups: Iterable[list[TrialRecord]]) -> bool:
    """``label`` is active in all or none of each group, and active in some but not all."""
    activity = [{label in r.params for r in group} for group in groups]
    return all(len(a) == 1 for a in activity) and set().union(*activity) == {True, False}


# -- compute ---------------------------------------------------------------------------------
def loss_history_data(study: Study) -> LossHistoryData:
    """Losses per trial, best so far, failed/pruned/running trials, and branch colours."""
    blabel = branch_label(study)
    ok: list[Point] = []
    pruned: list[Point] = []
    failed: list[int] = []
    running: list[int] = []
    for r in study.records:
        loss = finite_float(r.loss)
        branch = _text(r.params[blabel]) if blabel and blabel in r.params else None
        if r.state is TrialState.RUNNING:
            running.append(r.tid)
        elif loss is None:
            failed.append(r.tid)
        else:
            (pruned if r.state in _STOPPED else ok).append(Point(r.tid, loss, branch))
    best_so_far, best = [], math.inf
    for p in ok:
        best = min(best, p.loss)
        best_so_far.append((p.tid, best))
    seen = (p.branch for p in ok + pruned if p.branch)
    branches = _ordered(study, blabel, seen) if blabel else ()
    return LossHistoryData(
        ok=tuple(ok),
        pruned=tuple(pruned),
        failed=tuple(failed),
        running=tuple(running),
        best_so_far=tuple(best_so_far),
        branch_label=blabel,
        branches=branches,
        log_y=_log_scale([p.loss for p in ok]),
    )


def learning_curves_data(study: Study, n: int = 4) -> LearningCurvesData:
    """The ``n`` best ok trials that stored curves, plus the best pruned trial that did.

    Trials without curves are skipped (the next best takes their place).
    """

    def has_curves(r: TrialRecord) -> bool:
        return bool(r.curves.get("loss") or r.curves.get("val_loss"))

    def rank(r: TrialRecord) -> tuple[float, int]:
        return (r.loss if r.loss is not None else math.inf, r.tid)

    ok = sorted((r for r in study.records if r.finished_ok and has_curves(r)), key=rank)[:n]
    pruned = sorted((r for r in study.records if r.state in _STOPPED and has_curves(r)), key=rank)[
        :1
    ]
    best = study.best
    curves = []
    for r in ok + pruned:
        tag = f" ({r.state.value})" if r in pruned else ""
        tag = " (best)" if best and r.tid == best.tid else tag
        paused_at = tuple(int(s) for s in (r.metrics.get("paused_at") or ()))
        if paused_at and int(r.metrics.get("thaws") or 0) > 0:  # pruned while paused: never
            tag += " (thawed)"
        train, val = (tuple(r.curves.get(key, ())) for key in ("loss", "val_loss"))
        curves.append(Curve(r.tid, f"trial {r.tid}{tag}", train, val, r in pruned, paused_at))
    train_values = [v for c in curves for v in c.loss if math.isfinite(v)]
    val_values = [v for c in curves for v in c.val_loss if math.isfinite(v)]
    return LearningCurvesData(
        tuple(curves), _log_scale(train_values), study.progress.done, _log_scale(val_values)
    )


def params_data(study: Study) -> ParamsData:
    """One panel per label with the ok and pruned trials where it was active."""
    scored = [r for r in study.records if r.state in _SCORED and finite_float(r.loss) is not None]
    panels = []
    for label in _labels(study):
        active = [r for r in scored if label in r.params]
        categorical = _is_categorical(study, label)
        convert: Callable[[Any], Any] = _text if categorical else float
        values = tuple(convert(r.params[label]) for r in active)
        desc = _description(study, label)
        panels.append(
            ParamPanel(
                label=label,
                description=readable(desc),
                categorical=categorical,
                log_x=not categorical and "log" in desc and all(v > 0 for v in values),
                tids=tuple(r.tid for r in active),
                values=values,
                losses=tuple(float(r.loss or 0.0) for r in active),
                categories=_ordered(study, label, values) if categorical else (),
            )
        )
    best = study.best
    losses = [float(r.loss or 0.0) for r in scored]
    log_y = _log_scale(losses)
    limits, clipped = robust_limits(losses, log=log_y)
    return ParamsData(
        panels=tuple(panels),
        best_tid=None if best is None else best.tid,
        pruned_tids=frozenset(r.tid for r in scored if r.state in _STOPPED),
        log_y=log_y,
        y_limits=limits,
        clipped=clipped,
    )


def robust_limits(
    values: Sequence[float], *, log: bool = False
) -> tuple[tuple[float, float] | None, int]:
    """Axis limits over ``values`` leaving out those far above the rest (> Q3 + 3 IQR, on
    the log scale when ``log``), with a 5% margin; and how many were left out."""
    if not values:
        return None, 0
    scale = [math.log10(v) for v in values] if log else list(values)
    q1, q3 = (float(q) for q in _quartiles(scale))
    fence = q3 + 3 * (q3 - q1)
    kept = [v for v in scale if v <= fence] or scale
    lo, hi = min(kept), max(kept)
    pad = 0.05 * (hi - lo) if hi > lo else 0.05 * abs(hi) or 0.05
    low, high = lo - pad, hi + pad
    if log:
        low, high = 10**low, 10**high
    return (low, high), len(scale) - len(kept)


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:  # linear interpolation, as numpy's default percentile
        pos = q * (n - 1)
        i = int(pos)
        j = min(i + 1, n - 1)
        return ordered[i] + (ordered[j] - ordered[i]) * (pos - i)

    return at(0.25), at(0.75)


def readable(description: str) -> str:
    """A stored distribution as an axis reads it: log-uniform ones by their real bounds
    (``log-uniform 0.0001 .. 0.1``, not ``loguniform(-9.210340371976182, ...)``)."""

    if not description.startswith(("loguniform", "qloguniform")):
        return description
    domain = parse(description)
    if domain is None:
        return description
    step = "" if domain.step is None else f", step {domain.step:g}"
    kind = "q-log-uniform" if description.startswith("q") else "log-uniform"
    return f"{kind} {domain.low:.3g} .. {domain.high:.3g}{step}"
