"""What each fit set-up change of KerasTrial buys, one change at a time, on the real objectives.

The same trials (``--trials`` random points of the study's space, trial *i* trained with seed
*i*, outside a study) are trained by ``KerasTrial`` five times over, each in a fresh process,
the five variants alternating per repeat:

- ``before``: the machinery as it was before these changes: a full garbage collection at every
  fold's session reset, a new model traced per fold, array inputs handed to Keras as arrays;
- ``+ one gc per trial``: the session reset of a trial's later folds skips the collection;
- ``+ compiled-model reuse``: folds after the first train the first fold's traced model
  (:mod:`tpetune.keras.reuse`);
- ``+ lean inputs``: arrays reach ``fit`` as plain datasets in Keras' own batch order
  (:mod:`tpetune.keras.inputs`);
- ``+ state before fit`` (this tree's default): the optimizer's and metrics' variables are
  made before ``fit``, so the train step is traced once, not twice
  (:mod:`tpetune.keras.prebuild`).

Printed per variant: the median wall of the trials, its ratio to ``before`` and to the variant
above it (the change's own ratio), and whether every trial's loss equals ``before``'s to the
bit (each change claims the same fit).

    python bench/fit_setup.py                              # digits, 8 trials, 3 repeats
    python bench/fit_setup.py --study stock --epochs 12    # the stock LSTM (one fold a trial)
    python bench/fit_setup.py --quick                      # a smoke run of under a minute:
                                                           # 400 images in 2 folds or 3 years,
                                                           # 2 epochs
    python bench/fit_setup.py --quick --variants "+ state before fit"   # before vs all changes

``--variants`` runs ``before`` and the named ones (cumulative as above, so ``+ state before
fit`` alone means every change at once).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

VARIANTS = (
    "before",
    "+ one gc per trial",
    "+ compiled-model reuse",
    "+ lean inputs",
    "+ state before fit",
)


def _configure(variant: str) -> None:
    """Switch KerasTrial's set-up changes on up to ``variant`` (cumulative, in VARIANTS order)."""
    from tpetune.keras import trial

    level = VARIANTS.index(variant)
    if level < 1:
        plain = trial.fresh_session

        def every_fold(seed: int, *, free_memory: bool = True) -> None:
            plain(seed, free_memory=True)

        trial.fresh_session = every_fold
    trial.KerasTrial.reuse_compiled = level >= 2
    trial.KerasTrial.lean_inputs = level >= 3
    trial.KerasTrial.prebuild = level >= 4


def child(study: str, variant: str, trials: int, epochs: int, quick: bool) -> dict[str, Any]:
    """Train the trials in this process under ``variant``; their wall and losses."""
    common.quiet()
    _configure(variant)
    if study == "stock":
        objective: Any = common.stock_objective(quick=quick, epochs=epochs)
        space = common.load_space("stock")
    else:
        from tpetune.digits.objective import DigitsObjective

        # quick: two folds still show every change (the second fold reuses the first's model)
        objective = DigitsObjective(limit=400, folds=2) if quick else DigitsObjective()
        space = common.load_space("digits")
    # The objective's nested point (what it receives in a study), not the flat params.
    points = [space.evaluate(vals) for vals in common.sample_vals(space, trials, seed=0)]
    if quick and study == "digits":  # a smoke run: the space's 40 epochs would be most of it
        points = [{**point, "epochs": min(point["epochs"], epochs)} for point in points]
    started = time.perf_counter()
    losses = []
    for i, params in enumerate(points):
        objective.seed = i
        losses.append(float(objective(params)["loss"]))
    return {"wall": time.perf_counter() - started, "losses": losses}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__ or "")
    p.add_argument("--study", choices=("digits", "stock"), default="digits")
    p.add_argument("--trials", type=int, help="trials per run (default 8; quick 2)")
    p.add_argument(
        "--epochs", type=int, default=12, help="stock: most epochs per trial (quick: 2, digits too)"
    )
    p.add_argument("--repeats", type=int, help="runs per variant (default 3; quick 1)")
    p.add_argument(
        "--variants",
        help="comma-separated variants to run after 'before' (default: all, in order)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)  # one variant's run, in a fresh process
    args = p.parse_args(argv)
    if any(n is not None and n < 1 for n in (args.trials, args.repeats)):
        p.error("--trials and --repeats must be at least 1")
    asked = {v.strip() for v in args.variants.split(",")} if args.variants else set(VARIANTS)
    if asked - set(VARIANTS):
        p.error(f"--variants {args.variants}: choose from {', '.join(VARIANTS)}")
    variants = [v for v in VARIANTS if v == "before" or v in asked]
    trials = args.trials or (2 if args.quick else 8)
    epochs = 2 if args.quick else args.epochs
    if args.child:
        result = child(args.study, args.child, trials, epochs, args.quick)
        print("RESULT " + json.dumps(result))
        return 0
    repeats = args.repeats or (1 if args.quick else 3)
    started = time.time()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(repeats):
        for variant in variants:
            print(f"repeat {r + 1}/{repeats}: {variant} ...", flush=True)
            runs[variant].append(_spawn(args, variant))
    walls = {v: statistics.median(run["wall"] for run in runs[v]) for v in variants}
    reference = runs["before"][0]["losses"]
    same = {v: all(run["losses"] == reference for run in runs[v]) for v in variants}
    columns = ["variant", "wall s (median)", "vs before", "vs the row above", "same losses"]
    rows = []
    for i, v in enumerate(variants):
        above = walls[variants[i - 1]] if i else walls[v]
        rows.append(
            [
                v,
                common.fmt(walls[v], ".1f"),
                common.fmt(common.ratio(walls[v], walls["before"]), ".2f", "x"),
                common.fmt(common.ratio(walls[v], above), ".2f", "x") if i else "-",
                "yes" if same[v] else "NO",
            ]
        )
    what = f"{args.study}: {trials} trial{'s' if trials != 1 else ''}"
    if args.study == "stock":
        what += f" of at most {epochs} epochs"
    print(f"{what}, median of {repeats} run(s) per variant, each in a fresh process")
    common.print_table(columns, rows)
    figures = {
        "study": args.study,
        "trials": trials,
        "walls": walls,
        "ratio_vs_before": {v: common.ratio(walls[v], walls["before"]) for v in variants},
        "same_losses": same,
        "runs": runs,
    }
    common.write_report(
        args,
        {
            "benchmark": "fit_setup",
            "quick": args.quick,
            "seconds": time.time() - started,
            "settings": {
                "study": args.study,
                "trials": trials,
                "epochs": epochs,
                "repeats": repeats,
                "variants": variants,
            },
            "figures": figures,
            "target": "each change the same losses, less wall",
            "target_met": all(same.values()) and walls[variants[-1]] < walls["before"],
            "table": {"columns": columns, "rows": rows},
            "png": None,
            "runs": [],
        },
    )
    return 0 if all(same.values()) else 1


def _spawn(args: Any, variant: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", variant, "--study", args.study]
    cmd += ["--epochs", str(args.epochs)] + (["--quick"] if args.quick else [])
    if args.trials:
        cmd += ["--trials", str(args.trials)]
    done = subprocess.run(cmd, cwd=common.ROOT, capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{variant} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    print(f"  {result['wall']:.1f} s", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
