"""Memory of a whole stock study with the default settings: RSS after 10 and after 100 trials.

The bundled studies run trials in one worker process that is replaced every 10 trials
(``tpetune.bundled.DEFAULT_EXECUTOR``); the baseline, measured in the same run, runs them in the
driver's process (``Serial()``), where TensorFlow keeps ~16 MiB per trial that no
``clear_session`` returns. RSS is the driver's plus its live worker's, read from /proc after
every finished trial, on ``spaces/stock_small.py`` with one epoch per trial on the last three
years of the bundled prices (to keep 2 x 100 trials within minutes).

    python bench/memory_study.py                 # 100 trials per mode
    python bench/memory_study.py --trials 20     # a shorter look

Target (issue "keep working when the world misbehaves", item 13): RSS after 100 trials within
+200 MiB of RSS after 10.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
TARGET_MIB = 200.0


def tree_rss_mib(pid: int) -> float:
    """RSS of ``pid`` and all its descendants, in MiB (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return total


def child(trials: int, mode: str) -> None:
    """Run one study in this process; print one JSON line {trial: RSS MiB of the tree}."""
    from tpetune import NoPruner, Search, Serial, tune
    from tpetune.bundled import DEFAULT_EXECUTOR
    from tpetune.space import load_space
    from tpetune.stock.data import load_prices, recent_years
    from tpetune.stock.objective import StockObjective

    objective = StockObjective(prices=recent_years(load_prices(), 3), epochs=1, patience=1)
    rss: dict[int, float] = {}

    def measure(trials_so_far: object, record: object) -> None:
        rss[len(rss) + 1] = tree_rss_mib(os.getpid())

    with tempfile.TemporaryDirectory() as folder:
        tune(
            objective,
            load_space(ROOT / "spaces" / "stock_small.py"),
            study_dir=folder,
            max_evals=trials,
            search=Search(algo="rand"),  # proposals cost nothing: memory is the objective's
            pruner=NoPruner(),
            executor=DEFAULT_EXECUTOR if mode == "default" else Serial(),
            callbacks=[measure],
            progress=False,
        )
    print(json.dumps(rss))


def run_mode(trials: int, mode: str) -> dict[int, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(trials), "--mode", mode],
        check=True,
        capture_output=True,
        text=True,
    )
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per mode (default 100)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("default", "serial"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode)
        return
    started = time.perf_counter()
    first = min(10, args.trials)
    figures: dict[str, object] = {"trials": args.trials, "target_mib": TARGET_MIB}
    print(
        f"RSS (MiB, driver + workers) after trial {first} and {args.trials}, stock_small, 1 epoch"
    )
    for mode in ("serial", "default"):
        rss = run_mode(args.trials, mode)
        # With a recycled worker RSS saw-tooths: compare the peaks of the first and last windows.
        early = max(v for t, v in rss.items() if t <= first)
        late = max(v for t, v in rss.items() if t > args.trials - 10)
        growth = late - early
        met = "met" if growth <= TARGET_MIB else "missed"
        label = "serial (baseline)     " if mode == "serial" else "default (1 worker/10) "
        print(f"{label}: {early:7.1f} -> {late:7.1f}  growth {growth:+7.1f} MiB ({met})")
        figures[mode] = {"rss_after_10": early, "rss_at_end": late, "growth_mib": growth}
    serial_growth = figures["serial"]["growth_mib"]  # type: ignore[index]
    default_growth = figures["default"]["growth_mib"]  # type: ignore[index]
    print(f"growth, default / serial: {default_growth / max(serial_growth, 1e-9):.3f}")
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
