"""Memory of a whole stock study with the default settings: RSS after 10 and after 100 trials.

``tpetune stock`` runs its trials in worker processes that are replaced every 10 trials
(``tpetune.bundled.default_executor``: one per the study's lag, two for a new study; one when
this was first measured on 2026-12-02; since issue 23 a replacement starts as a spare during
its predecessor's last trial), because TensorFlow keeps ~16 MiB per trial that no
``keras.backend.clear_session`` returns. This benchmark runs the stock study as that command
does (its space, 10 years of prices, 12 epochs, patience 3, TPE, the median pruner, through
:func:`tpetune.bundled.run_bundled`) and reads, after every finished trial, the resident memory
of the driver and all its child processes from /proc. The baseline, in the same run, is the
same study with ``executor=Serial()``: trials in the driver's own process. Both get the same
seed and lag, so they propose and train the same models; RSS does not
depend on timing, so the two studies run side by side.

    python bench/memory.py --json docs/bench/memory.json   # 100 trials per mode
    python bench/memory.py --trials 30                     # a shorter look
    python bench/memory.py --quick                         # 4 one-epoch trials, stock_small

Target (issue "keep working when the world misbehaves", item 13): RSS after 100 trials within
+200 MiB of RSS after 10. With a recycled worker RSS saw-tooths, so the figures are the peaks
of the first 10 trials and of the last 10.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

TARGET_MIB = 200.0
WINDOW = 10  # trials: "after 10" is the peak of the first window, "after N" of the last
MODES = ("default", "serial")
LABELS = {"default": "default (2 workers, each new after 10)", "serial": "Serial() (baseline)"}


@dataclass(frozen=True)
class Settings:
    trials: int = 100
    space: str = "stock"  # a file in spaces/
    epochs: int | None = None  # None: the stock study's default
    test_folds: int | None = None  # the final report's test blocks; None: the default (3)


FULL = Settings()
QUICK = Settings(trials=4, space="stock_small", epochs=1, test_folds=1)


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


def child(s: Settings, mode: str, out: Path) -> None:
    """Run one stock study in this process, writing {trial: RSS MiB of the tree} to ``out``."""
    from tpetune import Search, Serial
    from tpetune.bundled import bundled_study, run_bundled

    rss: dict[int, float] = {}
    data = {"epochs": s.epochs, "test_folds": s.test_folds}

    def measure(trials_so_far: object, record: object) -> None:
        rss[len(rss) + 1] = tree_rss_mib(os.getpid())
        out.write_text(json.dumps(rss))  # after every trial: a run cut short keeps its figures

    with tempfile.TemporaryDirectory() as folder:
        run_bundled(
            bundled_study("stock"),
            study_dir=folder,
            space=common.SPACES / f"{s.space}.py",
            max_evals=s.trials,
            progress=False,
            data={k: v for k, v in data.items() if v is not None},
            executor=Serial() if mode == "serial" else None,  # None: the default executor
            search=Search(seed=0),
            callbacks=[measure],
        )


def run_modes(s: Settings, folder: Path) -> dict[str, dict[int, float]]:
    """Both modes as concurrent subprocesses; {mode: {trial: RSS MiB}}."""
    procs = {}
    for mode in MODES:
        cmd = [sys.executable, __file__, "--child", mode, "--settings", json.dumps(vars(s))]
        cmd += ["--out", str(folder / f"{mode}.json")]
        procs[mode] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for mode, proc in procs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{mode} study failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return {
        mode: {int(k): v for k, v in json.loads((folder / f"{mode}.json").read_text()).items()}
        for mode in MODES
    }


def figures_of(rss: dict[int, float], trials: int) -> dict[str, float]:
    first = min(WINDOW, trials)
    early = max(v for t, v in rss.items() if t <= first)
    late = max(v for t, v in rss.items() if t > trials - WINDOW)
    return {"rss_after_10": early, "rss_at_end": late, "growth_mib": late - early}


def main() -> None:
    p = common.parser(__doc__)
    common.add_budget_flags(p, "trials")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--settings", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(Settings(**json.loads(args.settings)), args.child, args.out)
        return
    common.quiet()
    started = time.perf_counter()
    s = common.pick(args, FULL, QUICK)
    first = min(WINDOW, s.trials)
    epochs = "the study's epochs" if s.epochs is None else f"{s.epochs} epoch(s)"
    print(f"RSS (MiB, driver + its processes) after trial {first} and {s.trials}")
    print(f"of the stock study on spaces/{s.space}.py, {epochs}; both modes side by side")
    with tempfile.TemporaryDirectory() as folder:
        series = run_modes(s, Path(folder))
    per_mode = {mode: figures_of(series[mode], s.trials) for mode in MODES}
    figures: dict[str, object] = {"trials": s.trials, "target_mib": TARGET_MIB}
    rows = []
    for mode, f in per_mode.items():
        met = "met" if f["growth_mib"] <= TARGET_MIB else "missed"
        label = LABELS[mode]
        print(
            f"{label:34s}: {f['rss_after_10']:7.1f} -> {f['rss_at_end']:7.1f}  "
            f"growth {f['growth_mib']:+7.1f} MiB ({met})"
        )
        cells = [f"{f['rss_after_10']:.0f}", f"{f['rss_at_end']:.0f}", f"{f['growth_mib']:+.0f}"]
        rows.append([label, *cells, met])
        figures.update({f"{k}_{mode}": v for k, v in f.items()})
        figures[f"rss_mib_{mode}"] = {str(t): round(v, 1) for t, v in sorted(series[mode].items())}
    growth = {mode: f["growth_mib"] for mode, f in per_mode.items()}
    ratio = growth["default"] / max(abs(growth["serial"]), 1e-9)
    figures["growth_ratio_default_vs_serial"] = ratio
    print(f"growth, default / serial: {ratio:.3f}")
    columns = ["mode", f"RSS after {first} (MiB)", f"RSS after {s.trials} (MiB)"]
    columns += ["growth (MiB)", f"target (+{TARGET_MIB:.0f} MiB)"]
    common.Report(
        "memory",
        settings=s,
        figures=figures,
        table=(columns, rows),
        target=f"RSS after {s.trials} trials within +{TARGET_MIB:.0f} MiB of RSS after "
        f"{first}, with the default settings",
        target_met=growth["default"] <= TARGET_MIB,
    ).write(args, started)


if __name__ == "__main__":
    main()
