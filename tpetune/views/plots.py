"""Plots of any study from the store alone: loss per trial, learning curves, params.

Each ``plot_*`` function draws a record computed by :mod:`tpetune.views.plot_data` onto a new
:class:`matplotlib.figure.Figure` and returns it. Nothing here imports TensorFlow or hyperopt,
and matplotlib is imported inside the functions, so ``import tpetune.views.plots`` stays light.
Figures use the Agg canvas and the object API (no pyplot state, no ``show()``), so plotting is
safe in threads, servers and headless runs. :func:`write_all` writes every PNG of a study.
A bundled study adds its own plots (stock's test-period predictions, digits' confusion matrix)
through its ``extra_plots`` hook (:mod:`tpetune.bundled`); nothing here knows any study.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpetune.errors import from_os_error
from tpetune.study.study import Study
from tpetune.views.plot_data import (
    NO_TRIALS,
    ParamPanel,
    ParamsData,
    learning_curves_data,
    loss_history_data,
    params_data,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_DPI = 110
# -- draw ------------------------------------------------------------------------------------
_BEST_STYLE: dict[str, Any] = {"marker": "*", "s": 220, "color": "gold", "edgecolors": "black"}
_LEGEND_RIGHT: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)}


def new_figure(width: float, height: float) -> Figure:
    """A new constrained-layout Figure on the Agg canvas (no pyplot state); inches."""
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
    of, asked = ("", f"; {p.total} asked for") if p.lowered else (f" of {p.total}", "")
    return (
        f"{study.study_dir.name}: {what}\n{p.done} finished{of} "
        f"({p.ok} ok, {p.failed} failed, {p.pruned} pruned"
        f"{f', {p.paused} paused' if p.paused else ''}), {p.running} running{asked}"
    )


def _dots(ax: Axes, xs: Sequence[Any], ys: Sequence[float], **style: Any) -> None:
    if xs:
        ax.scatter(xs, ys, s=36, zorder=3, linewidths=1.4, **style)


def plot_loss_history(study: Study) -> Figure:
    """Loss per trial coloured by branch, with the best-so-far line and failed/pruned marks."""
    from matplotlib.ticker import MaxNLocator

    data = loss_history_data(study)
    fig = new_figure(9.5, 5)
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
    """Training (left) and validation (right) loss per epoch of the best trials, one colour
    per trial, each panel on its own scale (see :class:`LearningCurvesData`)."""
    from matplotlib.ticker import MaxNLocator

    data = learning_curves_data(study, n)
    fig = new_figure(12, 5)
    fig.suptitle(_title(study, data.title))
    if not data.curves:
        ax = fig.add_subplot(xlabel="epoch")
        _say(ax, "no trial stored per-epoch curves" if data.finished else NO_TRIALS, blank=True)
        return fig
    train_ax, val_ax = fig.subplots(1, 2, sharex=True)
    few = max(len(c.loss) + len(c.val_loss) for c in data.curves) < 30  # dots only when legible
    panels = ((train_ax, "training loss", "loss", data.log_y),
              (val_ax, "validation loss", "val_loss", data.log_y_val))  # fmt: skip
    for ax, what, key, log_y in panels:
        ax.set(title=what, xlabel="epoch", ylabel=f"{what} per epoch (lower is better)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for i, curve in enumerate(data.curves):
            values = getattr(curve, key)
            style: dict[str, Any] = {"color": f"C{i % 10}", "marker": "." if few else None}
            if curve.pruned:
                style["linestyle"] = "--"
            ax.plot(range(1, len(values) + 1), values, label=curve.name, **style)
            marks = [e for e in curve.paused_at if 0 < e <= len(values)]
            if marks:  # freeze-thaw: a square where it paused (a thawed line goes on after it)
                y = [values[e - 1] for e in marks]
                ax.scatter(marks, y, marker="s", s=60, facecolors="none", edgecolors=style["color"])
        if not any(getattr(c, key) for c in data.curves):
            _say(ax, f"no trial stored its {what}")
        if log_y:
            ax.set_yscale("log")
    handles, labels = val_ax.get_legend_handles_labels()
    if not handles:
        handles, labels = train_ax.get_legend_handles_labels()
    val_ax.legend(handles, labels, fontsize="small", **_LEGEND_RIGHT)
    return fig


def plot_params(study: Study) -> Figure:
    """Loss against each hyperparameter, only over trials where it was active."""
    data = params_data(study)
    title = _title(study, "loss by hyperparameter (trials where it was active)")
    if not any(p.tids for p in data.panels):
        fig = new_figure(9.5, 5)
        ax = fig.add_subplot(title=title)
        _say(ax, NO_TRIALS, blank=True)
        return fig
    ncols = min(3, len(data.panels))
    nrows = math.ceil(len(data.panels) / ncols)
    fig = new_figure(4.3 * ncols, 3.4 * nrows + 0.9)
    fig.suptitle(title)
    # One loss scale for every panel, so params compare at a glance.
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for i, (ax, panel) in enumerate(zip(axes, data.panels, strict=False)):
        _draw_panel(ax, panel, data)
        if i % ncols == 0:
            ax.set_ylabel("loss (lower is better)")
    for ax in axes[len(data.panels) :]:
        ax.set_visible(False)
    if data.y_limits is not None:  # shared axes: one call sets every panel
        axes[0].set_ylim(*data.y_limits)
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
    top = math.inf if data.y_limits is None else data.y_limits[1]
    for hollow, label in ((False, "ok trial"), (True, "pruned trial (loss when stopped)")):
        keep = [
            (t in data.pruned_tids) is hollow and y <= top
            for t, y in zip(panel.tids, panel.losses, strict=True)
        ]
        px = [x for x, k in zip(xs, keep, strict=True) if k]
        py = [y for y, k in zip(panel.losses, keep, strict=True) if k]
        _dots(ax, px, py, facecolors="none" if hollow else "C0", edgecolors="C0", label=label)
    above = [x for x, y in zip(xs, panel.losses, strict=True) if y > top]
    if above:  # far above the rest: drawn on the top edge, not stretching every panel
        edge = ax.get_xaxis_transform()
        label = f"loss far above the rest (top edge; {data.clipped} in all)"
        ax.scatter(above, [0.97] * len(above), transform=edge, marker="^", color="C3", label=label)
    for x, t, loss in zip(xs, panel.tids, panel.losses, strict=True):
        if t == data.best_tid:
            ax.scatter([x], [loss], zorder=4, label=f"best trial ({t})", **_BEST_STYLE)
    if data.log_y:
        ax.set_yscale("log")


def write_all(study: Study, out_dir: str | Path | None = None) -> list[Path]:
    """Write every plot as PNG into ``out_dir`` (default: the study folder); return the paths.

    Writes ``loss_history.png``, ``learning_curves.png`` and ``params.png``, each under a
    temporary name and renamed, so a viewer refreshing it never sees half a PNG.
    """
    out = Path(out_dir) if out_dir is not None else Path(study.study_dir)
    jobs: list[tuple[str, Callable[[], Figure | None]]] = [
        ("loss_history.png", lambda: plot_loss_history(study)),
        ("learning_curves.png", lambda: plot_learning_curves(study)),
        ("params.png", lambda: plot_params(study)),
    ]
    return write_pngs(out, jobs)


def write_pngs(out: Path, jobs: Sequence[tuple[str, Callable[[], Figure | None]]]) -> list[Path]:
    """Draw each ``(name, draw)`` job into ``out/name`` atomically; a ``None`` figure is
    skipped. Returns the paths written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise from_os_error(exc, out, "write plots") from None
    written = []
    for name, draw in jobs:
        fig = draw()  # one figure at a time: a big study's params grid holds many artists
        if fig is None:
            continue
        path, tmp = out / name, out / f".{name}.tmp"
        try:
            fig.savefig(tmp, format="png", dpi=_DPI)
            os.replace(tmp, path)
        except OSError as exc:  # a full or unwritable folder: no temp file left, one line
            tmp.unlink(missing_ok=True)
            raise from_os_error(exc, out, f"write {name}") from None
        finally:
            fig.clear()  # free the artists now rather than at the next garbage collection
        written.append(path)
    return written
