"""Process memory (RSS) over many stock trials, with and without ``keras.backend.clear_session``.

Runs N trials of ``spaces/stock_small.py`` (random points, one epoch each, the last 3 years of
the bundled prices) in a fresh subprocess per mode, printing RSS after trials 1, 5, 10, 15 and 20.
The baseline mode patches ``clear_session`` to a no-op, which is what an objective that forgets
it does.

    python bench/memory.py [--quick]

Prints RSS per checkpoint for both modes and the growth ratios RSS(last) / RSS(first trial).
"""

from __future__ import annotations

import argparse
import json
import resource
import runpy
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(trials: int, clear: bool) -> None:
    """Run the trials in this process and print one JSON line of {trial: rss_mib}."""
    import keras
    import numpy as np
    from hyperopt.pyll import stochastic

    from tpetune.stock.data import load_prices, recent_years
    from tpetune.stock.objective import StockObjective

    if not clear:
        keras.backend.clear_session = lambda *a, **k: None
    space = runpy.run_path(str(ROOT / "spaces" / "stock_small.py"))["space"]
    objective = StockObjective(prices=recent_years(load_prices(), 3), epochs=1, patience=1)
    rng = np.random.default_rng(0)
    rss = {}
    for trial in range(1, trials + 1):
        objective(stochastic.sample(space, rng=rng))
        rss[trial] = rss_mib()
    print(json.dumps(rss))


def run_mode(trials: int, clear: bool) -> dict[int, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(trials), "--clear" if clear else "--no-clear"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 trials instead of 20")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clear", action=argparse.BooleanOptionalAction, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, bool(args.clear))
        return
    started = time.perf_counter()
    trials = 10 if args.quick else 20  # the growth is linear: 20 trials show it
    marks = [t for t in (1, 5, 10, 15, 20) if t <= trials]
    print(f"RSS (MiB) after trial {marks} of spaces/stock_small.py, one epoch each")
    ratios = {}
    figures: dict[str, object] = {"trials": trials}
    for clear in (True, False):
        rss = run_mode(trials, clear)
        label = "with clear_session   " if clear else "without (baseline)   "
        ratios[clear] = rss[trials] / rss[1]
        growth = (rss[trials] - rss[1]) / (trials - 1)
        cells = "  ".join(f"{rss[t]:7.1f}" for t in marks)
        print(f"{label}: {cells}   growth {ratios[clear]:.3f}x, {growth:+.2f} MiB/trial")
        key = "with_clear" if clear else "without_clear"
        figures[f"growth_{key}"] = ratios[clear]
        figures[f"mib_per_trial_{key}"] = growth
        figures[f"rss_mib_{key}"] = {str(t): rss[t] for t in marks}
    figures["ratio_growth_with_vs_without"] = ratios[True] / ratios[False]
    print(
        f"ratio of growth factors, with / without clear_session: {ratios[True] / ratios[False]:.3f}"
    )
    common.Report(
        "memory",
        settings={"trials": trials},
        figures=figures,
        table=common.figure_table(figures),
        target="none stated: RSS growth with clear_session against without",
    ).write(args, started)


if __name__ == "__main__":
    main()
