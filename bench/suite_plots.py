"""The PNGs of the benchmarks whose scripts print figures but draw nothing.

``overhead``, ``stock_epoch`` and ``memory`` print their figures and write a JSON; the suite
(``bench/run_all.py``) draws their plots from those reports, so a page can also be re-rendered
from stored JSONs (``python -m bench --render``) without running anything again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common

DRIVERS = (
    ("fmin", "hyperopt.fmin, in-memory Trials", "tab:gray"),
    ("fmin_pickle", "hyperopt.fmin, trials_save_file", "tab:red"),
    ("tpetune", "tpetune.tune, SQLite store", "tab:blue"),
)


def overhead(report: dict[str, Any], path: Path) -> str | None:
    """Per-trial time against trial count, per driver: in all, and outside ``tpe.suggest``."""
    runs = sorted(report.get("runs") or [], key=lambda r: r["trials"])
    if not runs:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    total, own = fig.subplots(1, 2)
    for key, label, color in DRIVERS:
        mine = [r for r in runs if f"{key}_s" in r]
        if not mine:
            continue
        n = [r["trials"] for r in mine]
        total.plot(
            n, [1000 * r[f"{key}_s"] / r["trials"] for r in mine], "o-", color=color, label=label
        )
        if all(f"{key}_own_ms_per_trial" in r for r in mine):
            own.plot(
                n, [r[f"{key}_own_ms_per_trial"] for r in mine], "o-", color=color, label=label
            )
    for ax, what in ((total, "in all"), (own, "outside tpe.suggest: the driver's own")):
        ax.set_xscale("log")
        ax.set_xlabel("trials in the run")
        ax.set_ylabel("ms per trial")
        ax.set_title(f"Time per zero-cost trial, {what}", fontsize="medium")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    total.legend(fontsize="small")
    return common.save_png(fig, path)


def stock_epoch(report: dict[str, Any], path: Path) -> str | None:
    """Milliseconds per epoch, plain ``model.fit`` against the objective, three ways."""
    f = report.get("figures") or {}
    pairs = [
        ("median wall", "plain_ms_per_epoch", "objective_ms_per_epoch"),
        ("median CPU", "plain_cpu_ms_per_epoch", "objective_cpu_ms_per_epoch"),
    ]
    pairs = [p for p in pairs if p[1] in f and p[2] in f]
    if not pairs:
        return None
    fig, ax = common.new_axes(6.0, 3.8)
    x = range(len(pairs))
    width = 0.38
    plain = [f[p[1]] for p in pairs]
    ours = [f[p[2]] for p in pairs]
    ax.bar([i - width / 2 for i in x], plain, width, color="tab:gray", label="plain model.fit")
    ax.bar([i + width / 2 for i in x], ours, width, color="tab:blue", label="StockObjective")
    for i, (p, o) in enumerate(zip(plain, ours, strict=True)):
        ax.annotate(f"{o / p:.3f}x", (i + width / 2, o), ha="center", va="bottom", fontsize="small")
    ax.set_xticks(list(x), [p[0] for p in pairs])
    ax.set_ylabel("ms per epoch")
    ax.set_title(
        "One epoch of the stock LSTM: the objective's machinery vs a plain fit", fontsize="medium"
    )
    ax.legend(fontsize="small", loc="lower right")
    return common.save_png(fig, path)


def memory(report: dict[str, Any], path: Path) -> str | None:
    """Resident memory after every trial of the stock study: the default executor and serial."""
    f = report.get("figures") or {}
    series = [
        ("rss_mib_default", "default: two worker processes, each new after 10 trials", "tab:blue"),
        ("rss_mib_serial", "Serial(): trials in the driver (baseline)", "tab:gray"),
    ]
    series = [s for s in series if isinstance(f.get(s[0]), dict)]
    if not series:
        return None
    fig, ax = common.new_axes(6.5, 4.0)
    for key, label, color in series:
        marks = sorted(f[key].items(), key=lambda kv: int(kv[0]))
        ax.plot([int(t) for t, _ in marks], [v for _, v in marks], "-", color=color, label=label)
    ax.set_xlabel("finished trials")
    ax.set_ylabel("RSS of the driver and its processes (MiB)")
    ax.set_title("Memory over a stock study", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return common.save_png(fig, path)


DRAW: dict[str, Callable[[dict[str, Any], Path], str | None]] = {
    "overhead": overhead,
    "stock_epoch": stock_epoch,
    "memory": memory,
}


def draw(name: str, report: dict[str, Any], out: Path) -> str | None:
    """Draw ``name``'s PNG into ``out`` when the suite knows how; its file name, else None."""
    drawer = DRAW.get(name)
    return drawer(report, out / f"{name}.png") if drawer else None
