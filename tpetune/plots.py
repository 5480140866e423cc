"""Plots of a study from the store alone: loss per trial, learning curves, params, predictions.

Each plot is two steps (the Optuna split): a ``*_data`` function computes a small frozen record
from a :class:`~tpetune.study.Study` (what the tests check exactly), and a ``plot_*`` function
draws it onto a new :class:`matplotlib.figure.Figure` and returns it. Nothing here imports
TensorFlow or hyperopt, and matplotlib, numpy and pandas are imported inside the functions, so
``import tpetune.plots`` stays light. Figures use the Agg canvas and the object API (no pyplot
state, no ``show()``), so plotting is safe in threads, servers and headless runs.

Every function accepts a study that is still running or was killed: ``running`` trials have no
loss and are marked or left out, ``fail`` trials have no loss and are marked along the bottom
edge, ``pruned`` trials are drawn hollow at the loss they reached when stopped.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tpetune.errors import DataError
from tpetune.store import TrialRecord, TrialState
from tpetune.study import Study

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PREDICTIONS_CSV = "predictions.csv"
NO_TRIALS = "no finished trials yet"
_DPI = 110
_ZOOM_DAYS = 60
_SCORED = (TrialState.OK, TrialState.PRUNED)  # states whose loss means something


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
        pruned: pruned trials with the loss they reached, in id order.
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
    """Per-epoch losses of one trial; ``name`` is its legend text (``trial 12 (best)``)."""

    tid: int
    name: str
    loss: tuple[float, ...]
    val_loss: tuple[float, ...]


@dataclass(frozen=True)
class LearningCurvesData:
    """The trials :func:`plot_learning_curves` draws, best first, then at most one pruned."""

    curves: tuple[Curve, ...]
    log_y: bool
    finished: int  # trials with a final state, to tell "nothing yet" from "no curves stored"


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
    """What :func:`plot_params` draws: one panel per label, in space order."""

    panels: tuple[ParamPanel, ...]
    best_tid: int | None
    pruned_tids: frozenset[int]
    log_y: bool


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single truth value
class PredictionsData:
    """The stock study's test-period predictions, in price units, with their RMSEs."""

    dates: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray
    naive: np.ndarray
    rmse_model: float
    rmse_naive: float


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


def _finite(loss: float | None) -> float | None:
    return loss if loss is not None and math.isfinite(loss) else None


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
        loss = _finite(r.loss)
        branch = _text(r.params[blabel]) if blabel and blabel in r.params else None
        if r.state is TrialState.RUNNING:
            running.append(r.tid)
        elif loss is None:
            failed.append(r.tid)
        else:
            (pruned if r.state is TrialState.PRUNED else ok).append(Point(r.tid, loss, branch))
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
    pruned = sorted(
        (r for r in study.records if r.state is TrialState.PRUNED and has_curves(r)), key=rank
    )[:1]
    best = study.best
    curves = []
    for r in ok + pruned:
        tag = " (pruned)" if r in pruned else " (best)" if best and r.tid == best.tid else ""
        train, val = (tuple(r.curves.get(key, ())) for key in ("loss", "val_loss"))
        curves.append(Curve(r.tid, f"trial {r.tid}{tag}", train, val))
    values = [v for c in curves for v in (*c.loss, *c.val_loss) if math.isfinite(v)]
    return LearningCurvesData(tuple(curves), _log_scale(values), study.progress.done)


def params_data(study: Study) -> ParamsData:
    """One panel per label with the ok and pruned trials where it was active."""
    scored = [r for r in study.records if r.state in _SCORED and _finite(r.loss) is not None]
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
                description=desc,
                categorical=categorical,
                log_x=not categorical and "log" in desc and all(v > 0 for v in values),
                tids=tuple(r.tid for r in active),
                values=values,
                losses=tuple(float(r.loss or 0.0) for r in active),
                categories=_ordered(study, label, values) if categorical else (),
            )
        )
    best = study.best
    return ParamsData(
        panels=tuple(panels),
        best_tid=None if best is None else best.tid,
        pruned_tids=frozenset(r.tid for r in scored if r.state is TrialState.PRUNED),
        log_y=_log_scale([float(r.loss or 0.0) for r in scored]),
    )


def predictions_data(study_dir: str | Path) -> PredictionsData | None:
    """Read ``predictions.csv`` (``date, actual, predicted, naive``); ``None`` when absent.

    Raises:
        DataError: the file lacks one of the four columns, or a date does not parse.
    """
    import numpy as np
    import pandas as pd

    path = Path(study_dir) / PREDICTIONS_CSV
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    missing = [c for c in ("date", "actual", "predicted", "naive") if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {', '.join(missing)}; it needs date, actual, predicted, naive"
        )
    try:
        frame = frame.assign(date=pd.to_datetime(frame["date"])).sort_values("date")
    except ValueError as exc:  # pandas' date parse errors are ValueErrors
        raise DataError(f"{path}: the date column has a value that is not a date ({exc})") from None
    actual, predicted, naive = (frame[c].to_numpy(float) for c in ("actual", "predicted", "naive"))

    def rmse(guess: np.ndarray) -> float:
        keep = np.isfinite(guess) & np.isfinite(actual)
        errors = guess[keep] - actual[keep]
        return float(np.sqrt(np.mean(errors**2))) if keep.any() else math.nan

    dates = frame["date"].to_numpy()
    return PredictionsData(dates, actual, predicted, naive, rmse(predicted), rmse(naive))


# -- draw ------------------------------------------------------------------------------------
_BEST_STYLE: dict[str, Any] = {"marker": "*", "s": 220, "color": "gold", "edgecolors": "black"}
_LEGEND_RIGHT: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)}


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # Agg explicitly: savefig never depends on the user's backend
    return fig


def _say(ax: Axes, text: str, *, blank: bool = False) -> None:
    """Write ``text`` across the axes; ``blank`` drops the ticks, which would mean nothing."""
    size = "large" if blank else "medium"
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=size)
    if blank:
        ax.set_xticks([])
        ax.set_yticks([])


def _title(study: Study, what: str) -> str:
    p = study.progress
    return (
        f"{study.study_dir.name}: {what}\n{p.done} finished of {p.total} "
        f"({p.ok} ok, {p.failed} failed, {p.pruned} pruned), {p.running} running"
    )


def _dots(ax: Axes, xs: Sequence[Any], ys: Sequence[float], **style: Any) -> None:
    if xs:
        ax.scatter(xs, ys, s=36, zorder=3, linewidths=1.4, **style)


def plot_loss_history(study: Study) -> Figure:
    """Loss per trial coloured by branch, with the best-so-far line and failed/pruned marks."""
    from matplotlib.ticker import MaxNLocator

    data = loss_history_data(study)
    fig = _figure(9.5, 5)
    ax = fig.add_subplot()
    ax.set(title=_title(study, "loss per trial"), xlabel="trial id (order of evaluation)")
    ax.set_ylabel("loss (objective, lower is better)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    colour: dict[str | None, str] = {b: f"C{i % 10}" for i, b in enumerate(data.branches)}
    for branch in (*data.branches, None):
        pts = [p for p in data.ok if p.branch == branch]
        name = f"{data.branch_label} = {branch}" if branch else "ok trial"
        style: dict[str, Any] = {"color": colour.get(branch, "C0"), "label": name}
        _dots(ax, [p.tid for p in pts], [p.loss for p in pts], **style)
    edges = [colour.get(p.branch, "C0") for p in data.pruned]
    style = {"facecolors": "none", "edgecolors": edges, "label": "pruned (loss when stopped)"}
    _dots(ax, [p.tid for p in data.pruned], [p.loss for p in data.pruned], **style)
    if data.best_so_far:
        last = max(t for t in (*[p.tid for p in data.ok + data.pruned], *data.failed))
        xs = [t for t, _ in data.best_so_far] + [last]
        ys = [b for _, b in data.best_so_far] + [data.best_so_far[-1][1]]
        ax.step(xs, ys, where="post", color="black", linewidth=1.3, label="best so far")
        best = min(data.ok, key=lambda p: (p.loss, p.tid))
        label = f"best: trial {best.tid}, loss {best.loss:.4g}"
        ax.scatter([best.tid], [best.loss], zorder=4, label=label, **_BEST_STYLE)
    edge = ax.get_xaxis_transform()  # x in data, y in axes: these trials have no loss to plot
    marks = ((data.failed, "x", "red", "failed, no loss"), (data.running, "|", "0.5", "running"))
    for marked, marker, color, what in marks:
        style = {"marker": marker, "s": 60, "color": color, "label": f"{what} ({len(marked)})"}
        if marked:
            ax.scatter(marked, [0.03] * len(marked), transform=edge, **style)
    tids = [r.tid for r in study.records]
    if tids:  # marks placed in axes coordinates do not widen the x range by themselves
        ax.set_xlim(min(tids) - 0.5, max(tids) + 0.5)
    ax.set_ymargin(0.1)  # room above the marks along the bottom edge
    if not (data.ok or data.pruned):
        _say(ax, "no trial has a loss yet" if data.failed else NO_TRIALS, blank=not tids)
    if data.log_y:
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", **_LEGEND_RIGHT)
    return fig


def plot_learning_curves(study: Study, n: int = 4) -> Figure:
    """Train (dashed) and validation (solid) loss per epoch of the best trials, one colour each."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    data = learning_curves_data(study, n)
    fig = _figure(9.5, 5)
    ax = fig.add_subplot()
    ax.set(title=_title(study, f"learning curves of the {n} best trials"), xlabel="epoch")
    ax.set_ylabel("loss per epoch (lower is better)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not data.curves:
        _say(ax, "no trial stored per-epoch curves" if data.finished else NO_TRIALS, blank=True)
        return fig
    few = max(len(c.loss) + len(c.val_loss) for c in data.curves) < 30  # dots only when legible
    for i, curve in enumerate(data.curves):
        style: dict[str, Any] = {"color": f"C{i % 10}", "marker": "." if few else None}
        ax.plot(range(1, len(curve.val_loss) + 1), curve.val_loss, label=curve.name, **style)
        ax.plot(range(1, len(curve.loss) + 1), curve.loss, linestyle="--", alpha=0.8, **style)
    if data.log_y:
        ax.set_yscale("log")
    handles = [
        *ax.get_legend_handles_labels()[0],
        Line2D([], [], color="black", label="solid: validation loss"),
        Line2D([], [], color="black", linestyle="--", label="dashed: training loss"),
    ]
    ax.legend(handles=handles, fontsize="small", **_LEGEND_RIGHT)
    return fig


def plot_params(study: Study) -> Figure:
    """Loss against each hyperparameter, only over trials where it was active."""
    data = params_data(study)
    title = _title(study, "loss by hyperparameter (trials where it was active)")
    if not any(p.tids for p in data.panels):
        fig = _figure(9.5, 5)
        ax = fig.add_subplot(title=title)
        _say(ax, NO_TRIALS, blank=True)
        return fig
    ncols = min(3, len(data.panels))
    nrows = math.ceil(len(data.panels) / ncols)
    fig = _figure(4.3 * ncols, 3.4 * nrows + 0.9)
    fig.suptitle(title)
    # One loss scale for every panel, so params compare at a glance.
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for i, (ax, panel) in enumerate(zip(axes, data.panels, strict=False)):
        _draw_panel(ax, panel, data)
        if i % ncols == 0:
            ax.set_ylabel("loss (lower is better)")
    for ax in axes[len(data.panels) :]:
        ax.set_visible(False)
    # One legend for the figure: each kind of mark once, from whichever panel has it.
    legend = {lab: h for ax in axes for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(
        legend.values(), legend.keys(), loc="outside lower center", ncols=3, fontsize="small"
    )
    return fig


def _draw_panel(ax: Axes, panel: ParamPanel, data: ParamsData) -> None:
    """One param: box + strip per category, or a scatter; pruned hollow, best starred."""
    ax.set_title(f"{panel.label}  (n={len(panel.tids)})", fontsize="medium")
    xlabel = textwrap.shorten(panel.description or panel.label, 48, placeholder="…")
    ax.set_xlabel(xlabel, fontsize="small")
    if not panel.tids:
        _say(ax, "not active in any\nfinished trial")
        return
    xs: list[float] = list(panel.values) if not panel.categorical else []
    if panel.categorical:
        pairs = list(zip(panel.values, panel.losses, strict=True))
        groups = [[lo for v, lo in pairs if v == c] for c in panel.categories]
        box: dict[str, Any] = {
            "widths": 0.5,
            "showfliers": False,
            "medianprops": {"color": "black"},
        }
        ax.boxplot(groups, positions=range(len(groups)), **box)
        # Deterministic jitter (by rank within the category) keeps the PNGs reproducible.
        rank: dict[str, int] = {}
        for v in panel.values:
            rank[v] = rank.get(v, -1) + 1
            xs.append(panel.categories.index(v) + ((rank[v] * 0.618) % 1 - 0.5) * 0.3)
        # Wrapped, not rotated: long values (dict branches) stay readable under their box.
        names = [textwrap.fill(c, 16, max_lines=3, placeholder="…") for c in panel.categories]
        ax.set_xticks(range(len(names)), names, fontsize="small")
    elif panel.log_x:
        ax.set_xscale("log")
    for hollow, label in ((False, "ok trial"), (True, "pruned trial (loss when stopped)")):
        keep = [(t in data.pruned_tids) is hollow for t in panel.tids]
        px = [x for x, k in zip(xs, keep, strict=True) if k]
        py = [y for y, k in zip(panel.losses, keep, strict=True) if k]
        _dots(ax, px, py, facecolors="none" if hollow else "C0", edgecolors="C0", label=label)
    for x, t, loss in zip(xs, panel.tids, panel.losses, strict=True):
        if t == data.best_tid:
            ax.scatter([x], [loss], zorder=4, label=f"best trial ({t})", **_BEST_STYLE)
    if data.log_y:
        ax.set_yscale("log")


def plot_predictions(study_dir: str | Path) -> Figure | None:
    """Actual vs model vs naive ("tomorrow = today") prices over the test dates.

    Top: the whole test period; bottom: the last 60 trading days, where a lagging model shows.
    Returns ``None`` when the study folder has no ``predictions.csv``.

    Raises:
        DataError: the file lacks one of its columns.
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    data = predictions_data(study_dir)
    if data is None:
        return None
    fig = _figure(10, 7)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 2])
    ratio = data.rmse_model / data.rmse_naive if data.rmse_naive else math.nan
    fig.suptitle(
        f"{Path(study_dir).name}: test-period predictions\nRMSE model {data.rmse_model:.4g}, "
        f"naive {data.rmse_naive:.4g} (model / naive = {ratio:.3f}; below 1 beats naive)"
    )
    model = f"model (RMSE {data.rmse_model:.4g})"
    naive = f"naive: tomorrow = today (RMSE {data.rmse_naive:.4g})"
    views = (
        (top, slice(None), "whole test period", None),
        (bottom, slice(-_ZOOM_DAYS, None), f"last {_ZOOM_DAYS} trading days", "."),
    )
    for ax, part, title, marker in views:
        dates = data.dates[part]
        ax.plot(dates, data.actual[part], color="black", linewidth=1.4, label="actual")
        ax.plot(dates, data.predicted[part], color="C0", marker=marker, label=model)
        ax.plot(dates, data.naive[part], color="C1", linestyle="--", marker=marker, label=naive)
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel("price")
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    top.legend(loc="best", fontsize="small")
    bottom.set_xlabel("date")
    return fig


def write_all(study: Study, out_dir: str | Path | None = None) -> list[Path]:
    """Write every plot as PNG into ``out_dir`` (default: the study folder); return the paths.

    Writes ``loss_history.png``, ``learning_curves.png``, ``params.png`` and, when the study
    folder holds ``predictions.csv``, ``predictions.png``. Each file is written under a
    temporary name and renamed, so a viewer refreshing it never sees half a PNG.
    """
    out = Path(out_dir) if out_dir is not None else Path(study.study_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Callable[[], Figure | None]]] = [
        ("loss_history.png", lambda: plot_loss_history(study)),
        ("learning_curves.png", lambda: plot_learning_curves(study)),
        ("params.png", lambda: plot_params(study)),
        ("predictions.png", lambda: plot_predictions(study.study_dir)),
    ]
    written = []
    for name, draw in jobs:
        fig = draw()  # one figure at a time: a big study's params grid holds many artists
        if fig is None:
            continue
        path, tmp = out / name, out / f".{name}.tmp"
        fig.savefig(tmp, format="png", dpi=_DPI)
        fig.clear()  # free the artists now rather than at the next garbage collection
        os.replace(tmp, path)
        written.append(path)
    return written
