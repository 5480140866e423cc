"""What re-training from scratch costs DEHB in the recorded-curves replay, per table.

DEHB (``bench/replay_dehb.py``) has no checkpoint continuation and keeps no cache, so a
configuration promoted to a higher fidelity, or drawn again, is trained again from its first
epoch. For each table this replays DEHB at ``bench/freeze_thaw.py``'s budget over ``--seeds``
seeds and prints the median evaluations, distinct configurations, and the share of epochs
spent on a configuration evaluated before (at any fidelity).

    python bench/dehb_retraining.py            # digits and stock, 30 seeds (about 10 s)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import replay
from bench.replay_dehb import run_dehb
from bench.replay_sim import Sim
from bench.tabular import row_key


def repeats(sim: Sim) -> dict[str, float]:
    """What re-training costs a finished DEHB replay: evaluations, distinct configurations, and
    the share of the epochs spent on a configuration evaluated before (at any fidelity)."""
    seen: set[str] = set()
    again = 0
    for params, outcome in sim.history:
        key = row_key(params)
        again += len(outcome.curve) if key in seen else 0
        seen.add(key)
    return {"evaluations": len(sim.history), "distinct": len(seen), "retrained": again / sim.spent}


def main(argv: list[str] | None = None) -> int:
    """``python bench/dehb_retraining.py [--seeds 30]``: DEHB's re-training figures per table
    (medians over the seeds, at bench/freeze_thaw.py's budgets)."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--tables", default="digits,stock")
    args = p.parse_args(argv)
    for name in args.tables.split(","):
        table = replay._table(name)
        budget = round(replay.FULL.budgets[name][0] * replay.mean_trial_epochs(table))
        runs = [repeats(run_dehb(Sim(table, budget), seed)) for seed in range(args.seeds)]
        medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{name} ({budget} epochs, {len(table.val_loss)} configurations): "
            f"{medians['evaluations']:.0f} evaluations of {medians['distinct']:.0f} distinct "
            f"configurations; {medians['retrained']:.0%} of the epochs re-train a configuration "
            f"evaluated before (range {min(r['retrained'] for r in runs):.0%}-"
            f"{max(r['retrained'] for r in runs):.0%}; medians over {args.seeds} seeds)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
