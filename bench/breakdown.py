"""Where the main job's wall time goes, now and at a baseline commit, measured in one run.

Runs the real command, ``python -m tpetune stock`` (or ``digits``), as a user would, on this
tree and on a baseline commit's tree (a ``git worktree`` made for the run), in turn, each
in a fresh study folder; each repeat starts with the next tree, so every tree runs first as
often as the others (the first run of a repeat may be slower: run 15). Every Python
process of a run (driver, workers) loads the time probe
``bench/probe/sitecustomize.py``, which wraps Keras' compiled step functions, ``Model.fit``,
``clear_session``, ``Model.save``, ``tpetune.executors.run_trial``, ``tpetune.tune`` and the
final report, and logs each call's start and end; both trees get the same probe. Printed per
tree (median over ``--repeats``):

- wall time of the command, and its ratio to the baseline's (the figure of issue 23);
- seconds (summed over processes) and share of wall in: train steps (Keras' compiled train
  step after its first call), tracing/compiling (first calls of the train, test and predict
  functions), Keras' loop and validation (the rest of ``fit``), predict outside ``fit``,
  Keras/TensorFlow import, worker start (process start to its first job, import included),
  ``clear_session``, saving models; the search phase (``tune``) and the final report's wall;
  and the rest (driver start, TPE, store, IPC, plots).

With two workers the summed seconds can exceed the wall: shares then say how busy the
processes were, not how the wall splits. "train steps running" is the wall during which at
least one process was in a train step (the union of their spans; the probe's clock is
``time.time``, shared by the processes): issue 23's "share of the wall spent in train steps"
for a job that trains two trials at once, at most 100%. One process: the two are equal.

    python bench/breakdown.py                       # stock, 6 trials of 4 epochs, 1 repeat
    python bench/breakdown.py --study digits --max-evals 4
    python bench/breakdown.py --max-evals 30 --epochs 12 --repeats 3   # the full-size figure
    python bench/breakdown.py --baseline d2ff1a0 -- --workers 2       # extra flags for both
    python bench/breakdown.py --variant "--backend jax"   # also this tree with these flags
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from tpetune.study.store import Store, TrialState

PROBE = Path(__file__).resolve().parent / "probe"
BASELINE = "d2ff1a0"  # issue 23's baseline: the project before the fewer-fits work

#: Rows of the printed table: (label, key).
ROWS = (
    ("train steps", "train_step"),
    ("train steps running (any process), wall", "train_busy"),
    ("tracing / compiling (first step calls)", "trace"),
    ("Keras loop + validation (rest of fit)", "keras_loop"),
    ("predict outside fit", "predict"),
    ("import Keras + backend", "import_keras"),
    ("worker start (to first job, import incl.)", "worker_start"),
    ("clear_session", "clear_session"),
    ("save models", "save"),
    ("search phase (tune), wall", "tune_wall"),
    ("final report, wall", "report_wall"),
    ("rest of wall (driver start, TPE, store, IPC, plots)", "rest_wall"),
)


def breakdown(folder: Path, wall: float) -> dict[str, float]:
    """Seconds per category from the probe's logs of one run (see the module docstring)."""
    sums: dict[str, float] = defaultdict(float)
    tune_wall = report_wall = 0.0
    steps: list[tuple[float, float]] = []  # every process's train steps, for their union
    for path in folder.glob("*.jsonl"):
        events = [json.loads(line) for line in path.read_text().splitlines() if line]
        boot = min((e["t0"] for e in events if e["cat"] == "boot"), default=None)
        jobs = [e["t0"] for e in events if e["cat"] == "trial"]
        sums["import_keras"] += _union(
            [(e["t0"], e["t1"]) for e in events if e["cat"] == "import_keras"]
        )
        steps += [(e["t0"], e["t1"]) for e in events if e["cat"] == "train_step"]
        for e in events:
            if e["cat"] != "import_keras":
                sums[e["cat"]] += e["t1"] - e["t0"]
            if e["cat"] == "tune":
                tune_wall += e["t1"] - e["t0"]
            if e["cat"] == "report":
                report_wall += e["t1"] - e["t0"]
        if boot is not None and jobs and not any(e["cat"] == "tune" for e in events):
            sums["worker_start"] += min(jobs) - boot  # a worker: start to its first job
    fit_traces = sums["trace_fit"]
    return {
        "wall": wall,
        "train_step": sums["train_step"],
        "train_busy": _union(steps),
        "trace": sums["trace"] + fit_traces,
        "keras_loop": max(0.0, sums["fit"] - sums["train_step"] - fit_traces),
        "predict": sums["predict"],
        "import_keras": sums["import_keras"],
        "worker_start": sums["worker_start"],
        "clear_session": sums["clear_session"],
        "save": sums["save"],
        "tune_wall": tune_wall,
        "report_wall": report_wall,
        "rest_wall": max(0.0, wall - tune_wall - report_wall),
    }


def _union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by ``spans`` (nested imports count once)."""
    total, end = 0.0, float("-inf")
    for t0, t1 in sorted(spans):
        if t1 > end:
            total += t1 - max(t0, end)
            end = t1
    return total


def run_once(tree: Path, argv: list[str], *, label: str) -> dict[str, Any]:
    """One command on ``tree`` (its code first on ``PYTHONPATH``), probed; its breakdown."""
    with tempfile.TemporaryDirectory(prefix=f"breakdown-{label}-") as tmp:
        logs = Path(tmp) / "probe"
        logs.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(PROBE), str(tree)]),
            "TPETUNE_BREAKDOWN": str(logs),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        cmd = [sys.executable, "-m", "tpetune", *argv, "--study-dir", f"{tmp}/study"]
        launched = time.time()
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{label}: {' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = dict(breakdown(logs, wall))
        summary = json.loads((Path(tmp) / "study" / "summary.json").read_text())
        result["best_loss"] = float(summary.get("best_trial_loss", summary.get("cv_loss", 0)))
        result["test_ratio"] = float(summary.get("rmse_ratio", summary.get("test_accuracy", 0)))
        result["finishes"] = _trace(Path(tmp) / "study", launched)
        return result


def _trace(study: Path, launched: float) -> list[tuple[float, float]]:
    """(seconds since the command started, loss) of each finished ok trial, in finish order."""
    store = Store.open(study, readonly=True)
    try:
        recs = [r for r in store.records() if r.state is TrialState.OK and r.finished]
    finally:
        store.close()
    return sorted(
        ((r.finished or 0.0) - launched, float(r.loss)) for r in recs if r.loss is not None
    )


def _time_to(trace: list[tuple[float, float]], target: float) -> float:
    """Seconds until the best loss so far is <= ``target`` (inf: never)."""
    return next((t for t, loss in trace if loss <= target), math.inf)


def baseline_tree(commit: str, folder: Path) -> Path:
    """A checkout of ``commit`` (a git worktree in ``folder``, removed by the caller)."""
    subprocess.run(
        ["git", "-C", str(common.ROOT), "worktree", "add", "--detach", str(folder), commit],
        check=True,
        capture_output=True,
    )
    return folder


def table(runs: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    """Seconds, share of wall and ratio to the baseline, per category and tree (medians)."""
    med = {
        k: {f: statistics.median(r[f] for r in v) for f in v[0] if f != "finishes"}
        for k, v in runs.items()
    }
    base = med["baseline"]
    columns = ["where the time goes", "baseline s", "share"]
    for name in list(med)[1:]:
        columns += [f"{name} s", "share", "ratio"]
    rows = []
    for label, key in (("wall", "wall"), *ROWS):
        row = [label, f"{base[key]:.1f}", f"{base[key] / base['wall']:.0%}"]
        for name in list(med)[1:]:
            n = med[name][key]
            ratio = f"{n / base[key]:.2f}x" if base[key] > 0.05 else "-"
            row += [f"{n:.1f}", f"{n / med[name]['wall']:.0%}", ratio]
        rows.append(row)
    for label, key in (("best trial's loss", "best_loss"), ("test figure", "test_ratio")):
        row = [label, f"{base[key]:.5g}", ""]
        for name in list(med)[1:]:
            row += [f"{med[name][key]:.5g}", "", ""]
        rows.append(row)
    return columns, rows


#: Issue 23's wall ratio limits per study, and its targets as the JSON report states them.
LIMITS = {"stock": 0.5, "digits": 0.6}
TARGET = (
    f"median same-seed wall ratio <= {LIMITS['stock']} (stock) / {LIMITS['digits']} (digits); "
    ">= 60% of wall in train steps"
)


def target_met(runs: dict[str, list[dict[str, Any]]], study: str) -> bool:
    """Issue 23's targets, judged on the median of the same-seed wall ratios (the ratio of the
    median walls can pair a fast seed of one tree with a slow one of the other) and on the
    median share of this tree's wall during which a train step runs (the union over its
    processes, not their sum: two workers each at 40% of the wall are not 80% of it)."""
    train = statistics.median(_busy(r) / r["wall"] for r in runs["this tree"])
    return statistics.median(same_seed_ratios(runs)) <= LIMITS[study] and train >= 0.6


def _busy(run: dict[str, Any]) -> float:
    """Seconds of wall with a train step running (runs recorded before the union: the sum)."""
    return float(run.get("train_busy", run["train_step"]))


def same_seed_ratios(runs: dict[str, list[dict[str, Any]]]) -> list[float]:
    """This tree's wall over the baseline's, run by run (the same seed with --vary-seed)."""
    return [r["wall"] / b["wall"] for r, b in zip(runs["this tree"], runs["baseline"], strict=True)]


def print_spread(runs: dict[str, list[dict[str, Any]]]) -> None:
    """Per tree, over the seeds: wall ratio to the baseline's run with the same seed, time to
    the target loss, best loss and test figure, as median (min-max) (issue 23's quality and
    time-to-quality check). The target is the median final best over every run of every
    tree (a level a typical run reaches within the budget), as bench/live.py sets it."""
    base = runs["baseline"]
    target = statistics.median(r["best_loss"] for rs in runs.values() for r in rs)
    rows = []
    for name, rs in runs.items():
        ratios = [r["wall"] / b["wall"] for r, b in zip(rs, base, strict=True)]
        times = [_time_to(r.get("finishes", []), target) for r in rs]
        reached = sum(math.isfinite(t) for t in times)
        median_time = statistics.median(times)
        row = [name, _spread(ratios)]
        row.append(f"{median_time:.0f} s" if math.isfinite(median_time) else "not reached")
        row.append(f"{reached}/{len(times)}")
        row += [_spread([r["best_loss"] for r in rs]), _spread([r["test_ratio"] for r in rs])]
        row.append(" ".join(f"{r['best_loss']:.4f}/{r['test_ratio']:.4f}" for r in rs))
        rows.append(row)
    print(f"target loss {target:.5g} (median final best of all runs)")
    common.print_table(
        [
            "tree", "wall / baseline (same seed)", "time to target (median)", "reached",
            "best loss", "test figure", "per seed loss/test",
        ],
        rows,
    )  # fmt: skip


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.4g} ({min(values):.4g}-{max(values):.4g})"


def main() -> int:
    p = common.parser(__doc__ or "")
    p.add_argument("--study", choices=("stock", "digits"), default="stock")
    p.add_argument("--max-evals", type=int, default=6)
    p.add_argument("--epochs", type=int, help="stock: epochs per trial (default 4)")
    p.add_argument("--repeats", type=int, default=1, help="runs per tree, alternating")
    p.add_argument(
        "--vary-seed", action="store_true",
        help="repeat i runs with --seed i (a quality spread over seeds, paired wall ratios)",
    )  # fmt: skip
    p.add_argument("--baseline", default=BASELINE, help=f"commit (default {BASELINE})")
    p.add_argument(
        "--variant", action="append", default=[], metavar="FLAGS",
        help="also run this tree with these extra flags (repeatable), e.g. '--backend jax'",
    )  # fmt: skip
    p.add_argument("extra", nargs="*", help="more flags for both commands (after --)")
    args = p.parse_args()
    started = time.perf_counter()
    argv = [args.study, "--max-evals", str(args.max_evals), "--quiet", "--no-plots", *args.extra]
    if args.study == "stock":
        argv += ["--epochs", str(args.epochs or (2 if args.quick else 4))]
    variants = {"this tree": []} | {f"this tree {v}": v.split() for v in args.variant}
    runs: dict[str, list[dict[str, Any]]] = {"baseline": []} | {k: [] for k in variants}
    with tempfile.TemporaryDirectory(prefix="breakdown-base-") as tmp:
        base = baseline_tree(args.baseline, Path(tmp) / "tree")
        try:
            trees = [("baseline", base, []), *((k, common.ROOT, v) for k, v in variants.items())]
            for i in range(args.repeats):
                # Each repeat starts with the next tree: in an A/A run (docs/benchmarks.md,
                # run 15) the same code run second in a repeat took 0.88-1.22x (median 0.92)
                # of its wall run first, so a fixed order may bias every ratio.
                shift = i % len(trees)
                for position, (label, tree, more) in enumerate(trees[shift:] + trees[:shift]):
                    print(f"run {i + 1}/{args.repeats} {label} ...", flush=True)
                    name = "-".join(label.replace("-", "").split())
                    seed = ["--seed", str(i)] if args.vary_seed else []
                    runs[label].append(run_once(tree, argv + more + seed, label=name))
                    runs[label][-1]["position"] = position
                    last = runs[label][-1]
                    print(json.dumps({k: round(v, 4) for k, v in last.items() if k != "finishes"}))
        finally:
            subprocess.run(
                ["git", "-C", str(common.ROOT), "worktree", "remove", "--force", str(base)],
                capture_output=True,
            )
    columns, rows = table(runs)
    print(f"python -m tpetune {' '.join(argv)}; median of {args.repeats} run(s) per tree")
    common.print_table(columns, rows)
    if args.vary_seed:
        print_spread(runs)
    new, old = (statistics.median(r["wall"] for r in runs[k]) for k in ("this tree", "baseline"))
    train = statistics.median(_busy(r) / r["wall"] for r in runs["this tree"])
    summed = statistics.median(r["train_step"] / r["wall"] for r in runs["this tree"])
    paired = same_seed_ratios(runs)
    met = target_met(runs, args.study)
    print(
        f"target (median same-seed wall ratio <= {LIMITS[args.study]}; >= 60% of wall with a "
        f"train step running): {'met' if met else 'not met'} ({_spread(paired)}; train steps "
        f"running {train:.0%} of the wall, summed over processes {summed:.0%})"
    )
    figures = {
        "wall_ratio": new / old,
        "wall_ratio_same_seed": statistics.median(paired),
        "wall_ratio_same_seed_range": [min(paired), max(paired)],
        "train_step_share": train,
        "train_step_summed_share": summed,
        "wall_s": new,
    }
    common.Report(
        "breakdown",
        {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "argv": argv},
        figures,
        (columns, rows),
        target=TARGET,
        target_met=met,
        runs=[{"tree": k, **r} for k, v in runs.items() for r in v],
    ).write(args, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
